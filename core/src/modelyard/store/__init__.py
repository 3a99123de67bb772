"""The SQL store: what must outlive a restart of the proxy.

SQLite at a path by default (``MODELYARD_STORE_PATH``, else
``$XDG_DATA_HOME/modelyard/modelyard.db``), PostgreSQL when a ``database_url`` is given
(``postgresql://user:password@host:5432/db``, driven by psycopg 3: ``pip install
modelyard[store,postgres]``). Tables are created on first open.

It holds the id maps that batch load balancing needs: a proxy file id -> (deployment,
upstream file id), a proxy batch id -> (deployment, upstream batch id), and the batch output
and error files, where each fine-tuning job runs (:mod:`.fine_tuning`) and which deployment holds
each response (:mod:`.responses`), so that retrieve, cancel and content always reach the resource
that holds them.

Needs the ``store`` extra (SQLAlchemy).
"""

from __future__ import annotations

from .fine_tuning import FineTuningJobRecord
from .sql import BatchRecord, FileRecord, Store, default_path

__all__ = ["BatchRecord", "FileRecord", "FineTuningJobRecord", "Store", "default_path"]
