"""Data that crosses the pipeline and the hook boundary, as pydantic models.

Three groups:

* what the caller asked for: :class:`Connection` (where and as whom), :class:`ChatParams`
  (the OpenAI parameters, validated so that a wrong type names its field), :class:`ChatRequest`;
* what travels to and from the upstream: :class:`Route`, :class:`ProviderRequest`,
  :class:`ProviderResponse`;
* what the caller gets back, OpenAI-shaped and keeping Azure's extra fields:
  :class:`ChatCompletion`, :class:`ChatCompletionChunk`, :class:`TextCompletion`.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationInfo,
    field_validator,
)

from .redact import clean_secret

__all__ = [
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChatParams",
    "ChatRequest",
    "Choice",
    "ChunkChoice",
    "Connection",
    "ConnectionSettings",
    "Delta",
    "Message",
    "ProviderRequest",
    "ProviderResponse",
    "Route",
    "TextChoice",
    "TextCompletion",
    "TextParams",
    "TokenProvider",
    "Usage",
]

TokenProvider = Callable[[], "str | Awaitable[str]"]
"""A sync or async callable returning a bearer token (azure-identity's ``get_bearer_token_provider``)."""


class _Open(BaseModel):
    """A response model that keeps fields it does not declare (Azure adds many)."""

    model_config = ConfigDict(extra="allow")

    _response_headers: dict[str, str] | None = PrivateAttr(default=None)
    """The upstream's HTTP response headers (``x-ratelimit-remaining-*`` ...), as LiteLLM keeps them."""

    def __getitem__(self, key: str) -> Any:
        """Dict-style access, as LiteLLM's responses allow (``r["choices"][0]``)."""
        try:
            return getattr(self, key)
        except AttributeError:
            raise KeyError(key) from None


# --------------------------------------------------------------------------- caller side


class ConnectionSettings(BaseModel):
    """The connection settings that can be written down (in code or in config.yaml).

    :class:`Connection` adds what only code can pass (a token provider); the proxy's
    ``litellm_params`` model adds deployment and routing fields. One list, so a new credential
    field is declared once.
    """

    # A validation error's text would otherwise quote the input, which may be a secret.
    model_config = ConfigDict(hide_input_in_errors=True)

    api_base: str | None = None
    base_url: str | None = None
    api_version: str | None = None
    api_key: SecretStr | None = None
    azure_ad_token: SecretStr | None = None
    tenant_id: str | None = None
    client_id: str | None = None
    client_secret: SecretStr | None = None
    azure_username: str | None = None
    azure_password: SecretStr | None = None
    client_certificate_path: str | None = None
    client_certificate_password: SecretStr | None = None
    azure_scope: str | None = None
    azure_authority_host: str | None = None
    enable_azure_ad_token_refresh: bool | None = None

    @field_validator("api_key", "azure_ad_token", "client_secret", "azure_password", "client_certificate_password")
    @classmethod
    def _one_line(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        # A secret mounted from a file ends with a line break: drop it. Any other control
        # character would break the header it goes into (and the HTTP library would quote it).
        return _one_line(value, info)


def _one_line(value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
    """A pydantic validator for ``SecretStr`` fields: :func:`~modelyard.redact.clean_secret` on the value."""
    if value is None:
        return None
    raw = value.get_secret_value()
    cleaned = clean_secret(raw, str(info.field_name))
    return value if cleaned == raw else SecretStr(cleaned)


class Connection(ConnectionSettings):
    """Where the call goes and which credential it carries.

    Every field may be left unset; the plugins fill the gaps from the environment
    (``AZURE_API_BASE`` ...). Secrets are ``SecretStr`` so that they never show in a repr.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    azure_ad_token_provider: TokenProvider | None = None
    extra_headers: Mapping[str, str] | None = None

    def __repr_args__(self) -> Any:
        # Only the fields that were set, so a repr stays short; SecretStr hides the secrets,
        # and the token provider is shown by type only.
        for name in self.model_fields_set:
            value = getattr(self, name)
            if name == "azure_ad_token_provider":
                value = "<callable>"
            elif name == "extra_headers" and value:
                value = {k: "**********" for k in value}
            yield name, value


class ChatParams(BaseModel):
    """OpenAI chat-completion parameters, typed so that a wrong value names its field.

    Unknown parameters are kept (``extra="allow"``) and sent as they are: Azure takes fields
    OpenAI does not (``data_sources``, ``enhancements``), and new ones appear between releases.
    """

    # NaN and Infinity are not JSON: sent on, they make the upstream body invalid.
    model_config = ConfigDict(extra="allow", allow_inf_nan=False)

    temperature: float | None = None
    top_p: float | None = None
    n: int | None = Field(default=None, ge=1)
    stop: str | list[str] | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    logit_bias: dict[str, float] | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    user: str | None = None
    seed: int | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    functions: list[dict[str, Any]] | None = None
    function_call: str | dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None
    stream_options: dict[str, Any] | None = None
    metadata: dict[str, str] | None = None
    store: bool | None = None
    reasoning_effort: str | None = None
    verbosity: str | None = None
    modalities: list[str] | None = None
    audio: dict[str, Any] | None = None
    prediction: dict[str, Any] | None = None
    user_security_context: dict[str, Any] | None = None


class TextParams(BaseModel):
    """Legacy completions parameters (``text_completion``), typed like :class:`ChatParams`.

    ``logprobs`` is an integer here (how many top tokens), not chat's boolean.
    """

    # NaN and Infinity are not JSON: sent on, they make the upstream body invalid.
    model_config = ConfigDict(extra="allow", allow_inf_nan=False)

    prompt: str | list[str] | list[int] | list[list[int]]
    suffix: str | None = None
    echo: bool | None = None
    best_of: int | None = Field(default=None, ge=0, le=20)
    logprobs: int | None = Field(default=None, ge=0, le=5)
    max_tokens: int | None = Field(default=None, ge=0)
    temperature: float | None = None
    top_p: float | None = None
    n: int | None = Field(default=None, ge=1)
    stop: str | list[str] | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    logit_bias: dict[str, float] | None = None
    user: str | None = None
    seed: int | None = None
    stream_options: dict[str, Any] | None = None


class Route(BaseModel):
    """Where a model string leads: which provider plugin, which family, which deployment.

    Attributes:
        model: the model string as the caller wrote it (``azure/o_series/my-dep``).
        provider: the provider key that transform/auth/normalize hooks answer for (``azure``).
        family: the name of the model family whose parameter rules applied.
        deployment: the upstream deployment (prefix and family segment stripped).
        operation: which upstream operation (``chat``, ``completions`` ...).
    """

    model_config = ConfigDict(frozen=True)

    model: str
    provider: str
    family: str
    deployment: str
    operation: str = "chat"


class ChatRequest(BaseModel):
    """One prepared chat call: family rules already applied.

    Parameters may carry credentials for other services (``dataSources[].parameters.key``,
    ``data_sources[].parameters.authentication.key``): the repr masks every value whose key
    names a secret (``*key``, ``*token``, ``*secret*``, ``*password*``, ``connection_string``).
    """

    model_config = ConfigDict(frozen=True)

    messages: list[dict[str, Any]]
    params: dict[str, Any] = Field(default_factory=dict)
    stream: bool = False

    def __repr_args__(self) -> Any:
        yield "messages", self.messages
        yield "params", _redacted(self.params)
        yield "stream", self.stream


def _secret_name(key: str) -> bool:
    k = key.lower().replace("_", "").replace("-", "")
    return k.endswith(("key", "token")) or any(w in k for w in ("secret", "password", "connectionstring"))


def _redacted(value: Any) -> Any:
    """A copy of ``value`` with the values of secret-named keys masked, at any depth."""
    if isinstance(value, Mapping):
        return {k: "**********" if isinstance(k, str) and _secret_name(k) and v else _redacted(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redacted(v) for v in value]
    return value


class ProviderRequest(BaseModel):
    """The upstream HTTP call a ``transform_request`` hook builds."""

    method: Literal["GET", "POST", "DELETE"] = "POST"
    url: str
    params: dict[str, str] = Field(default_factory=dict)
    headers: dict[str, str] = Field(default_factory=dict)
    json_body: dict[str, Any] | None = None
    files: dict[str, Any] | None = None
    """Multipart file parts, as httpx's ``files=`` (``{"file": (name, fileobj, type)}``);
    file objects are streamed, not read whole. Since HOOK_API 1.1."""
    data: dict[str, str] | None = None
    """Multipart form fields sent with ``files``. Since HOOK_API 1.1."""
    stream: bool = False

    def __repr_args__(self) -> Any:
        # Headers may carry credentials added later by the auth step: show names only.
        yield "method", self.method
        yield "url", self.url
        yield "params", self.params
        yield "headers", sorted(self.headers)
        yield "stream", self.stream


class ProviderResponse(BaseModel):
    """An upstream HTTP response, read whole (errors and non-streaming calls)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    status_code: int
    headers: Mapping[str, str]
    content: bytes = b""

    def json_body(self) -> Any:
        """The body parsed as JSON, or ``None`` when it is not JSON."""
        try:
            return json.loads(self.content)
        except ValueError:
            return None

    @property
    def request_id(self) -> str | None:
        """Azure's ``apim-request-id``, else ``x-request-id``."""
        return self.headers.get("apim-request-id") or self.headers.get("x-request-id")


# --------------------------------------------------------------------------- responses


class Usage(_Open):
    """Token counts; ``completion_tokens_details.reasoning_tokens`` and the like are kept as sent."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    completion_tokens_details: dict[str, Any] | None = None
    prompt_tokens_details: dict[str, Any] | None = None


class Message(_Open):
    """An assistant message: ``content``, ``tool_calls``, ``audio``, ``refusal``, Azure's ``context``."""

    role: str = "assistant"
    content: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    function_call: dict[str, Any] | None = None
    refusal: str | None = None
    audio: dict[str, Any] | None = None


class Choice(_Open):
    """One choice of a chat completion, with Azure's ``content_filter_results`` kept."""

    index: int = 0
    message: Message
    finish_reason: str | None = None
    logprobs: dict[str, Any] | None = None


class ChatCompletion(_Open):
    """An OpenAI-shaped chat completion (``object == "chat.completion"``)."""

    id: str = ""
    object: str = "chat.completion"
    created: int = 0
    model: str = ""
    choices: list[Choice] = Field(default_factory=list)
    usage: Usage | None = None
    system_fingerprint: str | None = None


class Delta(_Open):
    """The increment one stream chunk carries."""

    role: str | None = None
    content: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    function_call: dict[str, Any] | None = None
    refusal: str | None = None
    audio: dict[str, Any] | None = None


class ChunkChoice(_Open):
    """One choice of a stream chunk."""

    index: int = 0
    delta: Delta = Field(default_factory=Delta)
    finish_reason: str | None = None
    logprobs: dict[str, Any] | None = None


class ChatCompletionChunk(_Open):
    """One server-sent event of a chat stream (``object == "chat.completion.chunk"``)."""

    id: str = ""
    object: str = "chat.completion.chunk"
    created: int = 0
    model: str = ""
    choices: list[ChunkChoice] = Field(default_factory=list)
    usage: Usage | None = None
    system_fingerprint: str | None = None


class TextChoice(_Open):
    """One choice of a legacy text completion."""

    index: int = 0
    text: str = ""
    finish_reason: str | None = None
    logprobs: dict[str, Any] | None = None


class TextCompletion(_Open):
    """An OpenAI-shaped legacy completion (``object == "text_completion"``)."""

    id: str = ""
    object: str = "text_completion"
    created: int = 0
    model: str = ""
    choices: list[TextChoice] = Field(default_factory=list)
    usage: Usage | None = None
