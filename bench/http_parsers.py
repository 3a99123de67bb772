"""Per-request cost of uvicorn's HTTP protocols alone: a canned POST fed to ``data_received``.

    .venv/bin/python bench/http_parsers.py

Compares uvicorn's httptools protocol, the proxy's ``BoundedHttpToolsProtocol`` (the same with
a request-head size and time limit) and h11, on uvloop, with an app that answers at once and a
transport that discards what is written (bench/README.md, "The HTTP parser choice").
"""

from __future__ import annotations

import asyncio
import functools
import statistics
import time
from typing import Any

import uvloop
from modelyard.proxy.protocol import BoundedHttpToolsProtocol
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

REQUEST = (
    b"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1:4000\r\nauthorization: Bearer sk-xxxxxxxxxxxxxxxxxxxxxxxx\r\n"
    b"content-type: application/json\r\naccept: application/json\r\nuser-agent: OpenAI/Python 1.50.0\r\n"
    b"x-stainless-lang: python\r\nx-stainless-os: Linux\r\nx-stainless-arch: x64\r\ncontent-length: 70\r\n\r\n"
    + b"x" * 70
)


async def app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


class NullTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.closing = False

    def write(self, data: Any) -> None:
        pass

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 1), "sockname": ("127.0.0.1", 2)}.get(name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def per_request_us(protocol: Any, n: int) -> float:
    config = Config(app=app, lifespan="off", log_level="warning")
    config.load()
    proto = protocol(config=config, server_state=ServerState(), app_state={})
    proto.connection_made(NullTransport())
    started = time.perf_counter()
    for _ in range(n):
        proto.data_received(REQUEST)
        await asyncio.sleep(0)  # the request's task runs the app
        await asyncio.sleep(0)
    return (time.perf_counter() - started) / n * 1e6


async def main() -> None:
    protocols = {
        "httptools": HttpToolsProtocol,
        "httptools + limits": functools.partial(BoundedHttpToolsProtocol, max_head_bytes=16384, head_timeout=10.0),
        "h11": H11Protocol,
    }
    runs: dict[str, list[float]] = {name: [] for name in protocols}
    for _ in range(7):
        for name, protocol in protocols.items():
            runs[name].append(await per_request_us(protocol, 20_000))
    for name, values in runs.items():
        print(f"{name:20} best {min(values):6.1f} µs  median {statistics.median(values):6.1f} µs per request")


if __name__ == "__main__":
    uvloop.run(main())
