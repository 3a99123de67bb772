"""The ``native`` async backend of :class:`modelyard.transport.Transport`: HTTP/1.1 on asyncio.

Why our own client: aiohttp's was the largest single cost in the proxy (a quarter of its CPU).
This one is an ``asyncio.Protocol`` per connection and a keep-alive pool per origin; the HTTP
grammar is httptools' (llhttp, as uvicorn uses), the framing is :mod:`modelyard._http1`. A call
is one write (head and JSON body) and, for a whole answer, one wake-up of the caller when the
last byte is in. It comes back as an ``httpx.Response``, so everything above the transport
(plugins, SSE parsing, error mapping) keeps httpx's API, and failures are raised as httpx's
exceptions (``ConnectError``, ``ConnectTimeout``, ``ReadError``, ``ReadTimeout``,
``RemoteProtocolError``) with no header value or URL userinfo in their text.

Pools: one per origin (scheme, host, port) and event loop (:class:`modelyard._loops.PerLoop`:
closed on their loop when it shuts down). Idle connections are reused last-in first-out and
closed after :data:`KEEPALIVE` seconds by one sweep per pool; at most ``limit`` connections per
origin are open, callers beyond that wait their turn in order. A connection the upstream
closes leaves the pool at once; one goes back to it only after a complete answer that allows
keep-alive. A request on a reused connection that fails before any byte of an answer (the
upstream closed it while it was idle) is sent once more on a new connection when running it
twice is harmless: an idempotent method (GET, DELETE, PUT, OPTIONS), as aiohttp does. A POST the
upstream may have read is not resent here: Azure may be running it and would bill it twice, so
the transport decides (``retry_on_timeout``). A failure after answer bytes arrived is a
``ReadError`` and never resent here. An idle connection the upstream closes is dropped as soon
as the loop reports it, so the stale case is the rare race of a close crossing the request.

Timeouts: ``timeout.connect`` bounds opening a connection (the TLS handshake included); the
transport's deadline bounds the rest. With ``idle=True``, ``timeout.read`` is also the longest
wait for the next bytes while the caller waits for them (one timer per call, re-armed only
when it fires, not a timer per read).
"""

from __future__ import annotations

import asyncio
import collections
import os
import ssl
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, cast

import httpx

from ._http1 import (
    IDEMPOTENT,
    METHODS,
    Origin,
    ResponseParser,
    build_response,
    check_headers,
    default_tls,
    error_reason,
    request_bytes,
    split_url,
)
from ._loops import PerLoop

if TYPE_CHECKING:
    from .types import ProviderRequest

__all__ = ["KEEPALIVE", "NativeBackend"]

KEEPALIVE = 15.0
"""Seconds an idle connection stays in its pool (as aiohttp's default)."""
HIGH_WATER = 256 * 1024
"""Bytes of a streamed body held unread before the connection stops reading (flow control)."""


class _Parser(ResponseParser):
    """The response parser of a connection, counting the body bytes held for a stream."""

    __slots__ = ("size",)

    def reset(self) -> None:
        super().reset()
        self.size = 0

    def on_body(self, body: bytes) -> None:
        if not self.complete:
            self.body.append(body)
            self.size += len(body)


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection: one request at a time, its answer read by :attr:`parser`."""

    def __init__(self, pool: _Pool) -> None:
        self.pool = pool
        self.loop = pool.loop
        self.transport: asyncio.Transport | None = None
        self.parser = _Parser()
        self.waiter: asyncio.Future[None] | None = None
        self.error: httpx.TransportError | None = None
        self.active = False  # a request is in flight (its answer not yet handed back)
        self.streaming = False  # wake the caller at the head and at each body chunk
        self.got = False  # a byte of the current answer arrived
        self.closed = False
        self.reused = False
        self.paused = False
        self.idle_since = 0.0
        self.read_timeout: float | None = None
        self.last_read = 0.0
        self.watchdog: asyncio.TimerHandle | None = None

    # asyncio callbacks --------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast("asyncio.Transport", transport)  # uvloop's is not a subclass of asyncio's

    def data_received(self, data: bytes) -> None:
        if not self.active or self.parser.complete:  # nothing was asked: this connection cannot be trusted any more
            self.close()  # (an answer already read whole stays good)
            return
        self.got = True
        if self.read_timeout is not None:
            self.last_read = self.loop.time()
        parser = self.parser
        try:
            parser.feed(data)
        except httpx.RemoteProtocolError as exc:
            if not parser.complete:  # else the answer is whole; only what came after it is bad
                self.fail(exc)
            self.close()
            self.wake()
            return
        if self.streaming:
            if parser.head_done:
                self.wake()
                if parser.size > HIGH_WATER and not self.paused and self.transport is not None:
                    self.paused = True
                    self.transport.pause_reading()
        elif parser.complete:
            self.wake()

    def eof_received(self) -> bool | None:
        return False  # close our side too; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool.lost(self)
        if self.active and not self.parser.eof():
            if exc is not None:
                what = error_reason(exc)
            elif self.got:
                what = "the upstream closed the connection before the end of the answer"
            else:
                what = "the upstream closed the connection without answering"
            error = httpx.ReadError(what)
            error.__cause__ = exc
            self.fail(error)
        self.wake()

    # ours ----------------------------------------------------------------------------

    def wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def fail(self, error: httpx.TransportError) -> None:
        if self.error is None:
            self.error = error
        self.wake()

    def close(self) -> None:
        """Close the connection (it leaves its pool when the loop reports it lost)."""
        if self.watchdog is not None:
            self.watchdog.cancel()
            self.watchdog = None
        if self.transport is not None and not self.closed:
            self.transport.close()
        self.closed = True

    def start(self, data: bytes, streaming: bool, read_timeout: float | None) -> None:
        """Send a request (one write) and get ready to read its answer."""
        self.parser.reset()
        self.error = None
        self.got = False
        self.active = True
        self.streaming = streaming
        self.read_timeout = read_timeout
        if read_timeout is not None:
            self.last_read = self.loop.time()
            self.watchdog = self.loop.call_at(self.last_read + read_timeout, self._check_idle)
        assert self.transport is not None
        self.transport.write(data)

    async def wait(self) -> None:
        """Wait for the next event (the head or a chunk for a stream, else the end); raise a failure."""
        if self.error is not None:
            raise self.error
        self.waiter = self.loop.create_future()
        if self.read_timeout is not None:
            self.last_read = self.loop.time()  # the idle time counts from now, or the last bytes
        try:
            await self.waiter
        finally:
            self.waiter = None
        if self.error is not None:
            raise self.error

    def _check_idle(self) -> None:
        self.watchdog = None
        timeout = self.read_timeout
        if timeout is None or not self.active or self.closed:
            return
        now = self.loop.time()
        if self.waiter is not None and now - self.last_read >= timeout:
            self.fail(httpx.ReadTimeout(f"no data from the upstream for {timeout:g}s"))
            self.close()
            return
        # Not waiting (the caller holds unread data) or bytes came meanwhile: look again later.
        self.watchdog = self.loop.call_at(max(self.last_read, now - timeout) + timeout, self._check_idle)

    def resume(self) -> None:
        """The caller took what was held: read again if reading had paused."""
        if self.paused and not self.closed and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()

    def done(self) -> None:
        """The answer has been handed back whole: back to the pool if it may carry another."""
        if self.watchdog is not None:
            self.watchdog.cancel()
            self.watchdog = None
        parser = self.parser
        if parser.complete and parser.keep_alive and not self.closed and self.error is None:
            self.active = False
            self.pool.release(self)
        else:
            self.close()


class _Pool:
    """The connections to one origin on one event loop."""

    def __init__(self, origin: Origin, loop: asyncio.AbstractEventLoop, limit: int, tls: ssl.SSLContext | None) -> None:
        self.origin = origin
        self.loop = loop
        self.limit = limit
        self.tls = tls
        self.idle: list[_Connection] = []  # oldest first; reused from the end (LIFO)
        self.conns: set[_Connection] = set()
        self.opening = 0
        self.waiters: collections.deque[asyncio.Future[_Connection | None]] = collections.deque()
        self.sweeper: asyncio.TimerHandle | None = None
        self.keepalive = KEEPALIVE

    async def acquire(self, connect_timeout: float | None, fresh: bool = False) -> _Connection:
        """A connection for one request: an idle one (unless ``fresh``), else a new one."""
        idle = self.idle
        while idle and not fresh:
            conn = idle.pop()
            if not conn.closed:
                conn.reused = True
                return conn
        if len(self.conns) + self.opening >= self.limit:
            waiter: asyncio.Future[_Connection | None] = self.loop.create_future()
            self.waiters.append(waiter)
            try:
                handed = await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    self._pass_on(waiter.result())
                raise
            if handed is not None:
                handed.reused = True
                return handed
        self.opening += 1
        try:
            conn = await self._connect(connect_timeout)
        finally:
            self.opening -= 1
        if conn.closed:  # lost while the handshake finished
            raise httpx.ConnectError("the upstream closed the connection at once")
        self.conns.add(conn)
        return conn

    def _pass_on(self, conn: _Connection | None) -> None:
        # A waiter that was handed a connection (or a free slot) is gone: give it to the next.
        if conn is not None:
            self.release(conn)
        else:
            self._wake_one()

    async def _connect(self, timeout: float | None) -> _Connection:
        origin = self.origin
        try:
            async with asyncio.timeout(timeout):
                _, conn = await self.loop.create_connection(
                    lambda: _Connection(self), origin.host, origin.port,
                    ssl=self.tls, server_hostname=origin.host if self.tls is not None else None,
                )  # fmt: skip
        except TimeoutError as exc:
            raise httpx.ConnectTimeout(f"no connection within {timeout:g}s") from exc
        except OSError as exc:  # refused, unreachable, DNS, TLS (ssl.SSLError is an OSError)
            cause: OSError = exc
            if exc.errno and not isinstance(exc, ssl.SSLError):  # asyncio's text quotes the address
                cause = OSError(exc.errno, os.strerror(exc.errno))
                cause.__cause__ = exc
            raise httpx.ConnectError(error_reason(exc)) from cause
        return conn

    def release(self, conn: _Connection) -> None:
        """``conn`` finished an answer cleanly: to the first waiter, else to the idle list."""
        if conn.closed:
            return
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        conn.idle_since = self.loop.time()
        self.idle.append(conn)
        if self.sweeper is None:
            self.sweeper = self.loop.call_at(conn.idle_since + self.keepalive, self._sweep)

    def lost(self, conn: _Connection) -> None:
        """The loop reports ``conn`` closed: forget it, and let a waiter open a new one."""
        if conn in self.conns:
            self.conns.discard(conn)
            if conn in self.idle:
                self.idle.remove(conn)
            self._wake_one()

    def _wake_one(self) -> None:
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # a slot is free: open a connection
                return

    def _sweep(self) -> None:
        """Close the connections idle for :attr:`keepalive` seconds; come back for the next one."""
        self.sweeper = None
        cutoff = self.loop.time() - self.keepalive
        idle = self.idle
        while idle and idle[0].idle_since <= cutoff:
            idle.pop(0).close()
        if idle:
            self.sweeper = self.loop.call_at(idle[0].idle_since + self.keepalive, self._sweep)

    def close(self) -> None:
        """Close every connection of this pool."""
        if self.sweeper is not None:
            self.sweeper.cancel()
            self.sweeper = None
        for conn in list(self.conns):
            conn.close()
        self.idle.clear()


class _Body(httpx.AsyncByteStream):
    """A streamed answer, fed by its connection; closing it unfinished closes the connection."""

    def __init__(self, conn: _Connection) -> None:
        self._conn: _Connection | None = conn

    async def __aiter__(self) -> AsyncIterator[bytes]:
        conn = self._conn
        if conn is None:
            return
        parser = conn.parser
        try:
            while True:
                if parser.body:
                    chunks = parser.body
                    parser.body = []
                    parser.size = 0
                    conn.resume()
                    yield chunks[0] if len(chunks) == 1 else b"".join(chunks)
                elif parser.complete:
                    self._conn = None
                    conn.done()
                    return
                else:
                    await conn.wait()
        except BaseException:  # a failure, a cancellation, or the reader left (maybe after the last byte)
            if self._conn is not None:
                self._conn = None
                if parser.complete and not parser.body and conn.error is None:
                    conn.done()  # all of it was read: the connection may carry another request
                else:
                    conn.close()
            raise

    async def aclose(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            if conn.parser.complete and not conn.parser.body:
                conn.done()
            else:
                conn.close()  # unfinished: it cannot carry another request


class NativeBackend:
    """The connection pools of one :class:`~modelyard.transport.Transport`, per event loop.

    Args:
        limit: the most connections open at once to one origin (more callers wait in turn).
        keepalive: seconds an idle connection is kept.
        tls: the TLS context for https (default: :func:`default_tls`, built once).
    """

    def __init__(self, limit: int = 1000, keepalive: float = KEEPALIVE, tls: ssl.SSLContext | None = None) -> None:
        self._limit = limit
        self._keepalive = keepalive
        self._tls = tls
        self._pools: PerLoop[dict[Origin, _Pool]] = PerLoop(_close_pools)

    def sessions(self) -> int:
        """How many event loops have pools open."""
        return len(self._pools)

    def _pool(self, origin: Origin) -> _Pool:
        loop = asyncio.get_running_loop()
        pools = self._pools.get(loop)
        if pools is None:
            pools = {}
            self._pools.set(loop, pools)
        pool = pools.get(origin)
        if pool is None:
            tls = (self._tls or default_tls()) if origin.tls else None
            pool = pools[origin] = _Pool(origin, loop, self._limit, tls)
            pool.keepalive = self._keepalive
        return pool

    async def send(
        self, request: ProviderRequest, headers: dict[str, str], timeout: httpx.Timeout, *, idle: bool = True
    ) -> httpx.Response:
        """One attempt: the whole response, or an open one for a stream with status < 400.

        ``idle=False`` when the caller's deadline bounds the whole answer: no idle timeout then.

        Raises:
            httpx.TransportError: ``ConnectError``/``ConnectTimeout`` (no connection),
                ``ReadError``/``ReadTimeout``/``RemoteProtocolError`` (after sending),
                ``UnsupportedProtocol`` (a URL that is not http(s), or HEAD),
                ``LocalProtocolError`` (a header that could inject another; nothing sent).
        """
        method: str = request.method
        if method not in METHODS:  # HEAD: llhttp cannot tell that its answer has no body
            raise httpx.UnsupportedProtocol(f"{method[:10]!r} requests are not supported by the native backend")
        try:
            target = split_url(request.url, request.params)
        except httpx.InvalidURL as exc:
            raise httpx.UnsupportedProtocol(f"the URL is not valid ({exc})") from None
        check_headers(headers)
        data = request_bytes(method, target, headers, request.json_body)
        pool = self._pool(target.origin)
        read = timeout.read if idle else None
        stream = request.stream
        fresh = False
        while True:
            conn = await pool.acquire(timeout.connect, fresh)
            try:
                conn.start(data, stream, read)
                await conn.wait()
                break
            except httpx.ReadError:
                conn.close()
                if conn.reused and not conn.got and not fresh and method in IDEMPOTENT:
                    fresh = True  # the upstream closed it while idle: once more on a new one
                    continue
                raise
            except BaseException:
                conn.close()
                raise
        parser = conn.parser
        if stream:
            if parser.status < 400:
                return build_response(parser.status, parser.headers, stream=_Body(conn))
            try:  # an error answer is read whole
                while not parser.complete:
                    await conn.wait()
            except BaseException:
                conn.close()
                raise
        content = parser.body[0] if len(parser.body) == 1 else b"".join(parser.body)
        response = build_response(parser.status, parser.headers, content, encoded=parser.encoded)
        conn.done()
        return response

    async def aclose(self) -> None:
        """Close the running loop's connections."""
        await self._pools.aclose(asyncio.get_running_loop())


async def _close_pools(pools: dict[Origin, _Pool]) -> None:
    for pool in pools.values():
        pool.close()
    pools.clear()
    await asyncio.sleep(0)  # let the loop report the connections lost
