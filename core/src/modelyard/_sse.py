"""Server-sent events read from the bytes of a response, each with its ``data`` as it came.

Our own rather than a dependency: chat streams only use ``data:`` fields, and the proxy wants
each event's own bytes (it passes on unchanged what no plugin rewrites) and the events of one
upstream read together (it sends them in one write).

Lines are cut in bytes, at CRLF, LF or CR only, as the SSE spec says: a model's reply may hold
U+2028 or U+0085 unescaped inside the JSON of a ``data:`` line, and a multi-byte character cut
across two reads is only decoded once its line is whole. The data is UTF-8 (the spec's only
encoding; bytes that are not are replaced, as a text decoder would). JSON is read by
pydantic-core (a third of ``json.loads``' time); what it refuses and ``json`` accepts (a lone
surrogate escape, bytes that are not UTF-8) is read by ``json`` as before.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

from pydantic_core import from_json

if TYPE_CHECKING:
    import httpx

__all__ = ["END", "Event", "SSEParser", "aiter_sse", "aiter_sse_batches", "iter_sse"]

END = b"[DONE]"
"""Ends the proxy's last list of a stream's items (``_wire_items``) when the stream is known to
end there: the upstream's ``[DONE]`` came in that read. Compared by identity."""

Event = tuple[Any, bytes | None]
"""An event: its parsed JSON ``data``, and the data's bytes when they are the JSON as sent (one
``data:`` line, UTF-8, read by the fast parser), else None."""

_LINE_BREAK = re.compile(rb"\r\n|\r|\n")


class SSEParser:
    """Events from the bytes of an event stream cut anywhere; ``done`` once ``[DONE]`` is read.

    Nothing after ``[DONE]`` is read. Lines other than ``data:`` (comments, ``event:``,
    ``id:``, ``retry:``) are skipped.
    """

    __slots__ = ("_data", "_partial", "done")

    def __init__(self) -> None:
        self._partial = b""
        self._data: list[bytes] = []
        self.done = False

    def feed(self, chunk: bytes) -> list[Event]:
        """The events the stream so far completes with ``chunk``."""
        buffer = self._partial + chunk if self._partial else chunk
        if buffer.find(b"\r") != -1:  # not ``in``: see modelyard._kept.unclaimed
            # A CR at the end may be the first half of a CRLF: keep it for the next chunk.
            hold = buffer.endswith(b"\r")
            lines = _LINE_BREAK.split(buffer[:-1] if hold else buffer)
            self._partial = lines.pop() + (b"\r" if hold else b"")
        else:
            lines = buffer.split(b"\n")
            self._partial = lines.pop()
        return self._lines(lines)

    def close(self) -> list[Event]:
        """The end of the body: its last line (when no line break ended it) and last event."""
        rest, self._partial = self._partial.removesuffix(b"\r"), b""
        events = self._lines([rest, b""] if rest else [b""])
        self._data = []
        return events

    def _lines(self, lines: list[bytes]) -> list[Event]:
        events: list[Event] = []
        data = self._data
        for line in lines:
            if self.done:
                break
            if not line:
                if data:
                    event = self._event(data)
                    data = self._data = []
                    if event is not None:
                        events.append(event)
            elif line.startswith(b"data:"):
                data.append(line[6:] if line[5:6] == b" " else line[5:])
        return events

    def _event(self, data: list[bytes]) -> Event | None:
        payload = data[0] if len(data) == 1 else b"\n".join(data)
        if payload == b"[DONE]":
            self.done = True
            return None
        try:
            return from_json(payload), payload if len(data) == 1 else None
        except ValueError:  # a lone surrogate escape, bytes that are not UTF-8, or not JSON: json says which
            return json.loads(payload.decode("utf-8", "replace")), None


async def aiter_sse_batches(response: httpx.Response, parser: SSEParser | None = None) -> AsyncIterator[list[Event]]:
    """The events of each read of ``response``'s body that completes any, until ``[DONE]`` or its end.

    ``parser`` (a new one by default) tells the caller whether ``[DONE]`` came with a batch. A
    body without ``content-encoding`` is read from the response's stream itself, and the reader
    is closed here when ``[DONE]`` ends it early: an async generator left suspended is closed by
    asyncio in a task of its own (tens of µs), and httpx's readers nest three of them.
    """
    parser = parser if parser is not None else SSEParser()
    stream: Any = response.stream
    chunks: AsyncIterator[bytes] = response.aiter_bytes() if response.headers.get("content-encoding") else stream.__aiter__()
    try:
        async for chunk in chunks:
            events = parser.feed(chunk)
            if events:
                yield events
            if parser.done:
                return
        events = parser.close()
        if events:
            yield events
    finally:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()


def iter_sse(response: httpx.Response) -> Iterator[Any]:
    """Parsed JSON ``data`` of each event until ``[DONE]`` or the end of the body."""
    parser = SSEParser()
    for chunk in response.iter_bytes():
        for event, _ in parser.feed(chunk):
            yield event
        if parser.done:
            return
    for event, _ in parser.close():
        yield event


async def aiter_sse(response: httpx.Response) -> AsyncIterator[Any]:
    """The async twin of :func:`iter_sse`."""
    async for events in aiter_sse_batches(response):
        for event, _ in events:
            yield event
