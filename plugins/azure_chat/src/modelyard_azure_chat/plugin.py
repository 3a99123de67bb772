"""Azure OpenAI chat: the ``azure/`` family, request transform, normalisation and error mapping."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from modelyard import hookimpl
from modelyard.errors import APIError, BadRequestError
from modelyard.families import Family, ParamRules, Provider
from modelyard.hookspecs import answers_for
from modelyard.operations import OperationRef
from modelyard.plugin import PriceNames
from modelyard.types import (
    ChatCompletion,
    ChatCompletionChunk,
    ProviderRequest,
    TextCompletion,
)
from modelyard_azure_common.errors import map_azure_error
from modelyard_azure_common.headers import register_header_views as register_header_views
from modelyard_azure_common.paths import deployment_paths
from modelyard_azure_common.urls import api_version, deployment_url, takes_stream_options

from . import text
from .environment import default_config as default_config

if TYPE_CHECKING:
    from modelyard.hookspecs import (
        RegisterFamily,
        RegisterOperation,
        RegisterPriceNames,
        RegisterProvider,
    )
    from modelyard.types import ChatRequest, Connection, ProviderResponse, Route

HOOK_API = (1, 11)  # answers_for (1.11); keeps_answers (1.10); register_operations (the AzureOpenAI clients' paths), register_price_names, register_header_views, default_config
PROVIDER = "azure"
OPERATION_PATHS = {"chat": "/chat/completions", "completions": "/completions"}
"""The operations this plugin serves, and their paths after the deployment (or ``/openai/v1``)."""
EMBEDDINGS_PLUGIN = "modelyard-azure-embeddings"
AUDIO_PLUGIN = "modelyard-azure-audio"
"""The distribution that serves the ``embeddings`` operation for ``azure``."""
IMAGES_PLUGIN = "modelyard-azure-images"
"""The distribution that serves the ``image_generation`` and ``image_edit`` operations for ``azure``."""
VISION_PLUGIN = "modelyard-azure-vision"
"""The distribution that turns ``enhancements`` / ``dataSources`` into an ``/extensions`` call."""
RESPONSES_PLUGIN = "modelyard-azure-responses"
"""The distribution that serves the Responses API operations for ``azure``."""
RESPONSES_OPERATIONS = ("responses", "responses.get", "responses.delete", "responses.input_items", "responses.cancel")
AUTH_PLUGIN = "modelyard-azure-auth"
"""The distribution that answers ``resolve_auth`` for ``azure`` (api key, AD token, Entra ID)."""
BATCH_PLUGIN = "modelyard-azure-batch"
"""The distribution that serves files and batches for ``azure`` (and balances them in the proxy)."""
CLAUDE_PLUGIN = "modelyard-azure-anthropic"
"""The distribution that serves Claude deployments (``azure/claude-*``) on Azure AI Foundry."""
CLAUDE_PROVIDER = "azure_anthropic"


@hookimpl
def register_families(register: RegisterFamily) -> None:
    """The default Azure chat family: ``azure/<deployment>``, every parameter passed through."""
    register(
        Family(
            name="azure",
            provider=PROVIDER,
            prefix="azure/",
            description="Azure OpenAI chat deployments (gpt-4o, gpt-4.1, gpt-35-turbo ...)",
            # Vision enhancements go to another endpoint, built by that plugin (hooks only).
            rules=ParamRules(needs_plugin={"enhancements": VISION_PLUGIN, "dataSources": VISION_PLUGIN}),
        )
    )
    # Claude on Foundry speaks Anthropic's Messages API, not this plugin's: ``azure/claude-*``
    # belongs to modelyard-azure-anthropic's provider (whose own family, of higher priority,
    # carries the rules). Declared here too so that, with that plugin blocked or missing, such a
    # call fails before sending, naming it, instead of reaching /openai/deployments/claude-*.
    register(
        Family(
            name="azure_claude",
            provider=CLAUDE_PROVIDER,
            prefix="azure/",
            pattern="claude",
            priority=50,
            description=f"Claude on Azure AI Foundry (azure/claude-*): served by {CLAUDE_PLUGIN}",
        )
    )


@hookimpl
@answers_for(PROVIDER, *OPERATION_PATHS, "messages")
def transform_request(route: Route, request: ChatRequest, connection: Connection) -> ProviderRequest | None:
    """Build the Azure call: deployment-scoped (classic) or v1 URL, JSON body, caller headers.

    The ``completions`` operation (instruct families) gets a ``prompt`` body instead of
    ``messages`` (see :mod:`modelyard_azure_chat.text`).
    """
    if route.provider == PROVIDER and route.operation == "messages":
        # Anthropic's native format (the proxy's /v1/messages) goes to Claude deployments only.
        raise BadRequestError(
            f"{route.model!r} is an Azure OpenAI deployment: it does not serve Anthropic's Messages API "
            "(/v1/messages). Use /chat/completions for it, or a Claude deployment (azure/claude-*).",
            param="model",
            code="invalid_model_mode",
            model=route.model,
        )
    if route.provider != PROVIDER or route.operation not in OPERATION_PATHS:
        return None
    url, query, model_in_body = deployment_url(connection, route.deployment, OPERATION_PATHS[route.operation])
    body: dict[str, Any]
    if route.operation == "completions":
        body = text.completions_body(request)
    else:
        body = {"messages": request.messages, **request.params}
    if model_in_body:
        body["model"] = route.deployment
    if request.stream:
        body["stream"] = True
        # The core wants the usage chunk to price the stream (HOOK_API 1.6; getattr for older
        # cores); API versions older than stream_options would answer 400 to it.
        if getattr(request, "stream_usage", False) and takes_stream_options(api_version(connection)):
            body["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
    headers = dict(connection.extra_headers) if connection.extra_headers else {}
    # The model's validator itself: what ProviderRequest(...) runs, without BaseModel.__init__'s
    # keyword packing around it (~0.5 µs on every call).
    built: ProviderRequest = _PROVIDER_REQUEST(
        {"url": url, "params": query, "headers": headers, "json_body": body, "stream": request.stream}
    )
    return built


_PROVIDER_REQUEST = ProviderRequest.__pydantic_validator__.validate_python


@hookimpl
@answers_for(PROVIDER, *OPERATION_PATHS)
def keeps_answers(route: Route, kind: str) -> bool | None:
    """Azure's chat answers and chunks are OpenAI-shaped: validated, never changed (None for others)."""
    if route.provider != PROVIDER or route.operation not in OPERATION_PATHS:
        return None
    return True


@hookimpl
@answers_for(PROVIDER, *OPERATION_PATHS)
def normalize_response(route: Route, response: ProviderResponse) -> Any:
    """Azure's JSON as a pydantic model; Azure's extra fields (filter results ...) are kept."""
    if route.provider != PROVIDER or route.operation not in OPERATION_PATHS:
        return None
    if route.operation == "completions":
        return TextCompletion.model_validate_json(response.content)
    return ChatCompletion.model_validate_json(response.content)


@hookimpl
@answers_for(PROVIDER)
def normalize_chunk(route: Route, chunk: dict[str, Any]) -> Any:
    """One stream event as a :class:`ChatCompletionChunk` (a :class:`TextCompletion` on ``completions``)."""
    if route.provider != PROVIDER:
        return None
    if route.operation == "completions":
        return TextCompletion.model_validate(chunk)
    return ChatCompletionChunk.model_validate(chunk)


@hookimpl
@answers_for(PROVIDER, *OPERATION_PATHS)
def map_error(route: Route, response: ProviderResponse) -> APIError | None:
    """Azure's error bodies (both the ``error`` wrapper and the bare token-failure shape).

    Chat and completions only: each Azure plugin maps the errors of the operations it serves
    (all with :func:`modelyard_azure_common.errors.map_azure_error`).
    """
    if route.provider != PROVIDER or route.operation not in OPERATION_PATHS:
        return None
    return map_azure_error(route, response, PROVIDER)


@hookimpl
def register_operations(register: RegisterOperation) -> None:
    """``/openai/deployments/{model}/chat/completions`` and ``.../completions`` on the proxy, for
    ``AzureOpenAI`` clients; and ``anthropic_messages``, the native Messages API of
    modelyard-azure-anthropic (named when that plugin is blocked or missing)."""
    for path in deployment_paths(OPERATION_PATHS):
        register(path)
    register(OperationRef(sdk="anthropic_messages", distribution=CLAUDE_PLUGIN))


@hookimpl
def register_providers(register: RegisterProvider) -> None:
    """Which distribution serves each part of the ``azure`` provider, installed or not.

    The core names no plugin: when a call finds nothing answering one of these hooks (files
    and batches without ``modelyard-azure-batch``, credentials without ``modelyard-azure-auth``),
    its error names the distribution given here, why it is not loaded, and the install line.
    """
    register(
        Provider(
            name=PROVIDER,
            description="Azure OpenAI",
            served_by={
                "transform_request": "modelyard-azure-chat",
                "transform_request:embeddings": EMBEDDINGS_PLUGIN,
                "transform_request:image_generation": IMAGES_PLUGIN,
                "transform_request:image_edit": IMAGES_PLUGIN,
                "transform_request:speech": AUDIO_PLUGIN,
                "transform_request:transcriptions": AUDIO_PLUGIN,
                "transform_request:translations": AUDIO_PLUGIN,
                **{f"transform_request:{op}": RESPONSES_PLUGIN for op in RESPONSES_OPERATIONS},
                "resolve_auth": AUTH_PLUGIN,
                "transform_files_request": BATCH_PLUGIN,
                "files_router": BATCH_PLUGIN,
            },
        )
    )
    register(
        Provider(
            name=CLAUDE_PROVIDER,
            description="Claude on Azure AI Foundry",
            served_by={"transform_request": CLAUDE_PLUGIN, "resolve_auth": AUTH_PLUGIN},
        )
    )


@hookimpl
def register_price_names(register: RegisterPriceNames) -> None:
    """How LiteLLM's price table names Azure's models (HOOK_API 1.9).

    ``azure/``, ``azure_text/`` and ``azure_ai/`` keys are Azure's; Azure's entries are the
    fallback for a bare name (the table is mostly Azure's and OpenAI's); Azure drops the dot of
    OpenAI's names (``gpt-35-turbo``), so ``gpt-3.5`` is tried too.
    """
    register(PriceNames(provider=PROVIDER, prefixes=("azure_text", "azure_ai"), fallback=True,
                        aliases={"gpt-35": "gpt-3.5"}))  # fmt: skip
