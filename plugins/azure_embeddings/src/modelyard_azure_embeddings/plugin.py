"""Azure OpenAI embeddings: ``transform_request``, ``normalize_response`` and ``map_error`` for
(``azure``, ``embeddings``), and nothing else.

The model string is resolved by the ``azure/`` family (``modelyard-azure-chat``); this plugin
only answers when ``route.operation == "embeddings"``, so blocking it leaves chat working and
makes ``embedding()`` fail before sending, naming this distribution.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelyard import hookimpl
from modelyard.families import Provider
from modelyard.hookspecs import answers_for
from modelyard.types import EmbeddingResponse, ProviderRequest
from modelyard_azure_common.errors import map_azure_error
from modelyard_azure_common.paths import deployment_paths
from modelyard_azure_common.urls import deployment_url

if TYPE_CHECKING:
    from modelyard.errors import APIError
    from modelyard.hookspecs import RegisterOperation, RegisterProvider
    from modelyard.types import ChatRequest, Connection, ProviderResponse, Route

HOOK_API = (1, 11)  # answers_for (1.11); keeps_answers (1.10); register_operations: the AzureOpenAI clients' path (1.4: hooks per operation)
PROVIDER = "azure"
OPERATION = "embeddings"
DISTRIBUTION = "modelyard-azure-embeddings"


def _mine(route: Route) -> bool:
    return route.provider == PROVIDER and route.operation == OPERATION


@hookimpl
@answers_for(PROVIDER, OPERATION)
def transform_request(route: Route, request: ChatRequest, connection: Connection) -> ProviderRequest | None:
    """``POST /openai/deployments/{d}/embeddings?api-version=V`` (or ``/openai/v1/embeddings``
    with ``model`` in the body): the validated body as it is (``input``, ``dimensions``,
    ``encoding_format``, ``user``)."""
    if not _mine(route):
        return None
    url, query, model_in_body = deployment_url(connection, route.deployment, "/embeddings")
    body = dict(request.params)
    if model_in_body:
        body["model"] = route.deployment
    headers = dict(connection.extra_headers) if connection.extra_headers else {}
    return ProviderRequest(url=url, params=query, headers=headers, json_body=body)


@hookimpl
@answers_for(PROVIDER, OPERATION)
def keeps_answers(route: Route, kind: str) -> bool | None:
    """Azure's embeddings answers are only validated (True); None for every other route."""
    return True if _mine(route) else None


@hookimpl
@answers_for(PROVIDER, OPERATION)
def normalize_response(route: Route, response: ProviderResponse) -> EmbeddingResponse | None:
    """Azure's answer as an :class:`EmbeddingResponse` (base64 vectors stay strings)."""
    if not _mine(route):
        return None
    return EmbeddingResponse.model_validate_json(response.content)


@hookimpl
@answers_for(PROVIDER, OPERATION)
def map_error(route: Route, response: ProviderResponse) -> APIError | None:
    """Azure's error bodies, mapped as for every Azure operation (``param`` kept)."""
    if not _mine(route):
        return None
    return map_azure_error(route, response, PROVIDER)


@hookimpl
def register_operations(register: RegisterOperation) -> None:
    """``/openai/deployments/{model}/embeddings`` on the proxy, for ``AzureOpenAI`` clients."""
    for path in deployment_paths({"embeddings": "/embeddings"}):
        register(path)


@hookimpl
def register_providers(register: RegisterProvider) -> None:
    """Declares that this distribution serves ``transform_request`` for (``azure``, ``embeddings``)."""
    register(Provider(name=PROVIDER, served_by={f"transform_request:{OPERATION}": DISTRIBUTION}))
