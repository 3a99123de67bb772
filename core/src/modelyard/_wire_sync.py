"""The ``native`` sync backend of :class:`modelyard.transport.Transport`: HTTP/1.1 on blocking sockets.

Why our own client: httpx's sync client (its URL and header models, httpcore's pool and h11's
state machine) is most of what a sequential sync call costs. This one is a blocking socket per
connection and a keep-alive pool per origin; the HTTP grammar is httptools' (llhttp, as uvicorn
uses), the framing is :mod:`modelyard._http1`, shared with the async twin :mod:`modelyard._wire`.
A call is one ``sendall`` (head and JSON body) and, for a small answer, one ``recv``. It comes
back as an ``httpx.Response`` (a whole one, or an open one whose ``httpx.SyncByteStream`` reads
the socket as the caller iterates), so everything above the transport (plugins, SSE parsing,
error mapping) keeps httpx's API; failures are raised as httpx's exceptions (``ConnectError``,
``ConnectTimeout``, ``WriteError``, ``ReadError``, ``ReadTimeout``, ``RemoteProtocolError``,
``PoolTimeout``) with no header value or URL userinfo in their text.

Pools: one per origin (scheme, host, port), shared by all threads behind a lock. Idle
connections are reused last-in first-out; one idle longer than the keep-alive time is closed
when a caller finds it (no timer, no thread); at most ``limit`` connections per origin are
open, callers beyond that wait (at most the pool timeout). A connection goes back to the pool
only after a complete answer that allows keep-alive. An idle connection is checked when taken
(a poll with no wait, as httpcore does): one the upstream closed, or that holds bytes nobody
asked for, is dropped before anything is sent on it. A request on a reused connection that
fails before any byte of an answer is sent once more on a new connection when that cannot run
it twice: the request could not be sent whole (``WriteError``), or its method is idempotent
(GET, DELETE). A POST the upstream read and then dropped without a word is not resent here:
the upstream may be running it (Azure bills it), so the transport decides (``retry_on_timeout``),
as with httpx and aiohttp, which never resend a POST either. A failure after answer bytes
arrived is never resent here.

Processes: a child forked from a process with open connections starts with none (the
parent's stay the parent's: two processes reading one socket would read each other's answers).

Timeouts, as the httpx path of :meth:`Transport.send <modelyard.transport.Transport.send>`:
with a ``deadline`` (a number ``timeout``), connecting gets ``timeout.connect`` at most and the
whole attempt (connect, send, and the answer to its last byte; for a stream, until its head is
in) ends by the deadline; a stream's body then gets ``timeout.read`` between chunks. Without a
deadline (an ``httpx.Timeout`` as given), each phase gets its own timeout.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import ssl
import threading
import time
import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING

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

if TYPE_CHECKING:
    from .types import ProviderRequest

__all__ = ["SyncNativeBackend"]

_READ = 65536
_monotonic = time.monotonic


def _error(kind: type[httpx.TransportError], exc: BaseException) -> httpx.TransportError:
    """``kind`` with ``exc``'s safe reason (raise it ``from exc``: the transport words its
    message from the cause's operating-system reason)."""
    return kind(error_reason(exc))


def _readable(sock: socket.socket) -> bool:
    """Whether an idle connection has something to read: the upstream closed it (EOF, a reset)
    or sent bytes nobody asked for; either way it cannot carry a request (as httpcore checks).

    ``poll`` where there is one: ``select`` refuses descriptors past 1023 (FD_SETSIZE), which a
    busy process reaches, and every idle connection would then look spoiled.
    """
    try:
        if _poll is not None:
            poller = _poll()
            poller.register(sock, select.POLLIN)
            return bool(poller.poll(0))
        return bool(select.select((sock,), (), (), 0)[0])
    except (OSError, ValueError):  # closed
        return True


_poll = getattr(select, "poll", None)


class _Connection:
    """One HTTP/1.1 connection: a socket, its parser, and whether it came from the pool."""

    __slots__ = ("got", "idle_since", "parser", "reused", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.parser = ResponseParser()
        self.idle_since = 0.0
        self.reused = False
        self.got = False  # a byte of the current answer arrived

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    def read(self, timeout: float | None) -> bool:
        """Read once (at most ``timeout`` seconds) and feed the parser; False at the end of the
        connection when that does not complete the answer.

        Raises:
            httpx.ReadTimeout: nothing came within ``timeout``.
            httpx.ReadError: the connection broke.
            httpx.RemoteProtocolError: the bytes are not a valid answer.
        """
        sock = self.sock
        if timeout is not None and timeout <= 0:
            raise httpx.ReadTimeout("the answer did not come within the timeout")
        sock.settimeout(timeout)
        try:
            data = sock.recv(_READ)
        except TimeoutError as exc:
            raise _error(httpx.ReadTimeout, exc) from exc
        except OSError as exc:
            raise _error(httpx.ReadError, exc) from exc
        if data:
            self.got = True
            self.parser.feed(data)
            return True
        return self.parser.eof()


class _Pool:
    """The connections to one origin, shared by all threads."""

    def __init__(self, origin: Origin, limit: int, max_idle: int, keepalive: float, tls: ssl.SSLContext | None) -> None:
        self.origin = origin
        self.limit = limit
        self.max_idle = max_idle
        self.keepalive = keepalive
        self.tls = tls
        self.idle: list[_Connection] = []  # oldest first; reused from the end (LIFO)
        self.open = 0  # connections open or being opened
        self.waiting = 0
        self.cond = threading.Condition(threading.Lock())
        self.closed = False
        self.dropped: list[None] = []  # places freed without the lock (see drop), taken back in _take

    def acquire(self, connect: float | None, pool: float | None, fresh: bool = False) -> _Connection:
        """An idle connection (unless ``fresh``), else a new one once the limit allows.

        Raises:
            httpx.PoolTimeout: no connection became free within ``pool`` seconds.
            httpx.ConnectError, httpx.ConnectTimeout: a new connection could not be made.
        """
        while True:
            conn = self._take(pool, fresh)
            if conn is None:
                break
            if not _readable(conn.sock):
                return conn
            self.discard(conn)  # closed by the upstream while idle, or bytes nobody asked for
        try:
            return _Connection(self._connect(connect))
        except BaseException:
            self._forget()
            raise

    def _take(self, pool: float | None, fresh: bool) -> _Connection | None:
        """An idle connection, or None when a place for a new one is now reserved."""
        expired: list[_Connection] = []
        conn: _Connection | None
        with self.cond:
            while True:
                if self.dropped:
                    self._count_dropped()
                idle = self.idle
                if idle and not fresh:
                    conn = idle.pop()
                    if _monotonic() - conn.idle_since < self.keepalive:
                        conn.reused = True
                        break
                    # Idle too long; every older one too: close them all (outside the lock).
                    expired = [*idle, conn]
                    idle.clear()
                    self.open -= len(expired)
                if self.open < self.limit:
                    self.open += 1
                    conn = None
                    break
                self.waiting += 1
                try:
                    if not self.cond.wait(pool):
                        raise httpx.PoolTimeout(f"no free connection within {pool:g}s")
                finally:
                    self.waiting -= 1
        for old in expired:
            old.close()
        return conn

    def _connect(self, timeout: float | None) -> socket.socket:
        origin = self.origin
        try:
            sock = socket.create_connection((origin.host, origin.port), timeout)
        except TimeoutError as exc:
            raise _error(httpx.ConnectTimeout, exc) from exc
        except OSError as exc:  # refused, unreachable, name resolution
            raise _error(httpx.ConnectError, exc) from exc
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.tls is not None:
                sock = self.tls.wrap_socket(sock, server_hostname=origin.host)  # the handshake, within `timeout`
        except TimeoutError as exc:
            sock.close()
            raise _error(httpx.ConnectTimeout, exc) from exc
        except OSError as exc:  # ssl.SSLError (a certificate refused) is an OSError
            sock.close()
            raise _error(httpx.ConnectError, exc) from exc
        return sock

    def release(self, conn: _Connection) -> None:
        """``conn`` finished an answer that allows another: keep it (or close it past the idle limit)."""
        with self.cond:
            if not self.closed and len(self.idle) < self.max_idle:
                conn.idle_since = _monotonic()
                self.idle.append(conn)
                if self.waiting:
                    self.cond.notify()
                return
            self.open -= 1
            if self.waiting:
                self.cond.notify()
        conn.close()

    def discard(self, conn: _Connection) -> None:
        """Close ``conn`` (unfinished, broken, or not to be reused) and free its place."""
        conn.close()
        self._forget()

    def drop(self, conn: _Connection) -> None:
        """:meth:`discard` for a finalizer (an answer never closed, garbage-collected): it may run
        in any thread at any moment, even one holding this pool's lock, so it never waits for it."""
        conn.close()
        if self.cond.acquire(blocking=False):
            try:
                self.dropped.append(None)
                self._count_dropped()
            finally:
                self.cond.release()
        else:
            self.dropped.append(None)  # atomic; counted by the next caller that takes the lock

    def _count_dropped(self) -> None:
        n = len(self.dropped)
        del self.dropped[:n]
        self.open -= n
        if self.waiting:
            self.cond.notify(n)

    def _forget(self) -> None:
        with self.cond:
            self.open -= 1
            if self.waiting:
                self.cond.notify()

    def close(self) -> None:
        """Close the idle connections; those in use close when their answer ends."""
        with self.cond:
            idle, self.idle = self.idle, []
            self.open -= len(idle)
            self.closed = True
        for conn in idle:
            conn.close()


class _Body(httpx.SyncByteStream):
    """A streamed answer, read off its connection as the caller iterates.

    Each read waits at most ``idle`` seconds. The connection goes back to the pool when the
    answer is read to its end; closing the stream before that closes the connection.
    """

    def __init__(self, pool: _Pool, conn: _Connection, idle: float | None) -> None:
        self._pool = pool
        self._conn: _Connection | None = conn
        self._idle = idle

    def __iter__(self) -> Iterator[bytes]:
        conn = self._conn
        if conn is None:
            return
        parser = conn.parser
        try:
            while True:
                if parser.body:
                    chunks = parser.body
                    parser.body = []
                    yield chunks[0] if len(chunks) == 1 else b"".join(chunks)
                elif parser.complete:
                    self._conn = None
                    self._finish(conn)
                    return
                elif not conn.read(self._idle):
                    raise httpx.ReadError("the upstream closed the connection before the end of the answer")
        except GeneratorExit:  # the reader left early: maybe the collector, holding who knows what
            if self._conn is not None:
                self._conn = None
                self._pool.drop(conn)
            raise
        except BaseException:  # a failure
            if self._conn is not None:
                self._conn = None
                self._pool.discard(conn)
            raise

    def __del__(self) -> None:
        # An answer dropped without being read or closed: free its connection and its place.
        conn = self._conn
        if conn is not None:
            self._conn = None
            self._pool.drop(conn)

    def _finish(self, conn: _Connection) -> None:
        if conn.parser.keep_alive:
            self._pool.release(conn)
        else:
            self._pool.discard(conn)

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            if conn.parser.complete and not conn.parser.body:
                self._finish(conn)
            else:
                self._pool.discard(conn)  # unfinished: it cannot carry another request


def _exchange(conn: _Connection, data: bytes, timeout: httpx.Timeout, deadline: float | None, stream: bool) -> None:
    """Send ``data`` on ``conn`` and read the answer: whole, or for a ``stream`` with status < 400
    until its head is in."""
    sock = conn.sock
    parser = conn.parser
    parser.reset()
    conn.got = False
    if deadline is not None:
        left = deadline - _monotonic()
        if left <= 0:
            raise httpx.WriteTimeout("no time left to send within the timeout")
        sock.settimeout(left)
    else:
        sock.settimeout(timeout.write)
    try:
        sock.sendall(data)
    except TimeoutError as exc:
        raise _error(httpx.WriteTimeout, exc) from exc
    except OSError as exc:
        raise _error(httpx.WriteError, exc) from exc
    read = timeout.read
    while not parser.complete:
        if stream and parser.head_done and parser.status < 400:
            return
        if not conn.read(read if deadline is None else deadline - _monotonic()):
            if conn.got:
                raise httpx.ReadError("the upstream closed the connection before the end of the answer")
            raise httpx.ReadError("the upstream closed the connection without answering")


_backends: weakref.WeakSet[SyncNativeBackend] = weakref.WeakSet()


def _after_fork() -> None:
    for backend in list(_backends):
        backend._forked()


class SyncNativeBackend:
    """The connection pools of one :class:`~modelyard.transport.Transport`'s sync calls.

    Args:
        limit: the most connections open at once to one origin (more callers wait).
        max_idle: the most idle connections kept per origin.
        keepalive: seconds an idle connection is kept.
        tls: the TLS context for https (default: :func:`default_tls`, built once).
    """

    def __init__(self, limit: int = 1000, max_idle: int = 200, keepalive: float = 5.0, tls: ssl.SSLContext | None = None) -> None:
        self._limit = limit
        self._max_idle = max_idle
        self._keepalive = keepalive
        self._tls = tls
        self._pools: dict[Origin, _Pool] = {}
        self._lock = threading.Lock()
        _backends.add(self)

    def _forked(self) -> None:
        """In a child process just forked: start with no connections. The parent's are its own
        (two processes reading one socket would read each other's answers); their descriptors
        are closed here, which leaves the parent's connections open. No lock is taken: one may
        have been held by a thread of the parent that does not exist here."""
        pools, self._pools, self._lock = self._pools, {}, threading.Lock()
        for pool in pools.values():
            for conn in pool.idle:
                conn.close()

    def __repr__(self) -> str:
        return f"SyncNativeBackend(origins={len(self._pools)})"

    def _pool(self, origin: Origin) -> _Pool:
        pool = self._pools.get(origin)
        if pool is None:
            with self._lock:
                pool = self._pools.get(origin)
                if pool is None:
                    tls = (self._tls or default_tls()) if origin.tls else None
                    pool = self._pools[origin] = _Pool(origin, self._limit, self._max_idle, self._keepalive, tls)
        return pool

    def send(self, request: ProviderRequest, headers: dict[str, str], timeout: httpx.Timeout, deadline: float | None) -> httpx.Response:
        """One attempt: the whole response, or an open one for a stream with status < 400.

        ``deadline`` (``time.monotonic()``): when the attempt must end (for a stream: until its
        head is in); None to use ``timeout``'s phases as they are.

        Raises:
            httpx.TransportError: ``ConnectError``/``ConnectTimeout``/``PoolTimeout`` (nothing
                sent), ``WriteError``/``WriteTimeout``, ``ReadError``/``ReadTimeout``/
                ``RemoteProtocolError`` (after sending), ``UnsupportedProtocol`` (a URL that is
                not http(s), or a method this backend does not send), ``LocalProtocolError``
                (a header that could inject another; nothing sent).
        """
        method: str = request.method
        if method not in METHODS:
            raise httpx.UnsupportedProtocol(f"{method[:10]!r} requests are not supported by the native backend")
        try:
            target = split_url(request.url, request.params)
        except httpx.InvalidURL as exc:
            raise httpx.UnsupportedProtocol(f"the URL is not valid ({exc})") from exc
        check_headers(headers)
        data = request_bytes(method, target, headers, request.json_body)
        pool = self._pool(target.origin)
        stream = request.stream
        fresh = False
        while True:
            connect, wait = timeout.connect, timeout.pool
            if deadline is not None:
                left = deadline - _monotonic()
                if left <= 0:
                    raise httpx.ConnectTimeout("no time left to connect within the timeout")
                connect = left if connect is None else min(connect, left)
                wait = left if wait is None else min(wait, left)
            conn = pool.acquire(connect, wait, fresh)
            try:
                _exchange(conn, data, timeout, deadline, stream)
                break
            except (httpx.WriteError, httpx.ReadError) as exc:
                pool.discard(conn)
                if conn.reused and not conn.got and not fresh and (method in IDEMPOTENT or isinstance(exc, httpx.WriteError)):
                    fresh = True  # the upstream closed it while idle: once more on a new one
                    continue
                raise
            except BaseException:
                pool.discard(conn)
                raise
        parser = conn.parser
        if stream and parser.status < 400:
            return build_response(parser.status, parser.headers, stream=_Body(pool, conn, timeout.read))
        content = parser.body[0] if len(parser.body) == 1 else b"".join(parser.body)
        response = build_response(parser.status, parser.headers, content, encoded=parser.encoded)
        if parser.keep_alive:
            pool.release(conn)
        else:
            pool.discard(conn)
        return response

    def close(self) -> None:
        """Close every idle connection (those in use close when their answer ends)."""
        with self._lock:
            pools = list(self._pools.values())
            self._pools.clear()
        for pool in pools:
            pool.close()


os.register_at_fork(after_in_child=_after_fork)
