"""Anthropic's stream events as OpenAI chat chunks, one translator per stream.

| event | chunk |
|---|---|
| ``message_start`` | the first chunk: ``id``, ``model``, ``delta.role = "assistant"`` |
| ``content_block_start`` (``tool_use``) | ``delta.tool_calls[k]`` with ``id``, ``name``, ``arguments = ""`` |
| ``content_block_delta`` ``text_delta`` | ``delta.content`` |
| ``content_block_delta`` ``input_json_delta`` | ``delta.tool_calls[k].function.arguments`` (partial JSON) |
| ``content_block_delta`` ``thinking_delta`` | ``delta.reasoning_content`` |
| ``message_delta`` | ``finish_reason``, then a usage chunk (``choices: []``) |
| ``ping``, ``content_block_stop``, ``message_stop``, ``signature_delta``, text block starts | nothing |
| ``error`` | raised as the mapped ``APIError`` (``overloaded_error``: 529) |

``k`` counts the tool calls of the message from 0, whatever the block's index among text and
thinking blocks, as OpenAI numbers them.
"""

from __future__ import annotations

import time
from typing import Any

from modelyard.types import ChatCompletionChunk

from .errors import error_from_body
from .translate import FINISH_REASONS, usage

__all__ = ["MessagesStream"]


class MessagesStream:
    """The state of one stream: its id and model, input usage, and block index -> tool call."""

    __slots__ = ("_created", "_id", "_input", "_model", "_tools")

    def __init__(self) -> None:
        self._id = ""
        self._model = ""
        self._created = int(time.time())
        self._input: dict[str, Any] = {}
        self._tools: dict[int, int] = {}

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> ChatCompletionChunk:
        return ChatCompletionChunk.model_validate({
            "id": self._id, "created": self._created, "model": self._model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        })  # fmt: skip

    def feed(self, event: dict[str, Any], /) -> list[Any]:
        """The chunks one event makes (see the module's table)."""
        kind = event.get("type")
        if kind == "content_block_delta":
            delta = event.get("delta") or {}
            dtype = delta.get("type")
            if dtype == "text_delta":
                return [self._chunk({"content": delta.get("text", "")})]
            if dtype == "input_json_delta":
                k = self._tools.get(int(event.get("index", 0)), 0)
                return [self._chunk({"tool_calls": [{"index": k, "function": {"arguments": delta.get("partial_json", "")}}]})]
            if dtype == "thinking_delta":
                return [self._chunk({"reasoning_content": delta.get("thinking", "")})]
            return []
        if kind == "message_start":
            message = event.get("message") or {}
            self._id = message.get("id", "")
            self._model = message.get("model", "")
            self._input = dict(message.get("usage") or {})
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "content_block_start":
            block = event.get("content_block") or {}
            if block.get("type") != "tool_use":
                return []
            k = self._tools[int(event.get("index", 0))] = len(self._tools)
            call = {"index": k, "id": block.get("id"), "type": "function",
                    "function": {"name": block.get("name"), "arguments": ""}}  # fmt: skip
            return [self._chunk({"tool_calls": [call]})]
        if kind == "message_delta":
            delta = event.get("delta") or {}
            finish = FINISH_REASONS.get(delta.get("stop_reason") or "", "stop")
            # message_delta's usage is cumulative; input counts come from message_start
            # unless this event repeats them (newer API versions do).
            raw = {**self._input, **{k: v for k, v in (event.get("usage") or {}).items() if v is not None}}
            return [
                self._chunk({}, finish),
                ChatCompletionChunk.model_validate(
                    {"id": self._id, "created": self._created, "model": self._model, "choices": [], "usage": usage(raw)}
                ),
            ]
        if kind == "error":
            raise error_from_body(529 if (event.get("error") or {}).get("type") == "overloaded_error" else 500, event)
        return []  # ping, content_block_stop, message_stop, signature deltas
