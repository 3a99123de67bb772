"""The start of a proxy request, made cheaper without changing what it reads (issue 17, round five).

The body's encoding is still detected as ``json.loads(bytes)`` does (UTF-8 is only assumed for a
body opening with ``{`` and a non-zero byte); the Router still reads the upstream's remaining
quota as httpx's ``Headers.get`` gives it; the memory state's look-and-reserve in one hold of
its lock counts as the two calls did.
"""

from __future__ import annotations

import codecs
import json
from typing import Any

import httpx
from modelyard.router.router import _quota
from modelyard.router.state import MemoryState, Reservation, Snapshot
from modelyard.testing.server import serve_in_thread

from .conftest import MASTER_KEY

BODY = {"model": "gpt-4o", "messages": [{"role": "user", "content": "héllo"}]}


def test_a_body_in_any_json_encoding_is_read(proxy: serve_in_thread) -> None:
    text = json.dumps(BODY, ensure_ascii=False)
    bodies = {
        "utf-8": text.encode(),
        "utf-8 with BOM": codecs.BOM_UTF8 + text.encode(),
        "utf-16-le (no BOM)": text.encode("utf-16-le"),
        "utf-16-be (no BOM)": text.encode("utf-16-be"),
        "utf-16 (BOM)": text.encode("utf-16"),
        "utf-32-le (no BOM)": text.encode("utf-32-le"),
        "utf-32 (BOM)": text.encode("utf-32"),
    }
    headers = {"Authorization": f"Bearer {MASTER_KEY}", "Content-Type": "application/json"}
    with httpx.Client(base_url=proxy.url, headers=headers, timeout=30) as client:
        for name, raw in bodies.items():
            assert json.loads(raw) == BODY  # what the proxy must read, as json.loads does
            answer = client.post("/v1/chat/completions", content=raw)
            assert answer.status_code == 200, (name, answer.text)
            assert answer.json()["choices"][0]["message"]["content"], name
        bad = client.post("/v1/chat/completions", content=b"{\xff}")
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_json"


def _reference_quota(headers: httpx.Headers) -> tuple[Any, Any] | None:
    """What the Router read before: two ``Headers.get``, as numbers (None when not one); None
    when neither header is there."""

    def num(v: Any) -> int | None:
        try:
            return int(float(v)) if v is not None else None
        except ValueError:
            return None

    requests, tokens = headers.get("x-ratelimit-remaining-requests"), headers.get("x-ratelimit-remaining-tokens")
    return None if requests is None and tokens is None else (num(requests), num(tokens))


def test_the_router_reads_the_remaining_quota_as_httpx_gives_it() -> None:
    cases: list[list[tuple[str, str]]] = [
        [("X-RateLimit-Remaining-Requests", "99"), ("x-ratelimit-remaining-tokens", "9000.0")],
        [("x-ratelimit-remaining-tokens", "12")],
        [("x-ratelimit-remaining-requests", "3"), ("x-ratelimit-remaining-requests", "4")],  # sent twice
        [("x-ratelimit-remaining-requests", "many"), ("x-ratelimit-remaining-tokens", " 7 ")],
        [("x-ratelimit-remaining-requests-extra", "5"), ("content-type", "application/json")],
        [],
    ]
    for case in cases:
        headers = httpx.Response(200, headers=case).headers
        quota = _quota(headers)
        expected = _reference_quota(headers)
        if expected is None:
            assert quota is None, case
        else:
            assert quota is not None and (quota.remaining_requests, quota.remaining_tokens) == expected, case
    # Any other mapping is asked through its get, as before.
    plain = _quota({"x-ratelimit-remaining-requests": "5"})
    assert plain is not None and (plain.remaining_requests, plain.remaining_tokens) == (5, None)


class _Counting(MemoryState):
    """A subclass: keeps its own two calls."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def snapshot(self, ids: Any) -> dict[str, Snapshot]:
        self.calls.append("snapshot")
        return super().snapshot(ids)

    def reserve(self, id: str, rpm: int | None) -> Reservation | None:
        self.calls.append("reserve")
        return super().reserve(id, rpm)


async def test_look_and_reserve_in_memory_count_as_the_two_calls_did() -> None:
    together, apart = MemoryState(), MemoryState()
    for _ in range(3):
        snaps, slot = await together.asnapshot_reserve(["a", "b"], "a", 3)
        assert snaps == apart.snapshot(["a", "b"]) and slot == apart.reserve("a", 3)
    assert slot is not None
    assert (await together.asnapshot_reserve(["a"], "a", 3))[1] is None  # the window is full: nothing counted
    assert together.snapshot(["a"]) == apart.snapshot(["a"]) and together.snapshot(["a"])["a"].in_flight == 3
    together.release(slot, tokens=5)
    assert together.snapshot(["a"])["a"].in_flight == 2 and together.snapshot(["a"])["a"].tokens == 5
    sub = _Counting()
    await sub.asnapshot_reserve(["a"], "a", None)
    sub.snapshot_reserve(["a"], "a", None)
    assert sub.calls == ["snapshot", "reserve", "snapshot", "reserve"]
