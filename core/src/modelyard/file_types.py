"""The data of the files and batches operations: what crosses the hook boundary and what calls return.

Contract, beside :mod:`modelyard.types`: ``hookspecs``, ``files_router`` and plugins import these
from here; the pipeline (:mod:`modelyard.files`) imports them too and re-exports them, so the
dependency runs one way, pipeline -> contract.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .types import _Open

__all__ = [
    "Batch",
    "BatchList",
    "FileContent",
    "FileDeleted",
    "FileList",
    "FileObject",
    "FilesOperation",
    "FilesRequest",
    "FineTuningJob",
    "FineTuningJobCheckpoint",
    "FineTuningJobCheckpointList",
    "FineTuningJobEvent",
    "FineTuningJobEventList",
    "FineTuningJobList",
    "Upload",
]

FilesOperation = Literal[
    "create_file", "file_retrieve", "file_list", "file_delete", "file_content",
    "create_batch", "retrieve_batch", "cancel_batch", "list_batches",
    "create_fine_tuning_job", "list_fine_tuning_jobs", "retrieve_fine_tuning_job", "cancel_fine_tuning_job",
    "list_fine_tuning_job_events", "list_fine_tuning_job_checkpoints",
]  # fmt: skip


# --------------------------------------------------------------------------- results


class FileObject(_Open):
    """An uploaded file (``object == "file"``); Azure's ``status`` / ``status_details`` kept."""

    id: str
    object: str = "file"
    bytes: int | None = None
    created_at: int = 0
    filename: str = ""
    purpose: str = ""
    status: str | None = None
    status_details: str | None = None


class FileDeleted(_Open):
    """The answer to ``file_delete``."""

    id: str
    object: str = "file"
    deleted: bool = True


class FileList(_Open):
    """A page of files (Azure's GA API returns them all; ``has_more`` is then False)."""

    object: str = "list"
    data: list[FileObject] = Field(default_factory=list)
    first_id: str | None = None
    last_id: str | None = None
    has_more: bool = False


class Batch(_Open):
    """A batch job, as OpenAI and Azure describe it (``object == "batch"``).

    ``status`` moves ``validating -> in_progress -> finalizing -> completed`` (or ``failed``,
    ``expired``, ``cancelling -> cancelled``); ``request_counts`` holds ``total``,
    ``completed`` and ``failed``; ``output_file_id`` / ``error_file_id`` appear when done.
    """

    id: str
    object: str = "batch"
    endpoint: str | None = None
    errors: dict[str, Any] | None = None
    input_file_id: str | None = None
    completion_window: str | None = None
    status: str | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    created_at: int | None = None
    in_progress_at: int | None = None
    expires_at: int | None = None
    finalizing_at: int | None = None
    completed_at: int | None = None
    failed_at: int | None = None
    expired_at: int | None = None
    cancelling_at: int | None = None
    cancelled_at: int | None = None
    request_counts: dict[str, int] | None = None
    metadata: dict[str, str] | None = None


class BatchList(_Open):
    """A page of batches; page on with ``list_batches(after=page.last_id)`` while ``has_more``."""

    object: str = "list"
    data: list[Batch] = Field(default_factory=list)
    first_id: str | None = None
    last_id: str | None = None
    has_more: bool = False


class FineTuningJob(_Open):
    """A fine-tuning job (``object == "fine_tuning.job"``).

    ``status`` moves ``validating_files -> queued -> running -> succeeded`` (or ``failed`` with
    ``error``, or ``cancelled``); ``fine_tuned_model`` and ``result_files`` appear on success.
    """

    id: str
    object: str = "fine_tuning.job"
    model: str | None = None
    status: str | None = None
    created_at: int | None = None
    finished_at: int | None = None
    fine_tuned_model: str | None = None
    training_file: str | None = None
    validation_file: str | None = None
    hyperparameters: dict[str, Any] | None = None
    result_files: list[str] | None = None
    trained_tokens: int | None = None
    error: dict[str, Any] | None = None
    suffix: str | None = None
    seed: int | None = None
    estimated_finish: int | None = None


class FineTuningJobList(_Open):
    """A page of fine-tuning jobs, newest first; page on with ``after=page.data[-1].id``."""

    object: str = "list"
    data: list[FineTuningJob] = Field(default_factory=list)
    has_more: bool = False


class FineTuningJobEvent(_Open):
    """One event of a job (``object == "fine_tuning.job.event"``): a state change or a metric."""

    id: str
    object: str = "fine_tuning.job.event"
    created_at: int = 0
    level: str = "info"
    message: str = ""
    type: str | None = None
    data: Any = None


class FineTuningJobEventList(_Open):
    """A page of a job's events, newest first."""

    object: str = "list"
    data: list[FineTuningJobEvent] = Field(default_factory=list)
    has_more: bool = False


class FineTuningJobCheckpoint(_Open):
    """A checkpoint a job saved (``object == "fine_tuning.job.checkpoint"``), with its metrics."""

    id: str
    object: str = "fine_tuning.job.checkpoint"
    created_at: int = 0
    fine_tuned_model_checkpoint: str = ""
    fine_tuning_job_id: str = ""
    step_number: int = 0
    metrics: dict[str, Any] = Field(default_factory=dict)


class FineTuningJobCheckpointList(_Open):
    """A page of a job's checkpoints, newest first."""

    object: str = "list"
    data: list[FineTuningJobCheckpoint] = Field(default_factory=list)
    first_id: str | None = None
    last_id: str | None = None
    has_more: bool = False


class FileContent:
    """A file's bytes, as ``file_content`` returns them (the shape of openai's binary responses).

    Attributes:
        content: the raw bytes.
        headers: the upstream response headers.
    """

    def __init__(self, content: bytes, headers: Mapping[str, str] | None = None) -> None:
        self.content = content
        self.headers: Mapping[str, str] = headers or {}

    @property
    def text(self) -> str:
        """The content decoded as UTF-8."""
        return self.content.decode("utf-8")

    def read(self) -> bytes:
        """The raw bytes (same as :attr:`content`)."""
        return self.content

    def json(self) -> Any:
        """The content parsed as one JSON document."""
        return json.loads(self.content)

    def iter_lines(self) -> Iterator[str]:
        """The non-empty lines of a JSONL file (batch output and error files)."""
        for line in self.text.splitlines():
            if line.strip():
                yield line

    def write_to_file(self, file: str | os.PathLike[str]) -> None:
        """Write the bytes to ``file``."""
        with open(file, "wb") as out:
            out.write(self.content)

    def __repr__(self) -> str:
        return f"FileContent({len(self.content)} bytes)"


# --------------------------------------------------------------------------- the request


class Upload(BaseModel):
    """A file to upload: its name, a readable, seekable binary file object, its content type."""

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    filename: str
    file: Any
    content_type: str = "application/octet-stream"


class FilesRequest(BaseModel):
    """One files, batches or fine-tuning call in OpenAI's shape, relative to the provider's API root.

    Attributes:
        operation: which call (``create_file``, ``retrieve_batch`` ...).
        method: the HTTP method OpenAI's API uses for it.
        path: OpenAI's path without ``/v1`` (``/files``, ``/batches/{id}/cancel`` ...).
        params: query parameters (``purpose``, ``after``, ``limit``).
        json_body: the JSON body (``create_batch``).
        form: multipart form fields sent with ``upload`` (``purpose``).
        upload: the file of ``create_file``.
    """

    model_config = ConfigDict(frozen=True)

    operation: FilesOperation
    method: Literal["GET", "POST", "DELETE"] = "GET"
    path: str
    params: dict[str, str] = Field(default_factory=dict)
    json_body: dict[str, Any] | None = None
    form: dict[str, str] = Field(default_factory=dict)
    upload: Upload | None = None
