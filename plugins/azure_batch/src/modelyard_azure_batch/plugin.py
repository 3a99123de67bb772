"""Azure OpenAI files, batches and fine-tuning jobs: the ``transform_files_request``, ``register_commands`` and ``files_router`` hooks.

Credentials come from the ``resolve_auth`` hook (``modelyard-azure-auth``); errors of the files
and batches operations are mapped here, with the Azure mapping every Azure plugin shares
(``modelyard-azure-common``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelyard import hookimpl
from modelyard.errors import BadRequestError
from modelyard.types import ProviderRequest
from modelyard_azure_common.errors import map_azure_error
from modelyard_azure_common.urls import resource_url

if TYPE_CHECKING:
    from modelyard.errors import APIError
    from modelyard.file_types import FilesRequest
    from modelyard.files_router import FilesDeployment, FilesRouter
    from modelyard.hookspecs import RegisterCommand
    from modelyard.store import Store
    from modelyard.types import Connection, ProviderResponse, Route

HOOK_API = (1, 2)
PROVIDER = "azure"
COMPLETION_WINDOWS = frozenset({"24h"})


@hookimpl
def transform_files_request(route: Route, request: FilesRequest, connection: Connection) -> ProviderRequest | None:
    """Build the Azure call for a files, batches or fine-tuning operation.

    A ``batch`` upload is validated first (:mod:`.jsonl`), and so is a ``fine-tune`` one
    (:mod:`.training`): nothing is sent when a line is invalid. Fine-tuning paths
    (``/fine_tuning/jobs...``) are resource paths like ``/files``, classic and v1.
    """
    if route.provider != PROVIDER:
        return None
    url, query = resource_url(connection, request.path)
    headers = dict(connection.extra_headers) if connection.extra_headers else {}
    params = {**query, **request.params}
    if request.upload is not None:
        upload = request.upload
        if request.form.get("purpose") == "batch":
            from .jsonl import validate_batch_file

            validate_batch_file(upload.file).raise_for_errors()
        elif request.form.get("purpose") == "fine-tune":
            from .training import validate_training_file

            validate_training_file(upload.file).raise_for_errors()
        return ProviderRequest(
            method="POST",
            url=url,
            params=params,
            headers=headers,
            files={"file": (upload.filename, upload.file, upload.content_type)},
            data=dict(request.form),
        )
    body = request.json_body
    if request.operation == "create_batch" and body is not None and body.get("completion_window") not in COMPLETION_WINDOWS:
        raise BadRequestError(
            f"completion_window {body.get('completion_window')!r} is not accepted by Azure OpenAI; use '24h'.",
            param="completion_window",
        )
    return ProviderRequest(method=request.method, url=url, params=params, headers=headers, json_body=body)


@hookimpl
def map_error(route: Route, response: ProviderResponse) -> APIError | None:
    """Azure's error bodies for the files and batches operations (``route.family == "files"``)."""
    if route.provider != PROVIDER or route.family != "files":
        return None
    return map_azure_error(route, response, PROVIDER)


@hookimpl
def register_commands(register: RegisterCommand) -> None:
    """``modelyard batch submit``: validate, upload, create, wait with progress, download."""
    from . import cli

    register("batch", summary="submit and follow Azure OpenAI batch jobs", setup=cli.setup, run=cli.run)


@hookimpl
def files_router(deployments: list[FilesDeployment], store: Store) -> FilesRouter | None:
    """Batch load balancing for the proxy over its ``azure/`` batch deployments."""
    from .proxy import make_files_router

    return make_files_router(deployments, store)
