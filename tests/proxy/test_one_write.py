"""The proxy's HTTP protocol writes a response head with its body's first bytes (issue 17).

A real uvicorn with :class:`~modelyard.proxy.protocol.BoundedHttpToolsProtocol` on loopback, a
small ASGI app, a raw socket as the client: what arrives, and in how many pieces.
"""

from __future__ import annotations

import asyncio
import functools
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from modelyard.proxy.protocol import BoundedHttpToolsProtocol
from modelyard.testing.server import serve_in_thread

BODY = b'{"id":"chatcmpl-1","object":"chat.completion"}'
released = threading.Event()


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """``/json``: head, a pause, then the body; ``/stream``: a chunked head, then waits for the test;
    ``/broken``: a head announcing a body, then an error."""
    if scope["type"] != "http":
        return
    message = await receive()
    path = scope["path"]
    if path == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
        while not released.is_set():
            await asyncio.sleep(0.01)
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]})  # fmt: skip
    if path == "/broken":
        raise RuntimeError("the app fails after the head")
    await asyncio.sleep(0.05)  # a head written at once would reach the client alone
    await send({"type": "http.response.body", "body": message.get("body") or BODY})


@pytest.fixture(scope="module")
def url() -> Iterator[tuple[str, int]]:
    with serve_in_thread(app, http=functools.partial(BoundedHttpToolsProtocol)) as server:
        yield "127.0.0.1", server.port


def _request(address: tuple[str, int], head: bytes) -> socket.socket:
    sock = socket.create_connection(address, timeout=5)
    sock.sendall(head)
    return sock


def _read_all(sock: socket.socket, first: bytes) -> bytes:
    data = first
    while chunk := sock.recv(65536):
        data += chunk
    return data


def test_json_head_and_body_arrive_in_one_piece(url: tuple[str, int]) -> None:
    with _request(url, b"POST /json HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n") as sock:
        first = sock.recv(65536)
    assert first.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"content-length: %d" % len(BODY) in first
    assert first.endswith(b"\r\n\r\n" + BODY)  # the body came with the head, not after it


def test_streamed_head_is_not_held_for_the_first_event(url: tuple[str, int]) -> None:
    released.clear()
    with _request(url, b"POST /stream HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nConnection: close\r\n\r\n") as sock:
        head = sock.recv(65536)  # the app holds its first event until released
        assert head.startswith(b"HTTP/1.1 200 OK\r\n")
        assert b"transfer-encoding: chunked" in head
        assert b"data:" not in head
        released.set()
        rest = _read_all(sock, b"")
    assert b"data: [DONE]" in rest


def test_head_request_gets_its_head(url: tuple[str, int]) -> None:
    with _request(url, b"HEAD /json HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n") as sock:
        answer = _read_all(sock, b"")
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
    assert answer.endswith(b"\r\n\r\n")  # no body for HEAD, and the head was not kept waiting for one


def test_expect_continue_then_one_response(url: tuple[str, int]) -> None:
    payload = b'{"echo":1}'
    head = b"POST /json HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(payload)
    with _request(url, head) as sock:
        assert sock.recv(65536) == b"HTTP/1.1 100 Continue\r\n\r\n"  # passed straight through, never held
        sock.sendall(payload)
        answer = _read_all(sock, b"")
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
    assert answer.endswith(b"\r\n\r\n" + payload)


def test_a_held_head_is_sent_before_the_connection_closes(url: tuple[str, int]) -> None:
    with _request(url, b"POST /broken HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n") as sock:
        answer = _read_all(sock, b"")
    # uvicorn closes a connection whose response broke off; the head that was started still went out.
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
    assert answer.endswith(b"\r\n\r\n")
