"""bench/wrk.py (the bench's load generator, wrk with bench/load.lua) against bench/upstream.py, for real.

No timing is asserted: only that the JSON wrk's ``done()`` prints parses, counts what was sent
and read every answer to its end (``./dev test`` installs wrk, the Debian package).
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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def canned() -> Iterator[str]:
    port = _free_port()
    proc = subprocess.Popen([sys.executable, str(BENCH / "upstream.py"), "--port", str(port)], stdout=subprocess.DEVNULL)
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


@pytest.mark.parametrize(("body", "path", "reply"), [
    ("chat", "/gpt-4o/chat/completions", upstream._REPLY),
    ("stream", "/gpt-4o/chat/completions", upstream._STREAM),
    ("embeddings", "/text-embedding-3-small/embeddings", upstream._EMB_REPLY),
])  # fmt: skip
def test_wrk_counts_whole_answers(canned: str, body: str, path: str, reply: bytes) -> None:
    concurrency = 4
    r = wrk.run(f"{canned}{path}?api-version=2024-10-21", concurrency, 1, key="sk-bench-test", body=body, warmup=0)
    assert r["errors"] == 0 and r["requests"] > 0, r
    assert r["req_per_s"] == pytest.approx(r["requests"] / r["duration_s"], rel=1e-3)
    assert 0 < r["p50_ms"] <= r["p99_ms"], r
    assert r["load_cpu_s"] > 0
    # Every counted answer was read whole (for a stream: to its last event); at most one
    # answer per connection was cut off by the end of the run.
    assert len(reply) * r["requests"] <= r["bytes"] < len(reply) * (r["requests"] + concurrency), (r, len(reply))


def test_a_target_that_refuses_fails_the_run() -> None:
    with pytest.raises(RuntimeError, match="unable to connect"):
        wrk.run(f"http://127.0.0.1:{_free_port()}/v1/chat/completions", 2, 1, warmup=0)


def test_the_script_posts_load_py_bodies() -> None:
    """bench/load.lua posts the bodies bench/load.py posts (``--load aiohttp`` measures the same requests)."""
    load = _module("load")
    script = (BENCH / "load.lua").read_text()
    for name, body in load.BODIES.items():
        assert f"{name} = '{json.dumps(body)}'" in script, name
