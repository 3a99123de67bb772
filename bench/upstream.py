"""A canned Azure OpenAI upstream for the benchmark: raw asyncio, HTTP/1.1 keep-alive, one fixed reply.

It answers every POST with the same Azure chat completion (or, when the body asks for
``"stream": true``, a short SSE stream; a request to an ``/embeddings`` path gets a fixed
embeddings answer of 1536 floats, the size of text-embedding-3-small's), as fast as the event loop allows, so that what the
benchmark measures is the proxy in front of it and not the upstream. With ``--delay`` each answer
is sent that many seconds after its request (a model's latency: the proxy then holds every request
that long, as in production; bench/memory.py --upstream-delay).

    python bench/upstream.py --port 8900 [--delay 0.1]
"""

from __future__ import annotations

import argparse
import asyncio
import json

CHAT = {
    "id": "chatcmpl-bench",
    "object": "chat.completion",
    "created": 1700000000,
    "model": "gpt-4o-2024-08-06",
    "system_fingerprint": "fp_bench",
    "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {}}],
    "choices": [
        {
            "index": 0,
            "finish_reason": "stop",
            "logprobs": None,
            "message": {"role": "assistant", "content": "Hello from the canned upstream.", "refusal": None},
            "content_filter_results": {},
        }
    ],
    "usage": {"prompt_tokens": 9, "completion_tokens": 6, "total_tokens": 15},
}
_BODY = json.dumps(CHAT, separators=(",", ":")).encode()
_REPLY = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\napim-request-id: bench\r\n"
    b"content-length: " + str(len(_BODY)).encode() + b"\r\n\r\n" + _BODY
)
EMBEDDINGS = {
    "object": "list",
    "data": [{"object": "embedding", "index": 0, "embedding": [round(((i * 37) % 200 - 100) / 1000, 3) for i in range(1536)]}],
    "model": "text-embedding-3-small",
    "usage": {"prompt_tokens": 5, "total_tokens": 5},
}
_EMB_BODY = json.dumps(EMBEDDINGS, separators=(",", ":")).encode()
_EMB_REPLY = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\napim-request-id: bench\r\n"
    b"content-length: " + str(len(_EMB_BODY)).encode() + b"\r\n\r\n" + _EMB_BODY
)
_CHUNK = {k: CHAT[k] for k in ("id", "created", "model")}
_EVENTS = b"".join(
    b"data: " + json.dumps(e, separators=(",", ":")).encode() + b"\n\n"
    for e in (
        {"choices": [], "id": "", "prompt_filter_results": []},
        {**_CHUNK, "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hello"}}]},
        {**_CHUNK, "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
    )
) + b"data: [DONE]\n\n"
_STREAM = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: "
    + str(len(_EVENTS)).encode() + b"\r\n\r\n" + _EVENTS
)  # fmt: skip


DELAY = 0.0
"""Seconds between a request and its answer (``--delay``)."""


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buf[:end].lower()
            length = 0
            i = head.find(b"content-length:")
            if i >= 0:
                length = int(head[i + 15 : head.find(b"\r\n", i) if head.find(b"\r\n", i) > 0 else None])
            total = end + 4 + length
            if len(self.buf) < total:
                return
            body = self.buf[end + 4 : total]
            self.buf = self.buf[total:]
            assert self.transport is not None
            if b"/embeddings" in head[: head.find(b"\r\n")]:
                self._answer(_EMB_REPLY)
            else:
                self._answer(_STREAM if b'"stream":true' in body.replace(b" ", b"") else _REPLY)

    def _answer(self, reply: bytes) -> None:
        assert self.transport is not None
        if DELAY > 0:
            asyncio.get_running_loop().call_later(DELAY, self._late, reply)
        else:
            self.transport.write(reply)

    def _late(self, reply: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(reply)


async def _main(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Protocol, host, port, backlog=1024)
    print(f"canned upstream on http://{host}:{port}", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8900)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before each answer (default none)")
    args = parser.parse_args()
    global DELAY
    DELAY = args.delay
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(_main(args.host, args.port))


if __name__ == "__main__":
    main()
