"""Batch load balancing: one model group, several batch deployments, ids that never get lost.

What LiteLLM's ``enable_loadbalancing_on_batch_endpoints`` promises, kept: the lines of an
uploaded file name a model group; :class:`BatchBalancer` picks **one** deployment of that group,
rewrites every line's ``body.model`` to that deployment's name, uploads the file there, and
records ``proxy file id -> (deployment, upstream file id)`` in the :class:`~modelyard.store.Store`.
A batch created from that file goes to the same deployment; its id and its output and error
file ids are recorded the same way, so retrieve, cancel and content always reach the resource
that holds them, also after a restart (the store is SQLite or PostgreSQL).

The proxy wires it to ``/v1/files`` and ``/v1/batches``; the deployments are the config's
``model_list`` entries with ``model_info.mode: batch`` (see :mod:`.proxy`), and ``pick`` spreads by weight.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import logging
import os
import tempfile
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any, cast

import modelyard
from modelyard.errors import BadRequestError, ConfigError, NotFoundError
from modelyard.redact import safe_url
from modelyard.types import Connection

from .jsonl import BatchFileReport, rewrite_model, validate_batch_file

if TYPE_CHECKING:
    from modelyard.file_types import Batch, BatchList, FileContent, FileDeleted, FileObject
    from modelyard.files import FileContentStream
    from modelyard.store import BatchRecord, FileRecord, Store

__all__ = ["BatchBalancer", "BatchDeployment", "batch_deployments", "round_robin"]

log = logging.getLogger(__name__)

_PASSED = frozenset(Connection.model_fields) | {"model", "timeout", "num_retries", "max_retries", "custom_llm_provider"}


@dataclass(frozen=True)
class BatchDeployment:
    """One batch deployment of a model group, as a config ``model_list`` entry describes it.

    Attributes:
        model_name: the model group the JSONL lines name (``batch-gpt-4o-mini``).
        params: the call settings (``litellm_params``): ``model="azure/<deployment>"``,
            ``api_base``, ``api_key``, ``api_version`` ...
        id: a stable key for the store (``model_info.id``); default: ``model_name`` + api_base +
            deployment. Keep it stable across restarts, or recorded ids lose their deployment.
    """

    model_name: str
    params: Mapping[str, Any]
    id: str = ""

    def __post_init__(self) -> None:
        model = self.params.get("model")
        if not isinstance(model, str) or "/" not in model:
            raise ConfigError(
                f"Batch deployment of {self.model_name!r} needs params.model such as 'azure/<deployment>'.",
                key="litellm_params.model",
            )
        if not self.id:
            base = safe_url(self.params.get("api_base") or "")  # the id shows in errors: no user:password@
            object.__setattr__(self, "id", f"{self.model_name}|{base}|{model}")

    @property
    def deployment_name(self) -> str:
        """The upstream deployment (``params.model`` without the provider prefix)."""
        return str(self.params["model"]).split("/", 1)[1]

    def call_params(self) -> dict[str, Any]:
        """The keyword arguments for ``modelyard.create_file`` / ``create_batch`` ...

        ``os.environ/NAME`` values (LiteLLM's config syntax) are read from the environment now.

        Raises:
            ConfigError: an ``os.environ/NAME`` variable is not set.
        """
        out: dict[str, Any] = {}
        for key, value in self.params.items():
            if key not in _PASSED:
                continue
            if isinstance(value, str) and value.startswith("os.environ/"):
                name = value.removeprefix("os.environ/")
                if name not in os.environ:
                    raise ConfigError(f"{key} of batch deployment {self.id!r} names {name}, which is not set.",
                                      key=f"litellm_params.{key}")  # fmt: skip
                value = os.environ[name]
            out[key] = value
        return out

    def health_check(self, *, timeout: float = 30.0) -> None:
        """Probe the deployment's resource with a files listing: no tokens spent, no batch started.

        A chat probe would fail on a batch-only deployment (``OperationNotSupported``); listing
        files checks the endpoint, the api-version and the credential.

        Raises:
            APIError: the resource refused or could not be reached (mapped as for any call).
        """
        modelyard.file_list(**{**self.call_params(), "timeout": timeout, "num_retries": 0})

    async def ahealth_check(self, *, timeout: float = 30.0) -> None:
        """The async twin of :meth:`health_check`."""
        await modelyard.afile_list(**{**self.call_params(), "timeout": timeout, "num_retries": 0})

    def __repr__(self) -> str:  # params hold credentials: never show them
        return f"BatchDeployment(model_name={self.model_name!r}, id={self.id!r})"


Picker = Callable[[Sequence[BatchDeployment]], BatchDeployment]


def batch_deployments(model_list: Sequence[Mapping[str, Any]]) -> list[BatchDeployment]:
    """The ``model_info.mode: batch`` entries of a config ``model_list``, as :class:`BatchDeployment`.

    Each entry is LiteLLM's shape: ``model_name``, ``litellm_params`` (or ``params``) and
    ``model_info`` (whose ``id``, when given, keys the store).

    Raises:
        ConfigError: a batch entry lacks ``model_name`` or ``litellm_params.model``.
    """
    found = []
    for index, entry in enumerate(model_list):
        info = entry.get("model_info") or {}
        if info.get("mode") != "batch":
            continue
        name = entry.get("model_name")
        if not isinstance(name, str) or not name:
            raise ConfigError(f"model_list[{index}] has mode 'batch' but no model_name.", key=f"model_list[{index}].model_name")
        params = entry.get("litellm_params") or entry.get("params") or {}
        found.append(BatchDeployment(name, dict(params), id=str(info.get("id") or "")))
    return found


def round_robin() -> Picker:
    """A picker that takes the deployments of a group in turn."""
    counter = itertools.count()
    lock = threading.Lock()

    def pick(candidates: Sequence[BatchDeployment]) -> BatchDeployment:
        with lock:
            return candidates[next(counter) % len(candidates)]

    return pick


@dataclass
class _Upload:
    filename: str
    file: IO[bytes]
    owned: list[IO[bytes]] = field(default_factory=list)

    def close(self) -> None:
        for f in self.owned:
            f.close()


def _as_upload(file: Any) -> _Upload:
    name = "input.jsonl"
    if isinstance(file, tuple):
        name, file = file[0], file[1]
    if isinstance(file, bytes | bytearray):
        buf = io.BytesIO(bytes(file))
        return _Upload(name, buf, [buf])
    if not hasattr(file, "read"):
        raise BadRequestError("'file' must be a binary file object, bytes or a (filename, content) tuple.", param="file")
    name = name if name != "input.jsonl" else (str(getattr(file, "name", "") or "").rsplit("/", 1)[-1] or name)
    if getattr(file, "seekable", lambda: False)():
        return _Upload(name, file)
    copy = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)  # noqa: SIM115  (closed by _Upload)
    while chunk := file.read(1 << 16):
        copy.write(chunk)
    copy.seek(0)
    return _Upload(name, copy, [copy])


class BatchBalancer:
    """Files and batches spread over the batch deployments of model groups.

    Args:
        deployments: every batch deployment (of any number of groups).
        store: where the id maps live.
        pick: chooses one deployment of a group for an upload (default: :func:`round_robin`).

    Every method has an async twin with an ``a`` prefix; ids in and out are the proxy's ids.
    """

    def __init__(self, deployments: Sequence[BatchDeployment], store: Store, *, pick: Picker | None = None) -> None:
        self.deployments = list(deployments)
        self.store = store
        self.pick = pick or round_robin()
        self._by_id = {d.id: d for d in self.deployments}
        self._gone_logged: set[str] = set()  # deployments whose batches a listing skipped (logged once each)

    # ------------------------------------------------------------------ lookups

    def serves(self, model: str) -> bool:
        """True when ``model`` (what a batch file's lines name) is a group or deployment here."""
        return any(model in (d.model_name, d.deployment_name) for d in self.deployments)

    def _group(self, model: str) -> list[BatchDeployment]:
        group = [d for d in self.deployments if d.model_name == model]
        if not group:  # a line may name one deployment directly
            group = [d for d in self.deployments if d.deployment_name == model]
        if not group:
            known = ", ".join(sorted({d.model_name for d in self.deployments})) or "none"
            raise BadRequestError(
                f"The batch file's model {model!r} is not a batch model group (known: {known}).", param="body.model"
            )
        return group

    def _deployment(self, key: str, what: str) -> BatchDeployment:
        found = self._by_id.get(key)
        if found is None:
            configured = ", ".join(sorted(self._by_id)) or "none"
            raise NotFoundError(
                f"{what} belongs to deployment {key!r}, which is no longer configured (configured batch "
                f"deployments: {configured}); add it back to model_list to reach it."
            )
        return found

    @staticmethod
    def _known(listable: list[tuple[BatchRecord, BatchDeployment]], found: Sequence[object]) -> list[tuple[BatchRecord, Batch]]:
        """The listed batches the upstream still has (``found``: each retrieve's result, or its error).

        A resource forgets batches (deleted there, or a store shared with another setup whose
        deployment has the same id): a listing leaves such a batch (a 404) out rather than fail
        whole. Any other error fails the listing.
        """
        kept: list[tuple[BatchRecord, Batch]] = []
        for (record, _), result in zip(listable, found, strict=True):
            if isinstance(result, NotFoundError):
                log.warning("Batch listings leave out batch %s: its resource no longer has it.", record.id)
            elif isinstance(result, BaseException):
                raise result
            else:
                kept.append((record, cast("Batch", result)))
        return kept

    def _listable(self, records: list[BatchRecord]) -> list[tuple[BatchRecord, BatchDeployment]]:
        """The records whose deployment is still configured, each with it.

        A batch of a deployment removed from the config cannot be asked for its state; a listing
        leaves it out (and logs that once per deployment) rather than failing for every batch.
        """
        out = []
        for r in records:
            found = self._by_id.get(r.deployment)
            if found is not None:
                out.append((r, found))
            elif r.deployment not in self._gone_logged:
                self._gone_logged.add(r.deployment)
                log.warning(
                    "Batch listings leave out the batches of deployment %r, which is no longer configured "
                    "(first: %s).", r.deployment, r.id,
                )  # fmt: skip
        return out

    def _file(self, file_id: str) -> tuple[FileRecord, BatchDeployment]:
        record = self.store.get_file(file_id)
        if record is None:
            raise NotFoundError(f"No file with id {file_id!r}.", param="file_id")
        return record, self._deployment(record.deployment, f"File {file_id!r}")

    def _batch(self, batch_id: str) -> tuple[BatchRecord, BatchDeployment]:
        record = self.store.get_batch(batch_id)
        if record is None:
            raise NotFoundError(f"No batch with id {batch_id!r}.", param="batch_id")
        return record, self._deployment(record.deployment, f"Batch {batch_id!r}")

    # ------------------------------------------------------------------ shared steps

    def _prepare_upload(self, file: Any, purpose: str, report: BatchFileReport | None = None,
                        ) -> tuple[BatchDeployment, _Upload]:  # fmt: skip
        if purpose != "batch":
            raise BadRequestError("Load-balanced uploads take purpose 'batch' only.", param="purpose")
        upload = _as_upload(file)
        try:
            if report is None:
                report = validate_batch_file(upload.file)
            report.raise_for_errors()
            assert report.model is not None  # a valid file names its model
            target = self.pick(self._group(report.model))
            if report.model != target.deployment_name:
                rewritten = rewrite_model(upload.file, target.deployment_name)
                upload.owned.append(rewritten)
                upload.file = rewritten
        except BaseException:
            upload.close()
            raise
        return target, upload

    def _record_file(self, target: BatchDeployment, upstream: FileObject) -> FileObject:
        from modelyard.store import FileRecord

        record = self.store.put_file(
            FileRecord(id=f"file-{uuid.uuid4().hex}", deployment=target.id, upstream_id=upstream.id, purpose=upstream.purpose or "batch")
        )
        return upstream.model_copy(update={"id": record.id})

    def _record_batch(self, target: BatchDeployment, file_id: str, upstream: Batch) -> Batch:
        from modelyard.store import BatchRecord

        record = self.store.put_batch(
            BatchRecord(id=f"batch_{uuid.uuid4()}", deployment=target.id, upstream_id=upstream.id, input_file_id=file_id)
        )
        return self._translate(record, upstream)

    def _translate(self, record: BatchRecord, upstream: Batch) -> Batch:
        """The upstream batch with the proxy's ids (output and error files recorded on first sight)."""
        from modelyard.store import FileRecord

        update: dict[str, Any] = {"id": record.id, "input_file_id": record.input_file_id}
        for attr, kind in (("output_file_id", "output"), ("error_file_id", "error")):
            upstream_id = getattr(upstream, attr)
            if upstream_id:
                stored = self.store.put_file(
                    FileRecord(id=f"file-{uuid.uuid4().hex}", deployment=record.deployment, upstream_id=upstream_id,
                               purpose="batch_output", kind=kind, batch_id=record.id)
                )  # fmt: skip
                update[attr] = stored.id
        return upstream.model_copy(update=update)

    def _page(self, records: list[BatchRecord], batches: list[Batch], more: bool, cursor: str | None) -> BatchList:
        from modelyard.file_types import BatchList

        data = [self._translate(r, b) for r, b in zip(records, batches, strict=True)]
        # last_id is the cursor for the next page: the last record read, also when it was left out
        return BatchList(data=data, first_id=data[0].id if data else None,
                         last_id=data[-1].id if data else cursor, has_more=more)  # fmt: skip

    # ------------------------------------------------------------------ sync

    def create_file(self, file: Any, purpose: str = "batch", *, report: BatchFileReport | None = None) -> FileObject:
        """Validate, pick a deployment of the lines' model group, rewrite, upload there, record.

        Args:
            file: a binary file object, bytes, or a ``(filename, content)`` tuple.
            purpose: ``batch`` (the only purpose that is balanced).
            report: the file's :func:`validate_batch_file` report, when the caller already made
                it (the file is then not read a second time to check it).
        """
        target, upload = self._prepare_upload(file, purpose, report)
        try:
            upstream = modelyard.create_file(file=(upload.filename, upload.file), purpose=purpose, **target.call_params())
        finally:
            upload.close()
        return self._record_file(target, upstream)

    def file_retrieve(self, file_id: str) -> FileObject:
        """The file, asked of the resource that holds it."""
        record, target = self._file(file_id)
        return modelyard.file_retrieve(record.upstream_id, **target.call_params()).model_copy(update={"id": record.id})

    def file_content(self, file_id: str) -> FileContent:
        """The file's bytes (batch output and error files included), from the resource that holds it."""
        record, target = self._file(file_id)
        return modelyard.file_content(record.upstream_id, **target.call_params())

    def file_delete(self, file_id: str) -> FileDeleted:
        """Delete the file upstream, then forget it."""
        record, target = self._file(file_id)
        result = modelyard.file_delete(record.upstream_id, **target.call_params())
        self.store.delete_file(record.id)
        return result.model_copy(update={"id": record.id})

    def create_batch(self, input_file_id: str, endpoint: str = "/v1/chat/completions",
                     completion_window: str = "24h", metadata: dict[str, str] | None = None) -> Batch:  # fmt: skip
        """Create the batch on the deployment that holds ``input_file_id``, and record it."""
        record, target = self._file(input_file_id)
        upstream = modelyard.create_batch(input_file_id=record.upstream_id, endpoint=endpoint,
                                          completion_window=completion_window, metadata=metadata,
                                          **target.call_params())  # fmt: skip
        return self._record_batch(target, record.id, upstream)

    def retrieve_batch(self, batch_id: str) -> Batch:
        """The batch, asked of the resource where it runs."""
        record, target = self._batch(batch_id)
        return self._translate(record, modelyard.retrieve_batch(record.upstream_id, **target.call_params()))

    def cancel_batch(self, batch_id: str) -> Batch:
        """Cancel the batch where it runs."""
        record, target = self._batch(batch_id)
        return self._translate(record, modelyard.cancel_batch(record.upstream_id, **target.call_params()))

    def list_batches(self, after: str | None = None, limit: int = 20) -> BatchList:
        """A page of the recorded batches, newest first, each in its current state."""
        records, more = self.store.list_batches(after=after, limit=limit)
        listable = self._listable(records)
        found: list[object] = []
        for r, d in listable:
            try:
                found.append(modelyard.retrieve_batch(r.upstream_id, **d.call_params()))
            except NotFoundError as exc:
                found.append(exc)
        kept = self._known(listable, found)
        return self._page([r for r, _ in kept], [b for _, b in kept], more, records[-1].id if records else None)

    # ------------------------------------------------------------------ async
    # The store is synchronous (SQLAlchemy): its reads and writes run in worker threads so that
    # the proxy's event loop never waits on the database.

    async def acreate_file(self, file: Any, purpose: str = "batch", *,
                           report: BatchFileReport | None = None) -> FileObject:  # fmt: skip
        """The async twin of :meth:`create_file` (the file is read in a worker thread)."""
        target, upload = await asyncio.to_thread(self._prepare_upload, file, purpose, report)
        try:
            upstream = await modelyard.acreate_file(file=(upload.filename, upload.file), purpose=purpose,
                                                    **target.call_params())  # fmt: skip
        finally:
            upload.close()
        return await asyncio.to_thread(self._record_file, target, upstream)

    async def afile_retrieve(self, file_id: str) -> FileObject:
        """The async twin of :meth:`file_retrieve`."""
        record, target = await asyncio.to_thread(self._file, file_id)
        found = await modelyard.afile_retrieve(record.upstream_id, **target.call_params())
        return found.model_copy(update={"id": record.id})

    async def afile_content(self, file_id: str) -> FileContent:
        """The async twin of :meth:`file_content`."""
        record, target = await asyncio.to_thread(self._file, file_id)
        return await modelyard.afile_content(record.upstream_id, **target.call_params())

    async def aopen_file_content(self, file_id: str) -> FileContentStream:
        """As :meth:`afile_content`, but not read whole: a :class:`~modelyard.files.FileContentStream`."""
        from modelyard.files import aopen_file_content

        record, target = await asyncio.to_thread(self._file, file_id)
        return await aopen_file_content(record.upstream_id, **target.call_params())

    async def afile_delete(self, file_id: str) -> FileDeleted:
        """The async twin of :meth:`file_delete`."""
        record, target = await asyncio.to_thread(self._file, file_id)
        result = await modelyard.afile_delete(record.upstream_id, **target.call_params())
        await asyncio.to_thread(self.store.delete_file, record.id)
        return result.model_copy(update={"id": record.id})

    async def acreate_batch(self, input_file_id: str, endpoint: str = "/v1/chat/completions",
                            completion_window: str = "24h", metadata: dict[str, str] | None = None) -> Batch:  # fmt: skip
        """The async twin of :meth:`create_batch`."""
        record, target = await asyncio.to_thread(self._file, input_file_id)
        upstream = await modelyard.acreate_batch(input_file_id=record.upstream_id, endpoint=endpoint,
                                                 completion_window=completion_window, metadata=metadata,
                                                 **target.call_params())  # fmt: skip
        return await asyncio.to_thread(self._record_batch, target, record.id, upstream)

    async def aretrieve_batch(self, batch_id: str) -> Batch:
        """The async twin of :meth:`retrieve_batch`."""
        record, target = await asyncio.to_thread(self._batch, batch_id)
        upstream = await modelyard.aretrieve_batch(record.upstream_id, **target.call_params())
        return await asyncio.to_thread(self._translate, record, upstream)

    async def acancel_batch(self, batch_id: str) -> Batch:
        """The async twin of :meth:`cancel_batch`."""
        record, target = await asyncio.to_thread(self._batch, batch_id)
        upstream = await modelyard.acancel_batch(record.upstream_id, **target.call_params())
        return await asyncio.to_thread(self._translate, record, upstream)

    async def alist_batches(self, after: str | None = None, limit: int = 20) -> BatchList:
        """The async twin of :meth:`list_batches` (the batches are asked for concurrently)."""
        records, more = await asyncio.to_thread(self.store.list_batches, after=after, limit=limit)
        listable = self._listable(records)
        found = await asyncio.gather(
            *(modelyard.aretrieve_batch(r.upstream_id, **d.call_params()) for r, d in listable), return_exceptions=True
        )
        kept = self._known(listable, found)
        cursor = records[-1].id if records else None
        return await asyncio.to_thread(self._page, [r for r, _ in kept], [b for _, b in kept], more, cursor)
