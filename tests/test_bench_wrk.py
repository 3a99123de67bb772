"""bench/wrk.py (the bench's load generator, wrk with bench/load.lua) against bench/upstream.py, for real.

No timing is asserted: only that the JSON wrk's ``done()`` prints parses, counts what was sent
and read every answer to its end (``./dev test`` installs wrk, the Debian package), against
bench/upstream.py and against the same answers from nginx (bench/upstream_nginx.py; ``./dev
test`` installs nginx and its njs module).
"""

from __future__ import annotations

import importlib.util
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).parents[1] / "bench"


def _module(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"modelyard_bench_{name}", BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


wrk = _module("wrk")
upstream = _module("upstream")
upstream_nginx = _module("upstream_nginx")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module", params=["python", "nginx"])
def canned(request: pytest.FixtureRequest) -> Iterator[str]:
    """bench/upstream.py, or the same answers from nginx (bench/upstream_nginx.py, ``--upstream nginx``)."""
    port = _free_port()
    if request.param == "nginx":
        cmd = upstream_nginx.command(port)
    else:
        cmd = [sys.executable, str(BENCH / "upstream.py"), "--port", str(port)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "bench/upstream.py did not start"
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/openai/deployments"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.parametrize(("body", "path", "answer"), [
    ("chat", "/gpt-4o/chat/completions", upstream._BODY),
    ("stream", "/gpt-4o/chat/completions", upstream._EVENTS),
    ("embeddings", "/text-embedding-3-small/embeddings", upstream._EMB_BODY),
])  # fmt: skip
def test_wrk_counts_whole_answers(canned: str, body: str, path: str, answer: bytes) -> None:
    concurrency = 4
    r = wrk.run(f"{canned}{path}?api-version=2024-10-21", concurrency, 1, key="sk-bench-test", body=body, warmup=0)
    assert r["errors"] == 0 and r["requests"] > 0, r
    assert r["req_per_s"] == pytest.approx(r["requests"] / r["duration_s"], rel=1e-3)
    assert 0 < r["p50_ms"] <= r["p99_ms"], r
    assert r["load_cpu_s"] > 0
    # Every counted answer was read whole (for a stream: to its last event), its head (at most
    # 512 bytes) included; at most one answer per connection was cut off by the end of the run.
    assert len(answer) * r["requests"] <= r["bytes"] < (len(answer) + 512) * (r["requests"] + concurrency), (r, len(answer))


def test_a_target_that_refuses_fails_the_run() -> None:
    with pytest.raises(RuntimeError, match="unable to connect"):
        wrk.run(f"http://127.0.0.1:{_free_port()}/v1/chat/completions", 2, 1, warmup=0)


def test_the_script_posts_load_py_bodies() -> None:
    """bench/load.lua posts the bodies bench/load.py posts (``--load aiohttp`` measures the same requests)."""
    load = _module("load")
    script = (BENCH / "load.lua").read_text()
    for name, body in load.BODIES.items():
        assert f"{name} = '{json.dumps(body)}'" in script, name


def test_nginx_answers_what_upstream_py_answers(canned: str) -> None:
    """Byte for byte, the body of each of the three answers, and a stream's content type."""
    import httpx

    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}]}
    with httpx.Client() as client:
        chat = client.post(f"{canned}/gpt-4o/chat/completions?api-version=2024-10-21", json=body)
        stream = client.post(f"{canned}/gpt-4o/chat/completions?api-version=2024-10-21", json={**body, "stream": True})
        emb = client.post(f"{canned}/text-embedding-3-small/embeddings?api-version=2024-10-21", json={"input": "Hi"})
    assert chat.content == upstream._BODY and chat.headers["content-type"] == "application/json"
    assert stream.content == upstream._EVENTS and stream.headers["content-type"] == "text/event-stream"
    assert emb.content == upstream._EMB_BODY and emb.headers["content-type"] == "application/json"
