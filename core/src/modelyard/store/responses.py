"""Which deployment holds each response the proxy created (the Responses API stores per resource).

One row per response id: ``GET /responses/{id}``, ``DELETE``, its input items, its cancel, and a
new response chained to it by ``previous_response_id``, all go to the deployment that created
it, after a restart and from any proxy instance sharing the database. Table
``modelyard_responses`` in the store's metadata (created with the others on first open).
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from .sql import Store, _metadata

__all__ = ["forget_response", "put_response", "put_responses", "response_deployment", "responses_table"]

responses_table = sa.Table(
    "modelyard_responses",
    _metadata,
    sa.Column("id", sa.String(255), primary_key=True),
    sa.Column("deployment", sa.String(255), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
)


def put_response(store: Store, response_id: str, deployment: str) -> None:
    """Record that ``deployment`` (its ``model_info.id``) holds ``response_id``."""
    row = {"id": response_id, "deployment": deployment, "created_at": int(time.time())}
    try:
        with store._engine.begin() as conn:
            conn.execute(responses_table.insert().values(**row))
    except IntegrityError:  # seen again (a retried write): the latest deployment wins
        with store._engine.begin() as conn:
            conn.execute(responses_table.update().where(responses_table.c.id == response_id).values(deployment=deployment))


def put_responses(store: Store, records: dict[str, str]) -> None:
    """Record many ``response id -> deployment`` pairs in one transaction (the proxy's group commit)."""
    if not records:
        return
    now = int(time.time())
    try:
        with store._engine.begin() as conn:
            conn.execute(responses_table.insert(), [{"id": k, "deployment": v, "created_at": now} for k, v in records.items()])
    except IntegrityError:  # one of them was written already: row by row
        for response_id, deployment in records.items():
            put_response(store, response_id, deployment)


def response_deployment(store: Store, response_id: str) -> str | None:
    """The deployment holding ``response_id``, or None when this store does not know it."""
    with store._engine.connect() as conn:
        row = conn.execute(sa.select(responses_table.c.deployment).where(responses_table.c.id == response_id)).first()
    return str(row[0]) if row is not None else None


def forget_response(store: Store, response_id: str) -> bool:
    """Forget a deleted response; True when it was known."""
    with store._engine.begin() as conn:
        return conn.execute(responses_table.delete().where(responses_table.c.id == response_id)).rowcount > 0
