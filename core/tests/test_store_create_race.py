"""Several processes opening a new SQLite store at once (the workers of ``--num_workers N``) all succeed.

Each looked for the tables, found none, and created them: every one but the first failed with
"table ... already exists" and its worker stopped the server (exit 3). Seen in bench runs of two
workers; with three processes on a new file, 11 of 20 attempts failed.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from modelyard.store import Store
from modelyard.store.sql import _metadata


def test_a_store_opened_while_another_creates_the_tables_waits_for_it(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    first = sa.create_engine(sa.URL.create("sqlite", database=str(path)))
    opened: list[Any] = []

    def second() -> None:
        try:
            opened.append(Store(path=path))
        except Exception as exc:  # reported below
            opened.append(exc)

    with first.connect() as conn:
        # The first process: it holds the write lock while it creates the tables.
        conn.connection.dbapi_connection.execute("BEGIN IMMEDIATE")  # type: ignore[union-attr]
        _metadata.create_all(conn)
        thread = threading.Thread(target=second)
        thread.start()
        time.sleep(0.5)  # the second has looked for the tables (or waits for the lock to do so)
        conn.commit()
    thread.join(30)
    first.dispose()
    assert len(opened) == 1 and isinstance(opened[0], Store), opened
    opened[0].close()


def _open(path: str, barrier: Any, results: Any) -> None:
    barrier.wait()
    try:
        Store(path=path).close()
        results.put("ok")
    except Exception as exc:  # reported by the test
        results.put(str(exc))


def test_processes_opening_a_new_store_at_once_all_succeed(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    for attempt in range(4):
        path = str(tmp_path / f"store-{attempt}.db")
        barrier, results = ctx.Barrier(3), ctx.Queue()
        procs = [ctx.Process(target=_open, args=(path, barrier, results)) for _ in range(3)]
        for proc in procs:
            proc.start()
        answers = [results.get(timeout=60) for _ in procs]
        for proc in procs:
            proc.join(30)
        assert answers == ["ok"] * 3, answers


def test_a_store_that_cannot_switch_to_write_ahead_logging_says_which_store(tmp_path: Path, monkeypatch: Any) -> None:
    """Another process reading the file (a shared lock held) keeps it in the rollback journal's
    mode: the switch is retried, then the open fails as any other store that cannot be opened."""
    import sqlite3

    from modelyard.errors import ConfigError
    from modelyard.store import sql

    path = tmp_path / "store.db"
    Store(path=path).close()
    with sqlite3.connect(path) as setup:
        setup.execute("PRAGMA journal_mode=DELETE")
    monkeypatch.setattr(sql, "_WAL_WAIT_SECONDS", 0.3)
    reader = sqlite3.connect(path, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM sqlite_master").fetchone()  # holds the shared lock
    try:
        started = time.monotonic()
        try:
            Store(path=path)
        except ConfigError as exc:
            assert "Cannot open the store at sqlite:///" in str(exc) and "(OperationalError)" in str(exc)
        else:
            raise AssertionError("the store opened while it could not switch to WAL")
        assert time.monotonic() - started >= 0.3  # it waited before giving up
    finally:
        reader.execute("COMMIT")
        reader.close()
    with Store(path=path) as store, store.engine.connect() as conn:  # the reader gone: it switches
        assert conn.execute(sa.text("PRAGMA journal_mode")).scalar() == "wal"
