"""Hooks of modelyard-azure-vision: image checks and the ``/extensions`` call, around azure_chat.

This plugin builds no request of its own. It wraps the ``transform_request`` of whichever plugin
answers for the ``azure`` provider (pluggy ``wrapper=True``), so it never imports that plugin:

* before the request is built: every ``image_url`` part is checked
  (:func:`~modelyard_azure_vision.images.find_images`) and an extension call is planned
  (:func:`~modelyard_azure_vision.extensions.plan`); a bad input raises ``BadRequestError``, so
  nothing is sent;
* after: the URL goes to ``/extensions/chat/completions`` with a fitting api-version, and
  LiteLLM's image shorthands are made Azure-shaped.

Responses of the extensions API (``object: "extensions.chat.completion"``) come back as
OpenAI-shaped ``chat.completion`` objects, with Azure's extra fields (``choices[].enhancements``,
``message.context`` ...) kept; gpt-4-vision-preview's ``finish_details`` fills a missing
``finish_reason``.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

from modelyard import hookimpl
from modelyard.plugin import active_when, answers_for, claims_only_with

from . import extensions, images

if TYPE_CHECKING:
    from modelyard.types import ChatRequest, Connection, ProviderRequest, ProviderResponse, Route

HOOK_API = (1, 13)  # active_when (1.13), claims_only_with (1.12), answers_for (1.11), keeps_answers (1.10)
PROVIDER = "azure"
_FINISH = {"stop": "stop", "max_tokens": "length", "length": "length", "content_filter": "content_filter"}


def _may_apply(request: ChatRequest, connection: Connection) -> bool:
    """Whether the request wrapper may have work: a message with content parts (an image could
    be one), ``enhancements`` or ``dataSources``, or an ``/extensions`` base URL. Otherwise
    :func:`~images.find_images` finds nothing and :func:`~extensions.plan` plans nothing."""
    for message in request.messages:  # a loop, not any(...): no generator on every chat call
        if isinstance(message.get("content"), list):
            return True
    return extensions.wanted(request.params, connection)


@hookimpl(wrapper=True)
@answers_for(PROVIDER, "chat")
@active_when(_may_apply)
def transform_request(
    route: Route, request: ChatRequest, connection: Connection
) -> Generator[None, ProviderRequest | None, ProviderRequest | None]:
    """Check image parts and plan an extension call; then rewrite the built request."""
    if route.provider != PROVIDER or route.operation != "chat":
        return (yield)
    found = images.find_images(request.messages, model=route.model)
    extension = extensions.plan(request.params, connection, found, model=route.model)
    result = yield
    if result is None:
        return None
    messages = images.normalized_messages(request.messages, found) if found else None
    if messages is not None and result.json_body is not None:
        result = result.model_copy(update={"json_body": {**result.json_body, "messages": messages}})
    if extension is not None:
        result = extension.apply(result, model=route.model)
    return result


@hookimpl
@answers_for(PROVIDER)
def keeps_answers(route: Route, kind: str) -> Callable[[dict[str, Any]], bool] | bool | None:
    """Only extension-shaped answers and chunks are changed (``object``, ``finish_details``):
    a check for Azure's chat and completions, True (nothing changed) for its other operations."""
    if route.provider != PROVIDER:
        return None
    return _extension_shaped if route.operation in ("chat", "completions") else True


@claims_only_with(b'"extensions.', b'"finish_details"')
def _extension_shaped(data: dict[str, Any]) -> bool:
    """Whether :func:`_openai_shaped` could change this parsed answer or chunk.

    What it claims has ``"object": "extensions.…"``, a ``"finish_details"`` key, or a choice that
    is not an object (which no chat completion validates): other answers are validated from
    their bytes without being parsed for it (HOOK_API 1.12)."""
    obj = data.get("object")
    if type(obj) is str and obj.startswith("extensions."):
        return True
    choices = data.get("choices")
    if type(choices) is not list:
        return False
    return any(
        type(c) is not dict or (c.get("finish_reason") is None and isinstance(c.get("finish_details"), dict))
        for c in choices
    )


@hookimpl(wrapper=True)
def normalize_response(route: Route, response: ProviderResponse) -> Generator[None, Any, Any]:
    """An extensions response as an OpenAI ``chat.completion``; its extra fields kept."""
    result = yield
    if route.provider != PROVIDER or result is None:
        return result
    return _openai_shaped(result, "extensions.chat.completion", "chat.completion")


@hookimpl(wrapper=True)
def normalize_chunk(route: Route, chunk: dict[str, Any]) -> Generator[None, Any, Any]:
    """An extensions stream chunk as an OpenAI ``chat.completion.chunk``."""
    result = yield
    if route.provider != PROVIDER or result is None:
        return result
    return _openai_shaped(result, "extensions.chat.completion.chunk", "chat.completion.chunk")


def _openai_shaped(result: Any, extension_object: str, openai_object: str) -> Any:
    update: dict[str, Any] = {}
    if getattr(result, "object", None) == extension_object:
        update["object"] = openai_object
    choices = getattr(result, "choices", None) or []
    if any(c.finish_reason is None and isinstance(getattr(c, "finish_details", None), dict) for c in choices):
        update["choices"] = [_finish_from_details(c) for c in choices]
    return result.model_copy(update=update) if update else result


def _finish_from_details(choice: Any) -> Any:
    details = getattr(choice, "finish_details", None)
    if choice.finish_reason is not None or not isinstance(details, dict):
        return choice
    kind = str(details.get("type") or "stop")
    return choice.model_copy(update={"finish_reason": _FINISH.get(kind, kind)})
