"""The operations modelyard serves, declared once, as data.

An :class:`Operation` says everything the pipeline, the Router and the proxy need to know
about one upstream operation: its name (``Route.operation``, what provider plugins answer
for), the SDK name of its function pair (``embedding`` / ``aembedding``), its request model
(typed, so a wrong type names its field), its response model, how its body travels (JSON or a
multipart upload), how its answer comes back (JSON, an SSE stream, or binary that is streamed
through), the OpenAI and Azure paths the proxy serves it on, and which ``model_info.mode``
values may route to it.

Adding an operation is a row in :data:`OPERATIONS` (plus its request and response models in
:mod:`modelyard.types`); :mod:`modelyard.api` builds the SDK functions from the row,
:class:`modelyard.Router` its methods, and the proxy its endpoints. A provider plugin serves it
by answering ``transform_request`` / ``normalize_response`` / ``map_error`` when
``route.operation`` is the row's ``name`` (see docs/plugins/hooks.md).

This module is contract: it imports :mod:`modelyard.types` and nothing of the pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel

from .types import (
    ChatCompletion,
    ChatParams,
    EmbeddingParams,
    EmbeddingResponse,
    ImageEditParams,
    ImageParams,
    ImageResponse,
    TextCompletion,
    TextParams,
)

__all__ = ["OPERATIONS", "Operation", "operation_for_mode", "operation_named"]

BodyKind = Literal["json", "multipart"]
AnswerKind = Literal["json", "sse", "binary"]


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
        paths: the OpenAI paths the proxy serves it on, each also under ``/v1``.
        azure_path: the path after ``/openai/deployments/{model}/`` for ``AzureOpenAI`` clients.
        modes: the ``model_info.mode`` values of deployments that may serve it.
        description: one line for docs and errors.
        positional: the SDK function's positional parameters in order, ``model`` among them,
            when LiteLLM's order is not ``(model, *payload)`` (``image_generation(prompt, model)``).
    """

    name: str
    sdk: str
    request: type[BaseModel]
    response: type[BaseModel]
    body: BodyKind = "json"
    answer: AnswerKind = "json"
    payload: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    azure_path: str = ""
    modes: frozenset[str] = frozenset()
    description: str = ""
    positional: tuple[str, ...] = ()

    @property
    def async_sdk(self) -> str:
        """The async twin's name (``aembedding``)."""
        return "a" + self.sdk

    @property
    def signature(self) -> tuple[str, ...]:
        """The SDK function's positional parameters: :attr:`positional`, else ``("model", *payload)``."""
        return self.positional or ("model", *self.payload)


OPERATIONS: dict[str, Operation] = {
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
            azure_path="chat/completions",
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
            azure_path="completions",
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
            azure_path="embeddings",
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
            azure_path="images/generations",
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
            azure_path="images/edits",
            modes=frozenset({"image_generation"}),
            description="image edits",
            positional=("image", "prompt", "model"),  # LiteLLM's image_edit(image, prompt, model, ...)
        ),
    )
}
"""Every operation, by ``Route.operation`` name."""

MODE_PROBES: dict[str, str] = {
    "chat": "chat",
    "completion": "chat",
    "embedding": "embeddings",
    "image_generation": "image_generation",
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
