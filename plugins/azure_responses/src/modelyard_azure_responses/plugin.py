"""The Azure OpenAI Responses API: ``transform_request``, ``normalize_response`` and ``map_error``
for the ``azure`` provider's ``responses`` operations, and nothing else.

Operations (``Route.operation``): ``responses`` (create), ``responses.get``,
``responses.delete``, ``responses.input_items`` and ``responses.cancel``. The id-addressed ones
get ``response_id`` (and ``query``, the query parameters) in ``request.params``.

Routes. Azure serves the Responses API per resource, never under ``/deployments/{d}``; the
deployment goes as ``model`` in the body:

* the v1 API, ``{base}/openai/v1/responses``: the default, and for ``api_version`` ``v1`` /
  ``preview`` / ``latest``, and for dated versions older than ``2025-03-01-preview`` (which have
  no Responses route at all: they would only get a 404);
* the dated route ``{base}/openai/responses?api-version=V`` when a dated ``api_version`` from
  ``2025-03-01-preview`` on is set (call argument, ``AZURE_API_VERSION`` or ``OPENAI_API_VERSION``).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from modelyard import hookimpl
from modelyard.families import Provider
from modelyard.hookspecs import answers_for
from modelyard.operations import ProxyPath
from modelyard.responses_types import (
    DeleteResponseResult,
    ResponseInputItemList,
    ResponsesAPIResponse,
)
from modelyard.types import ProviderRequest
from modelyard_azure_common.errors import map_azure_error
from modelyard_azure_common.urls import V1_VERSIONS, resource_url

if TYPE_CHECKING:
    from modelyard.errors import APIError
    from modelyard.hookspecs import RegisterOperation, RegisterProvider
    from modelyard.types import ChatRequest, Connection, ProviderResponse, Route

HOOK_API = (1, 11)  # answers_for (1.11); keeps_answers (1.10); register_operations: the AzureOpenAI clients' paths (1.4: hooks per operation)
PROVIDER = "azure"
DISTRIBUTION = "modelyard-azure-responses"
FIRST_DATED_VERSION = "2025-03-01-preview"
"""The first dated api-version with the Responses API."""

OPERATIONS = ("responses", "responses.get", "responses.delete", "responses.input_items", "responses.cancel")
_METHODS: dict[str, Any] = {
    "responses.get": ("GET", ""),
    "responses.delete": ("DELETE", ""),
    "responses.input_items": ("GET", "/input_items"),
    "responses.cancel": ("POST", "/cancel"),
}


def _mine(route: Route) -> bool:
    return route.provider == PROVIDER and route.operation in OPERATIONS


def responses_connection(connection: Connection) -> Connection:
    """``connection`` with the api-version the Responses API takes: v1 unless a dated version that serves it is set."""
    version = connection.api_version or os.environ.get("AZURE_API_VERSION") or os.environ.get("OPENAI_API_VERSION")
    if version and (version in V1_VERSIONS or version[:10] >= FIRST_DATED_VERSION[:10]):
        return connection.model_copy(update={"api_version": version})
    return connection.model_copy(update={"api_version": "v1"})


@hookimpl
@answers_for(PROVIDER, *OPERATIONS)
def transform_request(route: Route, request: ChatRequest, connection: Connection) -> ProviderRequest | None:
    """``POST {base}/openai/v1/responses`` (or ``/openai/responses?api-version=V``) with the
    validated body, ``model`` set to the deployment and input messages typed; the id-addressed operations
    ``GET|DELETE /responses/{id}``, ``GET /responses/{id}/input_items``, ``POST /responses/{id}/cancel``."""
    if not _mine(route):
        return None
    conn = responses_connection(connection)
    headers = dict(connection.extra_headers) if connection.extra_headers else {}
    if route.operation == "responses":
        url, query = resource_url(conn, "/responses")
        body = {"model": route.deployment, **request.params}
        if isinstance(body.get("input"), list):
            body["input"] = _typed_items(body["input"])
        stream = bool(body.get("stream"))
        return ProviderRequest(url=url, params=query, headers=headers, json_body=body, stream=stream)
    params = dict(request.params)
    method, tail = _METHODS[route.operation]
    response_id = quote(str(params["response_id"]), safe="")
    url, query = resource_url(conn, f"/responses/{response_id}{tail}")
    extra = params.get("query") or {}
    query = {**query, **{str(k): str(v) for k, v in extra.items()}}
    return ProviderRequest(method=method, url=url, params=query, headers=headers)


def _typed_items(items: list[Any]) -> list[Any]:
    """Input messages written without ``type`` (``{"role", "content"}``, as OpenAI takes them) get
    ``"type": "message"``, which Azure's v1 spec requires; everything else is sent as it is."""
    if all(not isinstance(i, dict) or "type" in i or "role" not in i for i in items):
        return items
    return [{"type": "message", **i} if isinstance(i, dict) and "type" not in i and "role" in i else i for i in items]


@hookimpl
@answers_for(PROVIDER, *OPERATIONS)
def keeps_answers(route: Route, kind: str) -> bool | None:
    """Only Responses API operations are this plugin's: None for every other route."""
    return False if _mine(route) else None


@hookimpl
@answers_for(PROVIDER, *OPERATIONS)
def normalize_response(route: Route, response: ProviderResponse) -> Any:
    """Azure's answer as the operation's model (:class:`ResponsesAPIResponse`, the deletion, the item list)."""
    if not _mine(route):
        return None
    if route.operation == "responses.delete":
        return DeleteResponseResult.model_validate_json(response.content)
    if route.operation == "responses.input_items":
        return ResponseInputItemList.model_validate_json(response.content)
    return ResponsesAPIResponse.model_validate_json(response.content)


@hookimpl
@answers_for(PROVIDER, *OPERATIONS)
def map_error(route: Route, response: ProviderResponse) -> APIError | None:
    """Azure's error bodies, mapped as for every Azure operation (``param`` kept)."""
    if not _mine(route):
        return None
    return map_azure_error(route, response, PROVIDER)


@hookimpl
def register_operations(register: RegisterOperation) -> None:
    """``/openai/v1/responses`` and ``/openai/responses`` on the proxy (and their id paths), where
    ``AzureOpenAI`` clients pointed at a resource send the Responses API (the model in the body)."""
    for prefix in ("/openai/v1", "/openai"):
        register(ProxyPath(f"{prefix}/responses", "responses", query=("api-version",),
                           description="(the resource-scoped path of AzureOpenAI clients)"))  # fmt: skip


@hookimpl
def register_providers(register: RegisterProvider) -> None:
    """Declares that this distribution serves ``transform_request`` for the ``azure`` provider's ``responses*`` operations."""
    register(Provider(name=PROVIDER, served_by={f"transform_request:{op}": DISTRIBUTION for op in OPERATIONS}))
