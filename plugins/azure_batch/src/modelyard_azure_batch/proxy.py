"""The proxy's batch load balancing: :class:`BatchBalancer` behind the core's ``FilesRouter`` seam.

The core proxy asks the ``files_router`` hook (see :mod:`modelyard.files_router`) for a router
over its ``model_info.mode: batch`` deployments; :func:`make_files_router` answers with a
:class:`BalancedFiles`, which serves the files and batches it placed (ids found in the store) and
answers ``None`` for everything else, so the proxy sends those to the provider directly.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from typing import IO, TYPE_CHECKING

from modelyard.errors import BadRequestError, NotFoundError

from .balance import BatchBalancer, BatchDeployment, Picker
from .jsonl import validate_batch_file

if TYPE_CHECKING:
    from modelyard.file_types import (
        Batch,
        BatchList,
        FileContent,
        FileDeleted,
        FileList,
        FileObject,
    )
    from modelyard.files import FileContentStream
    from modelyard.files_router import FilesDeployment
    from modelyard.store import Store

__all__ = ["BalancedFiles", "make_files_router", "smooth_weighted"]


def smooth_weighted(weights: dict[str, float]) -> Picker:
    """A picker that spreads uploads by weight, deterministically (nginx's smooth weighted round robin).

    Equal weights take the deployments in turn; weights 2:1 give A, B, A, A, B, A ... Unknown
    ids weigh 1.
    """
    current: dict[str, float] = {}
    lock = threading.Lock()

    def pick(candidates: Sequence[BatchDeployment]) -> BatchDeployment:
        with lock:
            total = 0.0
            best: BatchDeployment | None = None
            for d in candidates:
                w = weights.get(d.id, 1.0) or 1.0
                current[d.id] = current.get(d.id, 0.0) + w
                total += w
                if best is None or current[d.id] > current[best.id]:
                    best = d
            assert best is not None
            current[best.id] -= total
            return best

    return pick


class BalancedFiles:
    """The :class:`~modelyard.files_router.FilesRouter` the proxy uses for batch load balancing.

    Args:
        balancer: the balancer over the proxy's batch deployments and store.
    """

    def __init__(self, balancer: BatchBalancer) -> None:
        self.balancer = balancer

    async def _has_file(self, file_id: str) -> bool:
        return await asyncio.to_thread(self.balancer.store.get_file, file_id) is not None

    async def _has_batch(self, batch_id: str) -> bool:
        return await asyncio.to_thread(self.balancer.store.get_batch, batch_id) is not None

    async def acreate_file(self, file: IO[bytes], *, filename: str, purpose: str,
                           required: bool = False) -> FileObject | None:  # fmt: skip
        """Validate a ``batch`` file; when its lines name a batch group here, place and record it."""
        if purpose != "batch":
            if required:
                raise BadRequestError(f"Load-balanced uploads take purpose 'batch', got {purpose!r}; send a "
                                      "'custom-llm-provider' header to upload to a provider.", param="purpose")  # fmt: skip
            return None
        report = await asyncio.to_thread(validate_batch_file, file)
        report.raise_for_errors()  # nothing is uploaded anywhere when a line is invalid
        if report.model is None or not self.balancer.serves(report.model):
            if required:
                known = ", ".join(sorted({d.model_name for d in self.balancer.deployments}))
                raise BadRequestError(
                    f"The batch file's lines name model {report.model!r}, which is not a batch model group of this "
                    f"proxy (known: {known}); name one of them in body.model, or send a 'custom-llm-provider' header "
                    "to upload to a provider.",
                    param="file",
                )
            return None
        return await self.balancer.acreate_file((filename, file), purpose, report=report)

    async def afile_retrieve(self, file_id: str) -> FileObject | None:
        """The recorded file, from its resource."""
        return await self.balancer.afile_retrieve(file_id) if await self._has_file(file_id) else None

    async def afile_content(self, file_id: str) -> FileContent | None:
        """The recorded file's bytes, from its resource."""
        return await self.balancer.afile_content(file_id) if await self._has_file(file_id) else None

    async def aopen_file_content(self, file_id: str) -> FileContentStream | None:
        """The recorded file's bytes as they come from its resource (the proxy streams downloads)."""
        return await self.balancer.aopen_file_content(file_id) if await self._has_file(file_id) else None

    async def afile_delete(self, file_id: str) -> FileDeleted | None:
        """Delete the recorded file on its resource and forget it."""
        return await self.balancer.afile_delete(file_id) if await self._has_file(file_id) else None

    async def afile_list(self, *, purpose: str | None = None) -> FileList:
        """The recorded files (of ``purpose``) that still exist, each asked of its resource."""
        from modelyard.file_types import FileList

        records = await asyncio.to_thread(self.balancer.store.list_files, purpose=purpose)

        async def one(file_id: str) -> FileObject | None:
            try:
                return await self.balancer.afile_retrieve(file_id)
            except NotFoundError:  # deleted upstream, or its deployment left the config
                return None

        found = [f for f in await asyncio.gather(*(one(r.id) for r in records)) if f is not None]
        return FileList(data=found, first_id=found[0].id if found else None, last_id=found[-1].id if found else None)

    async def acreate_batch(self, *, input_file_id: str, endpoint: str, completion_window: str,
                            metadata: dict[str, str] | None) -> Batch | None:  # fmt: skip
        """Create the batch where its recorded input file lives."""
        if not await self._has_file(input_file_id):
            return None
        return await self.balancer.acreate_batch(input_file_id=input_file_id, endpoint=endpoint,
                                                 completion_window=completion_window, metadata=metadata)  # fmt: skip

    async def aretrieve_batch(self, batch_id: str) -> Batch | None:
        """The recorded batch, from its resource."""
        return await self.balancer.aretrieve_batch(batch_id) if await self._has_batch(batch_id) else None

    async def acancel_batch(self, batch_id: str) -> Batch | None:
        """Cancel the recorded batch on its resource."""
        return await self.balancer.acancel_batch(batch_id) if await self._has_batch(batch_id) else None

    async def alist_batches(self, *, after: str | None = None, limit: int = 20) -> BatchList:
        """A page of the recorded batches, newest first."""
        return await self.balancer.alist_batches(after=after, limit=limit)


def make_files_router(deployments: Sequence[FilesDeployment], store: Store) -> BalancedFiles | None:
    """A :class:`BalancedFiles` over the ``azure`` deployments among ``deployments``, or None."""
    mine = [d for d in deployments if d.model.startswith("azure/")]
    if not mine:
        return None
    batch = [BatchDeployment(d.model_name, {**d.params, "model": d.model}, id=d.id) for d in mine]
    pick = smooth_weighted({d.id: d.weight for d in mine})
    return BalancedFiles(BatchBalancer(batch, store, pick=pick))
