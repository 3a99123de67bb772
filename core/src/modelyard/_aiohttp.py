"""The ``aiohttp`` async backend of :class:`modelyard.transport.Transport`.

One ``aiohttp.ClientSession`` per event loop (aiohttp pools connections per host inside it),
closed on its loop when the loop shuts down (:class:`modelyard._loops.PerLoop`).
A call goes straight to aiohttp and comes back as an ``httpx.Response``, so everything above
the transport (plugins, SSE parsing, error mapping) keeps httpx's API. Skipping httpx's
request building (URL parsing, header normalisation, cookies, redirects) and the
``httpx_aiohttp`` adapter is what makes this backend fast: see bench/README.md. Bodies stay
encoded (``auto_decompress=False``); httpx decodes them from ``content-encoding`` as usual.

aiohttp's exceptions are raised as their httpx counterparts (``ConnectError``, ``ReadError``,
``ReadTimeout`` ...), so retries and error mapping are the same for both backends. The
transport bounds a whole attempt with its deadline; aiohttp's own timeouts here are the
connect timeout and the idle timeout between reads.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import aiohttp
import httpx

from ._http1 import encode_json
from ._loops import PerLoop
from .redact import safe_url

if TYPE_CHECKING:
    from .types import ProviderRequest

__all__ = ["AiohttpBackend"]

_EMPTY = httpx.ByteStream(b"")


class _Stream(httpx.AsyncByteStream):
    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise _mapped(exc) from exc

    async def aclose(self) -> None:
        # An unfinished body cannot go back to the pool: close the connection.
        if not self._response.content.is_eof():
            self._response.close()
        else:
            self._response.release()


def _mapped(exc: BaseException) -> httpx.TransportError:
    # The class name and the operating system's reason only: aiohttp's text can quote the URL
    # (with a user:password@ part) or a header value.
    reason = getattr(exc, "strerror", None) or getattr(getattr(exc, "os_error", None), "strerror", None)
    message = f"{type(exc).__name__}: {reason}" if isinstance(reason, str) and reason else type(exc).__name__
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return httpx.ConnectTimeout(message)
    if isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
        return httpx.ReadTimeout(message)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return httpx.ConnectError(message)
    if isinstance(exc, aiohttp.ClientPayloadError | aiohttp.ServerDisconnectedError | aiohttp.ClientOSError):
        return httpx.ReadError(message)
    if isinstance(exc, aiohttp.InvalidURL):
        return httpx.UnsupportedProtocol(message)
    return httpx.TransportError(message)


class AiohttpBackend:
    """The sessions of one :class:`~modelyard.transport.Transport`, one per event loop.

    Args:
        limit: the most connections open at once (all hosts together).
        limit_per_host: the most connections to one host.
    """

    def __init__(self, limit: int = 1000, limit_per_host: int = 0) -> None:
        self._limit = limit
        self._limit_per_host = limit_per_host
        self._sessions: PerLoop[aiohttp.ClientSession] = PerLoop(_close_session)
        self._urls: dict[tuple[str, tuple[tuple[str, str], ...]], str] = {}
        self._timeouts: dict[tuple[float | None, float | None], aiohttp.ClientTimeout] = {}

    def _session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        session = self._sessions.get(loop)
        if session is None or session.closed:
            connector = aiohttp.TCPConnector(limit=self._limit, limit_per_host=self._limit_per_host,
                                             ttl_dns_cache=300, enable_cleanup_closed=False)  # fmt: skip
            session = aiohttp.ClientSession(
                connector=connector, auto_decompress=False, trust_env=False, skip_auto_headers=("User-Agent",),
                cookie_jar=aiohttp.DummyCookieJar(),  # an API client keeps no cookies; parsing them costs per call
            )
            self._sessions.set(loop, session)
        return session

    def sessions(self) -> int:
        """How many event loops have a session open."""
        return len(self._sessions)

    def _url(self, request: ProviderRequest) -> str:
        key = (request.url, tuple(request.params.items()))
        url = self._urls.get(key)
        if url is None:
            # Without a user:password@ part: the transport sends it as a header of its own.
            url = safe_url(str(httpx.URL(request.url, params=request.params or None)))
            if len(self._urls) > 1024:
                self._urls.clear()
            self._urls[key] = url
        return url

    async def send(
        self, request: ProviderRequest, headers: dict[str, str], timeout: httpx.Timeout, *, idle: bool = True
    ) -> httpx.Response:
        """One attempt: the whole response, or an open one for a stream with status < 400.

        ``idle=False`` when the caller's deadline bounds the whole answer (a float timeout, an
        answer that is not streamed): no idle timeout between reads then, which could never
        fire first and costs a timer reset per read.

        Raises:
            httpx.TransportError: the subclass matching what aiohttp raised.
        """
        session = self._session()
        body = None
        if request.json_body is not None:
            # A payload of our own: aiohttp adds its content-type unless the caller set one (as
            # httpx and the native client do), and skips finding a payload class for bytes.
            body = aiohttp.BytesPayload(encode_json(request.json_body), content_type="application/json")
        # No `connect` (pool wait + connect): it costs a timer per call even on a pooled
        # connection; sock_connect bounds opening one, the transport's deadline the rest.
        read = timeout.read if idle else None
        client_timeout = self._timeouts.get((timeout.connect, read))
        if client_timeout is None:  # made once per pair of values (attrs' frozen __init__ costs µs per call)
            if len(self._timeouts) > 64:
                self._timeouts.clear()
            client_timeout = aiohttp.ClientTimeout(total=None, sock_connect=timeout.connect, sock_read=read)
            self._timeouts[(timeout.connect, read)] = client_timeout
        try:
            response = await session.request(
                request.method, self._url(request), data=body, headers=headers, timeout=client_timeout,
                allow_redirects=False,
            )  # fmt: skip
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise _mapped(exc) from exc
        raw_headers: Any = response.raw_headers
        if request.stream and response.status < 400:
            return httpx.Response(response.status, headers=raw_headers, stream=_Stream(response))
        try:
            content = await response.read()
        except (TimeoutError, aiohttp.ClientError) as exc:
            response.close()
            raise _mapped(exc) from exc
        except BaseException:  # cancelled (the call's deadline): the half-read connection cannot be reused
            response.close()
            raise
        response.release()
        if response.headers.get("content-encoding"):
            return httpx.Response(response.status, headers=raw_headers, content=content)  # httpx decodes it
        # Plain body: hand it over as is rather than re-reading it through httpx's stream decoders.
        result = httpx.Response(response.status, headers=raw_headers, stream=_EMPTY)
        result._content = content
        return result

    async def aclose(self) -> None:
        """Close the running loop's session."""
        await self._sessions.aclose(asyncio.get_running_loop())


async def _close_session(session: aiohttp.ClientSession) -> None:
    await session.close()
