"""The proxy's event loop: uvloop's, accepting every waiting connection each time it looks.

libuv (since 1.45, libuv/libuv#3696) accepts one connection each time the listening socket
polls readable and relies on level-triggered polling to come back for the next, i.e. one
connection per turn of the event loop. A loop that is busy, each turn taking milliseconds under
load, then takes a turn per connection: 64 clients connecting together to a saturated proxy
waited up to 0.45 s for the last accept, their first requests in the kernel all that time. That
was the proxy's whole p99 at concurrency 64 in the bench (bench/README.md, "accept", issue 17
round seven). asyncio's own loop accepts up to the backlog each time.

:class:`Loop` is uvloop's loop with ``create_server`` doing what asyncio's does for a plain TCP
server: it watches each listening socket with ``add_reader`` and, when it is readable, accepts
until the kernel's queue is empty (at most ``backlog`` at a time), handing each connection to
``connect_accepted_socket`` (with the server's TLS context, if any). Only public asyncio and
socket calls. Unix sockets, several hosts and the options uvicorn does not use (``reuse_port``
...) go to uvloop's own server unchanged.

uvicorn takes it as its loop (``loop="modelyard.proxy.accept:Loop"``, see
:func:`modelyard.proxy.serve.run`).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from collections.abc import Callable, Iterable
from typing import Any

import uvloop

__all__ = ["Loop"]

log = logging.getLogger(__name__)

_RESOURCE_ERRORS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
"""accept() failures that another try will meet again at once: pause the socket for a while."""

RESOURCE_PAUSE_S = 1.0
"""How long a listening socket is left alone after running out of file descriptors or memory."""

_INET = (socket.AF_INET, socket.AF_INET6)
"""The socket families this loop's servers accept on themselves (others go to uvloop's server)."""


class Loop(uvloop.Loop):
    """uvloop's event loop whose plain TCP servers accept every waiting connection per readiness."""

    async def create_server(  # type: ignore[override]  # its server is an AbstractServer, not asyncio.Server
        self, protocol_factory: Callable[[], asyncio.BaseProtocol], host: Any = None, port: Any = None, *,
        sock: socket.socket | None = None, ssl: Any = None, backlog: int = 100, **options: Any,
    ) -> asyncio.AbstractServer:  # fmt: skip
        if options or (sock is None and (not isinstance(host, str) or not host)) or (
            sock is not None and (host is not None or port is not None or sock.family not in _INET)
        ):
            return await super().create_server(protocol_factory, host, port, sock=sock, ssl=ssl, backlog=backlog,
                                               **options)  # fmt: skip
        sockets = [sock] if sock is not None else await self._bind(host, port)
        for listening in sockets:
            listening.setblocking(False)
            listening.listen(backlog)
        server = _Server(self, sockets, protocol_factory, backlog, ssl)
        server._start()
        return server

    async def _bind(self, host: str, port: Any) -> list[socket.socket]:
        """Bound sockets for every address of ``host`` (as asyncio's ``create_server`` makes them)."""
        infos = await self.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        sockets: list[socket.socket] = []
        try:
            for family, kind, proto, _, address in dict.fromkeys(infos):
                listening = socket.socket(family, kind, proto)
                sockets.append(listening)
                listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    listening.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                try:
                    listening.bind(address)
                except OSError as exc:
                    raise OSError(exc.errno, f"error while attempting to bind on address {address!r}: "
                                             f"{(exc.strerror or '').lower()}") from None  # fmt: skip
        except BaseException:
            for listening in sockets:
                listening.close()
            raise
        if not sockets:
            raise OSError(f"no address to listen on for {host!r}")
        return sockets



class _Server(asyncio.AbstractServer):
    """Listening sockets watched by the loop, each accepting all it can when readable."""

    def __init__(self, loop: Loop, sockets: Iterable[socket.socket], protocol_factory: Callable[[], Any],
                 backlog: int, ssl: Any = None) -> None:  # fmt: skip
        self._loop = loop
        self._sockets = list(sockets)
        self._protocol_factory = protocol_factory
        self._backlog = max(1, backlog)
        self._ssl = ssl
        self._serving = False
        self._closed: asyncio.Future[None] = loop.create_future()
        self._starting: set[asyncio.Task[None]] = set()  # the loop keeps only weak references to tasks

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        return tuple(self._sockets)

    def _start(self) -> None:
        if not self._serving and not self._closed.done():
            self._serving = True
            for listening in self._sockets:
                self._loop.add_reader(listening.fileno(), self._accept, listening)

    def _accept(self, listening: socket.socket) -> None:
        for _ in range(self._backlog):
            try:
                connection, _ = listening.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return  # the queue is empty (or the client gave up before its turn)
            except OSError as exc:
                if exc.errno not in _RESOURCE_ERRORS:
                    raise
                # Out of descriptors or memory: a retry now would fail the same way, in a busy loop.
                log.error("cannot accept connections on %s for %g s: %s", listening.getsockname(),
                          RESOURCE_PAUSE_S, exc)  # fmt: skip
                self._loop.remove_reader(listening.fileno())
                self._loop.call_later(RESOURCE_PAUSE_S, self._resume, listening)
                return
            connection.setblocking(False)
            task = self._loop.create_task(self._connect(connection))
            self._starting.add(task)
            task.add_done_callback(self._starting.discard)

    def _resume(self, listening: socket.socket) -> None:
        if self._serving and listening.fileno() != -1:
            self._loop.add_reader(listening.fileno(), self._accept, listening)

    async def _connect(self, connection: socket.socket) -> None:
        try:
            await self._loop.connect_accepted_socket(self._protocol_factory, connection, ssl=self._ssl)
        except Exception as exc:  # the client left before its transport was made, a TLS handshake failed ...
            log.debug("an accepted connection could not start: %s", exc)
            connection.close()

    def close(self) -> None:
        if self._closed.done():
            return
        self._serving = False
        for listening in self._sockets:
            if listening.fileno() != -1:
                self._loop.remove_reader(listening.fileno())
            listening.close()
        self._closed.set_result(None)

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def is_serving(self) -> bool:
        return self._serving

    async def start_serving(self) -> None:
        self._start()

    async def serve_forever(self) -> None:
        self._start()
        await asyncio.shield(self._closed)

    async def wait_closed(self) -> None:
        await asyncio.shield(self._closed)
