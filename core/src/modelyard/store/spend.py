"""Spend records: one row per proxy request (or finished batch), written in batches off the request path.

:class:`SpendRecorder` takes rows on the request path (:meth:`SpendRecorder.record`, an append
to a bounded in-memory queue, no I/O) and a background task writes them to the store's
``modelyard_spend`` table: every ``flush_interval`` seconds, or sooner once ``flush_rows`` are
waiting: the statements are made on the loop (one ``INSERT`` of many rows per set of NULL
columns) and run in a worker thread, so the event loop never waits on the database and the
thread holds the GIL as little as it can. :meth:`SpendRecorder.aclose` (the proxy's shutdown,
SIGTERM included) writes what is left. Rows older than the retention period are deleted now and then.

:class:`SpendLog` reads the table: a page of rows (``GET /spend/logs``) and totals grouped by
model, deployment, key, team, user or day (``GET /spend/report``). See docs/spend.md.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import itertools
import json
import logging
import operator
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from pydantic_core import to_json

from .sql import Store, _metadata

__all__ = ["GROUPS", "BatchOwners", "SpendLog", "SpendQuery", "SpendRecorder", "batch_owners_table", "spend_table", "usage_columns"]

log = logging.getLogger("modelyard.spend")

spend_table = sa.Table(
    "modelyard_spend",
    _metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("request_id", sa.String(128), nullable=False, index=True),
    sa.Column("start_time", sa.Float, nullable=False, index=True),
    sa.Column("end_time", sa.Float, nullable=False),
    sa.Column("day", sa.String(10), nullable=False),
    sa.Column("call_type", sa.String(64), nullable=False),
    sa.Column("endpoint", sa.String(255), nullable=True),
    sa.Column("model_group", sa.String(255), nullable=True, index=True),
    sa.Column("model_id", sa.String(255), nullable=True),
    sa.Column("model", sa.String(255), nullable=True),
    sa.Column("batch_id", sa.String(128), nullable=True),
    sa.Column("key_id", sa.String(128), nullable=True, index=True),
    sa.Column("team_id", sa.String(128), nullable=True),
    sa.Column("user_id", sa.String(128), nullable=True),
    sa.Column("status", sa.Integer, nullable=False),
    sa.Column("error", sa.String(128), nullable=True),
    sa.Column("stream", sa.Boolean, nullable=False, default=False),
    sa.Column("latency_ms", sa.Float, nullable=False),
    sa.Column("prompt_tokens", sa.BigInteger, nullable=False, default=0),
    sa.Column("completion_tokens", sa.BigInteger, nullable=False, default=0),
    sa.Column("total_tokens", sa.BigInteger, nullable=False, default=0),
    sa.Column("cached_tokens", sa.BigInteger, nullable=False, default=0),
    sa.Column("reasoning_tokens", sa.BigInteger, nullable=False, default=0),
    sa.Column("audio_input_tokens", sa.BigInteger, nullable=False, default=0),
    sa.Column("audio_output_tokens", sa.BigInteger, nullable=False, default=0),
    sa.Column("spend", sa.Float, nullable=True),
    sa.Column("usage", sa.Text, nullable=True),
)
"""The spend rows; ``spend`` is the cost in USD (None when no price was known), as LiteLLM's
``LiteLLM_SpendLogs.spend``; ``model_id`` the deployment (``model_info.id``), ``usage`` the
usage as the upstream reported it (JSON), ``day`` the UTC date of ``start_time`` (grouping)."""

batch_owners_table = sa.Table(
    "modelyard_batch_spend",
    _metadata,
    sa.Column("batch_id", sa.String(255), primary_key=True),
    sa.Column("key_id", sa.String(128), nullable=True),
    sa.Column("team_id", sa.String(128), nullable=True),
    sa.Column("user_id", sa.String(128), nullable=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("priced_at", sa.Float, nullable=True),
)
"""Who created each batch (the principal its spend is recorded against) and whether its
output has been priced (set once, by the first instance to see it completed)."""

_COLUMNS = frozenset(c.name for c in spend_table.columns) - {"id"}

GROUPS: Mapping[str, str] = {
    "model": "model_group",
    "model_group": "model_group",
    "deployment": "model_id",
    "model_id": "model_id",
    "api_key": "key_id",
    "key": "key_id",
    "team": "team_id",
    "team_id": "team_id",
    "user": "user_id",
    "user_id": "user_id",
    "day": "day",
    "call_type": "call_type",
}
"""``group_by`` values of the report and the column each groups by."""


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


_TOKEN_COLUMNS = ("prompt_tokens", "completion_tokens", "total_tokens", "cached_tokens", "reasoning_tokens",
                  "audio_input_tokens", "audio_output_tokens")  # fmt: skip
_NO_TOKENS = (0, 0, 0, 0, 0, 0, 0)


def _tokens(usage: Mapping[str, Any]) -> tuple[int, int, int, int, int, int, int]:
    """The token columns of a non-empty usage dict, in :data:`_TOKEN_COLUMNS`' order."""
    prompt = _int(usage.get("prompt_tokens")) or _int(usage.get("input_tokens"))
    completion = _int(usage.get("completion_tokens")) or _int(usage.get("output_tokens"))
    inp = usage.get("prompt_tokens_details") or usage.get("input_tokens_details") or {}
    out = usage.get("completion_tokens_details") or usage.get("output_tokens_details") or {}
    inp = inp if type(inp) is dict or isinstance(inp, Mapping) else {}  # a dict first: no ABC check
    out = out if type(out) is dict or isinstance(out, Mapping) else {}
    return (
        prompt, completion, _int(usage.get("total_tokens")) or prompt + completion,
        _int(inp.get("cached_tokens")), _int(out.get("reasoning_tokens")),
        _int(inp.get("audio_tokens")), _int(out.get("audio_tokens")),
    )  # fmt: skip


def usage_columns(usage: Mapping[str, Any] | None) -> dict[str, int]:
    """The token columns of a usage dict (chat's ``prompt_tokens`` ... or ``input_tokens`` ...)."""
    if not usage:
        return {}
    return dict(zip(_TOKEN_COLUMNS, _tokens(usage), strict=True))


def _day(ts: float) -> str:
    return _day_of(int(ts // 86400))


@functools.lru_cache(maxsize=64)
def _day_of(days: int) -> str:
    return datetime.fromtimestamp(days * 86400, UTC).strftime("%Y-%m-%d")


_INSERTED = tuple(c.name for c in spend_table.columns if c.name != "id")
"""The columns an insert fills, in the order :func:`_finish` gives their values."""


def _usage_json(usage: Mapping[str, Any]) -> str:
    """The usage as compact JSON: pydantic-core's encoder (a sixth of ``json.dumps``'s time for a
    chat usage); ``json.dumps`` for what it refuses (a lone surrogate in a string)."""
    try:
        return to_json(usage).decode()
    except ValueError:
        return json.dumps(usage, separators=(",", ":"))


_Row = tuple[Any, ...]
"""A queued row (:meth:`SpendRecorder.record`): request_id, start_time, end_time, call_type,
endpoint, model_group, model_id, model, batch_id, key_id, team_id, user_id, status, error,
stream, spend, usage."""


def _finish(row: _Row) -> _Row:
    """A queued row as the table takes it, in :data:`_INSERTED`' order: its day, latency, token
    columns and usage JSON added."""
    (request_id, start, end, call_type, endpoint, model_group, model_id, model, batch_id, key_id, team_id,
     user_id, status, error, stream, spend, usage) = row  # fmt: skip
    return (
        request_id, start, end, _day(start), call_type, endpoint, model_group, model_id, model, batch_id, key_id,
        team_id, user_id, status, error, stream, round((end - start) * 1000, 3),
        *(_tokens(usage) if usage else _NO_TOKENS), spend, _usage_json(usage) if usage else None,
    )  # fmt: skip


_NULLABLE = tuple(i for i, name in enumerate(_INSERTED) if spend_table.c[name].nullable)
_nullable = operator.itemgetter(*_NULLABLE)
_NONES = (None,) * len(_NULLABLE)


_MARKERS = {"qmark": "?", "format": "%s", "pyformat": "%s"}
"""The positional marker of each DB-API parameter style that has one (SQLite's sqlite3: ``?``;
psycopg: ``%s``, which it takes beside its named ``%(name)s``)."""


def _max_parameters(engine: sa.Engine) -> int:
    """The most parameters one statement of ``engine`` may bind: SQLite's own limit (32,766 since
    3.32, 999 before), PostgreSQL's 65,535, and 999 for any other database."""
    if engine.dialect.name == "postgresql":
        return 65_535
    if engine.dialect.name == "sqlite":
        import sqlite3

        with engine.connect() as conn:
            getlimit = getattr(conn.connection.dbapi_connection, "getlimit", None)
            if getlimit is not None:
                return int(getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER))
    return 999


STATEMENT_ROWS = 64
"""Rows per multi-row INSERT at most (fewer where the database's parameter limit says so: 32 on
SQLite builds older than 3.32). Larger statements cost memory rather than CPU: sqlite3 keeps a
connection's last 128 statements prepared, and statements of up to 512 rows left a proxy with a
virtual key 4 MiB larger after a bench run, for no measurable CPU (issue 17, round twelve)."""


_Statement = tuple[str | sa.Insert, Any]
"""An INSERT and its parameters: SQL text with a flat tuple (one statement, several rows), or
SQLAlchemy's statement with a list of dicts (the driver's executemany)."""


class _Insert:
    """The INSERT of the spend rows whose NULL columns are ``nulls`` (over :data:`_NULLABLE`):
    those columns are left out (NULL by default).

    With a positional parameter style (SQLite's, psycopg's) a statement takes ``most_rows`` rows
    (a power of two, :data:`STATEMENT_ROWS`), and the rest of a batch is cut into statements of
    powers of two: 500 rows are 7 x 64 + 32 + 16 + 4. So a connection prepares statements of a
    few sizes only: sqlite3 keeps the last 128 statements prepared, and one per batch size held
    ~80 MiB. The text is made here: SQLAlchemy's compiler takes ~0.5 ms per row of a multi-row
    INSERT. Any other parameter style goes through SQLAlchemy, one row per parameter set.
    """

    def __init__(self, dialect: sa.Dialect, nulls: tuple[bool, ...], most_rows: int) -> None:
        keep = [True] * len(_INSERTED)
        for i, null in zip(_NULLABLE, nulls, strict=True):
            keep[i] = not null
        self.keep = keep
        self.names = names = tuple(itertools.compress(_INSERTED, keep))
        self.most_rows = most_rows
        marker = _MARKERS.get(dialect.paramstyle)
        self._generic = spend_table.insert() if marker is None else None
        quote = dialect.identifier_preparer
        self._head = f"INSERT INTO {quote.format_table(spend_table)} ({', '.join(map(quote.quote, names))}) VALUES "
        self._values = f"({', '.join([marker or ''] * len(names))})"
        self._texts: dict[int, str] = {}

    def statements(self, rows: list[_Row]) -> list[_Statement]:
        """The statements that write ``rows`` (each in :data:`_INSERTED`' order)."""
        keep = self.keep
        if self._generic is not None:
            return [(self._generic, [dict(zip(self.names, itertools.compress(r, keep), strict=True)) for r in rows])]
        out: list[_Statement] = []
        start, left, size = 0, len(rows), self.most_rows
        while left:
            while size > left:
                size >>= 1
            text = self._texts.get(size)
            if text is None:
                text = self._texts[size] = self._head + ", ".join([self._values] * size)
            flat = tuple(itertools.chain.from_iterable(itertools.compress(r, keep) for r in rows[start : start + size]))
            out.append((text, flat))
            start += size
            left -= size
        return out


@dataclass(slots=True)
class _Batch:
    """Queued rows taken for one write, and the statements that write them."""

    rows: list[_Row]
    """As they were queued: back to the front of the queue if the write fails."""
    statements: list[_Statement]


class SpendRecorder:
    """Collects spend rows on the request path and writes them in batches off it.

    Args:
        store: the :class:`~modelyard.store.Store` to write to (its table is created if missing).
        flush_interval: seconds between writes.
        flush_rows: write as soon as this many rows wait.
        max_queue: rows kept in memory while the database cannot be written; beyond it the
            oldest are dropped (counted in :attr:`dropped`, logged).
        retention_days: delete rows older than this (None: keep them all).
        purge_interval: seconds between purges.
    """

    def __init__(self, store: Store, *, flush_interval: float = 1.0, flush_rows: int = 500,
                 max_queue: int = 100_000, retention_days: float | None = None,
                 purge_interval: float = 3600.0) -> None:  # fmt: skip
        self.store = store
        self.flush_interval = flush_interval
        self.flush_rows = flush_rows
        self.retention_days = retention_days
        self.purge_interval = purge_interval
        self.dropped = 0
        self.written = 0
        self._queue: collections.deque[_Row] = collections.deque(maxlen=max_queue)
        self._lock = threading.Lock()  # one writer at a time (the task, a final flush)
        # Batches taken from the queue and not yet written (or put back): a flush waits for them.
        self._unwritten = 0
        self._written = threading.Condition()
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._last_purge = 0.0
        self._inserts: dict[tuple[bool, ...], _Insert] = {}
        spend_table.create(store.engine, checkfirst=True)
        # Rows per statement: the largest power of two within STATEMENT_ROWS, the database's
        # parameter limit and flush_rows.
        most = min(flush_rows, STATEMENT_ROWS, max(1, _max_parameters(store.engine) // len(_INSERTED)))
        self._statement_rows = 1 << (most.bit_length() - 1)

    def __repr__(self) -> str:
        return f"SpendRecorder({self.store.url!r}, queued={len(self._queue)})"

    # ------------------------------------------------------------------ request path

    def record(
        self,
        *,
        request_id: str,
        call_type: str,
        status: int,
        start_time: float,
        end_time: float | None = None,
        model_group: str | None = None,
        model_id: str | None = None,
        model: str | None = None,
        endpoint: str | None = None,
        usage: Mapping[str, Any] | None = None,
        spend: float | None = None,
        stream: bool = False,
        error: str | None = None,
        batch_id: str | None = None,
        key_id: str | None = None,
        team_id: str | None = None,
        user_id: str | None = None,
    ) -> None:
        """Queue one row; never blocks, never raises for a full queue (the oldest row goes).

        Args:
            request_id: the proxy's ``x-request-id`` (a batch's id for a batch's usage).
            call_type: the operation (``chat``, ``embeddings`` ..., ``batch``).
            status: the HTTP status answered.
            start_time, end_time: UNIX times (end defaults to now).
            model_group: the model name the client asked for.
            model_id: the deployment that served it (``model_info.id``).
            model: the model the upstream reported.
            endpoint: the path called.
            usage: the usage reported (tokens by kind are split into columns).
            spend: the cost in USD, None when no price is known.
            key_id, team_id, user_id: the principal that called (a virtual key's hash, its
                team and user); None for the master key.
        """
        # Only what the caller knows goes in now; the day, the token columns and the usage's JSON
        # are worked out by the writer, off the request path (:func:`_finish`).
        row = (request_id, start_time, time.time() if end_time is None else end_time, call_type, endpoint, model_group,
               model_id, model, batch_id, key_id, team_id, user_id, status, error, stream, spend, usage)  # fmt: skip
        queue = self._queue
        if len(queue) == queue.maxlen:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.warning("the spend queue is full (%d rows): %d rows dropped so far", queue.maxlen, self.dropped)
        queue.append(row)
        if len(queue) >= self.flush_rows and self._wake is not None:
            self._wake.set()

    # ------------------------------------------------------------------ off the request path

    def start(self) -> None:
        """Start the background writer on the running loop."""
        if self._task is None:
            self._wake = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancel (aclose's)
            # that lands in the turn the wake-up completes (CPython gh-86296), and the writer
            # went on waiting for ever.
            full = False
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.flush_interval):
                    await self._wake.wait()
                    full = True
            self._wake.clear()
            # Woken by a full batch: full batches only, the rest waits for the next wake-up (or
            # the interval). Taking the remainder too kept the writer busy without a pause under
            # load, in transactions of ~115 rows at 3,700 requests/s (issue 17, round thirteen).
            await self._aflush(self.flush_rows if full else 1)

    async def aclose(self) -> None:
        """Stop the writer and write every queued row (the proxy's shutdown)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await asyncio.to_thread(self.flush)

    async def aflush(self) -> int:
        """:meth:`flush` from the event loop: the statements are made on the loop and only run
        in a worker thread.

        A thread running Python beside the loop takes the GIL every time the loop lets go of it
        (uvloop does around each poll) and the loop waits to get it back: making the rows'
        values and statements in the thread cost the proxy ~0.9 context switches per request,
        and 10-30 µs of CPU per request more than doing that work on the loop (issue 17, round
        twelve). The thread now runs the statements alone, and the driver lets go of the GIL
        while the database works.
        """
        return await self._aflush(1)

    async def _aflush(self, least: int) -> int:
        """:meth:`aflush` while at least ``least`` rows are queued."""
        written = 0
        while len(self._queue) >= least and (batch := self._take()) is not None:
            if not await asyncio.to_thread(self._write, batch):
                break
            written += len(batch.rows)
        if self._unwritten:
            # Another flush (the background task's) took rows that its thread is still writing:
            # they are not in the queue any more, and a report read after this flush must see them.
            await asyncio.to_thread(self._wait_unwritten)
        if self._purge_due():
            await asyncio.to_thread(self.purge)
        return written

    def _wait_unwritten(self, timeout: float = 60.0) -> None:
        with self._written:
            self._written.wait_for(lambda: not self._unwritten, timeout)

    def flush(self) -> int:
        """Write every queued row now, one transaction per ``flush_rows``; purge when due.

        Returns the rows written. On a database error the rows stay queued for the next try.
        """
        written = 0
        with self._lock:
            while (batch := self._take()) is not None:
                if not self._write_locked(batch):
                    break
                written += len(batch.rows)
        if self._purge_due():
            self.purge()
        return written

    def _take(self) -> _Batch | None:
        """Up to ``flush_rows`` queued rows, and the statements that write them: one per set of
        NULL columns, within the database's parameter limit (:class:`_Insert`)."""
        queue = self._queue
        if not queue:
            return None
        rows = [queue.popleft() for _ in range(min(len(queue), self.flush_rows))]
        groups: dict[tuple[bool, ...], list[_Row]] = {}
        for row in map(_finish, rows):
            nulls = tuple(map(operator.is_, _nullable(row), _NONES))
            group = groups.get(nulls)
            if group is None:
                group = groups[nulls] = []
            group.append(row)
        statements: list[_Statement] = []
        for nulls, group in groups.items():
            insert = self._inserts.get(nulls)
            if insert is None:
                insert = self._inserts[nulls] = _Insert(self.store.engine.dialect, nulls, self._statement_rows)
            statements += insert.statements(group)
        with self._written:
            self._unwritten += 1
        return _Batch(rows, statements)

    def _write(self, batch: _Batch) -> bool:
        with self._lock:
            return self._write_locked(batch)

    def _write_locked(self, batch: _Batch) -> bool:
        """Run a batch's statements in one transaction; False (the rows queued again) if it fails.

        The values are plain str / int / float / bool, which every driver takes as they are:
        SQLAlchemy's per-row parameter processing (half the CPU of a write) is skipped, and the
        NULL columns are left out (the sqlite3 driver binds a None for ~0.75 µs against ~0.15
        for a number: it looks for an adapter first).
        """
        try:
            with self.store.engine.begin() as conn:
                for statement, parameters in batch.statements:
                    if isinstance(statement, str):
                        conn.exec_driver_sql(statement, parameters)
                    else:
                        conn.execute(statement, parameters)
        except sa.exc.SQLAlchemyError as exc:
            self._queue.extendleft(reversed(batch.rows))
            log.warning("writing %d spend rows failed (%s); kept for the next try", len(batch.rows), type(exc).__name__)
            return False
        else:
            self.written += len(batch.rows)
            return True
        finally:
            with self._written:
                self._unwritten -= 1
                if not self._unwritten:
                    self._written.notify_all()

    def _purge_due(self) -> bool:
        if self.retention_days is None or time.monotonic() - self._last_purge < self.purge_interval:
            return False
        self._last_purge = time.monotonic()
        return True

    def purge(self, now: float | None = None) -> int:
        """Delete rows that started more than ``retention_days`` ago; returns how many."""
        if self.retention_days is None:
            return 0
        cutoff = (time.time() if now is None else now) - self.retention_days * 86400
        try:
            with self.store.engine.begin() as conn:
                deleted = conn.execute(spend_table.delete().where(spend_table.c.start_time < cutoff)).rowcount
        except sa.exc.SQLAlchemyError as exc:
            log.warning("purging old spend rows failed (%s)", type(exc).__name__)
            return 0
        if deleted:
            log.info("purged %d spend rows older than %g days", deleted, self.retention_days)
        return int(deleted)


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class SpendQuery:
    """Filters of ``/spend/logs`` and ``/spend/report`` (all optional; times are UNIX seconds,
    ``end_time`` exclusive)."""

    start_time: float | None = None
    end_time: float | None = None
    model_group: str | None = None
    model_id: str | None = None
    request_id: str | None = None
    key_id: str | None = None
    team_id: str | None = None
    user_id: str | None = None
    batch_id: str | None = None
    call_type: str | None = None

    def where(self) -> list[Any]:
        """The SQL conditions."""
        c = spend_table.c
        out: list[Any] = []
        if self.start_time is not None:
            out.append(c.start_time >= self.start_time)
        if self.end_time is not None:
            out.append(c.start_time < self.end_time)
        for name in ("model_group", "model_id", "request_id", "key_id", "team_id", "user_id", "batch_id", "call_type"):
            value = getattr(self, name)
            if value is not None:
                out.append(c[name] == value)
        return out


class SpendLog:
    """Reads the spend rows of a store."""

    def __init__(self, store: Store) -> None:
        self.store = store
        spend_table.create(store.engine, checkfirst=True)

    def logs(self, query: SpendQuery, *, page: int = 1, page_size: int = 50) -> tuple[list[dict[str, Any]], int]:
        """One page of rows, newest first, and the number of rows matching."""
        where = query.where()
        select = sa.select(*(spend_table.c[n] for n in sorted(_COLUMNS))).where(*where)
        select = select.order_by(spend_table.c.start_time.desc(), spend_table.c.id.desc())
        select = select.limit(page_size).offset((page - 1) * page_size)
        count = sa.select(sa.func.count()).select_from(spend_table).where(*where)
        with self.store.engine.connect() as conn:
            rows = [_row(r._mapping) for r in conn.execute(select)]
            total = int(conn.execute(count).scalar_one())
        return rows, total

    def report(self, query: SpendQuery, group_by: Sequence[str]) -> list[dict[str, Any]]:
        """Totals (spend, requests, tokens) per group, largest spend first."""
        c = spend_table.c
        keys = [c[GROUPS[g]].label(g) for g in group_by]
        select = sa.select(
            *keys,
            sa.func.count().label("requests"),
            sa.func.coalesce(sa.func.sum(c.spend), 0.0).label("spend"),
            sa.func.count(c.spend).label("priced_requests"),
            sa.func.coalesce(sa.func.sum(c.prompt_tokens), 0).label("prompt_tokens"),
            sa.func.coalesce(sa.func.sum(c.completion_tokens), 0).label("completion_tokens"),
            sa.func.coalesce(sa.func.sum(c.total_tokens), 0).label("total_tokens"),
        ).where(*query.where())
        if keys:
            select = select.group_by(*(c[GROUPS[g]] for g in group_by))
        with self.store.engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(select)]
        for row in rows:
            row["spend"] = float(row["spend"])
            for name in ("requests", "priced_requests", "prompt_tokens", "completion_tokens", "total_tokens"):
                row[name] = int(row[name])
        rows.sort(key=lambda r: (-r["spend"], *(str(r[g]) for g in group_by)))
        return rows


def _row(mapping: Mapping[Any, Any]) -> dict[str, Any]:
    row = dict(mapping)
    usage = row.get("usage")
    row["usage"] = json.loads(usage) if usage else None
    return row


class BatchOwners:
    """Who created each batch, and a claim so that a completed batch is priced exactly once
    (across proxy instances sharing a database)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        batch_owners_table.create(store.engine, checkfirst=True)

    def created(self, batch_id: str, *, key_id: str | None = None, team_id: str | None = None,
                user_id: str | None = None) -> None:  # fmt: skip
        """Remember the principal that created ``batch_id``."""
        row = {"batch_id": batch_id, "key_id": key_id, "team_id": team_id, "user_id": user_id, "created_at": time.time()}
        try:
            with self.store.engine.begin() as conn:
                conn.execute(batch_owners_table.insert().values(**row))
        except sa.exc.IntegrityError:
            pass  # known already

    def claim(self, batch_id: str) -> dict[str, Any] | None:
        """Claim the pricing of a completed batch: its owner row, or None when it was priced already.

        A batch created elsewhere (not through this proxy's store) is claimed with no owner.
        """
        t = batch_owners_table
        now = time.time()
        with self.store.engine.begin() as conn:
            claimed = conn.execute(
                t.update().where(t.c.batch_id == batch_id, t.c.priced_at.is_(None)).values(priced_at=now)
            ).rowcount
            if claimed:
                row = conn.execute(sa.select(t).where(t.c.batch_id == batch_id)).first()
                return dict(row._mapping) if row is not None else None
            if conn.execute(sa.select(t.c.batch_id).where(t.c.batch_id == batch_id)).first() is not None:
                return None  # priced already
        try:
            with self.store.engine.begin() as conn:
                conn.execute(t.insert().values(batch_id=batch_id, created_at=now, priced_at=now))
        except sa.exc.IntegrityError:
            return None  # another instance claimed it in between
        return {"batch_id": batch_id, "key_id": None, "team_id": None, "user_id": None}

    def release(self, batch_id: str) -> None:
        """Undo a claim whose pricing failed, so the next retrieve tries again."""
        t = batch_owners_table
        with self.store.engine.begin() as conn:
            conn.execute(t.update().where(t.c.batch_id == batch_id).values(priced_at=None))
