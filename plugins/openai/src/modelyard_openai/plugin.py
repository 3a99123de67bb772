"""OpenAI as a provider, written only against modelyard's public hooks.

* Families: ``openai/<model>`` (chat; ``openai/gpt-3.5-turbo-instruct`` and the other instruct
  models call the legacy completions operation), and **bare names** (``gpt-4o``, ``o3-mini``,
  ``text-embedding-3-small`` ...: a family with an empty prefix, matched by pattern), as LiteLLM
  reads a model string without a provider.
* Connection: ``api_key`` (else ``OPENAI_API_KEY``), ``api_base`` / ``base_url`` (else
  ``OPENAI_BASE_URL``, ``OPENAI_API_BASE``, else ``https://api.openai.com/v1``), and
  ``organization`` / ``project`` (else ``OPENAI_ORGANIZATION`` / ``OPENAI_PROJECT``), declared
  through ``register_connection_settings``.
* Operations: every row of the operation table OpenAI serves (chat, completions, embeddings,
  image generation and edits, speech, transcriptions, translations), each at
  ``{base}{row.paths[0]}`` with the model in the body, a ``Bearer`` key.
* Errors: OpenAI's ``{"error": {...}}`` JSON mapped onto modelyard's error tree.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from modelyard import hookimpl
from modelyard.connection import ConnectionSetting
from modelyard.errors import (
    APIError,
    AuthenticationError,
    ContextWindowExceededError,
    RateLimitError,
    error_for_status,
)
from modelyard.families import Family, Provider
from modelyard.hookspecs import answers_for
from modelyard.operations import OPERATIONS, multipart_parts
from modelyard.plugin import PriceNames
from modelyard.types import (
    ChatCompletion,
    ChatCompletionChunk,
    ProviderRequest,
    TextCompletion,
    TranscriptionResponse,
)

if TYPE_CHECKING:
    from modelyard.connection import ConnectionSchema
    from modelyard.hookspecs import (
        RegisterConnectionSetting,
        RegisterFamily,
        RegisterPriceNames,
        RegisterProvider,
    )
    from modelyard.types import ChatRequest, Connection, ProviderResponse, Route

HOOK_API = (1, 11)  # answers_for (1.11); keeps_answers (1.10); register_connection_settings, bare-name families (1.7); register_price_names (1.9)
PROVIDER = "openai"
DISTRIBUTION = "modelyard-openai"
DEFAULT_BASE = "https://api.openai.com/v1"

# OpenAI's model names, as LiteLLM recognises a bare one: chat and reasoning models, embeddings,
# images, audio. No "/" (that is another provider's prefix, or a typo).
_BARE = r"^(gpt-|chatgpt-|o[1-9]|ft:|text-embedding-|dall-e-|tts-|whisper-|omni-moderation)[^/]*$"
_INSTRUCT = r"(^|/)(gpt-3\.5-turbo-instruct|davinci-002|babbage-002)"


@hookimpl
def register_families(register: RegisterFamily) -> None:
    """``openai/<model>`` and bare OpenAI names; the instruct models call ``completions``."""
    register(Family(name="openai", provider=PROVIDER, prefix="openai/", description="OpenAI (openai/<model>)"))
    register(Family(name="openai_instruct", provider=PROVIDER, prefix="openai/", pattern=_INSTRUCT, priority=10,
                    operation="completions", description="OpenAI instruct models (legacy completions)"))  # fmt: skip
    register(Family(name="openai_bare", provider=PROVIDER, prefix="", pattern=_BARE,
                    description="OpenAI models named without a provider (gpt-4o, as LiteLLM reads them)"))  # fmt: skip
    register(Family(name="openai_bare_instruct", provider=PROVIDER, prefix="", pattern=_INSTRUCT + r"$", priority=10,
                    operation="completions", description="OpenAI instruct models named without a provider"))  # fmt: skip


@hookimpl
def register_connection_settings(register: RegisterConnectionSetting) -> None:
    """OpenAI's environment variables for the shared settings, and its own two headers."""
    register(ConnectionSetting(name="api_key", provider=PROVIDER, kind="secret", env=("OPENAI_API_KEY",), credential=True))
    register(ConnectionSetting(name="api_base", provider=PROVIDER, env=("OPENAI_BASE_URL", "OPENAI_API_BASE")))
    # Per call or per deployment only (no modelyard.organization): one process may serve several.
    register(ConnectionSetting(name="organization", provider=PROVIDER, env=("OPENAI_ORGANIZATION",),
                               module_setting=False, description="the OpenAI-Organization header"))  # fmt: skip
    register(ConnectionSetting(name="project", provider=PROVIDER, env=("OPENAI_PROJECT",),
                               module_setting=False, description="the OpenAI-Project header"))  # fmt: skip


@hookimpl
def register_providers(register: RegisterProvider) -> None:
    """Every hook of ``openai`` is this distribution's (the error of a blocked plugin names it)."""
    hooks = ("transform_request", "resolve_auth", "normalize_response", "normalize_chunk", "map_error")
    register(Provider(name=PROVIDER, description="OpenAI", served_by=dict.fromkeys(hooks, DISTRIBUTION)))


@hookimpl
def register_price_names(register: RegisterPriceNames) -> None:
    """``openai/`` and ``text-completion-openai/`` keys of the price table are OpenAI's (HOOK_API 1.9)."""
    register(PriceNames(provider=PROVIDER, prefixes=("text-completion-openai",)))


def _schema() -> ConnectionSchema:
    from modelyard.connection import connection_schema

    return connection_schema()


def base_url(connection: Connection) -> str:
    """The API root: ``api_base`` / ``base_url``, else ``OPENAI_BASE_URL`` / ``OPENAI_API_BASE``, else OpenAI's."""
    base = connection.api_base or connection.base_url or _schema().resolve(PROVIDER, "api_base")
    return str(base or DEFAULT_BASE).rstrip("/")


def _mine(route: Route) -> bool:
    return route.provider == PROVIDER and route.operation in OPERATIONS


@hookimpl
@answers_for(PROVIDER)
def transform_request(route: Route, request: ChatRequest, connection: Connection) -> ProviderRequest | None:
    """``POST {base}{path}`` with the model in the body (JSON, or multipart for uploads)."""
    if not _mine(route):
        return None
    op = OPERATIONS[route.operation]
    url = base_url(connection) + op.paths[0]
    headers = dict(connection.extra_headers) if connection.extra_headers else {}
    schema = _schema()
    for name, header in (("organization", "OpenAI-Organization"), ("project", "OpenAI-Project")):
        value = schema.resolve(PROVIDER, name, connection.get(name))
        if value:
            headers.setdefault(header, str(value))
    if route.operation == "chat":
        body: dict[str, Any] = {"model": route.deployment, "messages": request.messages, **request.params}
    else:
        body = {"model": route.deployment, **request.params}
    if request.stream:
        body["stream"] = True
        if getattr(request, "stream_usage", False):  # the core prices streams from the usage chunk
            body["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
    if op.body == "multipart":
        files, data = multipart_parts(op, body)
        return ProviderRequest(url=url, headers=headers, files=files, data=data)
    return ProviderRequest(url=url, headers=headers, json_body=body, stream=request.stream)


class BearerKey:
    """An API key sent as ``Authorization: Bearer <key>`` (OpenAI's scheme)."""

    __slots__ = ("_headers",)

    def __init__(self, key: str) -> None:
        self._headers = {"Authorization": f"Bearer {key}"}

    def headers(self) -> dict[str, str]:
        return self._headers

    async def aheaders(self) -> dict[str, str]:
        return self._headers

    def invalidate(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "BearerKey(<key>)"


@hookimpl
@answers_for(PROVIDER)
def resolve_auth(route: Route, connection: Connection, timeout: float | None) -> BearerKey | None:
    """``api_key``, else ``OPENAI_API_KEY``; a caller's own ``Authorization`` header is kept as is."""
    if route.provider != PROVIDER:
        return None
    if any(k.lower() == "authorization" for k in connection.extra_headers or {}):
        return _Given("")
    key = _schema().resolve(PROVIDER, "api_key", connection.api_key)
    if key is None:
        raise AuthenticationError(
            "No credential for OpenAI: pass api_key=... or set OPENAI_API_KEY.",
            provider=PROVIDER,
            model=route.model,
        )
    return BearerKey(key.get_secret_value())


class _Given(BearerKey):
    """The caller sent ``Authorization`` in ``extra_headers``: add nothing."""

    def headers(self) -> dict[str, str]:
        return {}

    async def aheaders(self) -> dict[str, str]:
        return {}


@hookimpl
@answers_for(PROVIDER)
def keeps_answers(route: Route, kind: str) -> bool | None:
    """OpenAI's chat answers and chunks are validated, never changed; other operations may be."""
    if route.provider != PROVIDER:
        return None
    return route.operation in ("chat", "completions")


@hookimpl
@answers_for(PROVIDER)
def normalize_response(route: Route, response: ProviderResponse) -> Any:
    """OpenAI's JSON as the operation's response model (transcripts in text formats as ``text``)."""
    if not _mine(route):
        return None
    op = OPERATIONS[route.operation]
    if route.operation == "chat":
        return ChatCompletion.model_validate_json(response.content)
    if route.operation == "completions":
        return TextCompletion.model_validate_json(response.content)
    if op.response is TranscriptionResponse and "json" not in str(response.headers.get("content-type") or ""):
        return TranscriptionResponse(text=response.content.decode("utf-8", "replace"))
    return op.response.model_validate_json(response.content)


@hookimpl
@answers_for(PROVIDER)
def normalize_chunk(route: Route, chunk: dict[str, Any]) -> Any:
    """One stream event: a chat chunk, or a text-completion chunk on ``completions``."""
    if route.provider != PROVIDER:
        return None
    if route.operation == "completions":
        return TextCompletion.model_validate(chunk)
    return ChatCompletionChunk.model_validate(chunk)


_RETRY_AFTER = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*$")


@hookimpl
@answers_for(PROVIDER)
def map_error(route: Route, response: ProviderResponse) -> APIError | None:
    """OpenAI's error JSON: ``context_length_exceeded``, 429 with ``retry-after``, else by status."""
    if not _mine(route):
        return None
    body = response.json_body()
    detail: dict[str, Any] = {}
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        detail = body["error"]
    code = detail.get("code")
    common: dict[str, Any] = {
        "status_code": response.status_code,
        "code": str(code) if code is not None else None,
        "param": detail.get("param"),
        "provider": PROVIDER,
        "model": route.model,
        "deployment": route.deployment,
        "request_id": response.request_id,
        "body": body,
    }
    message = str(detail.get("message") or f"OpenAI answered HTTP {response.status_code}.")
    if code == "context_length_exceeded":
        return ContextWindowExceededError(message, **common)
    if response.status_code == 429:
        found = _RETRY_AFTER.match(str(response.headers.get("retry-after") or ""))
        return RateLimitError(message, retry_after=float(found.group(1)) if found else None, **common)
    return error_for_status(response.status_code)(message, **common)
