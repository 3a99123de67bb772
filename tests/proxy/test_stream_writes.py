"""A stream's events go out as the upstream sent them, one write per upstream read (issue 17).

A canned upstream (raw ASGI on uvicorn) sends a whole chat stream in one write, its JSON
spelled with spaces (``json.dumps``' default), which the proxy's own encoder never writes: an
event in that spelling in the proxy's answer is the upstream's own bytes. A raw socket reads
the proxy's chunked answer, where each ASGI ``send`` is one HTTP chunk.
"""

from __future__ import annotations

import asyncio
import functools
import json
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from modelyard.proxy import ProxyApp, parse_config
from modelyard.proxy.protocol import BoundedHttpToolsProtocol
from modelyard.testing.secret_scan import watch_responses
from modelyard.testing.server import serve_in_thread

from .conftest import MASTER_KEY, azure
from .test_passthrough import Counter, Shouter

HEAD = {"id": "chatcmpl-raw", "object": "chat.completion.chunk", "created": 1700000000, "model": "gpt-4o-2024-08-06"}
FIRST = {"choices": [], "created": 0, "id": "", "model": "", "object": "",
         "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {"hate": {"filtered": False, "severity": "safe"}}}]}  # fmt: skip
ROLE = {**HEAD, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}
WORDS = [{**HEAD, "choices": [{"index": 0, "delta": {"content": w}, "finish_reason": None, "logprobs": None}]}
         for w in ("Hello ", "there, ", "caf\u00e9 \u2028 ok")]  # fmt: skip
FINISH = {**HEAD, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
USAGE = {**HEAD, "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 6, "total_tokens": 15}}


def _data(event: dict[str, Any]) -> bytes:
    return json.dumps(event, ensure_ascii=False).encode()  # ", " and ": ": not the proxy's spelling


def _sse(*events: dict[str, Any]) -> bytes:
    return b"".join(b"data: " + _data(e) + b"\n\n" for e in events)


released = threading.Event()


async def upstream(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The whole stream in one write; a deployment named ``held`` sends its role event, then the
    rest once the test sets ``released``."""
    if scope["type"] != "http":
        return
    await receive()
    if "/deployments/held/" not in scope["path"]:
        # With its length: the proxy's protocol (serving this too) writes the head with the body.
        body = _sse(FIRST, ROLE, *WORDS, FINISH, USAGE) + b"data: [DONE]\n\n"
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream"), (b"content-length", b"%d" % len(body))]})  # fmt: skip
        await send({"type": "http.response.body", "body": body})
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
    await send({"type": "http.response.body", "body": _sse(FIRST, ROLE), "more_body": True})
    while not released.is_set():
        await asyncio.sleep(0.01)
    await send({"type": "http.response.body", "body": _sse(*WORDS, FINISH, USAGE) + b"data: [DONE]\n\n"})


@pytest.fixture(scope="module")
def canned() -> Iterator[str]:
    with serve_in_thread(upstream, http=functools.partial(BoundedHttpToolsProtocol)) as server:
        yield server.url


@pytest.fixture
def stream_proxy(canned: str) -> Iterator[serve_in_thread]:
    config = {
        "model_list": [
            {"model_name": "gpt-4o", "litellm_params": azure(canned, "gpt-4o")},
            {"model_name": "held", "litellm_params": azure(canned, "held")},
        ],
        "router_settings": {"num_retries": 0},
    }
    # Served as ``modelyard serve`` serves it: uvicorn with the proxy's own HTTP protocol.
    app = ProxyApp(parse_config(config), master_key=MASTER_KEY)
    with serve_in_thread(watch_responses(app), lifespan="on", http=functools.partial(BoundedHttpToolsProtocol)) as server:
        yield server


def _post(proxy: serve_in_thread, model: str = "gpt-4o") -> socket.socket:
    body = json.dumps({"model": model, "stream": True, "messages": [{"role": "user", "content": "hi"}]}).encode()
    sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
    sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Type: application/json\r\n"
                 b"Authorization: Bearer %s\r\nContent-Length: %d\r\n\r\n%s" % (MASTER_KEY.encode(), len(body), body))  # fmt: skip
    return sock


def _chunks(raw: bytes) -> list[bytes]:
    """The HTTP chunks of a chunked answer (one per ASGI send), without the last, empty one."""
    head, _, rest = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"transfer-encoding: chunked" in head.lower()
    chunks = []
    while True:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            return chunks
        chunks.append(rest[:size])
        rest = rest[size + 2 :]


def _data_segments_in(sock: socket.socket) -> int:
    """TCP segments with data this socket has received (Linux ``tcp_info.tcpi_data_segs_in``).

    The proxy's server socket has TCP_NODELAY, so each of its writes is a segment of its own.
    """
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 160)
    return int.from_bytes(info[152:156], sys.byteorder)


def _read_all(sock: socket.socket, data: bytes = b"") -> bytes:
    while piece := sock.recv(65536):
        data += piece
    return data


def test_events_of_one_upstream_read_go_out_in_one_write_as_the_upstream_spelled_them(
    stream_proxy: serve_in_thread, plugin_set: Callable[..., None]
) -> None:
    plugin_set(Counter())  # azure_chat and a plugin declaring it changes nothing
    with _post(stream_proxy) as sock:
        chunks = _chunks(_read_all(sock))
    assert len(chunks) == 1  # every event of the upstream's one write, and the end, in one send
    events = chunks[0].split(b"\n\n")
    assert events.pop() == b"" and events.pop() == b"data: [DONE]"
    assert len(events) == 5  # the first event folded into the role event; the pricing-only usage dropped
    assert events[1:] == [b"data: " + _data(e) for e in (*WORDS, FINISH)]  # the upstream's bytes, as sent
    folded = json.loads(events[0][6:])  # re-encoded: it carries the first event's annotations
    assert folded["prompt_filter_results"] == FIRST["prompt_filter_results"]
    assert folded["choices"] == ROLE["choices"] and folded["id"] == "chatcmpl-raw"


def test_a_rewriting_plugin_still_rewrites_the_events_it_claims(
    stream_proxy: serve_in_thread, plugin_set: Callable[..., None]
) -> None:
    shouter = Shouter()
    plugin_set(shouter)
    with _post(stream_proxy) as sock:
        chunks = _chunks(_read_all(sock))
    assert len(chunks) == 1
    events = chunks[0].split(b"\n\n")[:-2]
    assert shouter.chunks == len(WORDS)  # the events with content, and only those
    words = [json.loads(e[6:])["choices"][0]["delta"]["content"] for e in events[1:4]]
    assert words == [w["choices"][0]["delta"]["content"].upper() for w in WORDS]
    assert all(e != b"data: " + _data(w) for e, w in zip(events[1:4], WORDS, strict=True))
    assert events[4] == b"data: " + _data(FINISH)  # not claimed: as the upstream sent it


def test_an_event_is_sent_without_waiting_for_the_next_read(stream_proxy: serve_in_thread) -> None:
    released.clear()
    try:
        with _post(stream_proxy, "held") as sock:
            data = b""
            while b'"assistant"' not in data:  # the upstream holds the rest until released
                piece = sock.recv(65536)
                assert piece, "the stream ended before its first event"
                data += piece
            released.set()
            chunks = _chunks(_read_all(sock, data))
    finally:
        released.set()
    assert len(chunks) == 2  # one send per upstream read, the second with the end
    assert chunks[0].count(b"data: ") == 1 and chunks[1].count(b"data: ") == len(WORDS) + 2
    assert chunks[1].endswith(b"data: [DONE]\n\n")


def test_a_stream_read_whole_from_the_upstream_reaches_the_client_in_one_segment(stream_proxy: serve_in_thread) -> None:
    # The head waits for the end of the event loop's turn, where the events, [DONE] and the
    # chunked body's end join it: one write where there were a head, a write per event and the end.
    with _post(stream_proxy) as sock:
        raw = _read_all(sock)
        segments = _data_segments_in(sock)
    assert raw.endswith(b"data: [DONE]\n\n\r\n0\r\n\r\n")
    assert segments == 1
