"""httpcore's asyncio network streams, with the pool's liveness check made cheap.

With calls in flight, httpcore's connection pool asks every idle connection whether the server
closed it (``get_extra_info("is_readable")``) each time it assigns a request, dozens of times per
request at 32 in flight. Its anyio stream answers by rebuilding the stream's typed-attribute
table to find the socket, then polls it: about a fifth of the pool's CPU per request. This
backend wraps the one httpcore picks, remembers each stream's socket when it connects, and
answers ``is_readable`` by polling it directly; reads, writes, TLS and every other question go to
the wrapped stream. The same answer, the same poll.

It is installed on the async clients :class:`~modelyard.transport.Transport` creates (not on a
caller's own transport), through the pool's ``_network_backend``; when httpx or httpcore change
shape it is simply not installed.
"""

from __future__ import annotations

import select
import ssl
import sys
from collections.abc import Iterable
from typing import Any

import httpcore

__all__ = ["install"]


def _readable(sock: Any) -> bool:
    """Whether a read on ``sock`` would return at once (data, or the end a closed peer sends)."""
    fd = sock.fileno()
    if fd < 0:
        return True  # closed here: as httpcore treats a socket without a descriptor
    if sys.platform == "win32" or not hasattr(select, "poll"):
        return bool(select.select([fd], [], [], 0)[0])
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


class _Stream(httpcore.AsyncNetworkStream):
    """A stream of the wrapped backend, whose socket is looked up once."""

    def __init__(self, inner: httpcore.AsyncNetworkStream) -> None:
        self._inner = inner
        # A socket, or asyncio's TransportSocket around one: what has a descriptor to poll.
        sock = inner.get_extra_info("socket")
        self._sock: Any = sock if callable(getattr(sock, "fileno", None)) else None
        # The hot methods are the wrapped stream's own, with no call in between.
        self.read = inner.read  # type: ignore[method-assign]
        self.write = inner.write  # type: ignore[method-assign]
        self.aclose = inner.aclose  # type: ignore[method-assign]

    async def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.AsyncNetworkStream:
        return _Stream(await self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable" and self._sock is not None:
            return _readable(self._sock)
        return self._inner.get_extra_info(info)


class _Backend(httpcore.AsyncNetworkBackend):
    """``inner``'s connections, as :class:`_Stream`."""

    def __init__(self, inner: httpcore.AsyncNetworkBackend) -> None:
        self.inner = inner

    async def connect_tcp(
        self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:  # fmt: skip
        return _Stream(await self.inner.connect_tcp(host, port, timeout, local_address, socket_options))

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        return _Stream(await self.inner.connect_unix_socket(path, timeout, socket_options))

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


def install(client: Any) -> bool:
    """Wrap the network backend of ``client``'s httpcore pool (an ``httpx.AsyncClient``); True when done."""
    pool = getattr(getattr(client, "_transport", None), "_pool", None)
    if type(pool) is not httpcore.AsyncConnectionPool:
        return False
    backend = getattr(pool, "_network_backend", None)
    if not isinstance(backend, httpcore.AsyncNetworkBackend) or isinstance(backend, _Backend):
        return False
    pool._network_backend = _Backend(backend)
    return True
