"""Binary answers streamed through with bounded memory (speech audio, file contents ...).

A :class:`BinaryResponse` wraps an upstream response that is still open: nothing is read until
the caller asks, and :meth:`~BinaryResponse.iter_bytes` / :meth:`~BinaryResponse.aiter_bytes` /
:meth:`~BinaryResponse.stream_to_file` hand the body on chunk by chunk, so a large answer never
sits in memory whole. It works the same over both async backends (httpx and aiohttp: the
aiohttp backend hands back an ``httpx.Response`` whose stream reads from aiohttp). The shape is
openai's ``HttpxBinaryResponseContent`` (``.content``, ``.read()``, ``.iter_bytes()``,
``.aiter_bytes()``, ``.stream_to_file(path)``, ``.write_to_file(path)``).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING, Any, Self

import httpx

from .errors import APIConnectionError

__all__ = ["BinaryResponse"]


class BinaryResponse:
    """An upstream's binary answer, read on demand.

    A response from a sync call is read with :meth:`iter_bytes`, :attr:`content`,
    :meth:`stream_to_file`; one from an async call with :meth:`aiter_bytes`, :meth:`aread`,
    :meth:`astream_to_file`. Each releases the connection when the body is done (or on
    :meth:`close` / :meth:`aclose`, or leaving a ``with`` block).

    Attributes:
        headers: the upstream response headers (``content-type`` ...).
        status_code: the upstream status.
    """

    def __init__(
        self, response: httpx.Response, on_done: Callable[[], None] | None = None, tap: Callable[[bytes], None] | None = None
    ) -> None:
        self._response = response
        self._on_done = on_done
        self._tap = tap  # sees every piece as it is handed on (the usage of a passed-through answer)
        self.headers: httpx.Headers = response.headers
        self.status_code: int = response.status_code

    if not TYPE_CHECKING:  # typed attributes stay checked

        def __getattr__(self, name: str) -> Any:
            # A typed view of the response headers a provider plugin contributes (header_views).
            return _header_views().read_view(self, self.__dict__.get("headers"), name)

    @property
    def content_type(self) -> str | None:
        """The upstream's ``content-type`` (``audio/mpeg`` ...)."""
        value = self.headers.get("content-type")
        return str(value) if value is not None else None

    def _done(self) -> None:
        if self._on_done is not None:
            done, self._on_done = self._on_done, None
            done()

    # ------------------------------------------------------------------ sync

    @property
    def content(self) -> bytes:
        """The whole body (read now if it was not yet: a sync response only)."""
        return self.read()

    def read(self) -> bytes:
        """Read the whole body into memory (prefer :meth:`iter_bytes` for large answers)."""
        if not self._response.is_stream_consumed:
            try:
                self._response.read()
            except httpx.TransportError as exc:
                raise APIConnectionError(f"The upstream broke off a binary answer: {type(exc).__name__}.") from exc
            finally:
                self._response.close()
            if self._tap is not None:
                self._tap(self._response.content)
            self._done()
        return self._response.content

    def iter_bytes(self, chunk_size: int | None = None) -> Iterator[bytes]:
        """The body in chunks as they arrive, then the connection is released.

        ``chunk_size`` None (the default) hands each piece on as soon as it arrives (a proxy
        passing audio through must not wait for 64 KiB); a number re-chunks to that size.
        """
        try:
            if self._tap is None:
                yield from self._response.iter_bytes(chunk_size)
            else:
                for chunk in self._response.iter_bytes(chunk_size):
                    self._tap(chunk)
                    yield chunk
        except httpx.TransportError as exc:
            raise APIConnectionError(f"The upstream broke off a binary answer: {type(exc).__name__}.") from exc
        finally:
            self._response.close()
        self._done()

    def stream_to_file(self, file: str | os.PathLike[str], chunk_size: int | None = None) -> None:
        """Write the body to ``file`` chunk by chunk (bounded memory)."""
        with open(file, "wb") as out:
            for chunk in self.iter_bytes(chunk_size):
                out.write(chunk)

    def write_to_file(self, file: str | os.PathLike[str]) -> None:
        """Write the body to ``file`` (openai's name; streams too)."""
        self.stream_to_file(file)

    def close(self) -> None:
        """Release the connection without reading the rest."""
        self._response.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ async

    async def aread(self) -> bytes:
        """The async twin of :meth:`read`."""
        if not self._response.is_stream_consumed:
            try:
                await self._response.aread()
            except httpx.TransportError as exc:
                raise APIConnectionError(f"The upstream broke off a binary answer: {type(exc).__name__}.") from exc
            finally:
                await self._response.aclose()
            if self._tap is not None:
                self._tap(self._response.content)
            self._done()
        return self._response.content

    async def aiter_bytes(self, chunk_size: int | None = None) -> AsyncIterator[bytes]:
        """The async twin of :meth:`iter_bytes`."""
        try:
            tap = self._tap
            async for chunk in self._response.aiter_bytes(chunk_size):
                if tap is not None:
                    tap(chunk)
                yield chunk
        except httpx.TransportError as exc:
            raise APIConnectionError(f"The upstream broke off a binary answer: {type(exc).__name__}.") from exc
        finally:
            await self._response.aclose()
        self._done()

    async def astream_to_file(self, file: str | os.PathLike[str], chunk_size: int | None = None) -> None:
        """The async twin of :meth:`stream_to_file` (file writes are small and local)."""
        with open(file, "wb") as out:  # chunks of 64 KiB: brief, local writes
            async for chunk in self.aiter_bytes(chunk_size):
                out.write(chunk)

    async def aclose(self) -> None:
        """The async twin of :meth:`close`."""
        await self._response.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"BinaryResponse(status_code={self.status_code}, content_type={self.content_type!r})"


def _header_views() -> Any:
    """:mod:`modelyard.header_views` (imported on first use: it loads the plugins)."""
    from . import header_views

    return header_views
