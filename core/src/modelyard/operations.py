"""The operations modelyard serves, declared once, as data.

An :class:`Operation` says everything the pipeline, the Router and the proxy need to know
about one upstream operation: its name (``Route.operation``, what provider plugins answer
for), the SDK name of its function pair (``embedding`` / ``aembedding``), its request model
(typed, so a wrong type names its field), its response model, how its body travels (JSON or a
multipart upload), how its answer comes back (JSON, an SSE stream, or binary that is streamed
through), the paths the proxy serves it on, and which ``model_info.mode`` values may route to
it.

Adding an operation is a row in :data:`OPERATIONS` (plus its request and response models in
:mod:`modelyard.types`); :mod:`modelyard.api` builds the SDK functions from the row,
:class:`modelyard.Router` its methods, and the proxy its endpoints. A provider plugin serves it
by answering ``transform_request`` / ``normalize_response`` / ``map_error`` when
``route.operation`` is the row's ``name`` (see docs/plugins/hooks.md).

Provider plugins contribute rows of their own and extra proxy paths (:class:`ProxyPath`) through
the ``register_operations`` hook: :data:`OPERATIONS` is the core's rows plus the loaded plugins'
(collected once per plugin set, on the first lookup of a name the core does not have; a lookup
of a core row never loads the plugins).

This module is contract: it imports :mod:`modelyard.types` and nothing of the pipeline.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel

from .responses_types import ResponsesAPIResponse, ResponsesParams
from .types import (
    ChatCompletion,
    ChatParams,
    EmbeddingParams,
    EmbeddingResponse,
    ImageEditParams,
    ImageParams,
    ImageResponse,
    SpeechParams,
    TextCompletion,
    TextParams,
    TranscriptionParams,
    TranscriptionResponse,
)

__all__ = [
    "CORE_OPERATIONS", "OPERATIONS", "Operation", "OperationRef", "ProxyPath", "multipart_parts",
    "operation_for_mode", "operation_named",
]  # fmt: skip

BodyKind = Literal["json", "multipart"]
AnswerKind = Literal["json", "sse", "binary"]


_TEXT_FORMATS = frozenset({"text", "srt", "vtt"})


@dataclass(frozen=True)
class Operation:
    """One upstream operation, as data.

    Attributes:
        name: ``Route.operation``: what provider hooks are asked for (``"embeddings"``).
        sdk: the SDK function name; its async twin is ``"a" + sdk`` (``embedding`` /
            ``aembedding``), and the :class:`~modelyard.Router` has methods of both names.
        request: the pydantic model the call's parameters validate against (a wrong type is a
            ``BadRequestError`` naming the field).
        response: the pydantic model the provider's ``normalize_response`` returns.
        body: how the request body travels: ``json`` or ``multipart`` (a file upload).
        answer: how the answer comes back: ``json``; ``sse`` (``stream=True`` gives a stream
            of chunks); ``binary`` (a streamed binary response object).
        payload: the SDK function's positional arguments after ``model``, which are also the
            fields the proxy requires in a request body (``("input",)``).
        paths: the OpenAI paths the proxy serves it on, each also under ``/v1``; a plugin adds
            others, such as a provider's own client's paths, with :class:`ProxyPath` rows.
        modes: the ``model_info.mode`` values of deployments that may serve it.
        description: one line for docs and errors.
        positional: the SDK function's positional parameters in order, ``model`` among them,
            when LiteLLM's order is not ``(model, *payload)`` (``image_generation(prompt, model)``).
        files: for a ``multipart`` body, the request fields that are file parts (``("file",)``;
            a name ending in ``[]`` may repeat). The SDK turns each value (bytes, a path, a file
            object, a ``(filename, content[, type])`` tuple, or a list of them) into a streamed
            ``(filename, fileobj, content_type)`` part; the proxy reads these parts of an upload
            into spooled temporary files and hands them on the same way.
        max_upload_mb: the largest upload the proxy accepts for it (the provider's limit, such
            such as 25 MB for audio files), enforced while reading: 413, nothing sent
            upstream. None: ``general_settings.max_upload_size_mb`` alone.
        text_formats: ``response_format`` values whose answer is plain text (subtitles ...):
            the proxy answers them as ``text/plain`` with the response's ``text``.
        streams_through: a ``binary`` row whose body's ``stream`` is sent on as given, its
            answer (JSON, or the upstream's own server-sent events) passed through unchanged
            (a provider's native format the proxy does not translate).
        forward_headers: request headers (lower case) the proxy passes on to the upstream
            call (a provider's beta-feature header a client sends).
    """

    name: str
    sdk: str
    request: type[BaseModel]
    response: type[BaseModel]
    body: BodyKind = "json"
    answer: AnswerKind = "json"
    payload: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    modes: frozenset[str] = frozenset()
    description: str = ""
    positional: tuple[str, ...] = ()
    files: tuple[str, ...] = ()
    max_upload_mb: float | None = None
    text_formats: frozenset[str] = frozenset()
    streams_through: bool = False
    forward_headers: tuple[str, ...] = ()

    @property
    def async_sdk(self) -> str:
        """The async twin's name (``aembedding``)."""
        return "a" + self.sdk

    @property
    def signature(self) -> tuple[str, ...]:
        """The SDK function's positional parameters: :attr:`positional`, else ``("model", *payload)``."""
        return self.positional or ("model", *self.payload)


CORE_OPERATIONS: dict[str, Operation] = {
    op.name: op
    for op in (
        # chat and completions keep their hand-written functions in api.py (streams, the
        # text-to-chat conversion, family rules on messages); their rows drive the proxy's mode
        # checks and document them. Every other operation is driven from its row alone.
        Operation(
            name="chat",
            sdk="completion",
            request=ChatParams,
            response=ChatCompletion,
            answer="sse",
            payload=("messages",),
            paths=("/chat/completions",),
            modes=frozenset({"chat", "completion"}),
            description="chat completions",
        ),
        Operation(
            name="completions",
            sdk="text_completion",
            request=TextParams,
            response=TextCompletion,
            answer="sse",
            payload=("prompt",),
            paths=("/completions",),
            modes=frozenset({"chat", "completion"}),
            description="legacy text completions",
        ),
        Operation(
            name="embeddings",
            sdk="embedding",
            request=EmbeddingParams,
            response=EmbeddingResponse,
            payload=("input",),
            paths=("/embeddings",),
            modes=frozenset({"embedding"}),
            description="embeddings",
        ),
        Operation(
            name="image_generation",
            sdk="image_generation",
            request=ImageParams,
            response=ImageResponse,
            payload=("prompt",),
            paths=("/images/generations",),
            modes=frozenset({"image_generation"}),
            description="image generation",
            positional=("prompt", "model"),  # LiteLLM's image_generation(prompt, model, ...)
        ),
        Operation(
            name="image_edit",
            sdk="image_edit",
            request=ImageEditParams,
            response=ImageResponse,
            body="multipart",
            payload=("image", "prompt"),
            paths=("/images/edits",),
            modes=frozenset({"image_generation"}),
            description="image edits",
            positional=("image", "prompt", "model"),  # LiteLLM's image_edit(image, prompt, model, ...)
            files=("image", "mask"),  # several images travel as image[] (gpt-image-1 takes up to 16)
            max_upload_mb=50,  # the upstream's limit per image for gpt-image-1 (a mask: 4 MB, the upstream's to judge)
        ),
        Operation(
            name="speech",
            sdk="speech",
            request=SpeechParams,
            response=TranscriptionResponse,  # unused: the answer is a streamed BinaryResponse
            answer="binary",
            payload=("input",),
            paths=("/audio/speech",),
            modes=frozenset({"audio_speech"}),
            description="text-to-speech",
        ),
        Operation(
            name="transcriptions",
            sdk="transcription",
            request=TranscriptionParams,
            response=TranscriptionResponse,
            body="multipart",
            payload=("file",),
            paths=("/audio/transcriptions",),
            modes=frozenset({"audio_transcription"}),
            description="speech-to-text transcription",
            files=("file",),
            max_upload_mb=25,
            text_formats=_TEXT_FORMATS,
        ),
        Operation(
            name="translations",
            sdk="translation",
            request=TranscriptionParams,
            response=TranscriptionResponse,
            body="multipart",
            payload=("file",),
            paths=("/audio/translations",),
            modes=frozenset({"audio_transcription"}),
            description="speech-to-English translation",
            files=("file",),
            max_upload_mb=25,
            text_formats=_TEXT_FORMATS,
        ),
        # The Responses API keeps hand-written functions too (modelyard.responses_api): its typed
        # event stream, the id-addressed calls (get, delete, input items, cancel) and the bridge
        # to chat. Its row gives the Router its methods, the proxy its mode check and /openapi.json.
        Operation(
            name="responses",
            sdk="responses",
            request=ResponsesParams,
            response=ResponsesAPIResponse,
            answer="sse",
            paths=("/responses",),
            modes=frozenset({"responses", "chat", "completion"}),
            description="Responses API",
            positional=("input", "model"),  # LiteLLM's responses(input, model, ...)
        ),
    )
}
"""The core's operations, by ``Route.operation`` name (plugins add theirs: :data:`OPERATIONS`)."""


@dataclass(frozen=True)
class ProxyPath:
    """An extra proxy path for an operation, contributed by a plugin (``register_operations``).

    A provider's own client libraries call paths of their own (a deployment in the path, a
    resource-scoped API version prefix); the plugin of the provider that serves the operation
    declares them, and the proxy serves them only while that plugin is loaded.

    Attributes:
        template: the path, absolute (``/api/v2/embeddings``). A ``{model}`` segment takes the
            model group from the path (``/deployments/{model}/embeddings``); without one the
            model comes from the body's ``model``, as on the operation's own paths. Not also
            served under ``/v1`` (write the path as the client sends it).
        operation: the :attr:`Operation.name` it serves (a core row or a plugin's).
        query: query parameters the provider's clients send, for the OpenAPI document only
            (the proxy ignores the query string).
        description: how ``/openapi.json`` describes the path, after the operation's own
            description (``"(for the provider's own client)"``).
    """

    template: str
    operation: str
    query: tuple[str, ...] = ()
    description: str = ""

    @property
    def model_in_path(self) -> bool:
        """Whether the model group is a segment of the path (``{model}``)."""
        return "{model}" in self.template


@dataclass(frozen=True)
class OperationRef:
    """A plugin's note that another distribution contributes an operation row (``register_operations``).

    A blocked or missing plugin is never imported, so its rows are unknown; a sibling that is
    loaded may name it, so that its SDK functions fail naming the distribution to install or
    unblock (``modelyard.<sdk>`` raises ``AttributeError``, a Router method too).

    Attributes:
        sdk: the SDK function name the row gives (its async twin ``"a" + sdk`` is covered too).
        distribution: the distribution that contributes the row.
    """

    sdk: str
    distribution: str


class _Operations(Mapping[str, Operation]):
    """:data:`OPERATIONS`: the core's rows, then the rows of the loaded plugins.

    Looking up a core row is a dict lookup; any other name, iteration and ``len`` read the
    current plugin set's rows (collected once per plugin set: :mod:`modelyard.plugins`).
    """

    def __getitem__(self, name: str) -> Operation:
        op = CORE_OPERATIONS.get(name)
        if op is not None:
            return op
        return _contributed()[name]

    def __iter__(self) -> Iterator[str]:
        yield from CORE_OPERATIONS
        yield from _contributed()

    def __len__(self) -> int:
        return len(CORE_OPERATIONS) + len(_contributed())

    def __repr__(self) -> str:
        return f"OPERATIONS({', '.join(self)})"


def _contributed() -> dict[str, Operation]:
    from .plugins import get_plugins

    return get_plugins().operations.rows


OPERATIONS: Mapping[str, Operation] = _Operations()
"""Every operation, by ``Route.operation`` name: :data:`CORE_OPERATIONS` and the loaded plugins' rows."""

MODE_PROBES: dict[str, str] = {
    "chat": "chat",
    "completion": "chat",
    "embedding": "embeddings",
    "image_generation": "image_generation",
    "audio_speech": "speech",
    "audio_transcription": "transcriptions",
    "responses": "responses",
}
"""Which operation ``/health`` calls to probe a deployment of each ``model_info.mode``."""


def operation_named(name: str) -> Operation:
    """The operation called ``name`` (``Route.operation``).

    Raises:
        KeyError: no such operation.
    """
    return OPERATIONS[name]


def operation_for_mode(mode: str) -> Operation | None:
    """The operation ``/health`` calls to probe a deployment of ``mode`` (None: not probed)."""
    name = MODE_PROBES.get(mode)
    return OPERATIONS[name] if name else None


def multipart_parts(op: Operation, params: dict[str, Any]) -> tuple[list[tuple[str, Any]], dict[str, str | list[str]]]:
    """A ``multipart`` operation's validated parameters as ``ProviderRequest.files`` and ``.data``.

    The fields in ``op.files`` become file parts (a list value: one part each, under
    ``name[]`` as OpenAI's SDKs send arrays); every other field a form field, encoded as
    OpenAI's API reads forms: strings as they are, numbers as text, booleans ``true`` /
    ``false``, lists repeated under ``name[]`` (``timestamp_granularities[]``), objects as JSON.
    ``None`` values are left out. A provider plugin serving a multipart row calls this from its
    ``transform_request``.
    """
    files: list[tuple[str, Any]] = []
    data: dict[str, str | list[str]] = {}
    for name, value in params.items():
        if value is None:
            continue
        if name in op.files:
            if isinstance(value, list):
                key = name if name.endswith("[]") else f"{name}[]"
                files += [(key, part) for part in value]
            else:
                files.append((name, value))
        elif isinstance(value, list):
            data[name if name.endswith("[]") else f"{name}[]"] = [_form_value(v) for v in value]
        else:
            data[name] = _form_value(value)
    return files, data


def _form_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return repr(value) if isinstance(value, float) else str(value)
    return json.dumps(value, separators=(",", ":"))
