"""Claude on Azure AI Foundry: families, request transform, answers, streams, errors and prices.

``azure/claude-*`` and ``azure_ai/claude-*`` resolve to the ``azure_anthropic`` provider. A
chat call becomes a Messages API call to ``{api_base}/anthropic/v1/messages`` (the body's
``model`` is the Foundry deployment) with ``anthropic-version``; the credential comes from
``modelyard-azure-auth`` (``x-api-key``, or an Entra ID token for ``https://ai.azure.com``).
The ``messages`` operation sends Anthropic's native body as it came.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from modelyard import hookimpl
from modelyard.errors import APIError, ConfigError
from modelyard.families import Family, ParamRules, Provider
from modelyard.hookspecs import answers_for
from modelyard.types import ChatCompletion, ProviderRequest

from .errors import error_from_body
from .messages import MESSAGES, MESSAGES_PATHS, MessagesResponse
from .prices import PRICES
from .stream import MessagesStream
from .translate import chat_completion, messages_body, usage

if TYPE_CHECKING:
    from modelyard.hookspecs import (
        RegisterFamily,
        RegisterOperation,
        RegisterPrices,
        RegisterProvider,
        StreamTranslator,
    )
    from modelyard.types import ChatRequest, Connection, ProviderResponse, Route

HOOK_API = (1, 11)  # answers_for (1.11); keeps_answers (1.10); register_operations: the native messages row (1.8: translate_stream)
PROVIDER = "azure_anthropic"
DISTRIBUTION = "modelyard-azure-anthropic"
ANTHROPIC_VERSION = "2023-06-01"
"""The ``anthropic-version`` header sent (the Messages API's current version); a caller's
``extra_headers={"anthropic-version": ...}`` wins."""
OPERATIONS = frozenset({"chat", "messages"})
RULES = ParamRules(
    # OpenAI parameters the Messages API has no counterpart for: refused, or dropped with drop_params.
    unsupported=frozenset({"logit_bias", "logprobs", "top_logprobs", "presence_penalty", "frequency_penalty",
                           "seed", "response_format", "audio", "modalities", "prediction", "web_search_options"}),
    fixed={"n": 1},
)  # fmt: skip
_HOSTS = (".openai.azure.com", ".cognitiveservices.azure.com")
_TAILS = ("/anthropic/v1/messages", "/anthropic/v1", "/anthropic", "/openai/v1", "/openai", "/models")


@hookimpl
def register_families(register: RegisterFamily) -> None:
    """``azure/claude-*`` and ``azure_ai/claude-*``: Claude deployments on a Foundry resource."""
    for name, prefix in (("azure_anthropic", "azure/"), ("azure_ai_anthropic", "azure_ai/")):
        register(
            Family(
                name=name,
                provider=PROVIDER,
                prefix=prefix,
                pattern="claude",
                priority=100,
                rules=RULES,
                description="Claude on Azure AI Foundry (Anthropic's Messages API)",
            )
        )


@hookimpl
def register_operations(register: RegisterOperation) -> None:
    """The native ``messages`` operation (:mod:`.messages`) and its ``/anthropic/v1/messages`` path."""
    register(MESSAGES)
    for path in MESSAGES_PATHS:
        register(path)


@hookimpl
def register_providers(register: RegisterProvider) -> None:
    """Who serves ``azure_anthropic``: this plugin, and modelyard-azure-auth for credentials."""
    register(
        Provider(
            name=PROVIDER,
            description="Claude on Azure AI Foundry",
            served_by={"transform_request": DISTRIBUTION, "resolve_auth": "modelyard-azure-auth"},
        )
    )


def messages_url(connection: Connection) -> str:
    """``{api_base}/anthropic/v1/messages`` on the Foundry resource.

    ``api_base`` (or ``base_url``), else ``AZURE_AI_API_BASE``, else ``AZURE_API_BASE``. An
    Azure OpenAI host name of the same resource (``<name>.openai.azure.com``,
    ``<name>.cognitiveservices.azure.com``) becomes its Foundry one (``<name>.services.ai.azure.com``),
    and a path already ending in ``/anthropic``, ``/openai`` ... is trimmed first.

    Raises:
        ConfigError: no api_base anywhere.
    """
    base = connection.api_base or connection.base_url or os.environ.get("AZURE_AI_API_BASE") or os.environ.get("AZURE_API_BASE")
    if not base:
        raise ConfigError(
            "Claude on Azure AI Foundry needs api_base (https://<resource>.services.ai.azure.com), "
            "or the AZURE_AI_API_BASE environment variable.",
            key="api_base",
        )
    parts = urlsplit(base.strip())
    netloc = parts.netloc
    host = parts.hostname or ""
    for suffix in _HOSTS:
        if host.endswith(suffix):
            netloc = netloc.replace(host, host[: -len(suffix)] + ".services.ai.azure.com")
    path = parts.path.rstrip("/")
    for tail in _TAILS:
        if path.endswith(tail):
            path = path[: -len(tail)]
            break
    return f"{parts.scheme}://{netloc}{path}/anthropic/v1/messages"


@hookimpl
@answers_for(PROVIDER, *OPERATIONS)
def transform_request(route: Route, request: ChatRequest, connection: Connection) -> ProviderRequest | None:
    """A chat call translated to the Messages API, or a ``messages`` call's native body as given."""
    if route.provider != PROVIDER or route.operation not in OPERATIONS:
        return None
    headers = {"anthropic-version": ANTHROPIC_VERSION}
    if connection.extra_headers:
        headers.update(connection.extra_headers)
    if route.operation == "messages":
        body = {"model": route.deployment, **{k: v for k, v in request.params.items() if v is not None}}
        return ProviderRequest(url=messages_url(connection), headers=headers, json_body=body, stream=bool(body.get("stream")))
    body = messages_body(
        request.messages, request.params, deployment=route.deployment, model_hint=route.deployment, stream=request.stream
    )
    return ProviderRequest(url=messages_url(connection), headers=headers, json_body=body, stream=request.stream)


@hookimpl
@answers_for(PROVIDER, *OPERATIONS)
def keeps_answers(route: Route, kind: str) -> bool | None:
    """Anthropic's answers are translated: never kept as sent (None for other providers)."""
    return False if route.provider == PROVIDER and route.operation in OPERATIONS else None


@hookimpl
@answers_for(PROVIDER, *OPERATIONS)
def normalize_response(route: Route, response: ProviderResponse) -> Any:
    """A Messages API answer as a :class:`ChatCompletion`; for ``messages`` (passed through to the
    caller unchanged) a :class:`MessagesResponse` whose ``usage`` is in OpenAI's shape, to price it."""
    if route.provider != PROVIDER or route.operation not in OPERATIONS:
        return None
    body = response.json_body()
    if not isinstance(body, dict):
        raise error_from_body(502, None, provider=PROVIDER, model=route.model, deployment=route.deployment)
    if route.operation == "messages":
        return MessagesResponse.model_validate({**body, "usage": usage(body["usage"]) if body.get("usage") else None})
    return ChatCompletion.model_validate(chat_completion(body))


@hookimpl
@answers_for(PROVIDER, *OPERATIONS)
def translate_stream(route: Route) -> StreamTranslator | None:
    """One :class:`~modelyard_azure_anthropic.stream.MessagesStream` per stream (chat; and
    ``messages``, whose events the core reads on the side for the usage)."""
    if route.provider != PROVIDER or route.operation not in OPERATIONS:
        return None
    return MessagesStream()


@hookimpl
@answers_for(PROVIDER)
def map_error(route: Route, response: ProviderResponse) -> APIError | None:
    """Anthropic's error shape (and Azure's gateway errors) to the error tree (:mod:`.errors`)."""
    if route.provider != PROVIDER:
        return None
    return error_from_body(
        response.status_code, response.json_body(), response.headers, provider=PROVIDER, model=route.model,
        deployment=route.deployment, request_id=response.headers.get("request-id") or response.request_id,
    )  # fmt: skip


@hookimpl
def register_prices(register: RegisterPrices) -> None:
    """Claude's prices on Foundry (Anthropic's list prices), under ``azure_anthropic/`` and ``azure_ai/``."""
    for model, prices in PRICES.items():
        register(f"{PROVIDER}/{model}", prices)
        register(f"azure_ai/{model}", prices)
