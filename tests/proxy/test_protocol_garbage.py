"""The proxy's HTTP protocol leaves no reference cycle per request (issue 17).

``_OneWrite`` (the request cycle's transport that sends a head with the body's first bytes)
pointed back at uvicorn's ``RequestResponseCycle``, which holds it: a cycle per request keeping
the request's scope, headers and body until a garbage collection (1,848 of them in 3 s of the
bench's load, bench/tail.py --garbage). A real uvicorn on loopback, the collector off.
"""

from __future__ import annotations

import functools
import gc
import socket
from typing import Any

from modelyard.proxy.protocol import BoundedHttpToolsProtocol
from modelyard.testing.server import serve_in_thread
from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

BODY = b'{"ok":true}'


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await receive()
    if scope["path"] == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]})  # fmt: skip
    await send({"type": "http.response.body", "body": BODY})


def _cycles() -> int:
    return sum(1 for o in gc.get_objects() if type(o) is RequestResponseCycle)


def _read_answer(sock: socket.socket, end: bytes) -> bytes:
    data = b""
    while not data.endswith(end):
        chunk = sock.recv(65536)
        assert chunk, data
        data += chunk
    return data


def test_finished_requests_leave_no_request_cycle_for_the_collector() -> None:
    with (
        serve_in_thread(app, http=functools.partial(BoundedHttpToolsProtocol)) as server,
        socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock,
    ):
        sock.sendall(b"POST /json HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\n{}")  # warm-up
        _read_answer(sock, BODY)
        gc.collect()
        before = _cycles()
        gc.disable()
        try:
            for path, end in ((b"/json", BODY), (b"/stream", b"0\r\n\r\n")) * 5:
                sock.sendall(b"POST " + path + b" HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\n{}")
                assert _read_answer(sock, end).startswith(b"HTTP/1.1 200 OK\r\n")
            left = _cycles() - before
        finally:
            gc.enable()
    # The connection still holds its last request's cycle (as uvicorn does); none of the nine before it.
    assert left <= 1, f"{left} request cycles of finished requests wait for a garbage collection"
