"""Pooled HTTP clients, timeouts, retries and server-sent-event parsing.

One ``httpx.Client`` per upstream origin (scheme, host, port), and one ``httpx.AsyncClient``
per origin and event loop (an async connection pool belongs to the loop that opened it),
reused across calls. Credentials are added per attempt and never stored in a client, so a
refreshed token is used on the next attempt.

Retries: ``num_retries`` more attempts after the first, for connection errors, timeouts,
408, 409, 429 and 5xx. The delay honours ``retry-after-ms`` then ``retry-after`` (seconds or
an HTTP date) when the upstream gives one of at most 60 s, else exponential backoff from
0.5 s to 8 s with jitter. Other 4xx are never retried. A 401 with a cached token gets one
extra attempt after the authenticator drops its token.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import json
import random
import threading
import time
import weakref
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

import httpx

from .errors import APIConnectionError, APITimeoutError, BadRequestError, ConfigError
from .redact import check_header_values, header_secrets, safe_url, scrub

if TYPE_CHECKING:
    from ._aiohttp import AiohttpBackend
    from .hookspecs import Authenticator
    from .types import ProviderRequest

__all__ = [
    "DEFAULT_TIMEOUT",
    "RETRYABLE_STATUS",
    "Transport",
    "aiter_sse",
    "get_transport",
    "iter_sse",
    "retry_delay",
    "set_transport",
    "timeout_seconds",
]

DEFAULT_TIMEOUT = 600.0
RETRYABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})
_MAX_SERVER_DELAY = 60.0


def retry_delay(attempt: int, headers: httpx.Headers | None) -> float:
    """Seconds to wait before retry number ``attempt`` (0-based).

    The upstream's ``retry-after-ms`` / ``retry-after`` wins when it is between 0 and 60 s;
    otherwise exponential backoff (0.5 s doubling, capped at 8 s) scaled by 0.75-1.0 jitter.
    """
    server = parse_retry_after(headers) if headers is not None else None
    if server is not None and 0 <= server <= _MAX_SERVER_DELAY:
        return float(server)
    return min(0.5 * 2.0**attempt, 8.0) * (0.75 + random.random() / 4)


def parse_retry_after(headers: httpx.Headers | Any) -> float | None:
    """The delay an upstream asks for, in seconds, from ``retry-after-ms`` or ``retry-after``."""
    ms: str | None = headers.get("retry-after-ms")
    if ms:
        try:
            return float(ms) / 1000
        except ValueError:
            pass
    value: str | None = headers.get("retry-after")
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


def _timeout(timeout: float | httpx.Timeout | None) -> httpx.Timeout:
    if isinstance(timeout, httpx.Timeout):
        return timeout
    total = DEFAULT_TIMEOUT if timeout is None else float(timeout)
    return httpx.Timeout(total, connect=min(total, 10.0))


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
        async_backend: ``"httpx"`` (httpx's own pool) or ``"aiohttp"``: async calls go
            straight to one ``aiohttp.ClientSession`` per event loop and come back as
            ``httpx.Response`` objects (:mod:`modelyard._aiohttp`; needs the ``server`` extra).
            Measured with 32 calls in flight to a canned local upstream, it costs a fraction of
            httpx's default pool per call (see bench/README.md); the proxy uses it. The caller
            closes it with :meth:`aclose` on the loop that used it. Ignored when
            ``async_transport`` is given.
    """

    def __init__(
        self,
        *,
        limits: httpx.Limits | None = None,
        transport: httpx.BaseTransport | None = None,
        async_transport: httpx.AsyncBaseTransport | None = None,
        async_backend: str = "httpx",
    ) -> None:
        if async_backend not in ("httpx", "aiohttp"):
            raise ValueError(f"async_backend must be 'httpx' or 'aiohttp', not {async_backend!r}")
        self._async_backend = async_backend
        self._aiohttp: AiohttpBackend | None = None
        if async_backend == "aiohttp" and async_transport is None:
            try:
                from ._aiohttp import AiohttpBackend
            except ImportError:
                from .errors import ConfigError

                raise ConfigError(
                    "async_backend='aiohttp' needs aiohttp: pip install 'modelyard[server]'.", key="async_backend"
                ) from None
            self._aiohttp = AiohttpBackend()
        self._limits = limits or httpx.Limits(max_connections=1000, max_keepalive_connections=200)
        self._transport = transport
        self._async_transport = async_transport
        self._sync: dict[str, httpx.Client] = {}
        self._async: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, httpx.AsyncClient]]
        self._async = weakref.WeakKeyDictionary()
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
            per_loop = self._async[loop] = {}
        client = per_loop.get(origin)
        if client is None:
            client = httpx.AsyncClient(limits=self._limits, transport=self._async_transport, trust_env=False)
            per_loop[origin] = client
        return client

    def close(self) -> None:
        """Close the sync clients (async ones close with their loop)."""
        with self._lock:
            for client in self._sync.values():
                client.close()
            self._sync.clear()

    async def aclose(self) -> None:
        """Close the async clients of the running loop."""
        if self._aiohttp is not None:
            await self._aiohttp.aclose()
        per_loop = self._async.pop(asyncio.get_running_loop(), {})
        for client in per_loop.values():
            await client.aclose()

    # ------------------------------------------------------------------ sending

    def send(
        self,
        request: ProviderRequest,
        auth: Authenticator | None,
        *,
        timeout: float | httpx.Timeout | None = None,
        num_retries: int = 0,
    ) -> httpx.Response:
        """Send with retries; return the final response (any status) or raise a connection error.

        A streaming request returns an open response when the status is < 400; the caller
        must close it. An error response is always read whole.
        """
        client = self.client(request.url)
        refreshed = False
        attempt = 0
        while True:
            headers = request.headers if auth is None else {**request.headers, **auth.headers()}
            _check_headers(headers)
            headers = _userinfo_header(request, headers)
            req = client.build_request(
                request.method,
                _url(request),
                headers=headers,
                json=request.json_body,
                files=request.files,
                data=request.data,
                timeout=_timeout(timeout),
            )
            try:
                response = client.send(req, stream=request.stream)
            except httpx.TransportError as exc:
                if attempt >= num_retries:
                    raise _connection_error(exc, request) from exc
                time.sleep(retry_delay(attempt, None))
                attempt += 1
                continue
            status = response.status_code
            if status < 400:
                return response
            if request.stream:
                response.read()
                response.close()
            if status == 401 and not refreshed and auth is not None and auth.invalidate():
                refreshed = True
                continue
            if status in RETRYABLE_STATUS and attempt < num_retries:
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
    ) -> httpx.Response:
        """The async twin of :meth:`send`."""
        # Multipart uploads (files / form data) stay on httpx, which streams them.
        fast = self._aiohttp if not request.files and request.data is None else None
        client = None if fast is not None else self.aclient(request.url)
        refreshed = False
        attempt = 0
        while True:
            headers = request.headers if auth is None else {**request.headers, **await auth.aheaders()}
            _check_headers(headers)
            headers = _userinfo_header(request, headers)
            try:
                if fast is not None:
                    response = await fast.send(request, headers, _timeout(timeout))
                else:
                    assert client is not None
                    req = client.build_request(
                        request.method,
                        _url(request),
                        headers=headers,
                        json=request.json_body,
                        files=request.files,
                        data=request.data,
                        timeout=_timeout(timeout),
                    )
                    response = await client.send(req, stream=request.stream)
            except httpx.TransportError as exc:
                if attempt >= num_retries:
                    raise _connection_error(exc, request) from exc
                await asyncio.sleep(retry_delay(attempt, None))
                attempt += 1
                continue
            status = response.status_code
            if status < 400:
                return response
            if request.stream:
                await response.aread()
                await response.aclose()
            if status == 401 and not refreshed and auth is not None and auth.invalidate():
                refreshed = True
                continue
            if status in RETRYABLE_STATUS and attempt < num_retries:
                await asyncio.sleep(retry_delay(attempt, response.headers))
                attempt += 1
                continue
            return _scrubbed(response, headers, request)


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


def _connection_error(exc: httpx.TransportError, request: ProviderRequest) -> APIConnectionError:
    where = safe_url(request.url.split("?", 1)[0])
    what = next((text for kind, text in _TRANSPORT_ERRORS if isinstance(exc, kind)), "the connection failed")
    reason = _os_reason(exc)
    detail = f"{type(exc).__name__}{f', {reason}' if reason else ''}"
    if isinstance(exc, httpx.TimeoutException):
        return APITimeoutError(f"Request to {where} {what} ({detail}).")
    return APIConnectionError(f"Cannot reach {where}: {what} ({detail}).")


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


# ---------------------------------------------------------------------- server-sent events
# A dozen lines of our own rather than a dependency: chat streams only use ``data:`` fields.


def _event(data: list[str]) -> Any:
    payload = "\n".join(data)
    if payload == "[DONE]":
        return None
    return json.loads(payload)


def iter_sse(response: httpx.Response) -> Iterator[Any]:
    """Parsed JSON ``data`` of each event until ``[DONE]`` or the end of the body."""
    data: list[str] = []
    for line in response.iter_lines():
        if not line:
            if data:
                event = _event(data)
                if event is None:
                    return
                yield event
                data = []
        elif line.startswith("data:"):
            data.append(line[6:] if line[5:6] == " " else line[5:])
    if data and (event := _event(data)) is not None:
        yield event


async def aiter_sse(response: httpx.Response) -> AsyncIterator[Any]:
    """The async twin of :func:`iter_sse`."""
    data: list[str] = []
    async for line in response.aiter_lines():
        if not line:
            if data:
                event = _event(data)
                if event is None:
                    return
                yield event
                data = []
        elif line.startswith("data:"):
            data.append(line[6:] if line[5:6] == " " else line[5:])
    if data and (event := _event(data)) is not None:
        yield event
