"""The store keeps its records across a restart, on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from modelyard.errors import ConfigError
from modelyard.store import BatchRecord, FileRecord, Store


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    """Keyword arguments that open the same database again and again."""
    if request.param == "sqlite":
        yield {"path": str(tmp_path / "store.db")}
    else:
        yield {"database_url": request.getfixturevalue("postgres_url")}


def _id(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex}"


def test_records_survive_reopening(database: dict[str, str]) -> None:
    file = FileRecord(id=_id("file-"), deployment="east", upstream_id=_id("file-"))
    batch = BatchRecord(id=_id("batch_"), deployment="east", upstream_id=_id("batch_"), input_file_id=file.id)
    output = FileRecord(id=_id("file-"), deployment="east", upstream_id=_id("file-"), purpose="batch_output",
                        kind="output", batch_id=batch.id)  # fmt: skip
    with Store(**database) as store:
        store.put_file(file)
        store.put_batch(batch)
        store.put_file(output)
    with Store(**database) as reopened:
        assert reopened.get_file(file.id) == file
        assert reopened.get_batch(batch.id) == batch
        assert reopened.file_for_upstream("east", output.upstream_id) == output
        assert reopened.get_file("file-unknown") is None


def test_the_same_upstream_file_is_recorded_once(database: dict[str, str]) -> None:
    upstream = _id("file-")
    with Store(**database) as store:
        first = store.put_file(FileRecord(id=_id("file-"), deployment="west", upstream_id=upstream, kind="output"))
        second = store.put_file(FileRecord(id=_id("file-"), deployment="west", upstream_id=upstream, kind="output"))
        assert second == first
        assert store.delete_file(first.id) is True
        assert store.get_file(first.id) is None


def test_batches_page_newest_first(database: dict[str, str]) -> None:
    deployment = _id("dep-")
    with Store(**database) as store:
        ids = [store.put_batch(BatchRecord(id=f"batch_{deployment}_{i}", deployment=deployment,
                                           upstream_id=_id("b"), seq=9_000_000_000_000_000_000 + i)).id
               for i in range(3)]  # fmt: skip
        page, more = store.list_batches(limit=2)
        assert [b.id for b in page] == [ids[2], ids[1]] and more
        page, more = store.list_batches(after=ids[1], limit=2)
        assert [b.id for b in page][:1] == [ids[0]]


def test_a_bad_url_is_a_config_error_without_the_password() -> None:
    with pytest.raises(ConfigError) as info:
        Store("postgresql://user:s3cret-pw@127.0.0.1:1/db")
    assert "s3cret-pw" not in str(info.value) and "s3cret-pw" not in repr(info.value)
    assert info.value.key == "database_url"


def test_instances_opening_a_new_postgresql_database_together_all_start(postgres_url: str) -> None:
    """Several proxies started at once on a new database: one creates the tables, none fails."""
    import threading

    import psycopg

    name = f"fresh_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    url = postgres_url.rsplit("/", 1)[0] + f"/{name}"
    barrier = threading.Barrier(6)
    opened: list[Store] = []
    failed: list[BaseException] = []

    def open_one() -> None:
        barrier.wait()
        try:
            opened.append(Store(url))
        except BaseException as exc:  # collected for the assertion
            failed.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for store in opened:
        store.close()
    assert not failed and len(opened) == 6


def test_sqlite_connections_keep_a_small_page_cache_and_write_ahead(tmp_path: Path) -> None:
    """A store alone (spend rows, no virtual key yet) is in WAL mode: a commit appends, with no
    fsync of the main file (the default rollback journal fsynced twice per spend batch)."""
    import sqlalchemy as sa
    from modelyard.store.keys import KeyStore
    from modelyard.store.sql import SQLITE_CACHE_KIB

    with Store(path=tmp_path / "cache.db") as store:
        for _ in range(2):  # and still once the key store shares the engine
            with store.engine.connect() as conn:
                assert conn.execute(sa.text("PRAGMA cache_size")).scalar() == -SQLITE_CACHE_KIB
                assert conn.execute(sa.text("PRAGMA journal_mode")).scalar() == "wal"
                assert conn.execute(sa.text("PRAGMA synchronous")).scalar() == 1  # NORMAL
            KeyStore(store)
