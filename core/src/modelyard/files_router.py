"""The seam between the proxy's ``/v1/files`` and ``/v1/batches`` endpoints and batch load balancing.

The core proxy speaks OpenAI's files and batches API and knows no provider. When
``litellm_settings.enable_loadbalancing_on_batch_endpoints`` is on, it hands the config's
``model_info.mode: batch`` deployments (as :class:`FilesDeployment`) and its
:class:`~modelyard.store.Store` to the ``files_router`` hook; a plugin answers with a
:class:`FilesRouter`, which the proxy asks first for every files or batches call. The router
answers for the files and batches it placed (ids it recorded) and returns ``None`` for the rest,
which the proxy then sends to the provider named by the ``custom-llm-provider`` header through
:func:`modelyard.acreate_file` and its siblings.

Nothing here imports a plugin, SQLAlchemy or httpx.
"""

from __future__ import annotations

from typing import IO, TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from .file_types import Batch, BatchList, FileContent, FileDeleted, FileList, FileObject

__all__ = ["FilesDeployment", "FilesRouter"]


class FilesDeployment(BaseModel):
    """One ``mode: batch`` deployment of the proxy's config, as the ``files_router`` hook sees it.

    Attributes:
        id: a stable key (``model_info.id``, else a hash of non-secret settings): recorded ids
            name it, so it must not change across restarts.
        model_name: the model group the lines of a batch file name.
        model: the SDK model string (``azure/<deployment>``).
        params: the keyword arguments for :func:`modelyard.acreate_file` and its siblings:
            connection settings (secrets stay ``SecretStr``) and ``timeout``.
        weight: the deployment's share of the uploads of its group (``weight``/``rpm``/``tpm``).
    """

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    id: str
    model_name: str
    model: str
    params: dict[str, Any] = Field(default_factory=dict, repr=False)
    weight: float = 1.0


class FilesRouter(Protocol):
    """Files and batches spread over deployments, each id recorded where it lives.

    Every method answers ``None`` for what it does not own (an id it did not record, a file
    whose lines name no model group it serves); the proxy then calls the provider the client
    named, or answers 404 when the client named none.
    Errors are :class:`~modelyard.errors.APIError` subclasses (a ``BadRequestError`` naming the
    line of an invalid batch file, raised before anything is uploaded).
    """

    async def acreate_file(self, file: IO[bytes], *, filename: str, purpose: str,
                           required: bool = False) -> FileObject | None:  # fmt: skip
        """Upload ``file`` (seekable, read from the start) to the deployment it picks, or None.

        With ``required`` (the client named no provider), a file it cannot place is a
        ``BadRequestError`` saying why (its model names no batch group) rather than None.
        """
        ...

    async def afile_retrieve(self, file_id: str) -> FileObject | None:
        """The file with the proxy's id, asked of the resource that holds it, or None."""
        ...

    async def afile_content(self, file_id: str) -> FileContent | None:
        """The file's bytes from the resource that holds it, or None.

        A router may also offer ``async def aopen_file_content(file_id) -> FileContentStream |
        None`` (optional, so not part of this protocol): the proxy then streams the download
        instead of holding it whole.
        """
        ...

    async def afile_delete(self, file_id: str) -> FileDeleted | None:
        """Delete the file where it lives and forget it, or None."""
        ...

    async def afile_list(self, *, purpose: str | None = None) -> FileList:
        """The files this router placed (of ``purpose``), with the proxy's ids."""
        ...

    async def acreate_batch(self, *, input_file_id: str, endpoint: str, completion_window: str,
                            metadata: dict[str, str] | None) -> Batch | None:  # fmt: skip
        """Create the batch where ``input_file_id`` lives and record it, or None."""
        ...

    async def aretrieve_batch(self, batch_id: str) -> Batch | None:
        """The batch, asked of the resource where it runs, or None."""
        ...

    async def acancel_batch(self, batch_id: str) -> Batch | None:
        """Cancel the batch where it runs, or None."""
        ...

    async def alist_batches(self, *, after: str | None = None, limit: int = 20) -> BatchList:
        """A page of the batches this router placed, newest first, each in its current state."""
        ...
