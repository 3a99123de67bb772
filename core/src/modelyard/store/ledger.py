"""Budget leases: the part of a key's or team's budget one proxy process holds (docs/keys.md).

A process that serves a budgeted key does not write the store per call: it holds a **lease**, an
amount of the key's remaining budget, and admits calls against it in memory
(:mod:`modelyard.proxy.ledger`). The store keeps, for each row of ``modelyard_keys`` /
``modelyard_teams``, ``reserved`` = the sum of the live leases on it, and one row per lease in
``modelyard_budget_leases`` (owner, amount, expiry). Several processes or instances therefore
never admit more than the budget together: a lease is granted only out of ``max_budget - spend -
reserved``, under the row's write lock.

A lease is tied to its owner (one id per proxy process) and a wall-clock expiry
(:data:`LEASE_TTL` after its last renewal; a live process renews each second). A process that
died leaves its lease row behind: the next process to sync the same key removes the expired
rows and subtracts them from ``reserved``, so a crash blocks at most that much budget for at
most :data:`LEASE_TTL` seconds. Its spend not yet written (at most a second's worth) is lost.

Every method is synchronous (SQLAlchemy Core); the proxy calls :meth:`LeaseStore.sync` in a
worker thread, about once a second per key, at a renewal and at shutdown.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from .keys import keys_table, teams_table
from .sql import Store, _metadata

__all__ = ["LEASE_TTL", "LeaseState", "LeaseStore", "LeaseSync", "leases_table"]

LEASE_TTL = 30.0
"""Seconds a lease stays in the store after its last renewal before another process may reclaim it."""

leases_table = sa.Table(
    "modelyard_budget_leases",
    _metadata,
    sa.Column("kind", sa.String(8), primary_key=True),  # "key" or "team"
    sa.Column("ident", sa.String(128), primary_key=True),  # the key's token or the team's id
    sa.Column("owner", sa.String(64), primary_key=True),  # the process holding it
    sa.Column("amount", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
)

_TABLES = {"key": (keys_table, keys_table.c.token), "team": (teams_table, teams_table.c.team_id)}


@dataclass(frozen=True)
class LeaseSync:
    """What one process asks of one key's or team's row in a sync.

    Attributes:
        kind: ``"key"`` or ``"team"``.
        ident: the key's token or the team's id.
        spent: settled cost to add to ``spend`` (it was covered by the lease, which shrinks by it).
        keep: the part of the lease to keep whatever happens (what calls in flight hold).
        want: grant this much more when it fits (``spend + reserved + want <= max_budget``; 0:
            when anything is left); None: grant nothing (the lease shrinks to ``keep``).
        extra: the fraction of what is left after ``want`` to grant besides, when that is at
            least ``floor`` (else nothing besides: at the budget's edge a lease is exactly the call).
        have: the unused part of ``keep``: counted in what is left, and the extra granted is
            only what it lacks of its fraction (a periodic top-up of a lease that is not shrunk).
        floor: the smallest extra worth holding (a typical call's reservation).
        period: ``budget_duration`` in seconds, if the row has one (a due period starts first).
    """

    kind: str
    ident: str
    spent: float = 0.0
    keep: float = 0.0
    want: float | None = None
    extra: float = 0.0
    have: float = 0.0
    floor: float = 0.0
    period: float | None = None


@dataclass(frozen=True)
class LeaseState:
    """The outcome of one :class:`LeaseSync`.

    Attributes:
        found: whether the row exists (a deleted key or team: False, and no lease is held).
        granted: whether ``want`` was granted (False when ``want`` was None).
        lease: the lease this process holds now (``keep`` plus what was granted).
        spend: the row's ``spend`` after the sync.
        reserved: the row's ``reserved`` after the sync (every process's leases, this one's included).
        budget: the row's ``max_budget`` (``inf`` when it has none).
    """

    found: bool
    granted: bool
    lease: float
    spend: float
    reserved: float
    budget: float


class LeaseStore:
    """Budget leases in a :class:`~modelyard.store.Store` (the keys' and teams' tables).

    Args:
        store: the open store; its metadata creates the leases table with the others.
        owner: this process's id (unique per process: a random id).
    """

    def __init__(self, store: Store, owner: str) -> None:
        self._engine = store._engine
        self.owner = owner

    def __repr__(self) -> str:
        return f"LeaseStore(owner={self.owner!r})"

    def sync(self, items: list[LeaseSync], *, now: float | None = None) -> list[LeaseState]:
        """Write spend, resize this owner's leases and reclaim expired ones, in one transaction.

        For each item, on its row (locked first: its first statement is a write): add ``spent``
        to ``spend``; start a new budget period if one is due; drop this owner's lease row and
        every expired one; set ``reserved`` to the other leases' sum plus ``keep``; grant
        ``want`` (plus ``extra`` of what is left) when it fits; write this owner's lease row with
        its new amount and expiry. Every change to a row's leases goes through here, after the
        row's lock, so the sum is that of the live leases.
        """
        now = time.time() if now is None else now
        out: list[LeaseState] = []
        with self._engine.begin() as conn:
            for item in items:
                out.append(self._one(conn, item, now))
        return out

    def _one(self, conn: Any, item: LeaseSync, now: float) -> LeaseState:
        table, col = _TABLES[item.kind]
        lease_of = (leases_table.c.kind == item.kind) & (leases_table.c.ident == item.ident)
        touched = conn.execute(
            table.update().where(col == item.ident).values(spend=table.c.spend + item.spent)
        ).rowcount
        if not touched:
            conn.execute(leases_table.delete().where(lease_of))
            return LeaseState(False, False, 0.0, 0.0, 0.0, 0.0)
        if item.period is not None:
            conn.execute(
                table.update()
                .where(col == item.ident, table.c.budget_reset_at.is_not(None), table.c.budget_reset_at <= now)
                .values(spend=0.0, budget_reset_at=now + item.period)
            )
        conn.execute(leases_table.delete().where(lease_of, leases_table.c.owner == self.owner))
        conn.execute(leases_table.delete().where(lease_of, leases_table.c.expires_at < now))  # dead owners'
        # reserved is set to the sum of the leases left, plus what this owner keeps: exact (no float
        # drift from adding and subtracting), and a row can never keep an amount nobody holds.
        others = conn.execute(
            sa.select(sa.func.coalesce(sa.func.sum(leases_table.c.amount), 0.0)).where(lease_of)
        ).scalar_one()
        spend, reserved, budget = conn.execute(
            table.update()
            .where(col == item.ident)
            .values(reserved=float(others) + item.keep)
            .returning(table.c.spend, table.c.reserved, table.c.max_budget)
        ).one()
        spend, reserved = float(spend), float(reserved)
        budget = math.inf if budget is None else float(budget)
        grant, granted = 0.0, False
        if item.want is not None:
            remaining = budget - spend - reserved
            taken = spend + reserved  # compared as the per-call check did: the same float edge
            if taken + item.want <= budget if item.want > 0 else taken < budget:
                granted = True
                extra = 0.0
                if math.isfinite(remaining):
                    extra = item.extra * (remaining + item.have - item.want) - item.have
                grant = item.want + (extra if extra >= item.floor and extra > 0 else 0.0)
        lease = item.keep + grant
        if grant > 0:
            reserved = float(others) + lease
            conn.execute(table.update().where(col == item.ident).values(reserved=reserved))
        if lease > 0:
            row = {"kind": item.kind, "ident": item.ident, "owner": self.owner, "amount": lease,
                   "expires_at": now + LEASE_TTL}  # fmt: skip
            conn.execute(leases_table.insert().values(**row))
        return LeaseState(True, granted, lease, spend, reserved, budget)

    def leases(self, kind: str, ident: str) -> dict[str, tuple[float, float]]:
        """The leases on one row: owner -> (amount, expires_at) (for tests and operators)."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(leases_table.c.owner, leases_table.c.amount, leases_table.c.expires_at).where(
                    leases_table.c.kind == kind, leases_table.c.ident == ident
                )
            )
            return {r[0]: (float(r[1]), float(r[2])) for r in rows}
