"""What a new user found trying ``./dev serve`` (issue 18): each is now a test against the default
``modelyard serve`` (no config: the emulator in the same process as the proxy)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from .test_lifecycle import read_banner, serve

HELLO = [{"role": "user", "content": "Hello"}]


@pytest.fixture(scope="module")
def default_serve() -> Iterator[tuple[str, dict[str, str]]]:
    with serve() as (proc, url):
        key = re.search(r"master key \(generated for this run\): (sk-\S+)", read_banner(proc))
        assert key is not None
        yield url, {"Authorization": f"Bearer {key.group(1)}"}


def post(default_serve: tuple[str, dict[str, str]], body: dict[str, Any] | bytes) -> httpx.Response:
    url, auth = default_serve
    if isinstance(body, bytes):
        return httpx.post(f"{url}/v1/chat/completions", content=body,
                          headers={**auth, "content-type": "application/json"}, timeout=60)  # fmt: skip
    return httpx.post(f"{url}/v1/chat/completions", json=body, headers=auth, timeout=60)


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        # Once allocated 24 GB in the embedded emulator until the kernel killed the proxy.
        ({"n": 100_000_000}, "n"),
        ({"n": 129}, "n"),
        # Once a 500 from the emulator, passed on as 500.
        ({"tools": [{"type": "function"}]}, "tools[0].function"),
        ({"temperature": "hot"}, "temperature"),
        ({"temperature": 2.5}, "temperature"),
        ({"max_tokens": "ten"}, "max_tokens"),
        ({"messages": [{"content": "no role"}]}, "messages[0].role"),
        ({"messages": [{"role": "wizard", "content": "hi"}]}, "messages[0].role"),
    ],
)
def test_wrong_input_is_a_400_naming_the_field(default_serve: tuple[str, dict[str, str]],
                                               extra: dict[str, Any], param: str) -> None:  # fmt: skip
    r = post(default_serve, {"model": "gpt-4o", "messages": HELLO, **extra})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == param, r.text


def test_deep_nesting_is_a_400_and_the_proxy_keeps_serving(default_serve: tuple[str, dict[str, str]]) -> None:
    r = post(default_serve, b'{"model": "gpt-4o", "messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json", r.text
    ok = post(default_serve, {"model": "gpt-4o", "messages": HELLO, "n": 128})
    assert ok.status_code == 200 and len(ok.json()["choices"]) == 128


def test_200_kb_header_is_refused(default_serve: tuple[str, dict[str, str]]) -> None:
    url, auth = default_serve
    r = httpx.post(f"{url}/v1/chat/completions", json={"model": "gpt-4o", "messages": HELLO},
                   headers={**auth, "x-big": "x" * 200_000}, timeout=60)  # fmt: skip
    assert r.status_code == 431
