"""The per-process budget ledger: budgeted calls admitted in memory against a lease (docs/keys.md).

For each budgeted key or team this process serves, an :class:`Entry` holds a **lease** (an amount
of the row's budget that the store counts in its ``reserved``, :mod:`modelyard.store.ledger`),
what the calls in flight hold of it (``held``: each call's most cost, :func:`.keys.max_cost`)
and what settled calls cost since the last write (``pending``). A call is admitted when its most
cost fits in ``lease - held - pending``: a comparison and an addition, no store write. When it
does not fit, one store transaction (a **renewal**; concurrent calls of the same key wait for it
and then take from it) writes ``pending`` into ``spend`` and grants the call's amount plus
:data:`LEASE_FRACTION` of what is left beyond it, or exactly the call's amount when that fraction
would not cover another such call, or nothing (the call is refused, as before: 429
``budget_exceeded``). The renewal's check is the store's ``spend + reserved + amount <=
max_budget``, with this process's unused lease counted as free, so on one process a budget's
edge is exactly where it was with one reservation per call.

Once a second (and when an admin reads or changes keys here, and at shutdown) one transaction
syncs every entry: ``pending`` goes to ``spend``; the lease of a key that had calls in the last
second is resized to what its calls in flight hold plus a fresh fraction of what is left; the
lease of an idle key shrinks to what its calls hold (usually 0: given back). Hence a raised or
lowered ``max_budget``, a new budget period, and the spend of other processes reach this one
within a second, and no process keeps an unused part of a budget longer than that. A lease is
only used for :data:`~modelyard.store.ledger.LEASE_TTL` / 3 seconds after its last sync (the
store lets another process reclaim it after ``LEASE_TTL``), so a process stalled that long
renews before admitting anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..store.ledger import LeaseState, LeaseStore, LeaseSync

__all__ = ["LEASE_FRACTION", "Entry", "Ledger"]

log = logging.getLogger("modelyard.proxy.ledger")

LEASE_FRACTION = 0.25
"""The part of what is left of a budget (beyond the call) that one renewal leases to a process."""

View = tuple[float, float, float]
"""``(spend, reserved, max_budget)`` as this process sees a row: the store's at the last sync,
with this process's unwritten spend and its calls in flight in place of its lease."""


class Entry:
    """One budgeted key's or team's lease in this process (see the module docstring)."""

    __slots__ = ("active", "budget", "calls", "held", "ident", "kind", "last", "lease", "lock", "others",
                 "pending", "period", "spend", "syncing", "users", "valid_until")  # fmt: skip

    def __init__(self, kind: str, ident: str, period: float | None) -> None:
        self.kind, self.ident, self.period = kind, ident, period
        self.lease = 0.0  # what the store holds for this process on the row
        self.held = 0.0  # the most the calls in flight can cost
        self.calls = 0  # calls in flight
        self.pending = 0.0  # settled cost not written yet
        self.spend = 0.0  # the row's spend at the last sync
        self.others = 0.0  # the row's reserved at the last sync, less this process's lease
        self.budget = math.inf
        self.valid_until = 0.0  # monotonic time after which the lease must be renewed before use
        self.active = False  # a call took from it since the last sync
        self.last = 0.0  # the last call's amount (the smallest extra worth leasing)
        self.syncing = False
        self.users = 0  # requests waiting for its lock
        self.lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"Entry({self.kind}, {self.ident[:12]}, lease={self.lease:g}, held={self.held:g}, pending={self.pending:g})"

    def _fits(self, amount: float) -> bool:
        free = self.lease - self.held - self.pending
        return free >= amount if amount > 0 else free > 0

    def _take(self, amount: float) -> None:
        self.held += amount
        self.calls += 1
        self.active = True
        self.last = amount


class Ledger:
    """Budget leases of one proxy process.

    Args:
        open_store: returns the :class:`~modelyard.store.ledger.LeaseStore` (called in a worker
            thread: it may open the store).
        interval: seconds between syncs.
    """

    def __init__(self, open_store: Callable[[], LeaseStore], interval: float = 1.0) -> None:
        self._open = open_store
        self.interval = interval
        self._entries: dict[tuple[str, str], Entry] = {}
        self._task: asyncio.Task[None] | None = None
        self._sleeping = False
        self._closed = False

    def __repr__(self) -> str:
        return f"Ledger({len(self._entries)} leases, every {self.interval:g} s)"

    def entry(self, kind: str, ident: str, period: float | None) -> Entry:
        """The entry of a key (``kind`` ``"key"``, its token) or team (``"team"``, its id)."""
        found = self._entries.get((kind, ident))
        if found is None:
            found = self._entries[(kind, ident)] = Entry(kind, ident, period)
            if self._task is None or self._task.done():
                self._task = asyncio.get_running_loop().create_task(self._every())
        else:
            found.period = period
        return found

    async def reserve(self, entry: Entry, amount: float) -> View | None:
        """Hold ``amount`` of the entry's budget for one call; None when held, else the row's
        :data:`View` (the call does not fit: refuse it)."""
        if not entry.syncing and entry._fits(amount) and time.monotonic() < entry.valid_until:
            entry._take(amount)
            return None
        entry.users += 1
        # The renewal runs to its end even if this request is cancelled meanwhile (its outcome
        # must reach the entry); a hold it took for a request gone by then is given back.
        renewal = asyncio.ensure_future(self._renew(entry, amount))
        try:
            return await asyncio.shield(renewal)
        except asyncio.CancelledError:
            renewal.add_done_callback(lambda t: self._undo(t, entry, amount))
            raise
        finally:
            entry.users -= 1

    def _undo(self, renewal: asyncio.Future[View | None], entry: Entry, amount: float) -> None:
        if not renewal.cancelled() and renewal.exception() is None and renewal.result() is None:
            self.release(entry, amount)

    async def _renew(self, entry: Entry, amount: float) -> View | None:
        async with entry.lock:
            if entry._fits(amount) and time.monotonic() < entry.valid_until:
                entry._take(amount)
                return None
            from ..store.ledger import LeaseSync

            item = LeaseSync(entry.kind, entry.ident, spent=entry.pending, keep=entry.held, want=amount,
                             extra=LEASE_FRACTION, floor=max(amount, entry.last), period=entry.period)  # fmt: skip
            (state,) = await self._sync([entry], [item])
            if not state.granted:
                return self.view(entry)
            entry._take(amount)  # granted: held even if a cost above its hold left the lease short
            return None

    def release(self, entry: Entry, amount: float) -> None:
        """Give back a hold that was never used (the call was refused on another budget)."""
        self.settle(entry, amount, 0.0)

    def settle(self, entry: Entry, amount: float, cost: float) -> None:
        """A call that held ``amount`` is done and cost ``cost``: written at the next sync."""
        entry.calls -= 1
        entry.held = entry.held - amount if entry.calls > 0 else 0.0
        entry.pending += cost

    @staticmethod
    def view(entry: Entry) -> View:
        """``(spend, reserved, max_budget)`` of the entry's row as this process knows it now."""
        return entry.spend + entry.pending, entry.others + entry.held, entry.budget

    async def _sync(self, entries: list[Entry], items: list[LeaseSync], *, shrinking: bool = True) -> list[LeaseState]:
        """Run one store sync for ``entries`` (whose locks the caller holds) and apply its outcome.

        ``shrinking``: the items may give back unused lease, so no call may take from the
        entries until the sync is done; else (each keeps its whole lease less what it spent)
        calls go on taking from them meanwhile.
        """
        flagged = [e for e, item in zip(entries, items, strict=True) if shrinking or item.keep < e.lease - item.spent]
        for e in flagged:
            e.syncing = True
        started = time.monotonic()
        try:
            states: list[LeaseState] = await asyncio.to_thread(lambda: self._open().sync(items))
        finally:
            for e in flagged:
                e.syncing = False
        from ..store.ledger import LEASE_TTL

        for e, item, state in zip(entries, items, states, strict=True):
            e.pending -= item.spent
            e.lease, e.spend, e.budget = state.lease, state.spend, state.budget
            e.others = max(0.0, state.reserved - state.lease)
            # An over-committed row (its budget lowered below what the leases hold): the next call
            # renews, giving back what this process does not use.
            over = state.spend + state.reserved > state.budget
            e.valid_until = started + LEASE_TTL / 3 if state.found and not over else 0.0
            if not state.found:
                e.pending = 0.0
        return states

    async def flush(self, *, release: bool = False) -> None:
        """Sync every entry now: spend written; leases resized (``release``: shrunk to what calls hold)."""
        await asyncio.shield(self._flush(release))

    async def _flush(self, release: bool) -> None:
        entries = sorted(self._entries.values(), key=lambda e: (e.kind, e.ident))
        if not entries:
            return
        from ..store.ledger import LeaseSync

        async with contextlib.AsyncExitStack() as stack:
            for e in entries:
                await stack.enter_async_context(e.lock)
            items = []
            for e in entries:
                if self._closed:  # every lease given back
                    item = LeaseSync(e.kind, e.ident, spent=e.pending, period=e.period)
                elif release or not e.active:  # shrunk to what its calls hold (calls wait meanwhile)
                    item = LeaseSync(e.kind, e.ident, spent=e.pending, keep=e.held, period=e.period)
                else:  # in use: kept whole (calls go on taking from it), topped up to its fraction
                    have = max(0.0, e.lease - e.held - e.pending)
                    item = LeaseSync(e.kind, e.ident, spent=e.pending, keep=max(0.0, e.lease - e.pending), want=0.0,
                                     extra=LEASE_FRACTION, have=have, floor=e.last, period=e.period)  # fmt: skip
                items.append(item)
                e.active = False
            try:
                await self._sync(entries, items, shrinking=False)
            except Exception:
                log.exception("writing the spend and leases of %d budgets failed", len(entries))
                return
        for e in entries:  # idle: nothing held, nothing to write, nobody waiting
            if e.lease <= 0 and e.calls == 0 and e.pending == 0 and not e.active and e.users == 0:
                self._entries.pop((e.kind, e.ident), None)

    async def _every(self) -> None:
        while self._entries and not self._closed:
            self._sleeping = True
            try:
                await asyncio.sleep(self.interval)
            finally:
                self._sleeping = False
            await self._flush(False)

    async def aclose(self) -> None:
        """Write what is pending and give every lease back (at shutdown)."""
        self._closed = True
        if self._task is not None:
            if self._sleeping:  # else it is writing: let it finish (it stops at the next turn)
                self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._flush(False)
