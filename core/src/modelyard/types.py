"""Data that crosses the pipeline and the hook boundary, as pydantic models.

Three groups:

* what the caller asked for: :class:`Connection` (where and as whom), :class:`ChatParams`
  (the OpenAI parameters, validated so that a wrong type names its field), :class:`ChatRequest`;
* what travels to and from the upstream: :class:`Route`, :class:`ProviderRequest`,
  :class:`ProviderResponse`;
* what the caller gets back, OpenAI-shaped and keeping Azure's extra fields:
  :class:`ChatCompletion`, :class:`ChatCompletionChunk`, :class:`TextCompletion`, typed down to
  every nested part (tool calls, audio, usage details, logprobs, Azure's content-filter results
  and ``context``), read by attribute (as the openai SDK) or by key (as LiteLLM).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from .redact import clean_secret

__all__ = [
    "Annotation",
    "Audio",
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChatParams",
    "ChatRequest",
    "Choice",
    "ChoiceLogprobs",
    "ChunkChoice",
    "Citation",
    "CompletionTokensDetails",
    "Connection",
    "ConnectionSettings",
    "ContentFilterDetail",
    "ContentFilterErrorInfo",
    "ContentFilterResult",
    "ContentFilterResults",
    "CustomToolCallInput",
    "Delta",
    "Function",
    "Message",
    "MessageContext",
    "Moderation",
    "ModerationPart",
    "ModerationResult",
    "PromptFilterResult",
    "PromptTokensDetails",
    "ProtectedMaterialCitation",
    "ProviderRequest",
    "ProviderResponse",
    "RetrievedDocument",
    "Route",
    "SpeechParams",
    "TextChoice",
    "TextCompletion",
    "TextLogprobs",
    "TextParams",
    "TokenLogprob",
    "TokenProvider",
    "ToolCall",
    "TopLogprob",
    "TranscriptionParams",
    "TranscriptionResponse",
    "URLCitation",
    "Usage",
]

TokenProvider = Callable[[], "str | Awaitable[str]"]
"""A sync or async callable returning a bearer token (a provider's ``*_token_provider`` setting)."""


# --------------------------------------------------------------------------- caller side


class ConnectionSettings(BaseModel):
    """The connection settings every provider shares, as written down (in code or in config.yaml).

    :class:`Connection` adds what only code can pass and the settings the provider plugins
    declare (:mod:`modelyard.connection`); the proxy's ``litellm_params`` model adds deployment
    and routing fields.
    """

    # A validation error's text would otherwise quote the input, which may be a secret.
    model_config = ConfigDict(hide_input_in_errors=True)

    api_base: str | None = None
    base_url: str | None = None
    api_version: str | None = None
    api_key: SecretStr | None = None

    @field_validator("api_key")
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

    Every field may be left unset; the plugins fill the gaps from the environment. Besides the
    shared fields, a connection holds the settings the loaded provider plugins declare
    (``register_connection_settings``), checked for their kind: read any of them with
    :meth:`get`. Secrets are ``SecretStr`` so that they never show in a repr.
    """

    model_config = ConfigDict(frozen=True, extra="allow", arbitrary_types_allowed=True, hide_input_in_errors=True)

    extra_headers: Mapping[str, str] | None = None

    @model_validator(mode="after")
    def _declared(self) -> Connection:
        extra = self.__pydantic_extra__
        if extra:
            from .connection import connection_schema

            schema = connection_schema()
            for name, value in extra.items():
                extra[name] = schema.check(name, value)
        return self

    def get(self, name: str, default: Any = None) -> Any:
        """The value of setting ``name`` (a shared field or a declared one), else ``default``."""
        if name in type(self).model_fields:
            value = getattr(self, name)
        else:
            value = (self.__pydantic_extra__ or {}).get(name)
        return default if value is None else value

    def __repr_args__(self) -> Any:
        # Only the fields that were set, so a repr stays short; SecretStr hides the secrets,
        # and callables (token providers) are shown by type only.
        for name in self.model_fields_set:
            value = self.get(name)
            if callable(value):
                value = "<callable>"
            elif name == "extra_headers" and value:
                value = {k: "**********" for k in value}
            yield name, value


def _one_to_four(value: str | list[str]) -> str | list[str]:
    if isinstance(value, list) and not 1 <= len(value) <= 4:
        raise ValueError(f"give a string or 1 to 4 stop sequences, got {len(value)}")
    return value


# Checked after the union, so that a fifth stop word names ``stop``, not a branch of the union.
_Stop = Annotated[str | list[str], AfterValidator(_one_to_four)]


class ChatParams(BaseModel):
    """OpenAI chat-completion parameters, typed so that a wrong value names its field.

    Unknown parameters are kept (``extra="allow"``) and sent as they are: Azure takes fields
    OpenAI does not (``data_sources``, ``enhancements``), and new ones appear between releases.
    """

    # NaN and Infinity are not JSON: sent on, they make the upstream body invalid.
    model_config = ConfigDict(extra="allow", allow_inf_nan=False)

    # Ranges and lengths are the spec's (inference-2025-04-01-preview createChatCompletionRequest):
    # The upstream refuses anything outside them, so the SDK does before sending, naming the field.
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    n: int | None = Field(default=None, ge=1, le=128)
    stop: _Stop | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    logit_bias: dict[str, float] | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    user: str | None = None
    seed: int | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    functions: Annotated[list[dict[str, Any]], Field(min_length=1, max_length=128)] | None = None
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
    # The spec's ranges (createCompletionRequest), as in ChatParams.
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    n: int | None = Field(default=None, ge=1, le=128)
    stop: _Stop | None = None
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    logit_bias: dict[str, float] | None = None
    user: str | None = None
    seed: int | None = None
    stream_options: dict[str, Any] | None = None


class EmbeddingParams(BaseModel):
    """Embeddings parameters (``embedding``), typed: a wrong type names its field.

    ``input`` is a string, a list of strings, a token list or a list of token lists, sent
    unchanged; ``encoding_format`` is ``float`` or ``base64``.
    """

    # strict: "8" is not a dimension (the upstream would refuse it; say so before sending).
    model_config = ConfigDict(extra="allow", allow_inf_nan=False, strict=True)

    input: str | list[str] | list[int] | list[list[int]]
    dimensions: int | None = Field(default=None, ge=1)
    encoding_format: Literal["float", "base64"] | None = None
    user: str | None = None

    @field_validator("input")
    @classmethod
    def _not_empty(cls, value: Any) -> Any:
        if isinstance(value, str | list) and len(value) == 0:
            raise ValueError("must not be empty")
        return value


class ImageParams(BaseModel):
    """Image generation parameters (``image_generation``), dall-e-3 and gpt-image-1, typed: a wrong type names its field.

    ``size``, ``quality`` and ``style`` differ per model (dall-e-3: ``1024x1024`` ...,
    ``standard``/``hd``, ``vivid``/``natural``; gpt-image-1: ``1536x1024`` ..., ``low`` ...
    ``auto``), so their values are left to the upstream, which answers 400 naming the field.
    """

    # strict: "2" is not a number of images (the upstream would refuse it; say so before sending).
    model_config = ConfigDict(extra="allow", allow_inf_nan=False, strict=True)

    prompt: str = Field(min_length=1)
    n: int | None = Field(default=None, ge=1, le=10)
    size: str | None = None
    quality: str | None = None
    style: str | None = None
    response_format: Literal["url", "b64_json"] | None = None
    background: Literal["transparent", "opaque", "auto"] | None = None
    output_format: Literal["png", "jpeg", "webp"] | None = None
    output_compression: int | None = Field(default=None, ge=0, le=100)
    user: str | None = None


ImageFile = Any
"""An image to upload: ``bytes``, a path (``str`` / ``os.PathLike``), a binary file object, or
a ``(filename, content[, content_type])`` tuple, as the openai SDK takes them."""


class Upload:
    """One file to upload, as the caller gave it (``value``): the validated request holds files
    wrapped in it, so they reach the provider's ``transform_request`` untouched (never read,
    copied or serialized on the way). Since HOOK_API 1.4."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __repr__(self) -> str:
        return f"Upload({type(self.value).__name__})"


class ImageEditParams(ImageParams):
    """Image edit parameters (``image_edit``): :class:`ImageParams` plus the files.

    ``image`` is one image or a list of them (gpt-image-1 takes up to 16), ``mask`` an optional
    PNG whose transparent areas say where to edit. They are the ``image_edit`` row's file fields
    (:attr:`modelyard.operations.Operation.files`): the pipeline checks them and turns each into
    a streamed ``(filename, fileobj, content_type)`` multipart part before the provider sees it,
    as for transcriptions; files are streamed from disk or from the file object while sending,
    never read whole.
    """

    model_config = ConfigDict(extra="allow", allow_inf_nan=False, strict=True, arbitrary_types_allowed=True)

    image: ImageFile = None  # required: checked (and turned into parts) by the pipeline
    mask: ImageFile | None = None


SpeechFormat = Literal["mp3", "opus", "aac", "flac", "wav", "pcm"]
TranscriptionFormat = Literal["json", "text", "srt", "verbose_json", "vtt"]


class SpeechParams(BaseModel):
    """Text-to-speech parameters (``speech``), typed: a wrong type names its field.

    ``voice`` is a string (Azure's six voices and the newer ones gpt-4o-mini-tts takes);
    ``instructions`` steers gpt-4o-mini-tts.
    """

    model_config = ConfigDict(extra="allow", allow_inf_nan=False, strict=True)

    input: str = Field(min_length=1, max_length=4096)
    voice: str = Field(min_length=1)
    response_format: SpeechFormat | None = None
    speed: float | None = Field(default=None, ge=0.25, le=4.0)
    instructions: str | None = None


class TranscriptionParams(BaseModel):
    """Transcription and translation parameters (``transcription`` / ``translation``).

    ``file`` is the audio (bytes, a path, a binary file object, or ``(filename, content[,
    content_type])`` as the openai SDK takes it); the pipeline turns it into a streamed
    multipart part before the provider sees it. ``language`` and ``timestamp_granularities``
    are for transcriptions.
    """

    model_config = ConfigDict(extra="allow", allow_inf_nan=False, strict=True, arbitrary_types_allowed=True)

    file: Any = None  # required: checked (and turned into a part) by the pipeline
    response_format: TranscriptionFormat | None = None
    language: str | None = None
    prompt: str | None = None
    temperature: float | None = Field(default=None, ge=0.0, le=1.0)
    timestamp_granularities: list[Literal["word", "segment"]] | None = None


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

    ``stream_usage`` (since HOOK_API 1.6) asks the provider to have a stream end with its usage
    (Azure's ``stream_options.include_usage``) where the upstream's API version takes it, so that
    the call can be priced; the core drops that chunk for callers who did not ask for it.

    Parameters may carry credentials for other services (``dataSources[].parameters.key``,
    ``data_sources[].parameters.authentication.key``): the repr masks every value whose key
    names a secret (``*key``, ``*token``, ``*secret*``, ``*password*``, ``connection_string``).
    """

    model_config = ConfigDict(frozen=True)

    messages: list[dict[str, Any]]
    params: dict[str, Any] = Field(default_factory=dict)
    stream: bool = False
    stream_usage: bool = False

    def __repr_args__(self) -> Any:
        yield "messages", self.messages
        yield "params", _redacted(self.params)
        yield "stream", self.stream


def _secret_name(key: str) -> bool:
    k = key.lower().replace("_", "").replace("-", "")
    if k.endswith(("key", "token")) or any(w in k for w in ("secret", "password", "connectionstring")):
        return True
    from .connection import loaded_schema  # the settings the loaded providers declare secret

    schema = loaded_schema()
    return schema is not None and key in schema.secrets


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
    files: dict[str, Any] | list[tuple[str, Any]] | None = None
    """Multipart file parts, as httpx's ``files=`` (``{"file": (name, fileobj, type)}``, or a
    list of ``(field, part)`` pairs to repeat a field such as ``image[]``); file objects are
    streamed, not read whole. Since HOOK_API 1.1 (the list form since 1.4)."""
    data: dict[str, str | list[str]] | None = None
    """Multipart form fields sent with ``files``; a list repeats the field
    (``timestamp_granularities[]``). Since HOOK_API 1.1 (lists since 1.4)."""
    stream: bool = False
    """Whether the core reads the answer as a stream of server-sent events (``data: {...}``
    lines, ended by ``data: [DONE]`` or the end of the body), each handed to ``normalize_chunk``.
    It is the *transport's* reading mode; the upstream's own switch (``"stream": true`` in an
    OpenAI-shaped body) is the body's business, set by ``transform_request``."""
    handler: Callable[[Any], Any] | None = None
    """Perform the call in-process instead of over HTTP: a function taking the built
    ``httpx.Request`` (headers, credentials and body as they would be sent) and returning an
    ``httpx.Response`` (an async function also works for async calls). The core wraps it in
    ``httpx.MockTransport``, so retries on 429/5xx, ``map_error`` on 4xx/5xx, streaming (answer
    ``text/event-stream`` bytes), timeouts and observers work as for HTTP. ``url`` is still
    required (it names the call in logs and traces). Since HOOK_API 1.7."""

    def __repr_args__(self) -> Any:
        # Headers may carry credentials added later by the auth step: show names only.
        yield "method", self.method
        yield "url", self.url
        yield "params", self.params
        yield "headers", sorted(self.headers)
        yield "stream", self.stream
        if self.handler is not None:
            yield "handler", getattr(self.handler, "__qualname__", type(self.handler).__name__)


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
#
# Every nested part of a response is a typed model with the attribute names of the chat-completions SDKs
# (``message.tool_calls[0].function.arguments``), and LiteLLM's item access as well
# (``r["choices"][0]["message"]["content"]``, ``.get()``). Unknown fields are kept (providers add
# some between api-versions). Only the top-level objects carry private state (the response
# headers): pydantic runs Python code per instance for private attributes, and a response
# holds a few dozen nested objects.


class _Open(BaseModel):
    """A response part that keeps fields it does not declare, read by attribute or by key."""

    model_config = ConfigDict(extra="allow")

    def __getitem__(self, key: str) -> Any:
        """Dict-style access, as LiteLLM's responses allow (``r["choices"][0]``).

        Raises:
            KeyError: ``key`` is neither a declared field nor a field the upstream sent.
        """
        if key in type(self).model_fields or key in (self.__pydantic_extra__ or ()):
            return getattr(self, key)
        raise KeyError(key)

    def __setitem__(self, key: str, value: Any) -> None:
        setattr(self, key, value)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and (key in type(self).model_fields or key in (self.__pydantic_extra__ or ()))

    def __eq__(self, other: object) -> bool:
        # Equal to the JSON object it came from, as a dict would be (code written when these
        # parts were dicts keeps working); between models, pydantic's comparison.
        if isinstance(other, Mapping):
            return bool(self.model_dump(exclude_unset=True) == dict(other))
        return super().__eq__(other)

    def get(self, key: str, default: Any = None) -> Any:
        """The value of ``key`` if the upstream sent it (or it was set), else ``default``; as ``dict.get``.

        ``r["x"]`` and ``r.x`` give None for a declared field that was not sent; ``get`` gives
        ``default``, as it would on the JSON object.
        """
        if key in self.__pydantic_fields_set__ or key in (self.__pydantic_extra__ or ()):
            return getattr(self, key)
        return default


class _Response(_Open):
    """A top-level response: keeps the upstream's HTTP headers and what the call knows beyond the body.

    That state (``_response_headers``, ``_hidden_params``, ``_upstream``) lives in pydantic's
    ``__pydantic_private__`` dict, so that ``model_copy``, pickling and ``==`` carry it as they
    carry private attributes. It is not declared with ``PrivateAttr``: pydantic then runs a
    Python-level init for every validated object (about 3 µs, a tenth of an SDK call's own work,
    issue 17), and the pipeline writes the state at once anyway. The dict is made when the state
    is first read or written (:meth:`_state`).
    """

    @property
    def _response_headers(self) -> Mapping[str, str] | None:
        """The upstream's HTTP response headers, as LiteLLM keeps them: an ``httpx.Headers``
        (case-insensitive) on results of the pipeline, None on objects built by hand."""
        return self._state()["_response_headers"]  # type: ignore[no-any-return]

    @_response_headers.setter
    def _response_headers(self, value: Mapping[str, str] | None) -> None:
        self._state()["_response_headers"] = value

    @property
    def _hidden_params(self) -> dict[str, Any]:
        """LiteLLM's name for what the call knows beyond the body: ``response_cost`` (USD, or None
        when no price is known), and ``base_model`` / ``price_overrides`` it was priced with."""
        return self._state()["_hidden_params"]  # type: ignore[no-any-return]

    @_hidden_params.setter
    def _hidden_params(self, value: dict[str, Any]) -> None:
        self._state()["_hidden_params"] = value

    @property
    def _upstream(self) -> tuple[int, bytes] | None:
        """``(id(self), body)``: the upstream's body, when this result is that body validated and no
        plugin changed it (``keeps_answers``); the proxy sends it as it came. A copy of the model has
        another id, so a copy (``model_copy(update=...)``) never passes for the upstream's answer."""
        return self._state()["_upstream"]  # type: ignore[no-any-return]

    @_upstream.setter
    def _upstream(self, value: tuple[int, bytes] | None) -> None:
        self._state()["_upstream"] = value

    def _state(self) -> dict[str, Any]:
        """The dict of this response's state, made with its defaults on first use (a subclass's own
        private attributes, when it declares some, share it)."""
        private = self.__pydantic_private__
        if private is None:
            private = {"_response_headers": None, "_hidden_params": {}, "_upstream": None}
            object.__setattr__(self, "__pydantic_private__", private)
        elif "_hidden_params" not in private:
            private.update(_response_headers=None, _hidden_params={}, _upstream=None)
        return private

    def _attach(self, headers: Mapping[str, str] | None, hidden_params: dict[str, Any]) -> None:
        """The pipeline's write of a result's headers and hidden params, in one step."""
        private = self.__pydantic_private__
        if private is None:
            object.__setattr__(
                self, "__pydantic_private__",
                {"_response_headers": headers, "_hidden_params": hidden_params, "_upstream": None},
            )  # fmt: skip
        else:
            self._state()
            private["_response_headers"], private["_hidden_params"] = headers, hidden_params

    def __eq__(self, other: object) -> bool:
        # A response whose state was never made equals one holding the defaults, as when pydantic
        # made it at validation.
        if isinstance(other, _Response):
            self._state()
            other._state()
        return super().__eq__(other)

    @property
    def cost(self) -> float | None:
        """What this call cost in USD, from the model's price (docs/spend.md); None when unknown.

        The same number as ``_hidden_params["response_cost"]`` and
        ``modelyard.completion_cost(response)``.
        """
        value = self._hidden_params.get("response_cost")
        return value if isinstance(value, float | int) else None

    if not TYPE_CHECKING:  # as pydantic's own: typed attributes stay checked

        def __getattr__(self, name: str) -> Any:
            # A typed view of the response headers a provider plugin contributes (header_views);
            # a field the upstream sent under that name wins.
            if name.startswith("_"):
                return super().__getattr__(name)
            module = _header_views()
            views, note = module.current()
            view = views.get(name)
            if view is not None and name not in (self.__pydantic_extra__ or ()):
                return view.from_headers(self._response_headers)
            if not note:
                return super().__getattr__(name)
            try:
                return super().__getattr__(name)
            except AttributeError as exc:
                raise module.missing(self, name, exc) from None


# ---- usage


class CompletionTokensDetails(_Open):
    """How the completion tokens split (``reasoning_tokens`` of o-series models ...)."""

    accepted_prediction_tokens: int | None = None
    audio_tokens: int | None = None
    reasoning_tokens: int | None = None
    rejected_prediction_tokens: int | None = None
    text_tokens: int | None = None


class PromptTokensDetails(_Open):
    """How the prompt tokens split (``cached_tokens`` of prompt caching ...)."""

    audio_tokens: int | None = None
    cache_write_tokens: int | None = None
    cached_tokens: int | None = None
    image_tokens: int | None = None
    text_tokens: int | None = None


class Usage(_Open):
    """Token counts, with ``completion_tokens_details`` and ``prompt_tokens_details``."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    completion_tokens_details: CompletionTokensDetails | None = None
    prompt_tokens_details: PromptTokensDetails | None = None


# ---- content filters


class ProtectedMaterialCitation(_Open):
    """Where code the model wrote comes from (``protected_material_code.citation``)."""

    URL: str | None = None
    license: str | None = None


class ContentFilterDetail(_Open):
    """A blocklist that matched (``id``), or a span of ungrounded text (``completion_*_offset``)."""

    id: str | None = None
    filtered: bool | None = None
    completion_start_offset: int | None = None
    completion_end_offset: int | None = None


class ContentFilterResult(_Open):
    """One content-filter category: ``filtered``, and ``severity`` or ``detected``.

    ``citation`` comes with ``protected_material_code``; ``details`` with ``custom_blocklists``
    (the blocklists) and ``ungrounded_material`` (text spans).
    """

    filtered: bool | None = None
    severity: str | None = None
    detected: bool | None = None
    citation: ProtectedMaterialCitation | None = None
    details: list[ContentFilterDetail] | None = None


class ContentFilterErrorInfo(_Open):
    """Why the content filter could not run (``code``, ``message``)."""

    code: str | None = None
    message: str | None = None


class ContentFilterResults(_Open):
    """Azure's content-filter verdicts for a prompt or a choice.

    ``custom_blocklists`` is an object (``filtered``, ``details``) on recent api-versions and a
    list of ``{id, filtered}`` on older ones; both are kept as sent.
    """

    hate: ContentFilterResult | None = None
    self_harm: ContentFilterResult | None = None
    sexual: ContentFilterResult | None = None
    violence: ContentFilterResult | None = None
    profanity: ContentFilterResult | None = None
    jailbreak: ContentFilterResult | None = None
    indirect_attack: ContentFilterResult | None = None
    protected_material_text: ContentFilterResult | None = None
    protected_material_code: ContentFilterResult | None = None
    ungrounded_material: ContentFilterResult | None = None
    custom_blocklists: ContentFilterResult | list[ContentFilterDetail] | None = None
    error: ContentFilterErrorInfo | None = None


class PromptFilterResult(_Open):
    """The content-filter verdict on one prompt of the request (``prompt_index``)."""

    prompt_index: int = 0
    content_filter_results: ContentFilterResults | None = None


# ---- message parts


class Function(_Open):
    """A function the model called: ``name`` and ``arguments`` (a JSON string, maybe partial in streams)."""

    name: str | None = None
    arguments: str | None = None


class CustomToolCallInput(_Open):
    """The input of a custom (free-form) tool call."""

    name: str | None = None
    input: str | None = None


class ToolCall(_Open):
    """A tool call: ``id``, ``type``, ``function.name``, ``function.arguments``.

    In stream deltas it is a fragment: ``index`` says which call it extends, and ``id``,
    ``type`` and ``function.name`` come with the first fragment only.
    """

    index: int | None = None
    id: str | None = None
    type: str | None = None
    function: Function | None = None
    custom: CustomToolCallInput | None = None


class Audio(_Open):
    """Audio output: ``id``, ``data`` (base64), ``transcript``, ``expires_at``; partial in stream deltas."""

    id: str | None = None
    data: str | None = None
    expires_at: int | None = None
    transcript: str | None = None


class URLCitation(_Open):
    """A web citation in ``message.annotations``."""

    end_index: int | None = None
    start_index: int | None = None
    title: str | None = None
    url: str | None = None


class Annotation(_Open):
    """A message annotation (``type == "url_citation"``)."""

    type: str | None = None
    url_citation: URLCitation | None = None


class Citation(_Open):
    """A document Azure "On your data" retrieved and cited (``[doc1]`` in the text)."""

    content: str | None = None
    title: str | None = None
    url: str | None = None
    filepath: str | None = None
    chunk_id: str | None = None
    rerank_score: float | None = None


class RetrievedDocument(Citation):
    """A document the search returned, cited or not (``include_contexts: all_retrieved_documents``)."""

    search_queries: list[str] | None = None
    data_source_index: int | None = None
    original_search_score: float | None = None
    filter_reason: str | None = None


class MessageContext(_Open):
    """Azure's ``message.context`` ("On your data"): ``citations``, ``intent``, ``all_retrieved_documents``.

    The legacy extensions API sends ``messages`` (a tool message whose content is JSON) instead;
    it is kept as sent.
    """

    citations: list[Citation] | None = None
    intent: str | None = None
    all_retrieved_documents: list[RetrievedDocument] | None = None


class TopLogprob(_Open):
    """One of the most likely tokens at a position."""

    token: str = ""
    bytes: list[int] | None = None
    logprob: float = 0.0


class TokenLogprob(TopLogprob):
    """A token of the output with its log probability and the ``top_logprobs`` alternatives."""

    top_logprobs: list[TopLogprob] = Field(default_factory=list)


class ChoiceLogprobs(_Open):
    """Log probabilities of a choice's ``content`` (and ``refusal``) tokens."""

    content: list[TokenLogprob] | None = None
    refusal: list[TokenLogprob] | None = None


class Message(_Open):
    """An assistant message: ``content``, ``tool_calls``, ``audio``, ``refusal``, Azure's ``context``."""

    role: str = "assistant"
    content: str | None = None
    refusal: str | None = None
    tool_calls: list[ToolCall] | None = None
    function_call: Function | None = None
    audio: Audio | None = None
    annotations: list[Annotation] | None = None
    context: MessageContext | None = None
    reasoning_content: str | None = None
    """What reasoning models on Azure AI Foundry (DeepSeek-R1 ...) send besides the answer."""


class Choice(_Open):
    """One choice of a chat completion, with Azure's ``content_filter_results``."""

    index: int = 0
    message: Message
    finish_reason: str | None = None
    logprobs: ChoiceLogprobs | None = None
    content_filter_results: ContentFilterResults | None = None


class ModerationResult(_Open):
    """One moderation verdict (OpenAI's moderated completions)."""

    categories: dict[str, bool] | None = None
    category_applied_input_types: dict[str, list[str]] | None = None
    category_scores: dict[str, float] | None = None
    flagged: bool | None = None
    model: str | None = None
    type: str | None = None


class ModerationPart(_Open):
    """The moderation of the input or of the output: ``results``, or an error (``code``, ``message``)."""

    type: str | None = None
    model: str | None = None
    results: list[ModerationResult] | None = None
    code: str | None = None
    message: str | None = None


class Moderation(_Open):
    """OpenAI's moderation results for the request's input and output."""

    input: ModerationPart | None = None
    output: ModerationPart | None = None


class ChatCompletion(_Response):
    """An OpenAI-shaped chat completion (``object == "chat.completion"``), with Azure's
    ``prompt_filter_results``."""

    id: str = ""
    object: str = "chat.completion"
    created: int = 0
    model: str = ""
    choices: list[Choice] = Field(default_factory=list)
    usage: Usage | None = None
    system_fingerprint: str | None = None
    service_tier: str | None = None
    metadata: dict[str, str] | None = None
    moderation: Moderation | None = None
    prompt_filter_results: list[PromptFilterResult] | None = None


class _ForwardedChoice(Choice):
    """A choice of an answer the caller forwards as it came (:class:`_ForwardedChatCompletion`):
    ``message`` must be a JSON object, and is kept as one, as are ``logprobs`` and the filters."""

    message: dict[str, Any]  # type: ignore[assignment]
    logprobs: dict[str, Any] | None = None  # type: ignore[assignment]
    content_filter_results: dict[str, Any] | None = None  # type: ignore[assignment]


class _ForwardedChatCompletion(ChatCompletion):
    """A chat completion whose caller sends the upstream's bytes on as they came (the proxy, see
    ``CallScope.forwards_answers``), validated for what the pipeline itself reads: the envelope,
    ``usage``, each choice's ``index`` and ``finish_reason``, and that each choice has a
    ``message`` object. The messages, the filter results and ``moderation`` stay the upstream's
    JSON objects: typing them is most of a chat completion's validation (a content filter
    verdict is a model of twelve fields), and no one would read them.
    """

    choices: list[_ForwardedChoice] = Field(default_factory=list)  # type: ignore[assignment]
    moderation: dict[str, Any] | None = None  # type: ignore[assignment]
    prompt_filter_results: list[dict[str, Any]] | None = None  # type: ignore[assignment]


class Delta(_Open):
    """The increment one stream chunk carries; ``tool_calls[i].index`` says which call grows."""

    role: str | None = None
    content: str | None = None
    refusal: str | None = None
    tool_calls: list[ToolCall] | None = None
    function_call: Function | None = None
    audio: Audio | None = None
    context: MessageContext | None = None
    reasoning_content: str | None = None


class ChunkChoice(_Open):
    """One choice of a stream chunk."""

    index: int = 0
    delta: Delta = Field(default_factory=Delta)
    finish_reason: str | None = None
    logprobs: ChoiceLogprobs | None = None
    content_filter_results: ContentFilterResults | None = None


class ChatCompletionChunk(_Open):
    """One server-sent event of a chat stream (``object == "chat.completion.chunk"``).

    The response headers are on the stream (``stream.azure_headers``), not on each chunk.
    """

    id: str = ""
    object: str = "chat.completion.chunk"
    created: int = 0
    model: str = ""
    choices: list[ChunkChoice] = Field(default_factory=list)
    usage: Usage | None = None
    system_fingerprint: str | None = None
    service_tier: str | None = None
    obfuscation: str | None = None
    moderation: Moderation | None = None
    prompt_filter_results: list[PromptFilterResult] | None = None


class TextLogprobs(_Open):
    """Legacy completions log probabilities (``tokens``, ``token_logprobs``, ``top_logprobs``, ``text_offset``)."""

    tokens: list[str] | None = None
    token_logprobs: list[float | None] | None = None
    top_logprobs: list[dict[str, float] | None] | None = None
    text_offset: list[int] | None = None


class TextChoice(_Open):
    """One choice of a legacy text completion."""

    index: int = 0
    text: str = ""
    finish_reason: str | None = None
    logprobs: TextLogprobs | None = None
    content_filter_results: ContentFilterResults | None = None


class TextCompletion(_Response):
    """An OpenAI-shaped legacy completion (``object == "text_completion"``); also each chunk of a
    legacy stream."""

    id: str = ""
    object: str = "text_completion"
    created: int = 0
    model: str = ""
    choices: list[TextChoice] = Field(default_factory=list)
    usage: Usage | None = None
    system_fingerprint: str | None = None
    prompt_filter_results: list[PromptFilterResult] | None = None


class EmbeddingData(_Open):
    """One vector of an embeddings answer: a list of floats, or a base64 string (``encoding_format="base64"``)."""

    object: str = "embedding"
    index: int = 0
    embedding: list[float] | str = Field(default_factory=list)


class EmbeddingUsage(_Open):
    """Token counts of an embeddings call (no completion tokens)."""

    prompt_tokens: int = 0
    total_tokens: int = 0


class TranscriptionResponse(_Response):
    """A transcription or translation, as LiteLLM's ``TranscriptionResponse``: ``.text`` always.

    ``response_format`` ``json`` gives ``text``; ``verbose_json`` adds ``task``, ``language``,
    ``duration``, ``segments`` and ``words`` (kept as sent); ``text``, ``srt`` and ``vtt`` answer
    plain text upstream, which is ``text`` here unchanged (subtitles keep their cue lines).
    """

    text: str = ""


class EmbeddingResponse(_Response):
    """An OpenAI-shaped embeddings answer (``object == "list"``), as LiteLLM's ``EmbeddingResponse``."""

    object: str = "list"
    data: list[EmbeddingData] = Field(default_factory=list)
    model: str = ""
    usage: EmbeddingUsage | None = None


class ImageUsageDetails(_Open):
    """How the input tokens of a gpt-image-1 call split."""

    text_tokens: int | None = None
    image_tokens: int | None = None


class ImageUsage(_Open):
    """Token counts of a gpt-image-1 call (dall-e-3 sends none)."""

    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    input_tokens_details: ImageUsageDetails | None = None


class ImageObject(_Open):
    """One image of an answer: ``url`` (dall-e-3 by default) or ``b64_json``, and the prompt dall-e-3 used."""

    url: str | None = None
    b64_json: str | None = None
    revised_prompt: str | None = None
    content_filter_results: dict[str, Any] | None = None
    prompt_filter_results: dict[str, Any] | None = None


class ImageResponse(_Response):
    """An OpenAI-shaped images answer, as LiteLLM's ``ImageResponse`` (``r.data[0].b64_json``)."""

    created: int = 0
    data: list[ImageObject] = Field(default_factory=list)
    usage: ImageUsage | None = None


_views_module: Any = None


def _header_views() -> Any:
    """:mod:`modelyard.header_views`, imported on first use (it loads the plugins)."""
    global _views_module
    if _views_module is None:
        from . import header_views

        _views_module = header_views
    return _views_module


def __getattr__(name: str) -> Any:
    # The header view classes provider plugins register (``modelyard.types.<Name>``, as before
    # they moved to their plugins).
    if name.startswith("_"):  # import machinery probes (__path__ ...): never a view
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}", name=name)
    from .header_views import missing_class, view_class

    found = view_class(name)
    if found is None:
        raise missing_class(__name__, name)
    return found
