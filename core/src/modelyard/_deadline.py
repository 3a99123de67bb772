"""Deadlines of async calls: one shared timer per event loop instead of one timer per call.

``async with asyncio.timeout(t)`` schedules a timer handle per use and cancels it on exit (about
4-6 µs a call); a call to an upstream always has a deadline (600 s by default) that almost
never fires. Here the deadlines of a loop's calls wait in one heap, and one timer handle is
armed for the earliest: a call registers its deadline with :func:`enter` and takes it back with
:func:`leave` (~1.5-2.5 µs together). When the timer fires, every call whose deadline
has passed gets its task cancelled, exactly as ``asyncio.timeout`` does it, and :func:`leave`
turns that cancellation into ``TimeoutError`` with the same rules:

- the task is cancelled with ``Task.cancel()`` when the deadline passes while the call runs;
- on leaving, an expired call takes its cancellation back (``Task.uncancel()``); if no other
  cancellation was asked for meanwhile and the call ended in ``CancelledError``, it raises
  ``TimeoutError`` from it; a cancellation from outside (the caller's own) propagates;
- a call that left before its deadline is never cancelled afterwards: a left deadline stays
  in the heap (removed lazily) but is skipped.

Left deadlines are dropped when the timer fires, or all at once when they outnumber the
waiting ones (plus a margin), so the heap stays within about twice the calls in flight.
The per-loop state is closed with its loop (:class:`modelyard._loops.PerLoop`).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from typing import Any

from ._loops import PerLoop

__all__ = ["Deadline", "enter", "leave"]

_WAITING, _LEFT, _EXPIRING, _EXPIRED = 0, 1, 2, 3


class Deadline:
    """One call's deadline, from :func:`enter` to :func:`leave`."""

    __slots__ = ("cancelling", "owner", "state", "task", "when")

    def __init__(self, when: float, task: asyncio.Task[Any] | None, cancelling: int, owner: _Deadlines) -> None:
        self.when, self.task, self.cancelling, self.owner, self.state = when, task, cancelling, owner, _WAITING

    def expired(self) -> bool:
        """Whether the deadline passed while the call ran (as ``asyncio.Timeout.expired``)."""
        return self.state >= _EXPIRING


class _Deadlines:
    """The deadlines of one event loop, in a heap, with one timer armed for the earliest."""

    __slots__ = ("armed", "handle", "heap", "loop", "waiting")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.heap: list[tuple[float, int, Deadline]] = []
        self.waiting = 0  # deadlines in the heap still waiting (not left)
        self.handle: asyncio.TimerHandle | None = None
        self.armed = 0.0  # when the handle fires

    def add(self, deadline: Deadline) -> None:
        heapq.heappush(self.heap, (deadline.when, next(_order), deadline))
        self.waiting += 1
        if self.handle is None or deadline.when < self.armed:
            self._arm(deadline.when)

    def left(self) -> None:
        """A waiting deadline was left: drop the left ones when they are most of the heap."""
        self.waiting -= 1
        heap = self.heap
        if len(heap) > 2 * self.waiting + 64:
            heap[:] = [item for item in heap if item[2].state == _WAITING]
            heapq.heapify(heap)

    def _arm(self, when: float) -> None:
        if self.handle is not None:
            self.handle.cancel()
        self.armed = when
        self.handle = self.loop.call_at(when, self._fire)

    def _fire(self) -> None:
        self.handle = None
        # The loop runs a timer when it is due within its clock's resolution, as it would have
        # run an asyncio.timeout's handle for the same deadline: everything up to the time this
        # one was armed for is due now.
        now = max(self.armed, self.loop.time())
        heap = self.heap
        while heap and heap[0][0] <= now:
            deadline = heapq.heappop(heap)[2]
            if deadline.state == _WAITING and deadline.task is not None:
                self.waiting -= 1
                deadline.state = _EXPIRING
                deadline.task.cancel()
        while heap and heap[0][2].state != _WAITING:  # left ones need no timer
            heapq.heappop(heap)
        if heap:
            self._arm(heap[0][0])

    def close(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None
        self.heap.clear()
        self.waiting = 0


_order = itertools.count()


async def _close(deadlines: _Deadlines) -> None:
    deadlines.close()


_loops: PerLoop[_Deadlines] = PerLoop(_close)


def enter(delay: float) -> Deadline:
    """Start a deadline ``delay`` seconds from now for the running task (``asyncio.timeout(delay)``'s
    ``__aenter__``). Pair every call with :func:`leave`.

    Raises:
        RuntimeError: not inside a task.
    """
    loop = asyncio.get_running_loop()
    task = asyncio.current_task(loop)
    if task is None:
        raise RuntimeError("a deadline needs a task")
    deadlines = _loops.get(loop)
    if deadlines is None:
        deadlines = _Deadlines(loop)
        _loops.set(loop, deadlines)
    when = loop.time() + delay
    if when != when:  # NaN: asyncio.timeout's handle for it runs at once; in the heap it would block the rest
        when = loop.time()
    deadline = Deadline(when, task, task.cancelling(), deadlines)
    deadlines.add(deadline)
    return deadline


def leave(deadline: Deadline, exc: BaseException | None) -> None:
    """End ``deadline``; ``exc`` is what the guarded code raised (None: it returned).

    Raises:
        TimeoutError: the deadline cancelled the call, ``exc`` is that ``CancelledError``, and no
            other cancellation of the task is pending (from ``exc``).
    """
    state = deadline.state
    task = deadline.task
    deadline.task = None  # a left deadline waits in the heap a while: it must not keep the task (and its result)
    if state == _WAITING:
        deadline.state = _LEFT
        deadline.owner.left()
    elif state == _EXPIRING and task is not None:
        deadline.state = _EXPIRED
        if task.uncancel() <= deadline.cancelling and type(exc) is asyncio.CancelledError:
            raise TimeoutError from exc
