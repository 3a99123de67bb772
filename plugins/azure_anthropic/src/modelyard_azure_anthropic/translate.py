"""OpenAI chat <-> Anthropic Messages: the request body, the answer, usage and finish reasons.

Each rule is a row of the table in docs/anthropic.md, with its test in
``plugins/azure_anthropic/tests/test_translate.py``.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

from modelyard.errors import BadRequestError

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "FINISH_REASONS",
    "THINKING_BUDGETS",
    "chat_completion",
    "default_max_tokens",
    "messages_body",
    "usage",
]

DEFAULT_MAX_TOKENS: tuple[tuple[str, int], ...] = (
    ("claude-opus-4-1", 32_000),
    ("claude-opus-4-0", 32_000),
    ("claude-opus-4-2", 32_000),
    ("claude-opus-4", 64_000),  # opus 4.5 and later
    ("claude-sonnet-4", 64_000),
    ("claude-haiku-4", 64_000),
    ("claude-3-7-sonnet", 64_000),
    ("claude-3-5", 8_192),
)
"""``max_tokens`` sent when the caller gives none: the model's largest output, first prefix that
matches the deployment name (or ``base_model``); other models get :data:`FALLBACK_MAX_TOKENS`.
OpenAI's ``max_tokens`` is optional, Anthropic's is required: the model's own limit keeps the
OpenAI meaning (the answer is not cut short by a default the caller never chose)."""
FALLBACK_MAX_TOKENS = 4_096
THINKING_BUDGETS = {"minimal": 1_024, "low": 1_024, "medium": 2_048, "high": 4_096}
"""``reasoning_effort`` -> ``thinking.budget_tokens`` (1,024 is Anthropic's minimum)."""
FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
"""``stop_reason`` -> ``finish_reason``."""

_HANDLED = frozenset({
    "max_tokens", "max_completion_tokens", "temperature", "top_p", "stop", "tools", "tool_choice",
    "parallel_tool_calls", "reasoning_effort", "user", "stream", "stream_options", "n",
})  # fmt: skip
_DATA_URI = re.compile(r"data:(?P<type>[\w.+-]+/[\w.+-]+);base64,(?P<data>.*)", re.DOTALL)


def default_max_tokens(name: str) -> int:
    """The ``max_tokens`` sent for a model that the caller gave none (:data:`DEFAULT_MAX_TOKENS`)."""
    bare = name.rsplit("/", 1)[-1].lower()
    return next((n for prefix, n in DEFAULT_MAX_TOKENS if bare.startswith(prefix)), FALLBACK_MAX_TOKENS)


def _text_blocks(content: Any, where: str) -> list[dict[str, Any]]:
    """A system/developer message's content as Anthropic text blocks (``cache_control`` kept)."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if isinstance(content, list):
        blocks = []
        for i, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") != "text":
                raise BadRequestError(f"{where}.content[{i}] must be a text part: Claude's system prompt is text.",
                                      param=f"{where}.content")  # fmt: skip
            block = {"type": "text", "text": part.get("text", "")}
            if "cache_control" in part:
                block["cache_control"] = part["cache_control"]
            blocks.append(block)
        return blocks
    raise BadRequestError(f"{where}.content must be a string or a list of text parts.", param=f"{where}.content")


def _image(part: dict[str, Any], where: str) -> dict[str, Any]:
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str):
        raise BadRequestError(f"{where}.image_url.url must be a string.", param=f"{where}.image_url")
    m = _DATA_URI.fullmatch(url)
    if m is not None:
        source: dict[str, Any] = {"type": "base64", "media_type": m["type"], "data": m["data"]}
    elif url.startswith("https://"):
        source = {"type": "url", "url": url}
    else:
        raise BadRequestError(f"{where}.image_url.url must be an https URL or a base64 data: URI.",
                              param=f"{where}.image_url")  # fmt: skip
    block = {"type": "image", "source": source}
    if "cache_control" in part:
        block["cache_control"] = part["cache_control"]
    return block


def _content(content: Any, where: str) -> str | list[dict[str, Any]]:
    """A user or assistant message's content: a string stays one; parts become blocks."""
    if content is None:
        return []
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise BadRequestError(f"{where}.content must be a string or a list of parts.", param=f"{where}.content")
    blocks: list[dict[str, Any]] = []
    for i, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            block = {"type": "text", "text": part.get("text", "")}
            if "cache_control" in part:
                block["cache_control"] = part["cache_control"]
            blocks.append(block)
        elif kind == "image_url":
            blocks.append(_image(part, f"{where}.content[{i}]"))
        elif isinstance(part, dict) and kind in ("image", "document", "thinking", "redacted_thinking", "tool_use", "tool_result"):
            blocks.append(part)  # already Anthropic's: passed through
        else:
            raise BadRequestError(f"{where}.content[{i}] has type {kind!r}; Claude takes text and image_url parts.",
                                  param=f"{where}.content")  # fmt: skip
    return blocks


def _as_blocks(content: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"type": "text", "text": content}] if isinstance(content, str) else list(content)


def _assistant(message: dict[str, Any], where: str) -> dict[str, Any]:
    content = _content(message.get("content"), where)
    calls = message.get("tool_calls") or []
    thinking = message.get("thinking_blocks") or []
    if not calls and not thinking:
        return {"role": "assistant", "content": content}
    blocks = [*thinking, *(b for b in _as_blocks(content) if not (b.get("type") == "text" and not b.get("text")))]
    for i, call in enumerate(calls):
        fn = call.get("function") or {}
        try:
            arguments = json.loads(fn.get("arguments") or "{}")
        except ValueError:
            raise BadRequestError(f"{where}.tool_calls[{i}].function.arguments is not valid JSON.",
                                  param=f"{where}.tool_calls") from None  # fmt: skip
        blocks.append({"type": "tool_use", "id": call.get("id"), "name": fn.get("name"), "input": arguments})
    return {"role": "assistant", "content": blocks}


def _tool_result(message: dict[str, Any], where: str) -> dict[str, Any]:
    if not message.get("tool_call_id"):
        raise BadRequestError(f"{where}.tool_call_id is required for a tool message.", param=f"{where}.tool_call_id")
    content = message.get("content")
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": message["tool_call_id"]}
    block["content"] = content if isinstance(content, str) else _content(content, where)
    return block


def _messages(messages: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(system blocks, Anthropic messages); consecutive tool results share one user message."""
    system: list[dict[str, Any]] = []
    out: list[dict[str, Any]] = []
    for i, m in enumerate(messages):
        role, where = m.get("role"), f"messages[{i}]"
        if role in ("system", "developer"):
            system += _text_blocks(m.get("content"), where)
        elif role == "user":
            out.append({"role": "user", "content": _content(m.get("content"), where)})
        elif role == "assistant":
            out.append(_assistant(m, where))
        elif role == "tool":
            block = _tool_result(m, where)
            last = out[-1] if out else None
            if last is not None and last["role"] == "user" and isinstance(last["content"], list) and \
                    last["content"] and all(b.get("type") == "tool_result" for b in last["content"]):  # fmt: skip
                last["content"].append(block)
            else:
                out.append({"role": "user", "content": [block]})
        else:
            raise BadRequestError(f"{where}.role {role!r} is not one Claude takes (system, developer, user, "
                                  "assistant, tool).", param=f"{where}.role")  # fmt: skip
    return system, out


def _tools(tools: list[Any]) -> list[dict[str, Any]]:
    out = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict):
            raise BadRequestError(f"tools[{i}] must be an object.", param="tools")
        if tool.get("type") != "function":
            out.append(tool)  # Anthropic's own tool types (computer use, web search ...) pass through
            continue
        fn = tool.get("function") or {}
        block: dict[str, Any] = {"name": fn.get("name"),
                                 "input_schema": fn.get("parameters") or {"type": "object", "properties": {}}}  # fmt: skip
        if fn.get("description"):
            block["description"] = fn["description"]
        if "cache_control" in tool:
            block["cache_control"] = tool["cache_control"]
        out.append(block)
    return out


def _tool_choice(choice: Any, parallel: Any) -> dict[str, Any] | None:
    result: dict[str, Any] | None
    if choice is None:
        result = None
    elif choice == "auto":
        result = {"type": "auto"}
    elif choice == "required":
        result = {"type": "any"}
    elif choice == "none":
        result = {"type": "none"}
    elif isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        result = {"type": "tool", "name": choice["function"].get("name")}
    else:
        raise BadRequestError(f"tool_choice {choice!r} is not one Claude takes (auto, required, none, "
                              "or a function).", param="tool_choice")  # fmt: skip
    if parallel is False:
        result = {**(result or {"type": "auto"}), "disable_parallel_tool_use": True}
    return result


def messages_body(messages: list[dict[str, Any]], params: dict[str, Any], *, deployment: str,
                  model_hint: str, stream: bool) -> dict[str, Any]:  # fmt: skip
    """The Messages API body for an OpenAI chat call (``model`` is the Foundry deployment).

    Raises:
        BadRequestError: input Claude cannot take, naming the field.
    """
    system, converted = _messages(messages)
    body: dict[str, Any] = {"model": deployment}
    if system:
        if all(set(b) == {"type", "text"} for b in system):
            body["system"] = "\n\n".join(b["text"] for b in system)
        else:
            body["system"] = system
    body["messages"] = converted
    max_tokens = params.get("max_tokens", params.get("max_completion_tokens"))
    effort = params.get("reasoning_effort")
    if effort is not None and effort != "none":
        budget = THINKING_BUDGETS.get(effort)
        if budget is None:
            raise BadRequestError(f"reasoning_effort {effort!r}: use one of {', '.join(THINKING_BUDGETS)}.",
                                  param="reasoning_effort")  # fmt: skip
        if max_tokens is not None and max_tokens <= budget:
            raise BadRequestError(f"max_tokens ({max_tokens}) must be above the thinking budget of reasoning_effort "
                                  f"{effort!r} ({budget} tokens).", param="max_tokens")  # fmt: skip
        body["thinking"] = {"type": "enabled", "budget_tokens": budget}
    body["max_tokens"] = max_tokens if max_tokens is not None else default_max_tokens(model_hint)
    for name in ("temperature", "top_p"):
        if params.get(name) is not None:
            body[name] = params[name]
    stop = params.get("stop")
    if stop is not None:
        body["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if params.get("tools"):
        body["tools"] = _tools(params["tools"])
    choice = _tool_choice(params.get("tool_choice"), params.get("parallel_tool_calls"))
    if choice is not None:
        body["tool_choice"] = choice
    if params.get("user") is not None:
        body["metadata"] = {**(params.get("metadata") or {}), "user_id": params["user"]}
    for key, value in params.items():
        if key not in _HANDLED and key not in body and value is not None:
            body[key] = value  # Anthropic's own parameters (top_k, thinking, metadata ...) as given
    if stream:
        body["stream"] = True
    return body


def usage(raw: dict[str, Any]) -> dict[str, Any]:
    """Anthropic's usage in OpenAI's shape; cache reads are ``prompt_tokens_details.cached_tokens``.

    ``prompt_tokens`` counts every input token (uncached, cache reads and cache writes), as
    OpenAI's does; Anthropic's own counts are kept beside (``cache_creation_input_tokens``,
    ``cache_read_input_tokens``), as LiteLLM keeps them.
    """
    fresh = int(raw.get("input_tokens") or 0)
    read = int(raw.get("cache_read_input_tokens") or 0)
    write = int(raw.get("cache_creation_input_tokens") or 0)
    output = int(raw.get("output_tokens") or 0)
    prompt = fresh + read + write
    return {
        "prompt_tokens": prompt,
        "completion_tokens": output,
        "total_tokens": prompt + output,
        "prompt_tokens_details": {"cached_tokens": read, "cache_write_tokens": write},
        "cache_read_input_tokens": read,
        "cache_creation_input_tokens": write,
    }


def chat_completion(message: dict[str, Any]) -> dict[str, Any]:
    """An Anthropic ``message`` as an OpenAI ``chat.completion`` dict."""
    texts: list[str] = []
    thinking: list[str] = []
    thinking_blocks: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    for block in message.get("content") or ():
        kind = block.get("type")
        if kind == "text":
            texts.append(block.get("text", ""))
        elif kind in ("thinking", "redacted_thinking"):
            thinking_blocks.append(block)
            if kind == "thinking":
                thinking.append(block.get("thinking", ""))
        elif kind == "tool_use":
            calls.append({"id": block.get("id"), "type": "function",
                          "function": {"name": block.get("name"), "arguments": json.dumps(block.get("input") or {})}})  # fmt: skip
    out: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts or not calls else None}
    if calls:
        out["tool_calls"] = calls
    if thinking_blocks:
        out["reasoning_content"] = "".join(thinking)
        out["thinking_blocks"] = thinking_blocks  # sent back as they are on the next turn
    result: dict[str, Any] = {
        "id": message.get("id", ""),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": message.get("model", ""),
        "choices": [{"index": 0, "message": out, "finish_reason": FINISH_REASONS.get(message.get("stop_reason") or "", "stop")}],
    }
    if message.get("usage"):
        result["usage"] = usage(message["usage"])
    return result
