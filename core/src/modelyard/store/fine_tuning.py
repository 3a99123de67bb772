"""Where each fine-tuning job the proxy created runs: job id -> provider (and deployment).

Azure keeps a job on the resource that created it, so ``GET /fine_tuning/jobs/{id}`` and its
``cancel`` / ``events`` / ``checkpoints`` must reach that resource, also after a restart of the
proxy and from another instance. The proxy records every job it creates here (one row, written
off the request path in a worker thread) and reads the row back for the later calls.
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import IntegrityError

from .sql import Store, _metadata

__all__ = ["FineTuningJobRecord", "get_fine_tuning_job", "put_fine_tuning_job"]

fine_tuning_jobs_table = sa.Table(
    "modelyard_fine_tuning_jobs",
    _metadata,
    sa.Column("id", sa.String(255), primary_key=True),
    sa.Column("provider", sa.String(64), nullable=False),
    sa.Column("deployment", sa.String(255), nullable=False, default=""),
    sa.Column("created_at", sa.BigInteger, nullable=False),
)


class FineTuningJobRecord(BaseModel):
    """Where a fine-tuning job runs.

    Attributes:
        id: the job id (the upstream's; the proxy hands it out unchanged).
        provider: the ``custom_llm_provider`` that created it (``azure``).
        deployment: the proxy deployment whose resource holds it, or ``""`` when the provider's
            settings came from the environment.
    """

    model_config = ConfigDict(frozen=True)

    id: str
    provider: str
    deployment: str = ""
    created_at: int = Field(default_factory=lambda: int(time.time()))


def put_fine_tuning_job(store: Store, record: FineTuningJobRecord) -> FineTuningJobRecord:
    """Record a job; a job id recorded before keeps its first record (which is returned)."""
    try:
        with store._engine.begin() as conn:
            conn.execute(fine_tuning_jobs_table.insert().values(**record.model_dump()))
        return record
    except IntegrityError:
        existing = get_fine_tuning_job(store, record.id)
        if existing is None:
            raise
        return existing


def get_fine_tuning_job(store: Store, job_id: str) -> FineTuningJobRecord | None:
    """The record of a job id, or None."""
    found = store._one(fine_tuning_jobs_table, FineTuningJobRecord, fine_tuning_jobs_table.c.id == job_id)
    return found if isinstance(found, FineTuningJobRecord) else None
