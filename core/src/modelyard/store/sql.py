"""The store's tables and the :class:`Store` that reads and writes them (SQLAlchemy Core)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError

from ..errors import ConfigError

__all__ = ["BatchRecord", "FileRecord", "Store", "default_path"]

_metadata = sa.MetaData()

files_table = sa.Table(
    "modelyard_files",
    _metadata,
    sa.Column("id", sa.String(128), primary_key=True),
    sa.Column("deployment", sa.String(255), nullable=False),
    sa.Column("upstream_id", sa.String(255), nullable=False),
    sa.Column("purpose", sa.String(64), nullable=False, default="batch"),
    sa.Column("kind", sa.String(16), nullable=False, default="input"),
    sa.Column("batch_id", sa.String(128), nullable=True),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.UniqueConstraint("deployment", "upstream_id", name="uq_modelyard_files_upstream"),
)

batches_table = sa.Table(
    "modelyard_batches",
    _metadata,
    sa.Column("id", sa.String(128), primary_key=True),
    sa.Column("deployment", sa.String(255), nullable=False),
    sa.Column("upstream_id", sa.String(255), nullable=False),
    sa.Column("input_file_id", sa.String(128), nullable=True),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=False, index=True),
    sa.UniqueConstraint("deployment", "upstream_id", name="uq_modelyard_batches_upstream"),
)


# The store's other tables live beside the code that uses them; every one of them is created
# when a store is opened, whichever module opened it first.
_CREATE_LOCK = 0x6D6F64656C79  # "modely": the advisory lock held while tables are created
_TABLE_MODULES = ("fine_tuning", "keys", "ledger", "responses", "spend")


def _import_table_modules() -> None:
    import importlib

    for name in _TABLE_MODULES:
        importlib.import_module(f"{__package__}.{name}")


class FileRecord(BaseModel):
    """Where a file the proxy handed out really lives.

    Attributes:
        id: the id the proxy's clients see.
        deployment: the deployment (its ``model_info.id`` or name) whose resource holds it.
        upstream_id: the id on that resource.
        purpose: ``batch`` for inputs, ``batch_output`` for outputs and errors.
        kind: ``input``, ``output`` or ``error``.
        batch_id: the proxy batch id an output or error file belongs to.
    """

    model_config = ConfigDict(frozen=True)

    id: str
    deployment: str
    upstream_id: str
    purpose: str = "batch"
    kind: Literal["input", "output", "error"] = "input"
    batch_id: str | None = None
    created_at: int = Field(default_factory=lambda: int(time.time()))


class BatchRecord(BaseModel):
    """Where a batch the proxy handed out really runs."""

    model_config = ConfigDict(frozen=True)

    id: str
    deployment: str
    upstream_id: str
    input_file_id: str | None = None
    created_at: int = Field(default_factory=lambda: int(time.time()))
    seq: int = Field(default_factory=time.time_ns)
    """Orders batches (newest first) finer than ``created_at``'s seconds."""


def default_path() -> Path:
    """``MODELYARD_STORE_PATH``, else ``$XDG_DATA_HOME/modelyard/modelyard.db`` (``~/.local/share``)."""
    explicit = os.environ.get("MODELYARD_STORE_PATH")
    if explicit:
        return Path(explicit).expanduser()
    data_home = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(data_home) / "modelyard" / "modelyard.db"


SQLITE_CACHE_KIB = 512
"""SQLite's page cache per connection (its default is 2,000 KiB). The store's writes are appends
and its reads are by key or scans for reports; the operating system caches the file as well.
Measured on the bench: 1.2-1.7 MiB less RSS per proxy process once the spend table has grown."""


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """Each SQLite connection's settings: a small page cache, and ``synchronous=NORMAL`` once the
    file is in write-ahead-log mode (:func:`_write_ahead`; in the rollback journal's mode NORMAL
    would risk the file on a power failure)."""
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
    if cursor.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
        cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


_WAL_WAIT_SECONDS = 5.0


def _write_ahead(engine: sa.Engine) -> None:
    """Put the SQLite file in write-ahead-log mode (it stays so): a commit (a batch of spend rows,
    a budget's charge) is then an append to the ``-wal`` file, with no fsync of the database and
    no journal file made and removed, it survives a crash of the process, and writers block no
    readers (several workers on one file). With the rollback journal each commit fsynced twice;
    this mode used to be set only once a virtual key opened the key store.

    Switching needs the file to itself, and SQLite answers "locked" at once rather than waiting
    while another process holds a lock (creating the tables): tried again for up to 5 s.
    """
    import sqlite3

    deadline = time.monotonic() + _WAL_WAIT_SECONDS
    while True:
        try:
            with engine.connect() as conn:
                raw = conn.connection.dbapi_connection
                assert raw is not None
                if raw.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                    raw.execute("PRAGMA journal_mode=WAL")
            break
        except (OperationalError, sqlite3.OperationalError) as exc:  # the connection's own pragmas, or the switch
            if time.monotonic() > deadline:
                orig = exc.orig if isinstance(exc, OperationalError) else exc
                raise OperationalError("PRAGMA journal_mode=WAL", None, orig) from exc  # type: ignore[arg-type]
            time.sleep(0.05)
    engine.dispose()  # connections opened before the switch: synchronous=NORMAL on their next connect


def _engine_url(database_url: str | None, path: str | os.PathLike[str] | None) -> sa.URL:
    if database_url:
        try:
            url = sa.make_url(database_url)
        except SQLAlchemyError:
            raise ConfigError(
                "database_url is not a database URL such as postgresql://user:password@host:5432/db.",
                key="database_url",
            ) from None
        if url.drivername in ("postgres", "postgresql"):
            url = url.set(drivername="postgresql+psycopg")
        return url
    file = Path(path).expanduser() if path is not None else default_path()
    file.parent.mkdir(parents=True, exist_ok=True)
    return sa.URL.create("sqlite", database=str(file))


class Store:
    """The store; one per process, shared by threads.

    Args:
        database_url: a SQLAlchemy URL; ``postgresql://...`` uses psycopg 3. None: SQLite.
        path: the SQLite file when no ``database_url`` is given (default :func:`default_path`).

    Raises:
        ConfigError: the URL is malformed or the database cannot be opened (the message
            never shows the password).
    """

    def __init__(self, database_url: str | None = None, *, path: str | os.PathLike[str] | None = None) -> None:
        url = _engine_url(database_url, path)
        self.url = url.render_as_string(hide_password=True)
        try:
            self._engine = sa.create_engine(url, pool_pre_ping=url.get_backend_name() != "sqlite")
            if url.get_backend_name() == "sqlite":
                sa.event.listen(self._engine, "connect", _sqlite_pragmas)
            _import_table_modules()
            if url.get_backend_name() == "postgresql":
                # Instances started together on a new database would race to create the same
                # tables (a unique violation in PostgreSQL's catalog): one creates, the rest wait.
                with self._engine.begin() as conn:
                    conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _CREATE_LOCK})
                    _metadata.create_all(conn)
            else:
                # The same race on a new SQLite file ("table ... already exists" in all but the
                # first of the workers of --num_workers N): SQLite's write lock, taken before
                # the tables are looked for, makes the rest wait (up to the 5 s busy timeout).
                with self._engine.connect() as conn:
                    conn.connection.dbapi_connection.execute("BEGIN IMMEDIATE")  # type: ignore[union-attr]
                    _metadata.create_all(conn)
                    conn.commit()
                _write_ahead(self._engine)
        except (SQLAlchemyError, ImportError) as exc:
            engine = getattr(self, "_engine", None)
            if engine is not None:
                engine.dispose()  # its pooled connections would keep the file open (and locked) for nothing
            detail = type(getattr(exc, "orig", None) or exc).__name__
            raise ConfigError(f"Cannot open the store at {self.url} ({detail}).", key="database_url") from None

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    @property
    def engine(self) -> sa.Engine:
        """The SQLAlchemy engine (for the tables of other modules: :mod:`.spend`)."""
        return self._engine

    def close(self) -> None:
        """Release the connection pool."""
        self._engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ files

    def put_file(self, record: FileRecord) -> FileRecord:
        """Record a file; if its (deployment, upstream id) is already known, return that record."""
        try:
            with self._engine.begin() as conn:
                conn.execute(files_table.insert().values(**record.model_dump()))
            return record
        except IntegrityError:
            existing = self.file_for_upstream(record.deployment, record.upstream_id)
            if existing is None:
                raise
            return existing

    def get_file(self, file_id: str) -> FileRecord | None:
        """The record of a proxy file id, or None."""
        return self._one(files_table, FileRecord, files_table.c.id == file_id)  # type: ignore[return-value]

    def file_for_upstream(self, deployment: str, upstream_id: str) -> FileRecord | None:
        """The record of an upstream file id on a deployment, or None."""
        where = sa.and_(files_table.c.deployment == deployment, files_table.c.upstream_id == upstream_id)
        return self._one(files_table, FileRecord, where)  # type: ignore[return-value]

    def delete_file(self, file_id: str) -> bool:
        """Forget a file; True when it was known."""
        with self._engine.begin() as conn:
            return conn.execute(files_table.delete().where(files_table.c.id == file_id)).rowcount > 0

    def list_files(self, *, purpose: str | None = None) -> list[FileRecord]:
        """Every recorded file (of ``purpose``), newest first."""
        query = sa.select(files_table).order_by(files_table.c.created_at.desc(), files_table.c.id.desc())
        if purpose is not None:
            query = query.where(files_table.c.purpose == purpose)
        with self._engine.connect() as conn:
            return [FileRecord(**row._mapping) for row in conn.execute(query)]

    # ------------------------------------------------------------------ batches

    def put_batch(self, record: BatchRecord) -> BatchRecord:
        """Record a batch."""
        with self._engine.begin() as conn:
            conn.execute(batches_table.insert().values(**record.model_dump()))
        return record

    def get_batch(self, batch_id: str) -> BatchRecord | None:
        """The record of a proxy batch id, or None."""
        return self._one(batches_table, BatchRecord, batches_table.c.id == batch_id)  # type: ignore[return-value]

    def list_batches(self, *, after: str | None = None, limit: int = 20) -> tuple[list[BatchRecord], bool]:
        """A page of batches, newest first, after the batch id ``after``; and whether more follow."""
        query = sa.select(batches_table).order_by(batches_table.c.seq.desc(), batches_table.c.id.desc())
        if after is not None:
            anchor = self.get_batch(after)
            if anchor is None:
                return [], False
            query = query.where(
                sa.or_(
                    batches_table.c.seq < anchor.seq,
                    sa.and_(batches_table.c.seq == anchor.seq, batches_table.c.id < anchor.id),
                )
            )
        with self._engine.connect() as conn:
            rows = [BatchRecord(**row._mapping) for row in conn.execute(query.limit(limit + 1))]
        return rows[:limit], len(rows) > limit

    def _one(self, table: sa.Table, model: type[BaseModel], where: Any) -> BaseModel | None:
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(table).where(where)).first()
        return model(**row._mapping) if row is not None else None
