"""Request heads are bounded in size and time before authentication (``modelyard serve``, issue 22 bug 10)."""

from __future__ import annotations

import socket
import statistics
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from modelyard.testing import KEY

from .conftest import MASTER_KEY
from .test_lifecycle import serve

CHUNK = b"a" * 4096
GIVE_UP = 8 * 1024 * 1024  # an unbounded proxy never refuses: stop streaming here


@pytest.fixture(scope="module")
def proxy_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``modelyard serve`` with the default 16 KiB head limit and 2 s header and body timeouts."""
    config = Path(tmp_path_factory.mktemp("limits")) / "config.yaml"
    config.write_text(f"""
model_list:
  - model_name: m
    litellm_params: {{model: azure/gpt-4o, api_base: "http://127.0.0.1:9", api_key: "{KEY}"}}
general_settings: {{master_key: "{MASTER_KEY}", request_header_timeout: 2, request_body_timeout: 2}}
""")
    with serve("--config", str(config)) as (_, url):
        yield url


def _connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _stream_endless_header(url: str) -> tuple[int, bytes]:
    """Send a header value that never ends; return the bytes sent when the proxy cut us off, and what it said."""
    sent = 0
    answer = b""
    with _connect(url) as sock:
        sock.sendall(b"GET /health/liveliness HTTP/1.1\r\nHost: proxy\r\nX-Endless: ")
        sock.setblocking(False)
        while sent < GIVE_UP:
            try:
                answer += sock.recv(65536)
                break  # the proxy answered (or closed: recv returned b"")
            except BlockingIOError:
                pass
            except OSError:  # reset
                break
            try:
                sent += sock.send(CHUNK)
            except BlockingIOError:
                pass  # the proxy is not reading
            except OSError:  # the proxy closed the connection
                break
            # Paced (~4 MB/s), so that the bytes counted here are about the bytes the proxy read,
            # not megabytes waiting in loopback socket buffers when it closes.
            time.sleep(0.001)
    return sent, answer


def test_endless_header_is_refused_and_probe_answered(proxy_url: str) -> None:
    stop = threading.Event()
    refusals: list[tuple[int, bytes]] = []

    def attacker() -> None:  # reconnects after each refusal: the stream of header bytes never stops
        while not stop.is_set():
            refusals.append(_stream_endless_header(proxy_url))

    threads = [threading.Thread(target=attacker) for _ in range(2)]
    for t in threads:
        t.start()
    probes: list[float] = []
    try:
        with httpx.Client(base_url=proxy_url, timeout=30) as http:
            for _ in range(15):
                time.sleep(0.05)
                started = time.perf_counter()
                assert http.get("/health/liveliness").status_code == 200
                probes.append(time.perf_counter() - started)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=120)
    assert refusals, "no attack connection finished"
    # every attack connection was cut off near the 16 KiB limit, far before the proxy buffered 1 MB
    assert max(sent for sent, _ in refusals) < 1024 * 1024, sorted(sent for sent, _ in refusals)[-5:]
    answers = [answer for _, answer in refusals if answer]
    assert all(a.startswith(b"HTTP/1.1 431 ") for a in answers), answers[:3]
    # ... and the proxy kept answering another client quickly while the attack went on
    assert statistics.median(probes) < 0.1, probes


def test_head_limit_applies_to_a_whole_head_in_one_read(proxy_url: str) -> None:
    big = "x" * 20_000
    r = httpx.get(f"{proxy_url}/health/liveliness", headers={"x-big": big}, timeout=30)
    assert r.status_code == 431
    assert r.json()["error"]["code"] == "431" and "general_settings.max_header_size_kb" in r.json()["error"]["message"]
    r = httpx.get(f"{proxy_url}/health/liveliness?q={big}", timeout=30)
    assert r.status_code == 414
    # a head under the limit (a long Entra token, the SDK's own headers) is served
    ok = httpx.get(f"{proxy_url}/health/liveliness", headers={"x-fits": "y" * 12_000}, timeout=30)
    assert ok.status_code == 200


def test_slow_header_times_out(proxy_url: str) -> None:
    with _connect(proxy_url) as sock:
        sock.sendall(b"GET /health/liveliness HTTP/1.1\r\nHost: proxy\r\nX-Slow: ")
        sock.settimeout(0.2)
        answer = b""
        deadline = time.monotonic() + 20  # the proxy's header timeout is 2 s
        while time.monotonic() < deadline:
            try:
                sock.send(b"a")  # a byte now and then keeps an unbounded server waiting for ever
                data = sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            if not data:
                break
            answer += data
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert time.monotonic() < deadline
    # a connection that never sends a byte is closed too
    with _connect(proxy_url) as idle:
        idle.settimeout(20)
        assert idle.recv(1) == b""


def _slow_body(url: str, outcome: list[tuple[float, bytes]]) -> None:
    """POST a chat request whose 1,000-byte body comes a byte every 50 ms; record when and how it ended."""
    started = time.monotonic()
    answer = b""
    with _connect(url) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: proxy\r\nContent-Type: application/json\r\n"
                     b"Authorization: Bearer " + MASTER_KEY.encode() + b"\r\nContent-Length: 1000\r\n\r\n")  # fmt: skip
        sock.settimeout(0.05)
        deadline = started + 30  # the proxy's body timeout is 2 s
        while time.monotonic() < deadline:
            try:
                sock.send(b" ")
                data = sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            if not data:
                break
            answer += data
    outcome.append((time.monotonic() - started, answer))


def _probe_latencies(url: str, count: int = 20) -> list[float]:
    latencies = []
    with httpx.Client(base_url=url, timeout=30) as http:
        for _ in range(count):
            started = time.perf_counter()
            assert http.get("/health/liveliness").status_code == 200
            latencies.append(time.perf_counter() - started)
            time.sleep(0.05)
    return latencies


def test_slow_body_is_cut_off_and_others_unaffected(proxy_url: str) -> None:
    quiet = _probe_latencies(proxy_url)
    outcomes: list[tuple[float, bytes]] = []
    slow = [threading.Thread(target=_slow_body, args=(proxy_url, outcomes)) for _ in range(20)]
    for t in slow:
        t.start()
    try:
        time.sleep(0.2)
        busy = _probe_latencies(proxy_url)
    finally:
        for t in slow:
            t.join(timeout=60)
    print(f"\nliveliness p50 quiet {statistics.median(quiet) * 1000:.1f} ms, with 20 byte-a-time bodies "
          f"{statistics.median(busy) * 1000:.1f} ms; slow clients cut off after "
          f"{min(o[0] for o in outcomes):.2f}-{max(o[0] for o in outcomes):.2f} s")  # fmt: skip
    assert len(outcomes) == 20
    for took, answer in outcomes:
        assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
        assert b"general_settings.request_body_timeout" in answer
        assert took < 25  # cut off after the 2 s timeout, not after the 1,000 bytes trickled in (50 s)
    # Generous: a loaded 2-core box; a held event loop would make these seconds.
    assert statistics.median(busy) < 0.25, busy
