"""uvicorn's httptools protocol with a bound on the request head: its size and the time to receive it.

httptools (llhttp) sets no limit on the request line or the headers: it concatenates each
header value as it arrives, so one connection streaming a header that never ends grows the
proxy's memory without bound and, the concatenation being quadratic, stalls the event loop for
every other client, before any authentication. h11 refuses at 16 KB, but costs throughput
(bench/README.md); this subclass keeps httptools' parser and adds the two checks:

- **size**: the bytes of an unfinished request head are counted as they arrive; past
  ``max_head_bytes`` the connection is answered ``431`` (``414`` when the URL is most of it)
  and closed, so httptools never buffers more than the limit plus one socket read. A head that
  arrives whole in one read is measured exactly when it completes and answered the same way.
- **time**: a request head (or the first one on a new connection) must arrive within
  ``head_timeout`` seconds; otherwise the connection is answered ``408`` and closed
  (a slow-loris client holds a connection open with a byte now and then).
- **body time**: a request body must arrive whole within ``body_timeout`` seconds of its head;
  otherwise the connection is answered ``408`` (when no response has started) and closed. A
  client sending its body a byte at a time costs one timer and one socket, never a worker, and
  is gone after the timeout. The timer is armed only when a read ends with the body unfinished:
  a body that arrives with its head (nearly every request) costs none.

The body's size is bounded by the app (``general_settings.max_request_size_mb``).

The keep-alive timeout (uvicorn's ``timeout_keep_alive``) is kept by one timer per event loop
(:class:`_IdleSweep`) rather than a timer armed after every response and cancelled by the next
request (``call_later`` and ``cancel`` cost ~2.5 µs on uvloop): a connection idle for the
timeout is closed within a fifth of it more.
"""

from __future__ import annotations

import asyncio
import json
import weakref
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["BoundedHttpToolsProtocol"]

_REASONS = {408: b"Request Timeout", 414: b"URI Too Long", 431: b"Request Header Fields Too Large"}


def _response(status: int, message: str) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """An OpenAI-shaped error body and its headers; the connection closes after it."""
    body = json.dumps({"error": {"message": message, "type": "invalid_request_error", "param": None,
                                 "code": str(status)}}).encode()  # fmt: skip
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               (b"connection", b"close")]  # fmt: skip
    return body, headers


class _OneWrite:
    """A request cycle's transport that sends a response head together with the body's first bytes.

    uvicorn writes the head as soon as the app sends ``http.response.start``, then the body:
    two writes, two ``send`` system calls and two TCP segments for one small JSON answer. A
    head whose ``content-length`` announces a body is held here until the first body write.
    A streamed (chunked) head is held only until the event loop's current turn ends: a body
    write in the same turn (a stream whose first events were already read) goes with it, else
    it goes alone then, never waiting for an event. The answer to a ``HEAD`` request, which has
    no body to wait for, is not held. Anything else passes straight to the connection's
    transport; closing sends a held head first.
    """

    __slots__ = ("_cycle", "_head", "_loop", "_transport", "_wrote")

    def __init__(self, transport: asyncio.Transport, cycle: Any, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._cycle = cycle
        self._loop = loop
        self._head: bytes | None = None
        self._wrote = False

    def write(self, data: bytes) -> None:
        head = self._head
        if head is not None:
            self._head = None
            self._transport.write(head + data)
            return
        if not self._wrote and data[9:10] != b"1":  # the response head (not a 100 Continue)
            self._wrote = True
            # Read once: let the request cycle go (it holds this object: a reference cycle that
            # would keep the request's scope, headers and body for the garbage collector).
            cycle, self._cycle = self._cycle, None
            if cycle.chunked_encoding is False and cycle.expected_content_length > 0 and cycle.scope["method"] != "HEAD":
                self._head = data
                return
            if cycle.chunked_encoding:
                self._head = data
                self._loop.call_soon(self._flush)
                return
        self._transport.write(data)

    def _flush(self) -> None:
        if self._head is not None:
            head, self._head = self._head, None
            if not self._transport.is_closing():
                self._transport.write(head)

    def close(self) -> None:
        if self._head is not None:
            head, self._head = self._head, None
            self._transport.write(head)
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class _IdleSweep:
    """The keep-alive connections of one event loop waiting for their next request, and one timer
    that closes those idle for their ``timeout_keep_alive`` (checked every fifth of it, at most 1 s)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.idle: dict[BoundedHttpToolsProtocol, float] = {}  # connection -> when it went idle
        self._timer: asyncio.TimerHandle | None = None

    def add(self, protocol: BoundedHttpToolsProtocol) -> None:
        self.idle[protocol] = self.loop.time()
        if self._timer is None:
            self._arm(protocol.timeout_keep_alive)

    def _arm(self, timeout: float) -> None:
        self._timer = self.loop.call_later(min(1.0, max(timeout, 0.01) / 5), self._sweep)

    def _sweep(self) -> None:
        self._timer = None
        now = self.loop.time()
        shortest = None
        for protocol, since in list(self.idle.items()):
            timeout = protocol.timeout_keep_alive
            if now - since >= timeout:
                del self.idle[protocol]
                protocol.timeout_keep_alive_handler()
            elif shortest is None or timeout < shortest:
                shortest = timeout
        if shortest is not None:
            self._arm(shortest)


_SWEEPS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _IdleSweep] = weakref.WeakKeyDictionary()


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """:class:`uvicorn.protocols.http.httptools_impl.HttpToolsProtocol` with a size and a time limit on request heads.

    Pass it to uvicorn with the limits bound, e.g.
    ``uvicorn.run(app, http=functools.partial(BoundedHttpToolsProtocol, max_head_bytes=16384, head_timeout=10))``.

    Args:
        config: uvicorn's config (given by uvicorn).
        server_state: uvicorn's server state (given by uvicorn).
        app_state: uvicorn's app state (given by uvicorn).
        max_head_bytes: the most bytes a request line and its headers may take together.
        head_timeout: seconds a client has to send a whole request head (None: no limit).
        body_timeout: seconds a client has, after the head, to send the whole body (None: no limit).
    """

    def __init__(self, config: Any, server_state: Any, app_state: dict[str, Any],
                 _loop: asyncio.AbstractEventLoop | None = None, *, max_head_bytes: int = 16384,
                 head_timeout: float | None = 10.0, body_timeout: float | None = 120.0) -> None:  # fmt: skip
        super().__init__(config, server_state, app_state, _loop)
        self.max_head_bytes = max_head_bytes
        self.head_timeout = head_timeout
        self.body_timeout = body_timeout
        self._body_timer: asyncio.TimerHandle | None = None
        self._body_due = False  # a request's head is in, its body is not yet whole
        self._in_head = True  # a new connection owes a request head
        self._head_bytes = 0  # bytes received while in a head (approximate: whole socket reads)
        self._head_timer: asyncio.TimerHandle | None = None
        sweep = _SWEEPS.get(self.loop)
        if sweep is None:
            sweep = _SWEEPS[self.loop] = _IdleSweep(self.loop)
        self._sweep = sweep

    # ------------------------------------------------------------------ connection

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._sweep.idle.pop(self, None)
        self._disarm()
        self._disarm_body()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._sweep.idle.pop(self, None)  # not idle any more (uvicorn cancels its keep-alive timer here)
        if self._in_head:
            self._head_bytes += len(data)
        super().data_received(data)
        if self._body_due and self._body_timer is None and not self.transport.is_closing():
            # A body still to come after this read: most arrive with their head and never need the timer.
            self._body_timer = self.loop.call_later(self.body_timeout, self._body_timed_out)  # type: ignore[arg-type]
        if not self._in_head or self.transport.is_closing():
            return
        if self._head_bytes > self.max_head_bytes:
            # The head is still unfinished: refuse now rather than let httptools buffer more of it.
            url = len(getattr(self, "url", b""))
            self._refuse(414 if 2 * url > self._head_bytes else 431)
        else:
            # Armed only for a head that spans reads: most arrive whole and never need the timer.
            self._arm()

    # ------------------------------------------------------------------ parser callbacks

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._head_bytes = 0
        self._disarm()
        size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
        if size <= self.max_head_bytes:
            super().on_headers_complete()
            # The cycle's task has not run yet: its writes go through _OneWrite from the start.
            self.cycle.transport = _OneWrite(self.transport, self.cycle, self.loop)  # type: ignore[assignment]
            # The body timer is armed at the end of this read if the body is still coming
            # (data_received); on_message_complete clears this, at once for a request without a body.
            self._body_due = self.body_timeout is not None
            return
        # The whole head came in one read: answer through uvicorn's own request cycle, as it
        # does for limit_concurrency, with an app that refuses it and closes the connection.
        status = 414 if 2 * len(self.url) > size else 431
        app, self.app = self.app, self._refusal_app(status)
        try:
            super().on_headers_complete()
        finally:
            self.app = app

    def on_response_complete(self) -> None:
        if self.pipeline or self.transport.is_closing():
            super().on_response_complete()  # the next pipelined request starts, or nothing is to be kept alive
            return
        # uvicorn's, but for the keep-alive timeout: the loop's idle sweep, not a timer of its own.
        self.server_state.total_requests += 1
        self._unset_keepalive_if_required()
        self.flow.resume_reading()
        self._sweep.add(self)

    def on_message_complete(self) -> None:
        self._body_due = False
        self._disarm_body()
        super().on_message_complete()

    # ------------------------------------------------------------------ refusals

    def _message(self, status: int) -> str:
        if status == 408 and not self._in_head:
            return (f"The request body did not arrive within {self.body_timeout:g} s "
                    "(general_settings.request_body_timeout).")  # fmt: skip
        if status == 408:
            return (f"The request line and headers did not arrive within {self.head_timeout:g} s "
                    "(general_settings.request_header_timeout).")  # fmt: skip
        what = "The URL" if status == 414 else "The request line and headers"
        return (f"{what} exceed the proxy's limit of {self.max_head_bytes} bytes "
                "(general_settings.max_header_size_kb).")  # fmt: skip

    def _refusal_app(self, status: int) -> Any:
        body, headers = _response(status, self._message(status))

        async def refuse(scope: Any, receive: Any, send: Any) -> None:
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})

        return refuse

    def _refuse(self, status: int) -> None:
        """Answer ``status`` on the raw connection and close it (no request cycle exists yet)."""
        self._disarm()
        if self.cycle is not None and not self.cycle.response_complete:
            # A pipelined head while a response is still going out: writing now would corrupt
            # that response. Stop reading, and close once it is sent.
            self.cycle.keep_alive = False
            self.flow.pause_reading()
            return
        body, headers = _response(status, self._message(status))
        head = [b"HTTP/1.1 %d %s\r\n" % (status, _REASONS[status])]
        head += [name + b": " + value + b"\r\n" for name, value in [*self.server_state.default_headers, *headers]]
        self.transport.write(b"".join([*head, b"\r\n", body]))
        self.transport.close()

    # ------------------------------------------------------------------ head timer

    def _arm(self) -> None:
        if self.head_timeout is not None and self._head_timer is None:
            self._head_timer = self.loop.call_later(self.head_timeout, self._head_timed_out)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if not self._in_head or self.transport.is_closing():
            return
        if self._head_bytes or self.cycle is not None:
            self._refuse(408)
        else:  # a connection that never sent a byte gets no answer, as uvicorn's keep-alive timeout does
            self.transport.close()

    # ------------------------------------------------------------------ body timer

    def _disarm_body(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _body_timed_out(self) -> None:
        self._body_timer = None
        cycle = self.cycle
        if self.transport.is_closing() or cycle is None or not cycle.more_body:
            return
        if cycle.response_started:  # an answer is going out (or went out): only stop the upload
            self.transport.close()
            return
        # The app is waiting in receive(): it gets a disconnect, and whatever it sends next is
        # dropped, so the 408 written here is the only response on this connection.
        cycle.disconnected = True
        cycle.message_event.set()
        body, headers = _response(408, self._message(408))
        head = [b"HTTP/1.1 408 Request Timeout\r\n"]
        head += [name + b": " + value + b"\r\n" for name, value in [*self.server_state.default_headers, *headers]]
        self.transport.write(b"".join([*head, b"\r\n", body]))
        self.transport.close()
