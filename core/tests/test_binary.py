"""Binary answers stream through the transport with bounded memory, sync and async, on the httpx,
native and aiohttp backends (the primitive speech and file contents use)."""

from __future__ import annotations

import asyncio
import threading
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from modelyard import transport
from modelyard.binary import BinaryResponse
from modelyard.testing.server import serve_in_thread
from modelyard.types import ProviderRequest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

CHUNK = 256 * 1024
CHUNKS = 96  # 24 MiB
LIMIT = 8 * 1024 * 1024  # the most Python may hold while it passes through

released = threading.Event()


def _piece(i: int) -> bytes:
    return bytes([i % 251]) * CHUNK


async def _big(request: Request) -> StreamingResponse:
    async def body() -> AsyncIterator[bytes]:
        for i in range(CHUNKS):
            yield _piece(i)

    return StreamingResponse(body(), media_type="audio/mpeg")


async def _held(request: Request) -> StreamingResponse:
    """The first chunk, then nothing more until the test has seen it: a slow upstream."""

    async def body() -> AsyncIterator[bytes]:
        yield b"first"
        while not released.is_set():
            await asyncio.sleep(0.01)
        yield b"-rest"

    return StreamingResponse(body(), media_type="audio/mpeg")


class _NoAuth:
    def headers(self) -> dict[str, str]:
        return {}

    async def aheaders(self) -> dict[str, str]:
        return {}

    def invalidate(self) -> bool:
        return False


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    app = Starlette(routes=[Route("/big", _big), Route("/held", _held)])
    with serve_in_thread(app) as server:
        yield server.url


def _request(url: str) -> ProviderRequest:
    return ProviderRequest(method="GET", url=url, stream=True)


def _check_file(path: Path) -> None:
    data = path.read_bytes()
    assert len(data) == CHUNK * CHUNKS
    assert all(data[i * CHUNK : (i + 1) * CHUNK] == _piece(i) for i in range(CHUNKS))


@pytest.mark.parametrize("backend", ["httpx", "native"])
def test_sync_stream_to_file_holds_little_memory(upstream: str, tmp_path: Path, backend: str) -> None:
    done: list[bool] = []
    t = transport.Transport(sync_backend=backend)
    tracemalloc.start()
    try:
        response = t.send(_request(f"{upstream}/big"), _NoAuth(), timeout=60)
        binary = BinaryResponse(response, on_done=lambda: done.append(True))
        binary.stream_to_file(tmp_path / "out.mp3")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        t.close()
    print(f"sync {backend}: {CHUNK * CHUNKS >> 20} MiB streamed, Python peak {peak / 2**20:.1f} MiB")
    assert peak < LIMIT
    assert done == [True]
    assert binary.content_type == "audio/mpeg"
    _check_file(tmp_path / "out.mp3")


@pytest.mark.parametrize("backend", ["httpx", "native", "aiohttp"])
async def test_async_stream_to_file_holds_little_memory(upstream: str, tmp_path: Path, backend: str) -> None:
    t = transport.Transport(async_backend=backend)
    tracemalloc.start()
    try:
        response = await t.asend(_request(f"{upstream}/big"), _NoAuth(), timeout=60)
        await BinaryResponse(response).astream_to_file(tmp_path / "out.mp3")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        await t.aclose()
    print(f"async {backend}: {CHUNK * CHUNKS >> 20} MiB streamed, Python peak {peak / 2**20:.1f} MiB")
    assert peak < LIMIT
    _check_file(tmp_path / "out.mp3")


@pytest.mark.parametrize("backend", ["httpx", "native", "aiohttp"])
async def test_first_bytes_arrive_before_the_upstream_has_finished(upstream: str, backend: str) -> None:
    released.clear()
    t = transport.Transport(async_backend=backend)
    try:
        binary = BinaryResponse(await t.asend(_request(f"{upstream}/held"), _NoAuth(), timeout=60))
        chunks = binary.aiter_bytes()
        first = await chunks.__anext__()  # the upstream is still holding the rest back
        released.set()
        rest = b"".join([chunk async for chunk in chunks])
    finally:
        released.set()
        await t.aclose()
    assert first == b"first" and rest == b"-rest"


@pytest.mark.parametrize("backend", ["httpx", "native"])
def test_sync_iter_bytes_and_content(upstream: str, backend: str) -> None:
    released.set()
    t = transport.Transport(sync_backend=backend)
    with BinaryResponse(t.send(_request(f"{upstream}/held"), _NoAuth(), timeout=60)) as binary:
        assert binary.content == b"first-rest"
        assert binary.read() == b"first-rest"
    t.close()
