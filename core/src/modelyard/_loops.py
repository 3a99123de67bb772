"""Values kept per event loop (connection pools) and closed on their own loop when it shuts down.

An async connection pool belongs to the loop that opened it, so the transport, the aiohttp
backend and the Router's Redis state keep one per loop. Keyed weakly, they were never freed:
the pool's connections reference the loop. :class:`PerLoop` closes each value on its loop
while the loop can still run it: ``asyncio.run`` (and uvicorn, pytest-asyncio, any runner)
ends with ``loop.shutdown_asyncgens()``, which closes every async generator the loop has seen.
A small generator parked per value is that hook. A loop closed without it is swept when the
next loop stores a value, so dead loops never pile up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Generic, TypeVar

__all__ = ["PerLoop"]

T = TypeVar("T")
log = logging.getLogger("modelyard")


class PerLoop(Generic[T]):
    """One value per event loop, closed on that loop when it shuts down.

    Args:
        close: closes a value; awaited on the value's own loop.
    """

    def __init__(self, close: Callable[[T], Awaitable[None]]) -> None:
        self._close = close
        self._values: dict[asyncio.AbstractEventLoop, T] = {}
        self._watchers: dict[asyncio.AbstractEventLoop, AsyncGenerator[None, None]] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._values)

    def get(self, loop: asyncio.AbstractEventLoop) -> T | None:
        """The value of ``loop``, if it has one."""
        return self._values.get(loop)

    def set(self, loop: asyncio.AbstractEventLoop, value: T) -> None:
        """Keep ``value`` for ``loop`` (the running loop) until the loop shuts down."""
        with self._lock:
            dead = [lp for lp in self._values if lp is not loop and lp.is_closed()]
            self._values[loop] = value
            watcher = self._watch(loop, value)
            self._watchers[loop] = watcher
        # Start the watcher so the running loop's first-iteration hook registers it: from then
        # on loop.shutdown_asyncgens() closes it, and its `finally` closes the value.
        with contextlib.suppress(StopIteration):
            watcher.__anext__().send(None)
        for lp in dead:
            self._drop(lp)

    async def aclose(self, loop: asyncio.AbstractEventLoop) -> None:
        """Close the value of ``loop`` (the running loop) now, if it has one."""
        with self._lock:
            watcher = self._watchers.pop(loop, None)
        if watcher is not None:
            await watcher.aclose()

    def _drop(self, loop: asyncio.AbstractEventLoop) -> None:
        """Forget the value of a loop that closed without shutting its async generators down."""
        with self._lock:
            watcher = self._watchers.pop(loop, None)
            self._values.pop(loop, None)
        if watcher is not None:
            # Finish it here, or its finalizer would try to schedule on the dead loop. Its
            # value's connections cannot be closed without their loop; the collector frees them.
            with contextlib.suppress(StopIteration, RuntimeError):
                watcher.aclose().send(None)

    async def _watch(self, loop: asyncio.AbstractEventLoop, value: T) -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            with self._lock:
                if self._values.get(loop) is value:  # not replaced by a newer value meanwhile
                    del self._values[loop]
                    self._watchers.pop(loop, None)
            if not loop.is_closed():
                try:
                    await self._close(value)
                except Exception:  # closing a pool at shutdown must not fail the shutdown
                    log.debug("closing a per-loop connection pool failed", exc_info=True)
