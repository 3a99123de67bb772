"""Watching for a client that leaves while its request is being served, started late and in batches.

Once a request's body is read, the ASGI ``receive()`` only returns when the client disconnects.
A task waiting on it can cancel the request's work (a model call, a stream being forwarded) at
once, instead of letting the upstream call run, and hold its deployment's slot, for a client
that is gone. Most calls answer in a few milliseconds, so the watcher is started only for work
still running after ``after`` seconds (issue 17: a task per request cost more than the rest of
the proxy's own work on a fast upstream).

Rather than a timer per request (uvloop's ``call_later`` and ``cancel`` cost ~2.5 µs), requests
that start within ``after / 5`` of each other share one: it fires ``after`` seconds after the
first of them, so each gets its watcher between ``0.8 * after`` and ``after`` seconds in (none
when it has ended by then). A request joins a batch with a list append.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

__all__ = ["DisconnectWatch", "Disconnected"]

_T = TypeVar("_T")
Receive = Callable[[], Awaitable[dict[str, Any]]]


class Disconnected(Exception):
    """The client went away while its request was being served; the work was cancelled."""


class _Waiting:
    """One request's work in a batch: what its watcher needs, and whether it still runs."""

    __slots__ = ("done", "gone", "receive", "task", "watcher")

    def __init__(self, task: asyncio.Task[Any], receive: Receive) -> None:
        self.task: asyncio.Task[Any] | None = task
        self.receive: Receive | None = receive
        self.watcher: asyncio.Task[None] | None = None
        self.gone = False
        self.done = False


class DisconnectWatch:
    """Run work unless the client leaves first (:meth:`run`), with one timer per batch of requests.

    Args:
        after: seconds a piece of work runs before its client is watched (at the latest).
    """

    def __init__(self, after: float) -> None:
        self.after = after
        self._join = after / 5  # how long a batch takes new requests
        self._batch: list[_Waiting] = []
        self._opened = -float("inf")
        self._loop: asyncio.AbstractEventLoop | None = None

    async def run(self, receive: Receive, work: Awaitable[_T]) -> _T:
        """Await ``work`` in this task unless the client leaves first (``receive()`` says so).

        Raises:
            Disconnected: the client disconnected first; ``work`` was cancelled.
        """
        task = asyncio.current_task()
        assert task is not None
        waiting = _Waiting(task, receive)
        self._current().append(waiting)
        try:
            return await work
        except asyncio.CancelledError:
            if waiting.gone and task.uncancel() == 0:  # our watcher's cancel, not the server's (shutdown)
                raise Disconnected from None
            raise
        finally:
            waiting.done = True
            waiting.task = waiting.receive = None  # the batch keeps no request alive until it fires
            if waiting.watcher is not None:
                # Forgotten as it is cancelled: its CancelledError keeps the watcher's frame, which
                # holds ``waiting``; pointing back at the watcher made a cycle per watched request
                # (with the server's receive frames, the request's cycle) for the collector.
                waiting.watcher.cancel()
                waiting.watcher = None

    def _current(self) -> list[_Waiting]:
        """The batch a request starting now joins: a new one (and its timer) when the last is closed."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        if now - self._opened > self._join or loop is not self._loop:
            self._batch, self._opened, self._loop = [], now, loop
            loop.call_at(now + self.after, self._fire, self._batch)
        return self._batch

    def _fire(self, batch: list[_Waiting]) -> None:
        loop = asyncio.get_running_loop()
        for waiting in batch:
            if not waiting.done:
                waiting.watcher = loop.create_task(self._watch(waiting))
        batch.clear()

    @staticmethod
    async def _watch(waiting: _Waiting) -> None:
        receive, task = waiting.receive, waiting.task
        if receive is None or task is None:
            return
        while (await receive())["type"] != "http.disconnect":
            pass
        if waiting.done:
            return
        waiting.gone = True
        task.cancel()
