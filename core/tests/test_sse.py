"""The server-sent event parser: events with their own bytes, whatever the upstream wrote."""

from __future__ import annotations

import asyncio
import gc
import sys
from typing import Any

import httpx
from modelyard._sse import SSEParser, aiter_sse_batches


def test_an_event_comes_with_its_data_as_sent() -> None:
    parser = SSEParser()
    assert parser.feed(b'data: {"a": 1.0e-5, "b" : [1, 2]}\n\ndata:{"c":2}\n\n') == [
        ({"a": 1e-05, "b": [1, 2]}, b'{"a": 1.0e-5, "b" : [1, 2]}'),
        ({"c": 2}, b'{"c":2}'),  # "data:" without its space
    ]


def test_line_separators_inside_the_json_do_not_cut_an_event() -> None:
    # U+2028, U+0085 and U+2029 are line breaks to str.splitlines, not to the SSE spec; the
    # multi-byte character is also cut between two reads.
    data = '{"content": "a\u2028b\x85c\u2029d \u00e9"}'.encode()
    parser = SSEParser()
    cut = data.index(b"\xc3") + 1
    assert parser.feed(b"data: " + data[:cut]) == []
    assert parser.feed(data[cut:] + b"\r\n\r\n") == [({"content": "a\u2028b\x85c\u2029d \u00e9"}, data)]


def test_what_the_fast_reader_refuses_is_read_as_before_without_its_bytes() -> None:
    parser = SSEParser()
    # A lone surrogate escape (JSON allows it) and bytes that are not UTF-8 (replaced).
    assert parser.feed(b'data: {"s": "\\ud800"}\n\ndata: {"t": "\xff"}\n\n') == [
        ({"s": "\ud800"}, None),
        ({"t": "\ufffd"}, None),
    ]


def test_an_event_on_several_data_lines_is_joined_and_has_no_bytes_of_its_own() -> None:
    parser = SSEParser()
    assert parser.feed(b'data: {"a":\ndata: 1}\n\n') == [({"a": 1}, None)]


def test_other_fields_are_skipped_and_done_ends_the_stream() -> None:
    parser = SSEParser()
    events = parser.feed(b': comment\nevent: x\nid: 7\nretry: 10\ndata: {"a": 1}\n\ndata: [DONE]\n\ndata: {"b": 2}\n\n')
    assert events == [({"a": 1}, b'{"a": 1}')] and parser.done


def test_the_last_event_without_a_blank_line_is_read_at_the_end() -> None:
    parser = SSEParser()
    assert parser.feed(b'data: {"a": 1}') == []
    assert parser.close() == [({"a": 1}, b'{"a": 1}')]


class _Reads(httpx.AsyncByteStream):
    def __init__(self, reads: list[bytes]) -> None:
        self.reads = reads

    async def __aiter__(self):  # type: ignore[no-untyped-def]
        for read in self.reads:
            yield read


def test_batches_are_the_events_each_read_completes() -> None:
    reads = [b'data: {"a": 1}\n\ndata: {"b"', b': 2}\n\ndata: {"c": 3}\n\n', b": ping\n\n", b"data: [DONE]\n\n", b"data: {}\n\n"]

    async def collect() -> list[list[object]]:
        return [[e for e, _ in batch] async for batch in aiter_sse_batches(httpx.Response(200, stream=_Reads(reads)))]

    assert asyncio.run(collect()) == [[{"a": 1}], [{"b": 2}, {"c": 3}]]


def test_a_stream_ended_by_done_leaves_no_reader_for_asyncio_to_close() -> None:
    # Left suspended after [DONE], a body reader (an async generator) is closed by asyncio's
    # finalizer hook, in a task of its own: tens of µs per stream. It is closed at once instead.
    reads = [b'data: {"a": 1}\n\ndata: [DONE]\n\n', b'data: {"b": 2}\n\n']
    finalized: list[object] = []

    async def collect() -> list[list[object]]:
        hooks = sys.get_asyncgen_hooks()

        def finalizer(agen: Any) -> None:
            finalized.append(agen)
            hooks.finalizer(agen)

        sys.set_asyncgen_hooks(firstiter=hooks.firstiter, finalizer=finalizer)
        try:
            response = httpx.Response(200, stream=_Reads(reads))
            got = [[e for e, _ in batch] async for batch in aiter_sse_batches(response)]
            await response.aclose()
            del response
            gc.collect()
            return got
        finally:
            sys.set_asyncgen_hooks(*hooks)

    assert asyncio.run(collect()) == [[{"a": 1}]]
    assert finalized == []
