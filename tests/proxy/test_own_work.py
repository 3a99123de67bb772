"""The proxy's own per-request work (issue 17, round three): the same answers, logs and metrics
with less work per request."""

from __future__ import annotations

import asyncio
import gc
import io
import json
import logging
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from modelyard.proxy import metrics as metrics_module
from modelyard.proxy import protocol as protocol_module
from modelyard.proxy.disconnect import Disconnected, DisconnectWatch
from modelyard.proxy.logs import BatchedLineHandler, line_writer
from modelyard.proxy.protocol import BoundedHttpToolsProtocol
from modelyard.testing.server import serve_in_thread

from .conftest import MASTER_KEY, azure, running_proxy
from .test_metrics import samples, total

HELLO = [{"role": "user", "content": "Hello there"}]
AUTH = {"Authorization": f"Bearer {MASTER_KEY}"}


@pytest.fixture
def access_lines() -> Iterator[tuple[logging.Logger, BatchedLineHandler, io.StringIO]]:
    """The access logger as ``modelyard serve`` sets it up, on a buffer: call :func:`alone` in the
    test's body (pytest adds its capture handlers for the body, after the fixtures)."""
    access = logging.getLogger("modelyard.proxy.access")
    saved = (access.handlers[:], access.filters[:], access.level, access.propagate)
    out = io.StringIO()
    handler = BatchedLineHandler(out)
    access.filters.clear()
    access.setLevel(logging.INFO)
    access.propagate = False
    try:
        yield access, handler, out
    finally:
        access.handlers[:], access.filters[:] = saved[0], saved[1]
        access.setLevel(saved[2])
        access.propagate = saved[3]


def alone(access: logging.Logger, handler: logging.Handler) -> None:
    """``handler`` as the access logger's only one (the secret scan's and pytest's go for the test)."""
    access.handlers[:] = [handler]


def test_line_writer_only_when_our_handler_alone_would_see_the_line(
    access_lines: tuple[logging.Logger, BatchedLineHandler, io.StringIO],
) -> None:
    access, handler, out = access_lines
    alone(access, handler)
    write = line_writer(access)
    assert write == handler.write_line
    write("one")
    handler.emit(access.makeRecord(access.name, logging.INFO, __file__, 0, "two", (), None))
    handler.flush()
    assert out.getvalue() == "one\ntwo\n"  # the same line either way
    # Anything else that could see or drop the record: logged as usual.
    drop = logging.Filter("someone.else")
    access.addFilter(drop)
    assert line_writer(access) is None
    access.removeFilter(drop)
    handler.addFilter(drop)
    assert line_writer(access) is None
    handler.removeFilter(drop)
    other = logging.NullHandler()
    access.addHandler(other)
    assert line_writer(access) is None
    access.removeHandler(other)
    access.propagate = True
    assert line_writer(access) is None
    access.propagate = False
    handler.setLevel(logging.WARNING)
    assert line_writer(access) is None
    handler.setLevel(logging.NOTSET)
    assert line_writer(access) == handler.write_line


def test_access_log_lines_with_and_without_the_shortcut(
    api_base: str, access_lines: tuple[logging.Logger, BatchedLineHandler, io.StringIO]
) -> None:
    access, handler, out = access_lines
    alone(access, handler)
    cfg = {"model_list": [{"model_name": "m", "litellm_params": azure(api_base, "gpt-4o")}],
           "general_settings": {"master_key": MASTER_KEY}}  # fmt: skip
    seen: list[str] = []

    class Keep(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            seen.append(record.getMessage())
            return '"status":401' not in record.getMessage()

    with running_proxy(cfg) as proxy, httpx.Client(base_url=proxy.url, timeout=30) as http:
        assert http.post("/v1/chat/completions", json={"model": "m", "messages": HELLO}, headers=AUTH).status_code == 200
        assert http.post("/v1/chat/completions", json={"model": "m", "messages": HELLO}).status_code == 401
        keep = Keep()
        access.addFilter(keep)  # from now on the records go through logging (and this filter)
        try:
            assert http.post("/v1/chat/completions", json={"model": "m", "messages": HELLO}, headers=AUTH).status_code == 200
            assert http.post("/v1/chat/completions", json={"model": "m", "messages": HELLO}).status_code == 401
        finally:
            access.removeFilter(keep)
    handler.flush()
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(line["status"], line["model"]) for line in lines] == [(200, "m"), (401, None), (200, "m")]
    assert lines[0].keys() == lines[2].keys() >= {"ts", "request_id", "method", "path", "status", "latency_ms", "deployment"}
    assert [json.loads(message)["status"] for message in seen] == [200, 401]  # the filter saw both


def test_metrics_exact_past_the_cache_of_request_shapes(
    api_base: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The metric children are kept per request shape (path, status, model, deployment) up to a
    # cap; past it the cache starts over and every request is still counted once, under its labels.
    monkeypatch.setattr(metrics_module, "_SERIES_CAP", 2)
    cfg: dict[str, Any] = {"model_list": [{"model_name": "m", "litellm_params": azure(api_base, "gpt-4o"),
                                           "model_info": {"id": "dep-m"}}],
                           "general_settings": {"master_key": MASTER_KEY}}  # fmt: skip
    with running_proxy(cfg) as proxy, httpx.Client(base_url=proxy.url, timeout=30) as http:
        replies = []
        for model in ("m", "nope-1", "m", "nope-2", "nope-3", "m", "nope-1"):
            r = http.post("/v1/chat/completions", json={"model": model, "messages": HELLO}, headers=AUTH)
            assert r.status_code == (200 if model == "m" else 404), r.text
            if model == "m":
                replies.append(r.json())
        found = samples(http.get("/metrics", headers=AUTH).text)
    chat = {"endpoint": "/chat/completions"}
    assert total(found, "modelyard_requests_total", model_group="m", deployment="dep-m", status="200", **chat) == 3
    assert total(found, "modelyard_requests_total", model_group="", status="404", **chat) == 4  # unknown names: one label
    assert total(found, "modelyard_request_duration_seconds_count", **chat) == 7
    assert total(found, "modelyard_proxy_overhead_seconds_count", **chat) == 3  # requests with a model call
    assert total(found, "modelyard_deployment_calls_total", deployment="dep-m", status="200") == 3
    assert total(found, "modelyard_tokens_total", kind="prompt") == sum(r["usage"]["prompt_tokens"] for r in replies)
    assert total(found, "modelyard_deployment_remaining_requests", deployment="dep-m") > 0
    # a kind of token never counted has no series (bound when first counted)
    assert not [key for key in found if key[0] == "modelyard_tokens_total" and ("kind", "reasoning") in key[1]]


class Client:
    """An ASGI ``receive`` after the body was read: it returns only when the client leaves."""

    def __init__(self) -> None:
        self.left = asyncio.Event()
        self.asked = 0

    async def receive(self) -> dict[str, Any]:
        self.asked += 1
        await self.left.wait()
        return {"type": "http.disconnect"}


def test_disconnect_watch_one_timer_per_batch_and_watchers_only_for_long_work() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        timers: list[float] = []
        call_at = loop.call_at

        def counted(when: float, callback: Any, *args: Any, **kwargs: Any) -> asyncio.TimerHandle:
            if getattr(callback, "__func__", None) is DisconnectWatch._fire:  # the watch's timers (not asyncio.sleep's)
                timers.append(when)
            return call_at(when, callback, *args, **kwargs)

        loop.call_at = counted  # type: ignore[method-assign]
        watch = DisconnectWatch(0.05)
        quick = [Client() for _ in range(20)]
        # 20 requests at once, each answered before the watch is due: one timer, no watcher ever asks
        assert await asyncio.gather(*(watch.run(c.receive, asyncio.sleep(0, i)) for i, c in enumerate(quick))) == list(range(20))
        assert len(timers) == 1 and sum(c.asked for c in quick) == 0
        await asyncio.sleep(0.02)  # past the batch's joining time (after / 5)
        # 10 slow requests at once: their clients are watched once their batch's timer fires
        slow = [Client() for _ in range(10)]
        gone = asyncio.Event()
        tasks = [asyncio.ensure_future(watch.run(c.receive, gone.wait())) for c in slow]
        while not all(c.asked for c in slow):
            await asyncio.sleep(0.01)
        assert len(timers) == 2
        for c in slow[:4]:  # four clients leave: their work is cancelled, the others go on
            c.left.set()
        while sum(t.done() for t in tasks) < 4:
            await asyncio.sleep(0.01)
        assert [t.done() for t in tasks] == [True] * 4 + [False] * 6
        for t in tasks[:4]:
            assert isinstance(t.exception(), Disconnected)
        gone.set()  # the rest finish normally, their watchers cancelled
        assert await asyncio.gather(*tasks[4:]) == [True] * 6
        # a cancel that is not the watcher's (the server shutting down) stays a cancel
        c = Client()
        task = asyncio.ensure_future(watch.run(c.receive, asyncio.Event().wait()))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())


async def _ok(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await receive()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


def _get(sock: socket.socket) -> bytes:
    sock.sendall(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
    answer = b""
    while not answer.endswith(b"ok"):
        chunk = sock.recv(65536)
        assert chunk, "the server closed a connection in use"
        answer += chunk
    return answer


def test_keep_alive_timeout_by_the_loops_idle_sweep() -> None:
    # One sweep per event loop closes connections idle past uvicorn's timeout_keep_alive; the
    # protocol arms no timer per response. A connection in use is never closed.
    with serve_in_thread(_ok, http=BoundedHttpToolsProtocol, timeout_keep_alive=1) as server:
        address = ("127.0.0.1", server.port)
        with socket.create_connection(address, timeout=30) as idle, socket.create_connection(address, timeout=30) as busy:
            assert _get(idle).startswith(b"HTTP/1.1 200 ")
            (sweep,) = [s for s in protocol_module._SWEEPS.values() if s.idle]
            assert len(sweep.idle) == 1 and all(p.timeout_keep_alive_task is None for p in sweep.idle)
            for _ in range(30):  # 1.5 s of requests 50 ms apart: more than the timeout, never idle that long
                assert _get(busy).startswith(b"HTTP/1.1 200 ")
                time.sleep(0.05)
            assert idle.recv(1) == b""  # closed by the sweep (the socket's own timeout is 30 s)
            assert _get(busy).startswith(b"HTTP/1.1 200 ")
            assert list(sweep.idle) == [p for p in sweep.idle if not p.transport.is_closing()]  # the closed one left


def test_a_watched_request_leaves_no_cycle_for_the_collector() -> None:
    # Work still running when its batch's timer fires gets a watcher, cancelled when the work
    # ends. The cancelled watcher's CancelledError kept its frames (the watcher's locals, the
    # server's receive and the request's cycle with them) and the watcher pointed back at the
    # task through its _Waiting: a cycle per watched request, left for a garbage collection
    # (issue 17, bench/README.md "rss2"). Every request slower than the watch's delay (50 ms in
    # the proxy: most calls to a real model) made one.
    from modelyard.proxy.disconnect import _Waiting

    def waiting_left() -> int:
        return sum(1 for o in gc.get_objects() if type(o) is _Waiting)

    async def main() -> None:
        watch = DisconnectWatch(0.01)
        clients = [Client() for _ in range(5)]
        gc.collect()
        gc.disable()
        try:
            done = await asyncio.gather(*(watch.run(c.receive, asyncio.sleep(0.1, True)) for c in clients))
            assert done == [True] * 5 and all(c.asked for c in clients)  # each was watched
            for _ in range(5):  # the cancelled watchers finish
                await asyncio.sleep(0)
            left = waiting_left()
        finally:
            gc.enable()
        assert left == 0, f"{left} watched requests wait for a garbage collection"

    asyncio.run(main())
