"""The Responses API's request and answer models (contract: imports only :mod:`modelyard.types`).

:class:`ResponsesParams` types what ``responses()`` takes; what the items of ``input`` and
``tools`` hold is the upstream's to judge (Azure answers a 400 naming the field), so they stay
plain objects here. Answers keep every field the upstream sends (``r["output"]`` works as well
as ``r.output``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .types import _Open, _Response

__all__ = [
    "EVENT_TYPES",
    "DeleteResponseResult",
    "Reasoning",
    "ResponseCompletedEvent",
    "ResponseCreatedEvent",
    "ResponseErrorEvent",
    "ResponseFailedEvent",
    "ResponseFunctionCallArgumentsDeltaEvent",
    "ResponseInputItemList",
    "ResponseOutputTextDeltaEvent",
    "ResponseUsage",
    "ResponsesAPIResponse",
    "ResponsesEvent",
    "ResponsesParams",
    "parse_event",
]


class Reasoning(BaseModel):
    """``reasoning``: how hard a reasoning model thinks, and whether it sums up its thinking."""

    model_config = ConfigDict(extra="allow", strict=True)

    effort: Literal["minimal", "low", "medium", "high"] | None = None
    summary: Literal["auto", "concise", "detailed"] | None = None


class ResponsesParams(BaseModel):
    """Parameters of ``responses()`` (a wrong type names its field).

    ``input`` is a string or a list of items (messages with text, image or file parts,
    ``function_call`` and ``function_call_output`` items ...); ``tools`` function tools
    (``{"type": "function", "name", "parameters"}``) or Azure's hosted tools; ``text`` carries
    ``format`` (``{"type": "json_schema", "name", "schema", "strict"}``). Fields not declared
    here are sent as they are.
    """

    model_config = ConfigDict(extra="allow", allow_inf_nan=False, strict=True)

    input: str | list[dict[str, Any]] | None = None
    instructions: str | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    previous_response_id: str | None = None
    store: bool | None = None
    reasoning: Reasoning | None = None
    text: dict[str, Any] | None = None
    max_output_tokens: int | None = Field(default=None, ge=1)
    truncation: Literal["auto", "disabled"] | None = None
    background: bool | None = None
    metadata: dict[str, str] | None = None
    include: list[str] | None = None
    temperature: float | None = None
    top_p: float | None = None
    user: str | None = None
    stream: bool | None = None


class ResponseUsage(_Open):
    """Token counts of a response (``input_tokens``, ``output_tokens``, their details)."""

    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    input_tokens_details: dict[str, Any] | None = None
    output_tokens_details: dict[str, Any] | None = None

    @property
    def prompt_tokens(self) -> int:
        """``input_tokens`` under chat's name (pricing and spend read it)."""
        return self.input_tokens

    @property
    def completion_tokens(self) -> int:
        """``output_tokens`` under chat's name."""
        return self.output_tokens


class ResponsesAPIResponse(_Response):
    """A response (``object == "response"``), as LiteLLM's ``ResponsesAPIResponse``.

    ``output`` holds the items the model produced: ``message`` items (``content[i].text``),
    ``function_call`` items (``name``, ``arguments``, ``call_id``), ``reasoning`` items ...
    """

    id: str = ""
    object: str = "response"
    created_at: int = 0
    status: str | None = None
    model: str = ""
    output: list[dict[str, Any]] = Field(default_factory=list)
    usage: ResponseUsage | None = None
    error: dict[str, Any] | None = None
    previous_response_id: str | None = None

    @property
    def output_text(self) -> str:
        """The text of every ``output_text`` part of the message items, joined (as the openai SDK's)."""
        return "".join(
            part.get("text", "")
            for item in self.output
            if item.get("type") == "message"
            for part in item.get("content") or ()
            if isinstance(part, dict) and part.get("type") == "output_text"
        )


class DeleteResponseResult(_Response):
    """The answer to ``delete_responses``: ``{"id", "object": "response.deleted", "deleted": true}``."""

    id: str = ""
    object: str = "response.deleted"
    deleted: bool = False


class ResponseInputItemList(_Response):
    """A page of a response's input items (``list_input_items``)."""

    object: str = "list"
    data: list[dict[str, Any]] = Field(default_factory=list)
    first_id: str | None = None
    last_id: str | None = None
    has_more: bool = False


class ResponsesEvent(_Open):
    """One event of a streamed response; ``type`` says which (``response.output_text.delta`` ...).

    The events modelyard names have their own class (below); any other event the upstream
    sends arrives as this class with its fields kept.
    """

    type: str
    sequence_number: int | None = None


class ResponseCreatedEvent(ResponsesEvent):
    """``response.created``: the response, ``in_progress``, before any output."""

    response: ResponsesAPIResponse


class ResponseOutputTextDeltaEvent(ResponsesEvent):
    """``response.output_text.delta``: the next piece of a message's text."""

    delta: str = ""
    item_id: str | None = None
    output_index: int = 0
    content_index: int = 0


class ResponseFunctionCallArgumentsDeltaEvent(ResponsesEvent):
    """``response.function_call_arguments.delta``: the next piece of a function call's JSON arguments."""

    delta: str = ""
    item_id: str | None = None
    output_index: int = 0


class ResponseCompletedEvent(ResponsesEvent):
    """``response.completed``: the whole response, with its usage."""

    response: ResponsesAPIResponse


class ResponseFailedEvent(ResponsesEvent):
    """``response.failed``: the response, ``failed``, with its ``error``."""

    response: ResponsesAPIResponse


class ResponseErrorEvent(ResponsesEvent):
    """``error``: the stream's error (``code``, ``message``, ``param``)."""

    code: str | None = None
    message: str = ""
    param: str | None = None


EVENT_TYPES: dict[str, type[ResponsesEvent]] = {
    "response.created": ResponseCreatedEvent,
    "response.output_text.delta": ResponseOutputTextDeltaEvent,
    "response.function_call_arguments.delta": ResponseFunctionCallArgumentsDeltaEvent,
    "response.completed": ResponseCompletedEvent,
    "response.failed": ResponseFailedEvent,
    "error": ResponseErrorEvent,
}
"""The event classes by ``type``; other types parse as :class:`ResponsesEvent`."""


def parse_event(data: dict[str, Any]) -> ResponsesEvent:
    """One stream event's JSON as its typed class (by its ``type``)."""
    cls = EVENT_TYPES.get(str(data.get("type")), ResponsesEvent)
    return cls.model_validate(data)
