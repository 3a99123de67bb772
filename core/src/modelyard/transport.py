"""Pooled HTTP clients, timeouts, retries and server-sent-event parsing.

Calls go out through modelyard's own HTTP/1.1 clients by default (:mod:`modelyard._wire_sync`,
a thread-safe pool per origin; :mod:`modelyard._wire`, a pool per origin and event loop), or
through httpx (``sync_backend="httpx"`` / ``async_backend="httpx"``: one ``httpx.Client`` per
upstream origin, one ``httpx.AsyncClient`` per origin and event loop) or aiohttp; multipart
uploads always through httpx. An async connection pool belongs to the loop that opened it, and
is reused across calls. The async pools of a loop are closed on that loop when it shuts down
(``asyncio.run`` and every runner end with ``loop.shutdown_asyncgens()``, which we hook), and
a loop that closed without it is swept when the next loop opens its clients. Credentials are
added per attempt and never stored in a client, so a refreshed token is used on the next
attempt.

Timeouts: a number ``timeout`` bounds each attempt of a call as a whole: connecting, sending,
and reading the answer to its last byte must all end within ``timeout`` seconds, however
slowly the upstream drips it. Connecting alone gets at most ``min(10, timeout / 2)``, so a
connection that cannot be made is reported as such (and is safe to retry). For a stream,
``timeout`` bounds the attempt until the response starts, then it is an idle timeout: each
chunk must arrive within ``timeout`` of the previous one, and a long stream may last as long
as it keeps coming. An ``httpx.Timeout`` is used as given (per phase, no overall deadline).

Retries: ``num_retries`` more attempts after the first, for 408, 409, 429 and 5xx answers and
for connections that could not be made. A request that may have reached the upstream (a read
timeout, a connection dropped after sending) is not retried unless ``retry_on_timeout``: Azure
may be processing it and bill it twice. The delay honours ``retry-after-ms`` then
``retry-after`` (seconds or an HTTP date), clamped to :data:`MAX_RETRY_AFTER` (60 s); a value
that is neither, or is not finite, is ignored; else exponential backoff from 0.5 s to 8 s with
jitter. Other 4xx are never retried. A 401 with a cached token gets one extra attempt after
the authenticator drops its token.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx

from . import _deadline
from ._loops import PerLoop
from ._sse import aiter_sse, iter_sse
from .errors import (
    MAX_RETRY_AFTER,
    APIConnectionError,
    APITimeoutError,
    BadRequestError,
    ConfigError,
)
from .redact import check_header_values, header_secrets, safe_url, scrub

if TYPE_CHECKING:
    from ._aiohttp import AiohttpBackend
    from ._wire import NativeBackend
    from ._wire_sync import SyncNativeBackend
    from .hookspecs import Authenticator
    from .types import ProviderRequest

__all__ = [
    "DEFAULT_TIMEOUT",
    "MAX_RETRY_AFTER",
    "RETRYABLE_STATUS",
    "Attempts",
    "Transport",
    "aiter_sse",
    "get_transport",
    "iter_sse",
    "parse_retry_after",
    "retry_delay",
    "set_transport",
    "timeout_seconds",
]

DEFAULT_TIMEOUT = 600.0
RETRYABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504, 529})
_MAX_CONNECT_TIMEOUT = 10.0


@dataclass
class Attempts:
    """How sending one call went, for observers (``CallRecord.retries`` / ``.resent``).

    Attributes:
        retries: attempts after the first.
        resent: those of them that followed a failure after which the upstream may already
            have had the request (a read timeout, a connection dropped after sending): each
            may have duplicated work the upstream bills. Only with ``retry_on_timeout``.
    """

    retries: int = 0
    resent: int = 0
    log: list[tuple[float, float, str]] = field(default_factory=list)
    """``(start, end, status or error name)`` per attempt that was retried (``time.time()``)."""

    def retried(self, started: float, what: str) -> None:
        """Note an attempt begun at ``started`` that ended in ``what`` and is retried."""
        self.log.append((started, time.time(), what))


def retry_delay(attempt: int, headers: httpx.Headers | None) -> float:
    """Seconds to wait before retry number ``attempt`` (0-based).

    The upstream's ``retry-after-ms`` / ``retry-after`` wins (at most :data:`MAX_RETRY_AFTER`);
    otherwise exponential backoff (0.5 s doubling, capped at 8 s) scaled by 0.75-1.0 jitter.
    """
    server = parse_retry_after(headers) if headers is not None else None
    if server is not None:
        return server
    return min(0.5 * 2.0**attempt, 8.0) * (0.75 + random.random() / 4)


def parse_retry_after(headers: httpx.Headers | Any) -> float | None:
    """The delay an upstream asks for, in seconds, from ``retry-after-ms`` or ``retry-after``.

    ``retry-after-ms`` is milliseconds; ``retry-after`` is seconds or an HTTP date. A value
    that is none of these, negative or not finite (``inf``, ``nan``) is ignored, as if it
    were absent; a longer wait than :data:`MAX_RETRY_AFTER` is clamped to it.

    Returns:
        Seconds between 0 and :data:`MAX_RETRY_AFTER`, or None when no usable value was given.
    """
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value:
            seconds = _retry_after_seconds(str(value).strip(), scale)
            if seconds is not None:
                return min(seconds, MAX_RETRY_AFTER)
    return None


def _retry_after_seconds(value: str, scale: float) -> float | None:
    try:
        seconds = float(value) * scale
    except ValueError:
        if scale != 1.0:
            return None
        parsed = email.utils.parsedate_tz(value)  # None when it is not an HTTP date
        if parsed is None:
            return None
        try:
            seconds = max(0.0, email.utils.mktime_tz(parsed) - time.time())
        except (OverflowError, ValueError):
            return None
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return seconds


def _deadline_of(timeout: float | httpx.Timeout | None) -> float | None:
    """The seconds one attempt may take as a whole; None for an ``httpx.Timeout`` (per phase)."""
    if isinstance(timeout, httpx.Timeout):
        return None
    return DEFAULT_TIMEOUT if timeout is None else float(timeout)


def _timeout(timeout: float | httpx.Timeout | None) -> httpx.Timeout:
    if isinstance(timeout, httpx.Timeout):
        return timeout
    total = DEFAULT_TIMEOUT if timeout is None else float(timeout)
    # One (immutable) httpx.Timeout per value: building it costs ~2 µs, twice per call.
    found = _timeouts.get(total)
    if found is None:
        if len(_timeouts) > 64:
            _timeouts.clear()
        found = _timeouts[total] = httpx.Timeout(total, connect=min(total / 2, _MAX_CONNECT_TIMEOUT))
    return found


_timeouts: dict[float, httpx.Timeout] = {}


def _request_sent(exc: httpx.TransportError) -> bool:
    """False only when ``exc`` proves the request never left: no connection was made."""
    return not isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)


def _past_deadline(total: float) -> httpx.ReadTimeout:
    return httpx.ReadTimeout(f"the answer took longer than the timeout of {total:g}s")


def timeout_seconds(timeout: float | httpx.Timeout | None) -> float | None:
    """A call's ``timeout`` as seconds, for what must finish within it (a token fetch).

    An ``httpx.Timeout`` counts as its longest part; None stays None (no timeout given).

    Raises:
        BadRequestError: ``timeout`` is neither a number nor an ``httpx.Timeout``.
    """
    if timeout is None:
        return None
    if isinstance(timeout, httpx.Timeout):
        parts = [t for t in (timeout.connect, timeout.read, timeout.write, timeout.pool) if t is not None]
        return max(parts) if parts else None
    try:
        return float(timeout)
    except (TypeError, ValueError):
        raise BadRequestError(f"'timeout' must be a number of seconds, got {type(timeout).__name__}.", param="timeout") from None


_origins: dict[str, str] = {}
_urls: dict[tuple[str, tuple[tuple[str, str], ...]], httpx.URL] = {}


def _origin(url: str) -> str:
    # Parsing a URL costs more than the rest of building a request: remember the few we see.
    origin = _origins.get(url)
    if origin is None:
        u = httpx.URL(url)
        origin = f"{u.scheme}://{u.netloc.decode('ascii')}"
        if len(_origins) > 1024:
            _origins.clear()
        _origins[url] = origin
    return origin


def _url(request: ProviderRequest) -> httpx.URL:
    """``request.url`` with ``request.params`` merged and any ``user:password@`` removed (see
    :func:`_userinfo_header`), parsed once per distinct pair."""
    key = (request.url, tuple(request.params.items()))
    url = _urls.get(key)
    if url is None:
        url = httpx.URL(request.url, params=request.params or None)
        if url.userinfo:
            url = url.copy_with(userinfo=b"")
        if len(_urls) > 1024:
            _urls.clear()
        _urls[key] = url
    return url


def has_authorization(headers: dict[str, str]) -> bool:
    """True when ``headers`` set ``Authorization`` (in any case)."""
    return any(name.lower() == "authorization" for name in headers)


def _userinfo_header(request: ProviderRequest, headers: dict[str, str]) -> dict[str, str]:
    """``headers`` with the ``user:password@`` of ``request.url`` as HTTP Basic auth.

    The URL handed to the HTTP library never carries the userinfo, so neither the library's
    logs (httpx logs every URL at INFO) nor its errors can show the password. A credential that
    sets ``Authorization`` itself (a bearer token) wins over the userinfo, on both backends.
    """
    if "@" not in request.url:
        return headers
    url = httpx.URL(request.url)
    if not url.userinfo or has_authorization(headers):
        return headers
    basic = base64.b64encode(f"{url.username}:{url.password}".encode()).decode("ascii")  # as httpx.BasicAuth
    return {**headers, "Authorization": f"Basic {basic}"}


class Transport:
    """The pooled clients behind every call; one per process is usually enough.

    Args:
        limits: connection pool limits per origin.
        transport: an ``httpx`` sync transport to use instead of the network, for tests
            (``httpx.MockTransport``).
        async_transport: the same for async calls.
        async_backend: ``"native"`` (the default), ``"httpx"`` (httpx's own pool) or
            ``"aiohttp"``. ``"native"``: async calls go to modelyard's own HTTP/1.1 client
            (:mod:`modelyard._wire`: asyncio protocols, httptools' parser, a keep-alive pool per
            origin and event loop) and come back as ``httpx.Response`` objects. ``"aiohttp"``:
            the same through one ``aiohttp.ClientSession`` per event loop
            (:mod:`modelyard._aiohttp`; needs the ``server`` extra). Measured with 32 calls in
            flight to a canned local upstream, both cost a fraction of httpx's default pool per
            call, native the least (see bench/README.md). Multipart uploads (``files``/``data``)
            still go through httpx. Ignored when ``async_transport`` is given.
        sync_backend: ``"native"`` (the default) or ``"httpx"`` (httpx's own pool):
            ``"native"`` sends sync calls with modelyard's own HTTP/1.1 client
            (:mod:`modelyard._wire_sync`: blocking sockets, httptools' parser, a thread-safe
            keep-alive pool per origin), and they come back as ``httpx.Response`` objects, at a
            fraction of httpx's CPU per call (see bench/README.md). Multipart uploads
            (``files``/``data``) and in-process handlers still go through httpx. Ignored when
            ``transport`` is given.

    The async clients (and aiohttp sessions) of an event loop are closed on that loop when
    it shuts down; :meth:`aclose` closes the running loop's at once.
    """

    def __init__(
        self,
        *,
        limits: httpx.Limits | None = None,
        transport: httpx.BaseTransport | None = None,
        async_transport: httpx.AsyncBaseTransport | None = None,
        async_backend: str = "native",
        sync_backend: str = "native",
    ) -> None:
        if sync_backend not in ("httpx", "native"):
            raise ValueError(f"sync_backend must be 'httpx' or 'native', not {sync_backend!r}")
        if async_backend not in ("httpx", "native", "aiohttp"):
            raise ValueError(f"async_backend must be 'httpx', 'native' or 'aiohttp', not {async_backend!r}")
        self._async_backend = async_backend
        self._fast: AiohttpBackend | NativeBackend | None = None  # the fast backend, if any
        if async_backend == "native" and async_transport is None:
            from ._wire import NativeBackend

            self._fast = NativeBackend()
        elif async_backend == "aiohttp" and async_transport is None:
            try:
                from ._aiohttp import AiohttpBackend
            except ImportError:
                from .errors import ConfigError

                raise ConfigError(
                    "async_backend='aiohttp' needs aiohttp: pip install 'modelyard[proxy]'.", key="async_backend"
                ) from None
            self._fast = AiohttpBackend()
        self._limits = limits or httpx.Limits(max_connections=1000, max_keepalive_connections=200)
        self._transport = transport
        self._async_transport = async_transport
        self._native_sync: SyncNativeBackend | None = None
        if sync_backend == "native" and transport is None:
            from ._wire_sync import SyncNativeBackend

            limits, unlimited = self._limits, 1 << 30  # httpx's None: no limit
            self._native_sync = SyncNativeBackend(
                limit=unlimited if limits.max_connections is None else limits.max_connections,
                max_idle=unlimited if limits.max_keepalive_connections is None else limits.max_keepalive_connections,
                keepalive=float("inf") if limits.keepalive_expiry is None else limits.keepalive_expiry,
            )
        self._sync: dict[str, httpx.Client] = {}
        self._async: PerLoop[dict[str, httpx.AsyncClient]] = PerLoop(_aclose_clients)
        self._lock = threading.Lock()

    def client(self, url: str) -> httpx.Client:
        """The pooled sync client for ``url``'s origin."""
        origin = _origin(url)
        client = self._sync.get(origin)
        if client is None:
            with self._lock:
                client = self._sync.get(origin)
                if client is None:
                    client = httpx.Client(limits=self._limits, transport=self._transport, trust_env=False)
                    self._sync[origin] = client
        return client

    def aclient(self, url: str) -> httpx.AsyncClient:
        """The pooled async client for ``url``'s origin on the running event loop."""
        loop = asyncio.get_running_loop()
        origin = _origin(url)
        per_loop = self._async.get(loop)
        if per_loop is None:
            per_loop = {}
            self._async.set(loop, per_loop)
        client = per_loop.get(origin)
        if client is None:
            client = httpx.AsyncClient(limits=self._limits, transport=self._async_transport, trust_env=False)
            if self._async_transport is None:
                from ._netstream import install

                install(client)  # the pool's liveness check without anyio's per-check cost
            per_loop[origin] = client
        return client

    def pools(self) -> int:
        """How many event loops have async clients (or native pools, aiohttp sessions) open in this transport."""
        return len(self._async) + (self._fast.sessions() if self._fast is not None else 0)

    def close(self) -> None:
        """Close the sync clients (async ones close with their loop, or with :meth:`aclose`)."""
        with self._lock:
            for client in self._sync.values():
                client.close()
            self._sync.clear()
        if self._native_sync is not None:
            self._native_sync.close()

    async def aclose(self) -> None:
        """Close the async clients of the running loop."""
        if self._fast is not None:
            await self._fast.aclose()
        await self._async.aclose(asyncio.get_running_loop())

    # ------------------------------------------------------------------ sending

    def send(
        self,
        request: ProviderRequest,
        auth: Authenticator | None,
        *,
        timeout: float | httpx.Timeout | None = None,
        num_retries: int = 0,
        retry_on_timeout: bool = False,
        attempts: Attempts | None = None,
    ) -> httpx.Response:
        """Send with retries; return the final response (any status) or raise a connection error.

        A streaming request returns an open response when the status is < 400; the caller
        must close it. An error response is always read whole.

        Args:
            request: the upstream call.
            auth: adds credentials per attempt.
            timeout: seconds per attempt as a whole (for a stream: until it starts, then
                between chunks), or an ``httpx.Timeout`` per phase.
            num_retries: attempts after the first.
            retry_on_timeout: also retry when the upstream may already have the request.
            attempts: filled in with the retries made, for observers.
        """
        native = self._native_sync
        if native is not None and (request.files or request.data is not None or request.handler is not None):
            native = None  # multipart uploads (httpx streams them) and in-process handlers stay on httpx
        client = None
        if native is None:
            client = self.client(request.url) if request.handler is None else _in_process(request.handler)
        total = _deadline_of(timeout)
        refreshed = False
        attempt = 0
        while True:
            tried = time.time()
            headers = request.headers if auth is None else {**request.headers, **auth.headers()}
            _check_headers(headers)
            headers = _userinfo_header(request, headers)
            try:
                if native is not None:
                    response = native.send(request, headers, _timeout(timeout), None if total is None else time.monotonic() + total)
                else:
                    assert client is not None
                    response = _httpx_attempt(client, request, headers, timeout, total)
            except httpx.TransportError as exc:
                if not _retry_transport_error(exc, attempt, num_retries, retry_on_timeout, attempts):
                    raise _connection_error(exc, request) from exc
                if attempts is not None:
                    attempts.retried(tried, type(exc).__name__)
                time.sleep(retry_delay(attempt, None))
                attempt += 1
                continue
            status = response.status_code
            if status < 400:
                return response
            if status == 401 and not refreshed and auth is not None and auth.invalidate():
                refreshed = True
                continue
            if status in RETRYABLE_STATUS and attempt < num_retries:
                if attempts is not None:
                    attempts.retries += 1
                    attempts.retried(tried, str(status))
                time.sleep(retry_delay(attempt, response.headers))
                attempt += 1
                continue
            return _scrubbed(response, headers, request)

    async def asend(
        self,
        request: ProviderRequest,
        auth: Authenticator | None,
        *,
        timeout: float | httpx.Timeout | None = None,
        num_retries: int = 0,
        retry_on_timeout: bool = False,
        attempts: Attempts | None = None,
    ) -> httpx.Response:
        """The async twin of :meth:`send`."""
        # Multipart uploads (files / form data) stay on httpx, which streams them.
        fast = self._fast if not request.files and request.data is None and request.handler is None else None
        client = None
        if request.handler is not None:
            client = _ain_process(request.handler)
        elif fast is None:
            client = self.aclient(request.url)
        total = _deadline_of(timeout)
        idle = request.stream or total is None  # else the deadline bounds the whole answer
        refreshed = False
        attempt = 0
        while True:
            tried = time.time()
            headers = request.headers if auth is None else {**request.headers, **await auth.aheaders()}
            _check_headers(headers)
            headers = _userinfo_header(request, headers)
            try:
                # The deadline covers the whole attempt (for a stream: until it starts). One timer
                # per loop for every call's deadline (modelyard._deadline), as asyncio.timeout(total).
                deadline = None if total is None else _deadline.enter(total)
                try:
                    if fast is not None:  # awaited here: a coroutine less between the caller and the socket
                        response = await fast.send(request, headers, _timeout(timeout), idle=idle)
                    else:
                        assert client is not None
                        response = await _httpx_asend(client, request, headers, timeout)
                except BaseException as exc:
                    if deadline is not None:
                        _deadline.leave(deadline, exc)  # TimeoutError when the deadline cancelled it
                    raise
                if deadline is not None:
                    _deadline.leave(deadline, None)
            except TimeoutError as exc:
                if total is None:
                    raise
                err = _past_deadline(total)
                if not _retry_transport_error(err, attempt, num_retries, retry_on_timeout, attempts):
                    raise _connection_error(err, request) from exc
                if attempts is not None:
                    attempts.retried(tried, type(err).__name__)
                await asyncio.sleep(retry_delay(attempt, None))
                attempt += 1
                continue
            except httpx.TransportError as exc:
                if not _retry_transport_error(exc, attempt, num_retries, retry_on_timeout, attempts):
                    raise _connection_error(exc, request) from exc
                if attempts is not None:
                    attempts.retried(tried, type(exc).__name__)
                await asyncio.sleep(retry_delay(attempt, None))
                attempt += 1
                continue
            status = response.status_code
            if status < 400:
                return response
            if status == 401 and not refreshed and auth is not None and auth.invalidate():
                refreshed = True
                continue
            if status in RETRYABLE_STATUS and attempt < num_retries:
                if attempts is not None:
                    attempts.retries += 1
                    attempts.retried(tried, str(status))
                await asyncio.sleep(retry_delay(attempt, response.headers))
                attempt += 1
                continue
            return _scrubbed(response, headers, request)


async def _httpx_asend(
    client: httpx.AsyncClient, request: ProviderRequest, headers: dict[str, str], timeout: float | httpx.Timeout | None
) -> httpx.Response:
    """One async try through httpx: the whole response, or an open one for a stream with status < 400."""
    response = await client.send(_httpx_request(client, request, headers, timeout), stream=request.stream)
    if request.stream and response.status_code >= 400:
        try:
            await response.aread()
        finally:
            await response.aclose()
    return response


def _httpx_request(
    client: httpx.Client | httpx.AsyncClient, request: ProviderRequest, headers: dict[str, str],
    timeout: float | httpx.Timeout | None, extensions: dict[str, Any] | None = None,
) -> httpx.Request:  # fmt: skip
    """``request`` as httpx sends it (JSON, or multipart ``files`` / form ``data``)."""
    return client.build_request(
        request.method,
        _url(request),
        headers=headers,
        json=request.json_body,
        files=request.files,
        data=request.data,
        timeout=_timeout(timeout),
        extensions=extensions,
    )


def _httpx_attempt(
    client: httpx.Client, request: ProviderRequest, headers: dict[str, str], timeout: float | httpx.Timeout | None,
    total: float | None,
) -> httpx.Response:
    """One sync try through httpx: the whole response, or an open one for a stream with status < 400."""
    extensions: dict[str, Any] = {}
    deadline = 0.0
    if total is not None:
        deadline = time.monotonic() + total
        extensions = {"timeout": _Deadline(_timeout(timeout).as_dict(), deadline, total, request.stream)}
    req = _httpx_request(client, request, headers, timeout, extensions)
    response = client.send(req, stream=True)
    if not request.stream or response.status_code >= 400:
        _read_within(response, deadline if total is not None else None, total)
    return response


def _in_process(handler: Callable[[httpx.Request], Any]) -> httpx.Client:
    """A client whose calls go to ``handler`` in this process (``ProviderRequest.handler``).

    Built per call: with a transport given, httpx sets up no connection pool nor TLS context.
    """
    return httpx.Client(transport=httpx.MockTransport(handler), trust_env=False)


def _ain_process(handler: Callable[[httpx.Request], Any]) -> httpx.AsyncClient:
    """The async twin of :func:`_in_process`."""
    return httpx.AsyncClient(transport=httpx.MockTransport(handler), trust_env=False)


# What each transport error means, in words of our own: the exception's text may quote a header
# value (h11's "Illegal header value b'<the key>'") or a URL with its password.
_TRANSPORT_ERRORS: tuple[tuple[type[httpx.TransportError], str], ...] = (
    (httpx.ConnectTimeout, "timed out while connecting"),
    (httpx.WriteTimeout, "timed out while sending the request"),
    (httpx.PoolTimeout, "timed out waiting for a free connection"),
    (httpx.TimeoutException, "timed out waiting for the answer"),
    (httpx.ConnectError, "could not connect"),
    (httpx.WriteError, "the connection broke while sending the request"),
    (httpx.ReadError, "the connection broke while reading the answer"),
    (httpx.RemoteProtocolError, "the upstream broke the HTTP protocol"),
    (httpx.LocalProtocolError, "the request could not be sent (an invalid header or URL)"),
    (httpx.UnsupportedProtocol, "the URL's scheme is not http or https"),
    (httpx.ProxyError, "the HTTP proxy refused the connection"),
)

async def _aclose_clients(clients: dict[str, httpx.AsyncClient]) -> None:
    for client in list(clients.values()):
        await client.aclose()
    clients.clear()


def _retry_transport_error(
    exc: httpx.TransportError, attempt: int, num_retries: int, retry_on_timeout: bool, attempts: Attempts | None
) -> bool:
    """Whether to try again after ``exc``; counts the retry in ``attempts``."""
    if attempt >= num_retries:
        return False
    sent = _request_sent(exc)
    if sent and not retry_on_timeout:
        return False  # the upstream may be processing it: a retry could run (and bill) it twice
    if attempts is not None:
        attempts.retries += 1
        attempts.resent += sent
    return True


class _Deadline(dict[str, Any]):
    """httpcore's per-phase timeouts, whose read timeout is what is left of ``deadline``.

    httpcore reads the read timeout (``.get("read")``) when it starts reading the headers, and
    again when it starts on the body: each time it gets what is left, at least 1 ms. A stream's
    body (every read after the first) gets the idle timeout ``total`` instead. The same as an
    httpcore ``trace`` callback setting the value at those two events, without the ten callback
    calls per request a trace costs.
    """

    __slots__ = ("_deadline", "_reads", "_stream", "_total")

    def __init__(self, timeouts: dict[str, Any], deadline: float, total: float, stream: bool) -> None:
        super().__init__(timeouts)
        self._deadline, self._total, self._stream, self._reads = deadline, total, stream, 0

    def get(self, key: str, default: Any = None) -> Any:
        """The timeout of a phase; for ``"read"``, as of now (see the class)."""
        if key != "read":
            return super().get(key, default)
        self._reads += 1
        if self._stream and self._reads > 1:
            return self._total
        return max(0.001, self._deadline - time.monotonic())


def _read_within(response: httpx.Response, deadline: float | None, total: float | None) -> None:
    """Read a sync response whole, by ``deadline`` (a dripping body must not outlast it)."""
    if deadline is None or total is None:
        try:
            response.read()
        except BaseException:
            response.close()
            raise
        return
    chunks = []
    try:
        for chunk in response.iter_bytes():
            chunks.append(chunk)
            if time.monotonic() > deadline:
                raise _past_deadline(total)
    finally:
        response.close()
    response._content = b"".join(chunks)


def _connection_error(exc: httpx.TransportError, request: ProviderRequest) -> APIConnectionError:
    where = safe_url(request.url.split("?", 1)[0])
    what = next((text for kind, text in _TRANSPORT_ERRORS if isinstance(exc, kind)), "the connection failed")
    reason = _os_reason(exc)
    detail = f"{type(exc).__name__}{f', {reason}' if reason else ''}"
    sent = _request_sent(exc)
    if isinstance(exc, httpx.TimeoutException):
        return APITimeoutError(f"Request to {where} {what} ({detail}).", request_sent=sent)
    return APIConnectionError(f"Cannot reach {where}: {what} ({detail}).", request_sent=sent)


def _os_reason(exc: BaseException) -> str | None:
    """The operating system's reason (``Connection refused``) from the exception's causes, if any."""
    seen = 0
    cause: BaseException | None = exc
    while cause is not None and seen < 8:
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror
        cause = cause.__cause__ or cause.__context__
        seen += 1
    return None


def _check_headers(headers: dict[str, str]) -> None:
    bad = check_header_values(headers)
    if bad is not None:
        raise ConfigError(
            f"The request header {bad!r} holds a control character (a line break?), so it cannot be sent; "
            "check the key or token it comes from (the value is not shown).",
            key=bad,
        )


def _scrubbed(response: httpx.Response, headers: dict[str, str], request: ProviderRequest) -> httpx.Response:
    """An error response with the request's credentials masked in its body (some gateways echo
    the request's headers), so no error message built from it can carry them."""
    if response.status_code < 400:
        return response
    secrets = header_secrets(headers, request.url)
    if not secrets:
        return response
    text = response.content.decode("utf-8", "replace")
    cleaned = scrub(text, secrets)
    if cleaned != text:
        response._content = cleaned.encode()
    return response


_default: Transport | None = None
_default_lock = threading.Lock()


def get_transport() -> Transport:
    """The process-wide :class:`Transport`, created on first use."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = Transport()
    return _default


def set_transport(transport: Transport | None) -> Transport | None:
    """Install ``transport`` as the process-wide one (None: back to a default on next use).

    Returns:
        The transport it replaces, so that a caller (the proxy, a test) can put it back.
    """
    global _default
    with _default_lock:
        previous, _default = _default, transport
    return previous
