"""HTTP/1.1 message framing shared by the native clients (:mod:`modelyard._wire`, async).

The grammar is httptools' (MagicStack's binding of llhttp, Node's parser; uvicorn uses it and
it is a core dependency): this module only splits URLs into what a connection needs, writes a
request head, checks header names and values, reads one response at a time off a parser, and
hands the result over as an ``httpx.Response`` so that everything above the transport keeps
httpx's API. No I/O here: a client feeds :class:`ResponseParser` the bytes it reads.

API (additions only from now on; a sync client builds on it):

- :func:`split_url` -> :class:`Target` (an :class:`Origin` and the request-target), cached.
- :func:`check_headers` refuses header injection (:class:`InvalidHeader`).
- :func:`request_head` builds the request line and headers as bytes, defaults included.
- :func:`encode_json` encodes a JSON body as httpx does.
- :class:`ResponseParser` reads one response (1xx skipped), its framing and keep-alive.
- :func:`build_response` makes the ``httpx.Response``.
- :func:`request_bytes` is what a client writes for a request (head and JSON body).
- :func:`default_tls` is the TLS context both clients use by default; :func:`error_reason`
  words a socket or TLS failure without an address; :data:`METHODS` and :data:`IDEMPOTENT`
  are what the clients send, and what they may resend on a stale connection.
"""

from __future__ import annotations

import json
import os
import re
import ssl
import threading
from collections.abc import Mapping
from typing import Any, NamedTuple

import httptools
import httpx

__all__ = [
    "DEFAULT_HEADERS",
    "IDEMPOTENT",
    "METHODS",
    "InvalidHeader",
    "Origin",
    "ResponseParser",
    "Target",
    "build_response",
    "check_headers",
    "default_tls",
    "encode_json",
    "error_reason",
    "request_bytes",
    "request_head",
    "split_url",
]

DEFAULT_HEADERS: tuple[tuple[str, str], ...] = (("accept", "*/*"), ("accept-encoding", "gzip, deflate"))
"""Sent unless the caller sets the same header (in any case), as aiohttp does (no user-agent).
httpx decodes gzip and deflate bodies without extras."""

METHODS = frozenset({"GET", "POST", "DELETE", "PUT", "PATCH", "OPTIONS"})
"""What the native clients send (not HEAD: llhttp cannot tell that its answer has no body)."""
IDEMPOTENT = frozenset({"GET", "DELETE", "PUT", "OPTIONS"})
"""What a native client resends once when a reused connection turns out stale (aiohttp's set, less
HEAD and TRACE). Never a POST the upstream may have read: Azure may be running it, and bills it."""
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_VALUE = re.compile(r"[\r\n\x00]")
_DEFAULT_PORTS = {"http": 80, "https": 443}

# allow_nan=False as httpx does: NaN and Infinity are not JSON (ValueError).
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
_encoders = threading.local()


class InvalidHeader(httpx.LocalProtocolError):
    """A header name that is not an HTTP token, or a value holding CR, LF or NUL.

    The message names the header, never its value (often a credential). Raised before
    anything is sent.
    """


class Origin(NamedTuple):
    """Where a connection goes; the key of a connection pool.

    Attributes:
        scheme: ``"http"`` or ``"https"``.
        host: the host name or address to connect to (IDNA-encoded, no brackets around IPv6),
            also the TLS server name.
        port: the port, the scheme's default filled in.
        host_header: the ``Host`` header value (brackets for IPv6, the port when not the default).
    """

    scheme: str
    host: str
    port: int
    host_header: str

    @property
    def tls(self) -> bool:
        """Whether connections to this origin use TLS."""
        return self.scheme == "https"


class Target(NamedTuple):
    """A URL split for sending.

    Attributes:
        origin: where to connect.
        path: the request-target: path and query, percent-encoded (never the fragment).
    """

    origin: Origin
    path: str


_targets: dict[tuple[str, tuple[tuple[str, str], ...]], Target] = {}


def split_url(url: str, params: Mapping[str, str] | None = None) -> Target:
    """``url`` with ``params`` as its query, split for sending; cached per pair.

    As the transport's other backends (``httpx.URL(url, params=params or None)``), ``params``
    replace the query of ``url``, and so does an empty ``params``: a provider puts its query
    in ``ProviderRequest.params``. A ``user:password@`` part is dropped (a caller sends it as
    a header of its own).

    Raises:
        httpx.UnsupportedProtocol: the scheme is not http or https.
        httpx.InvalidURL: the URL does not parse, or has no host.
    """
    key = (url, tuple(params.items()) if params else ())
    found = _targets.get(key)
    if found is not None:
        return found
    parsed = httpx.URL(url, params=params or None)
    scheme = parsed.scheme
    if scheme not in _DEFAULT_PORTS:
        raise httpx.UnsupportedProtocol(f"the URL's scheme must be http or https, not {scheme!r}")
    host = parsed.raw_host.decode("ascii")
    if not host:
        raise httpx.InvalidURL("the URL has no host")
    port = parsed.port or _DEFAULT_PORTS[scheme]
    shown = f"[{host}]" if ":" in host else host
    host_header = shown if parsed.port is None or parsed.port == _DEFAULT_PORTS[scheme] else f"{shown}:{port}"
    target = Target(Origin(scheme, host, port, host_header), parsed.raw_path.decode("ascii"))
    if len(_targets) > 1024:
        _targets.clear()
    _targets[key] = target
    return target


_good_names: set[str] = set()


def check_headers(headers: Mapping[str, str]) -> None:
    """Refuse a header that could inject another header or line (request smuggling).

    Raises:
        InvalidHeader: a name that is not an HTTP token, or a value holding CR, LF or NUL;
            the message names the header (its value is not shown).
    """
    for name, value in headers.items():
        if name not in _good_names:
            if _TOKEN.fullmatch(name) is None:
                raise InvalidHeader(f"the request header name {name[:40]!r} is not a valid HTTP header name")
            if len(_good_names) < 4096:
                _good_names.add(name)
        if _BAD_VALUE.search(value) is not None:
            raise InvalidHeader(f"the request header {name!r} holds CR, LF or NUL (the value is not shown)")


def request_head(
    method: str, target: Target, headers: Mapping[str, str], body: bytes | None = None, content_type: str | None = None
) -> bytes:
    """The request line and headers, ending with the blank line, as bytes (UTF-8).

    Adds ``Host``, :data:`DEFAULT_HEADERS` and, with a ``body``, ``content-length`` and
    ``content-type`` (when given), each unless ``headers`` set it (in any case). Call
    :func:`check_headers` first: this writes names and values as they are.
    """
    lines = [f"{method} {target.path} HTTP/1.1\r\n"]
    given = {name.lower() for name in headers} if headers else set()
    if "host" not in given:
        lines.append(f"host: {target.origin.host_header}\r\n")
    for name, value in DEFAULT_HEADERS:
        if name not in given:
            lines.append(f"{name}: {value}\r\n")
    if body is not None:
        if content_type is not None and "content-type" not in given:
            lines.append(f"content-type: {content_type}\r\n")
        lines.append(f"content-length: {len(body)}\r\n")
    for name, value in headers.items():
        if name.lower() != "content-length" or body is None:
            lines.append(f"{name}: {value}\r\n")
    lines.append("\r\n")
    return "".join(lines).encode()


def request_bytes(method: str, target: Target, headers: Mapping[str, str], json_body: Any = None) -> bytes:
    """What a client writes for one request: the head and the JSON body (if any), in one piece.

    A POST, PUT or PATCH without a body says ``content-length: 0``, as httpx and aiohttp do
    (some servers answer 411 without it). Call :func:`check_headers` first.

    Raises:
        ValueError: ``json_body`` holds NaN or Infinity (not JSON).
    """
    if json_body is not None:
        body = encode_json(json_body)
        return request_head(method, target, headers, body, "application/json") + body
    return request_head(method, target, headers, b"" if method in _BODY_METHODS else None)


def encode_json(body: Any) -> bytes:
    """``body`` as compact UTF-8 JSON, as httpx's ``json=`` (NaN and Infinity refused: ValueError).

    What ``json.JSONEncoder.encode`` does with the same settings, without building its C encoder
    (and a cycle-markers dict) on every call: one per thread, kept (issue 17, round ten: about
    half of the cost for a chat body). The C encoder leaves its markers behind when it fails, so
    they are cleared then; a thread's encoder is never entered twice at once (it runs no Python
    code but ``default``, which raises).
    """
    try:
        markers, encoder = _encoders.pair
    except AttributeError:
        markers, encoder = _encoders.pair = _new_encoder()
    if encoder is None:  # no C accelerator (another Python): the stdlib's way
        return _ENCODER.encode(body).encode()
    try:
        chunks = encoder(body, 0)
    except BaseException:
        markers.clear()
        raise
    return "".join(chunks).encode()


def _new_encoder() -> tuple[dict[int, Any], Any]:
    markers: dict[int, Any] = {}
    make = json.encoder.c_make_encoder  # type: ignore[attr-defined]
    if make is None:
        return markers, None
    e = _ENCODER  # the arguments JSONEncoder.iterencode gives it, for these settings
    return markers, make(markers, e.default, json.encoder.encode_basestring, e.indent, e.key_separator,
                         e.item_separator, e.sort_keys, e.skipkeys, e.allow_nan)  # fmt: skip


def build_response(
    status: int,
    headers: list[tuple[bytes, bytes]],
    content: bytes | None = None,
    stream: httpx.AsyncByteStream | httpx.SyncByteStream | None = None,
    *,
    encoded: bool | None = None,
) -> httpx.Response:
    """The ``httpx.Response`` of a read response: its whole body as ``content``, or a ``stream``.

    A body with a ``content-encoding`` is decoded by httpx as usual; a plain one is handed over
    as is (no pass through httpx's stream decoders). ``encoded``: whether the headers hold a
    ``content-encoding``, when the caller already knows (:attr:`ResponseParser.encoded`).
    """
    if stream is not None:
        return httpx.Response(status, headers=headers, stream=stream)
    if encoded is None:
        encoded = any(name.lower() == b"content-encoding" for name, _ in headers)
    if encoded:
        return httpx.Response(status, headers=headers, content=content or b"")
    response = httpx.Response(status, headers=headers, stream=_EMPTY)
    response._content = content or b""
    return response


_EMPTY = httpx.ByteStream(b"")


class ResponseParser:
    """Reads the responses of one connection, one at a time, with httptools.

    Feed it what the connection reads (:meth:`feed`) and tell it when the connection ended
    (:meth:`eof`). Informational (1xx) answers are skipped. Body bytes go to :meth:`on_body`,
    which keeps them in :attr:`body` unless a subclass streams them elsewhere. Call
    :meth:`reset` before reading the next response on the same connection.

    Attributes:
        status: the status code, once :attr:`head_done`.
        headers: the raw ``(name, value)`` pairs, once :attr:`head_done`.
        head_done: the status line and headers of the (final) response are in.
        complete: the whole response is in.
        keep_alive: once complete, whether the connection may carry another request.
        encoded: the headers hold a ``content-encoding``.
        body: the body chunks read so far (with the default :meth:`on_body`).
    """

    __slots__ = ("_framed", "_info", "_parser", "body", "complete", "encoded", "head_done", "headers", "keep_alive", "status")

    def __init__(self) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self.reset()

    def reset(self) -> None:
        """Get ready for the next response on this connection."""
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.head_done = False
        self.complete = False
        self.keep_alive = False
        self.encoded = False
        self.body: list[bytes] = []
        self._framed = False  # content-length or chunked: the body's end is known without EOF
        self._info = False

    def feed(self, data: bytes) -> None:
        """Parse ``data`` read from the connection.

        Raises:
            httpx.RemoteProtocolError: the bytes are not a valid HTTP/1.1 response, or more
                came after a complete response (nothing was asked for).
        """
        if self.complete:
            raise httpx.RemoteProtocolError("the upstream sent data after the end of the response")
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            raise httpx.RemoteProtocolError("the upstream switched protocols, which was not asked for") from None
        except httptools.HttpParserError as exc:
            raise httpx.RemoteProtocolError(f"the upstream's answer is not valid HTTP/1.1 ({type(exc).__name__})") from None

    def eof(self) -> bool:
        """The connection ended: whether that completes the response (a body read until close).

        Returns:
            True when the response is now complete; False when it was cut short (or never began).
        """
        if self.complete:
            return True
        if self.head_done and not self._framed:
            self.complete = True
            self.keep_alive = False
            return True
        return False

    # httptools' callbacks -------------------------------------------------------------

    def on_message_begin(self) -> None:
        """httptools callback: a message starts; after a complete one, the connection is spoiled."""
        if self.complete:
            self.keep_alive = False  # bytes nobody asked for: never reuse this connection

    def on_header(self, name: bytes, value: bytes) -> None:
        """httptools callback: one header (of a response after a complete one: ignored)."""
        if self.complete:
            return
        self.headers.append((name, value))
        if len(name) in (14, 16, 17):
            lowered = name.lower()
            if lowered == b"content-length" or lowered == b"transfer-encoding":
                self._framed = True
            elif lowered == b"content-encoding":
                self.encoded = True

    def on_headers_complete(self) -> None:
        """httptools callback: the head is in."""
        if self.complete:  # a response nobody asked for, in the same read: the answer stays as read
            return
        status = self._parser.get_status_code()
        if 100 <= status < 200:
            self._info = True  # skipped: the final answer follows
            self.headers = []
            self._framed = self.encoded = False
            return
        self.status = status
        if status in (204, 304):
            self._framed = True  # no body, by definition
        self.head_done = True

    def on_body(self, body: bytes) -> None:
        """httptools callback: body bytes (kept in :attr:`body`)."""
        if not self.complete:
            self.body.append(body)

    def on_message_complete(self) -> None:
        """httptools callback: the response is in."""
        if self.complete:  # the end of a response nobody asked for: the connection stays spoiled
            return
        if self._info:
            self._info = False
            return
        self.complete = True
        self.keep_alive = self._parser.should_keep_alive()


_default_tls: ssl.SSLContext | None = None
_tls_lock = threading.Lock()


def default_tls() -> ssl.SSLContext:
    """The TLS context of the native clients' https connections, built once on first use.

    It trusts the system's certificate authorities (as aiohttp, which the proxy used before) and
    certifi's bundle (as httpx, which the SDK used before), so a host either trusted is trusted;
    host names are checked.
    """
    global _default_tls
    if _default_tls is None:
        with _tls_lock:
            if _default_tls is None:
                import certifi  # httpx's own dependency

                context = ssl.create_default_context()
                context.load_verify_locations(cafile=certifi.where())
                _default_tls = context
    return _default_tls


def error_reason(exc: BaseException) -> str:
    """``exc``'s class and the operating system's (or TLS library's) reason; never an address.

    asyncio's and socket's texts can quote the address (and so a URL's host or userinfo): the
    reason is worded again from the error number.
    """
    reason = getattr(exc, "strerror", None)
    if isinstance(exc, ssl.SSLError):
        reason = exc.reason or reason
    else:
        errno = getattr(exc, "errno", None)
        if errno:
            reason = os.strerror(errno)
    return f"{type(exc).__name__}: {reason}" if isinstance(reason, str) and reason else type(exc).__name__
