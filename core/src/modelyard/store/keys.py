"""Virtual keys and teams in the store: their rows, limits and running spend.

Two tables beside the files and batches of :mod:`.sql` (same metadata, created on first open):
``modelyard_keys`` (one row per virtual key, keyed by the SHA-256 of the key: the key itself is
never stored) and ``modelyard_teams``. Each row carries its running ``spend`` (USD, the real
cost of its calls) and ``reserved`` (the sum of the budget leases the proxy processes hold on
it: :mod:`.ledger`, which also holds the budget checks).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field

from .sql import Store, _metadata

__all__ = ["KeyRecord", "KeyStore", "TeamRecord", "parse_duration"]

_LIMITS = (
    sa.Column("models", sa.JSON, nullable=False, default=list),
    sa.Column("max_budget", sa.Float, nullable=True),
    sa.Column("spend", sa.Float, nullable=False, default=0.0),
    sa.Column("reserved", sa.Float, nullable=False, default=0.0),
    sa.Column("budget_duration", sa.String(32), nullable=True),
    sa.Column("budget_reset_at", sa.Float, nullable=True),
    sa.Column("rpm_limit", sa.BigInteger, nullable=True),
    sa.Column("tpm_limit", sa.BigInteger, nullable=True),
    sa.Column("max_parallel_requests", sa.BigInteger, nullable=True),
    sa.Column("metadata", sa.JSON, nullable=False, default=dict),
    sa.Column("blocked", sa.Boolean, nullable=False, default=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)

keys_table = sa.Table(
    "modelyard_keys",
    _metadata,
    sa.Column("token", sa.String(64), primary_key=True),
    sa.Column("key_name", sa.String(32), nullable=False),
    sa.Column("key_alias", sa.String(255), nullable=True, unique=True),
    sa.Column("team_id", sa.String(128), nullable=True, index=True),
    sa.Column("user_id", sa.String(255), nullable=True, index=True),
    sa.Column("expires", sa.Float, nullable=True),
    *(c._copy() for c in _LIMITS),
)

teams_table = sa.Table(
    "modelyard_teams",
    _metadata,
    sa.Column("team_id", sa.String(128), primary_key=True),
    sa.Column("team_alias", sa.String(255), nullable=True),
    *(c._copy() for c in _LIMITS),
)

_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d|w|mo)\s*$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "mo": 30 * 86400}


def parse_duration(value: str, field: str) -> float:
    """Seconds in a LiteLLM duration (``30s``, ``15m``, ``1h``, ``7d``, ``2w``, ``1mo`` = 30 days).

    Raises:
        ValueError: naming ``field`` when the value is not such a duration.
    """
    found = _DURATION.match(value)
    if found is None:
        raise ValueError(
            f"{field!r} must be a duration such as '30s', '15m', '1h', '7d' or '1mo', got {value!r}."
        )
    return int(found.group(1)) * _SECONDS[found.group(2)]


class _Limits(BaseModel):
    model_config = ConfigDict(frozen=True)

    models: list[str] = Field(default_factory=list)
    max_budget: float | None = None
    spend: float = 0.0
    reserved: float = 0.0
    budget_duration: str | None = None
    budget_reset_at: float | None = None
    rpm_limit: int | None = None
    tpm_limit: int | None = None
    max_parallel_requests: int | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    blocked: bool = False
    created_at: float = Field(default_factory=time.time)
    updated_at: float = Field(default_factory=time.time)


class KeyRecord(_Limits):
    """One virtual key as stored: its hash (``token``), masked name and limits; never the key."""

    token: str
    key_name: str
    key_alias: str | None = None
    team_id: str | None = None
    user_id: str | None = None
    expires: float | None = None


class TeamRecord(_Limits):
    """One team: the models, budget and limits that bound each of its keys."""

    team_id: str
    team_alias: str | None = None


class KeyStore:
    """Reads and writes keys and teams through a :class:`~modelyard.store.Store`'s engine.

    Every method is synchronous (SQLAlchemy Core); the proxy calls them in a worker thread.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self._engine = store._engine  # SQLite in WAL mode (store.sql._write_ahead): budgets write twice per call

    # ------------------------------------------------------------------ keys

    def put_key(self, record: KeyRecord) -> KeyRecord:
        """Insert a key.

        Raises:
            ValueError: its ``key_alias`` is already taken.
        """
        try:
            with self._engine.begin() as conn:
                conn.execute(keys_table.insert().values(**record.model_dump()))
        except sa.exc.IntegrityError:
            raise ValueError(
                f"'key_alias' {record.key_alias!r} is already used by another key."
            ) from None
        return record

    def get_key(self, token: str) -> KeyRecord | None:
        """The key whose hash is ``token``, or None."""
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(keys_table).where(keys_table.c.token == token)).first()
        return KeyRecord(**row._mapping) if row is not None else None

    def key_with_team(self, token: str) -> tuple[KeyRecord | None, TeamRecord | None]:
        """The key and its team in one round trip (the authentication lookup)."""
        query = (
            sa.select(keys_table, teams_table)
            .select_from(
                keys_table.outerjoin(teams_table, keys_table.c.team_id == teams_table.c.team_id)
            )
            .where(keys_table.c.token == token)
        )
        with self._engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None:
            return None, None
        values = list(row)
        key_cols = [c.name for c in keys_table.columns]
        key = KeyRecord(**dict(zip(key_cols, values[: len(key_cols)], strict=True)))
        team_values = dict(
            zip([c.name for c in teams_table.columns], values[len(key_cols) :], strict=True)
        )
        team = TeamRecord(**team_values) if team_values["team_id"] is not None else None
        return key, team

    def key_by_alias(self, alias: str) -> KeyRecord | None:
        """The key called ``alias``, or None."""
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(keys_table).where(keys_table.c.key_alias == alias)).first()
        return KeyRecord(**row._mapping) if row is not None else None

    def update_key(self, token: str, values: dict[str, Any]) -> KeyRecord | None:
        """Change a key's fields; the updated key, or None when it does not exist.

        Raises:
            ValueError: the new ``key_alias`` is already taken.
        """
        try:
            with self._engine.begin() as conn:
                changed = conn.execute(
                    keys_table.update()
                    .where(keys_table.c.token == token)
                    .values(**values, updated_at=time.time())
                ).rowcount
        except sa.exc.IntegrityError:
            raise ValueError(
                f"'key_alias' {values.get('key_alias')!r} is already used by another key."
            ) from None
        return self.get_key(token) if changed else None

    def delete_keys(self, tokens: Iterable[str]) -> list[str]:
        """Delete keys by hash; the hashes that existed."""
        wanted = list(dict.fromkeys(tokens))
        with self._engine.begin() as conn:
            found = [
                r[0]
                for r in conn.execute(
                    sa.select(keys_table.c.token).where(keys_table.c.token.in_(wanted))
                )
            ]
            conn.execute(keys_table.delete().where(keys_table.c.token.in_(found)))
        return found

    def list_keys(self, *, team_id: str | None = None, user_id: str | None = None, key_alias: str | None = None,
                  offset: int = 0, limit: int = 100) -> tuple[list[KeyRecord], int]:  # fmt: skip
        """A page of keys (oldest first) and how many match in all."""
        where = []
        if team_id is not None:
            where.append(keys_table.c.team_id == team_id)
        if user_id is not None:
            where.append(keys_table.c.user_id == user_id)
        if key_alias is not None:
            where.append(keys_table.c.key_alias == key_alias)
        query = (
            sa.select(keys_table)
            .where(*where)
            .order_by(keys_table.c.created_at, keys_table.c.token)
        )
        count = sa.select(sa.func.count()).select_from(keys_table).where(*where)
        with self._engine.connect() as conn:
            total = int(conn.execute(count).scalar_one())
            rows = [
                KeyRecord(**r._mapping) for r in conn.execute(query.offset(offset).limit(limit))
            ]
        return rows, total

    # ------------------------------------------------------------------ teams

    def put_team(self, record: TeamRecord) -> TeamRecord:
        """Insert a team.

        Raises:
            ValueError: a team with this ``team_id`` exists.
        """
        try:
            with self._engine.begin() as conn:
                conn.execute(teams_table.insert().values(**record.model_dump()))
        except sa.exc.IntegrityError:
            raise ValueError(f"'team_id' {record.team_id!r} already exists.") from None
        return record

    def get_team(self, team_id: str) -> TeamRecord | None:
        """The team ``team_id``, or None."""
        with self._engine.connect() as conn:
            row = conn.execute(
                sa.select(teams_table).where(teams_table.c.team_id == team_id)
            ).first()
        return TeamRecord(**row._mapping) if row is not None else None

    def update_team(self, team_id: str, values: dict[str, Any]) -> TeamRecord | None:
        """Change a team's fields; the updated team, or None when it does not exist."""
        with self._engine.begin() as conn:
            changed = conn.execute(
                teams_table.update()
                .where(teams_table.c.team_id == team_id)
                .values(**values, updated_at=time.time())
            ).rowcount
        return self.get_team(team_id) if changed else None

    def delete_teams(self, team_ids: Iterable[str]) -> tuple[list[str], list[str]]:
        """Delete teams and their keys; the team ids that existed and the key hashes deleted with them."""
        wanted = list(dict.fromkeys(team_ids))
        with self._engine.begin() as conn:
            found = [
                r[0]
                for r in conn.execute(
                    sa.select(teams_table.c.team_id).where(teams_table.c.team_id.in_(wanted))
                )
            ]
            keys = [
                r[0]
                for r in conn.execute(
                    sa.select(keys_table.c.token).where(keys_table.c.team_id.in_(found))
                )
            ]
            conn.execute(keys_table.delete().where(keys_table.c.token.in_(keys)))
            conn.execute(teams_table.delete().where(teams_table.c.team_id.in_(found)))
        return found, keys

    def list_teams(self) -> list[TeamRecord]:
        """Every team, oldest first."""
        with self._engine.connect() as conn:
            query = sa.select(teams_table).order_by(teams_table.c.created_at, teams_table.c.team_id)
            return [TeamRecord(**r._mapping) for r in conn.execute(query)]

    # ------------------------------------------------------------------ spend

    def add_spend(self, keys: dict[str, float], teams: dict[str, float]) -> None:
        """Add spend to many keys and teams in one transaction (the batched path, no reservation)."""
        with self._engine.begin() as conn:
            for token, cost in keys.items():
                conn.execute(
                    keys_table.update()
                    .where(keys_table.c.token == token)
                    .values(spend=keys_table.c.spend + cost)
                )
            for team_id, cost in teams.items():
                conn.execute(
                    teams_table.update()
                    .where(teams_table.c.team_id == team_id)
                    .values(spend=teams_table.c.spend + cost)
                )
