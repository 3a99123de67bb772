"""The chat <-> Responses bridge (docs/responses.md has the table; each row has its test).

* ``completion()`` to a deployment whose ``model_info.mode`` is ``responses`` (Azure's codex
  models serve only the Responses API) is sent as a Responses call and answered in chat shape:
  :func:`completion_via_responses`, streams and tool calls included.
* ``responses()`` to a deployment whose ``model_info.mode`` is ``chat`` is sent as a chat
  completion and answered in Responses shape: :func:`responses_via_chat`.

Parameters with no counterpart on the other side are refused naming the parameter, or left
out under ``drop_params``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any, Self

from ._calls import _module_settings, _split
from .errors import APIError, BadRequestError, error_for_status
from .responses_types import ResponsesAPIResponse, ResponsesEvent, parse_event
from .types import ChatCompletion, ChatCompletionChunk

__all__ = [
    "AsyncBridgedChatStream",
    "AsyncBridgedResponsesStream",
    "BridgedChatStream",
    "BridgedResponsesStream",
    "acompletion_via_responses",
    "aresponses_via_chat",
    "chat_from_response",
    "chat_to_responses",
    "completion_via_responses",
    "response_from_chat",
    "responses_to_chat",
    "responses_via_chat",
]

_CHAT_ONLY = ("n", "stop", "logprobs", "top_logprobs", "presence_penalty", "frequency_penalty", "logit_bias",
              "seed", "audio", "modalities", "prediction", "functions", "function_call", "web_search_options")  # fmt: skip
_RESPONSES_ONLY = ("previous_response_id", "background", "include", "truncation", "conversation", "prompt")
_SAME = ("temperature", "top_p", "user", "parallel_tool_calls", "store", "metadata", "safety_identifier", "prompt_cache_key")


def _drop(kwargs: dict[str, Any]) -> bool:
    drop = kwargs.get("drop_params")
    if drop is None:
        drop = _module_settings().get("drop_params")
    return bool(drop)


def _refuse(name: str, where: str) -> BadRequestError:
    return BadRequestError(
        f"{name!r} has no counterpart in the {where} (this deployment is bridged, see docs/responses.md); "
        "remove it, or pass drop_params=True to leave it out.",
        param=name,
    )


# --------------------------------------------------------------------------- chat -> Responses


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def _parts(content: Any, role: str, where: str) -> Any:
    """Chat content parts as Responses content parts (``text`` -> ``input_text`` / ``output_text``, images, files)."""
    if not isinstance(content, list):
        return content if content is not None else ""
    out = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            out.append({"type": "output_text" if role == "assistant" else "input_text", "text": part.get("text", "")})
        elif kind == "image_url":
            image = part.get("image_url")
            url, detail = (image.get("url"), image.get("detail")) if isinstance(image, dict) else (image, None)
            out.append({"type": "input_image", "image_url": url, "detail": detail or "auto"})
        elif kind == "file":
            out.append({"type": "input_file", **(part.get("file") or {})})
        else:
            raise BadRequestError(f"{where}.content[{j}] of type {kind!r} has no Responses API counterpart.",
                                  param=f"{where}.content[{j}].type")  # fmt: skip
    return out


def chat_to_responses(messages: list[dict[str, Any]], params: dict[str, Any], *, drop: bool) -> dict[str, Any]:
    """A chat call's messages and parameters as a ``responses()`` call's parameters."""
    items: list[dict[str, Any]] = []
    for i, m in enumerate(messages):
        role, where = m.get("role"), f"messages[{i}]"
        if role in ("system", "developer", "user"):
            items.append({"role": role, "content": _parts(m.get("content"), role, where)})
        elif role == "assistant":
            if m.get("content"):
                items.append({"role": "assistant", "content": _parts(m.get("content"), role, where)})
            for call in m.get("tool_calls") or ():
                fn = call.get("function") or {}
                items.append({"type": "function_call", "call_id": call.get("id"), "name": fn.get("name"),
                              "arguments": fn.get("arguments") or "{}"})  # fmt: skip
        elif role == "tool":
            items.append({"type": "function_call_output", "call_id": m.get("tool_call_id"), "output": _text_of(m.get("content"))})
        else:
            raise BadRequestError(f"{where}.role {role!r} has no Responses API counterpart.", param=f"{where}.role")
    out: dict[str, Any] = {"input": items}
    for name, value in params.items():
        if value is None:
            continue
        if name in _SAME:
            out[name] = value
        elif name in ("max_tokens", "max_completion_tokens"):
            out["max_output_tokens"] = value
        elif name == "tools":
            out["tools"] = [_tool_to_responses(t) for t in value]
        elif name == "tool_choice":
            fn = value.get("function") if isinstance(value, dict) else None
            out["tool_choice"] = {"type": "function", "name": fn.get("name")} if isinstance(fn, dict) else value
        elif name == "response_format":
            kind = value.get("type") if isinstance(value, dict) else None
            if kind == "json_schema":
                out["text"] = {"format": {"type": "json_schema", **(value.get("json_schema") or {})}}
            elif kind in ("json_object", "text"):
                out["text"] = {"format": {"type": kind}}
        elif name == "reasoning_effort":
            out["reasoning"] = {"effort": value}
        elif name == "stream_options":
            continue  # the usage comes with response.completed anyway
        elif name in _CHAT_ONLY:
            if name == "n" and value == 1:
                continue
            if not drop:
                raise _refuse(name, "Responses API")
        else:
            out[name] = value  # not chat's: sent as it is
    return out


def _tool_to_responses(tool: Any) -> Any:
    if isinstance(tool, dict) and tool.get("type") == "function" and isinstance(tool.get("function"), dict):
        fn = tool["function"]
        return {"type": "function", **{k: v for k, v in fn.items() if v is not None}}
    return tool


def chat_from_response(response: ResponsesAPIResponse) -> ChatCompletion:
    """A response in chat shape: its text as the message content, its function calls as ``tool_calls``."""
    if response.status == "failed":
        raise _failed(response.error)
    tool_calls = [
        {"id": item.get("call_id"), "type": "function", "function": {"name": item.get("name"), "arguments": item.get("arguments", "")}}
        for item in response.output
        if item.get("type") == "function_call"
    ]
    message: dict[str, Any] = {"role": "assistant", "content": response.output_text or None}
    if tool_calls:
        message["tool_calls"] = tool_calls
    data: dict[str, Any] = {
        "id": response.id,
        "object": "chat.completion",
        "created": response.created_at,
        "model": response.model,
        "choices": [{"index": 0, "message": message, "finish_reason": _finish(response, bool(tool_calls))}],
    }
    if response.usage is not None:
        data["usage"] = _chat_usage(response.usage)
    chat = ChatCompletion.model_validate(data)
    chat._attach(response._response_headers, response._hidden_params)
    return chat


def _finish(response: ResponsesAPIResponse, tools: bool) -> str:
    if tools:
        return "tool_calls"
    reason = ((getattr(response, "incomplete_details", None) or {}) or {}).get("reason")
    if response.status == "incomplete":
        return "content_filter" if reason == "content_filter" else "length"
    return "stop"


def _chat_usage(usage: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"prompt_tokens": usage.input_tokens, "completion_tokens": usage.output_tokens,
                           "total_tokens": usage.total_tokens}  # fmt: skip
    if usage.output_tokens_details:
        out["completion_tokens_details"] = {"reasoning_tokens": usage.output_tokens_details.get("reasoning_tokens", 0)}
    if usage.input_tokens_details:
        out["prompt_tokens_details"] = {"cached_tokens": usage.input_tokens_details.get("cached_tokens", 0)}
    return out


def _failed(error: Any) -> APIError:
    detail = error if isinstance(error, dict) else {}
    message = str(detail.get("message") or "The response failed.")
    return error_for_status(500)(message, status_code=500, body={"error": detail}, code=detail.get("code"))


class _Chunks:
    """Responses events turned into chat chunks, one event at a time."""

    def __init__(self, include_usage: bool) -> None:
        self.include_usage = include_usage
        self.id, self.model, self.created = "", "", int(time.time())
        self.calls: dict[int, int] = {}
        self.usage: Any = None

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> ChatCompletionChunk:
        return ChatCompletionChunk.model_validate({
            "id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        })  # fmt: skip

    def feed(self, event: ResponsesEvent) -> list[ChatCompletionChunk]:
        kind = event.type
        data = event.model_dump()
        if kind == "response.created":
            r = data["response"]
            self.id, self.model, self.created = r.get("id") or "", r.get("model") or "", r.get("created_at") or self.created
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "response.output_text.delta":
            return [self._chunk({"content": data.get("delta", "")})]
        item = data.get("item") or {}
        if kind == "response.output_item.added" and item.get("type") == "function_call":
            index = self.calls[data.get("output_index", 0)] = len(self.calls)
            call = {"index": index, "id": item.get("call_id"), "type": "function",
                    "function": {"name": item.get("name"), "arguments": ""}}  # fmt: skip
            return [self._chunk({"tool_calls": [call]})]
        if kind == "response.function_call_arguments.delta":
            index = self.calls.get(data.get("output_index", 0), 0)
            return [self._chunk({"tool_calls": [{"index": index, "function": {"arguments": data.get("delta", "")}}]})]
        if kind in ("response.completed", "response.incomplete"):
            response = ResponsesAPIResponse.model_validate(data["response"])
            chunks = [self._chunk({}, _finish(response, bool(self.calls)))]
            if response.usage is not None:
                self.usage = _chat_usage(response.usage)
                if self.include_usage:
                    chunks.append(ChatCompletionChunk.model_validate({
                        "id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                        "choices": [], "usage": self.usage,
                    }))  # fmt: skip
            return chunks
        if kind == "response.failed":
            raise _failed((data.get("response") or {}).get("error"))
        if kind == "error":
            raise _failed(data)
        return []


class _BridgedStream:
    """What both bridged streams share: the stream they read, its headers, closing."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self.headers = stream.headers

    def close(self) -> None:
        """Stop reading and release the connection."""
        self._stream.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _AsyncClosing(_BridgedStream):
    """The async twins' closing."""

    async def aclose(self) -> None:
        """Stop reading and release the connection."""
        await self._stream.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class BridgedChatStream(_BridgedStream):
    """Chat chunks (:class:`~modelyard.types.ChatCompletionChunk`) from a Responses stream."""

    def __init__(self, stream: Any, include_usage: bool) -> None:
        super().__init__(stream)
        self._chunks = _Chunks(include_usage)

    @property
    def usage(self) -> Any:
        """The stream's usage in chat's shape, once its last event is read."""
        return self._chunks.usage

    @property
    def model(self) -> str | None:
        """The model the upstream reported."""
        return self._chunks.model or None

    def __iter__(self) -> Iterator[ChatCompletionChunk]:
        for event in self._stream:
            yield from self._chunks.feed(event)


class AsyncBridgedChatStream(BridgedChatStream, _AsyncClosing):
    """The async twin of :class:`BridgedChatStream`."""

    async def __aiter__(self) -> AsyncIterator[ChatCompletionChunk]:
        async for event in self._stream:
            for chunk in self._chunks.feed(event):
                yield chunk


def _chat_kwargs(messages: Any, stream: bool, kwargs: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    from .api import _validate_messages

    conn, control, params = _split(kwargs)
    include_usage = bool((params.get("stream_options") or {}).get("include_usage"))
    mapped = chat_to_responses(_validate_messages(messages), params, drop=_drop(control))
    return {**conn, **control, **mapped, "stream": stream}, include_usage


def completion_via_responses(model: str, messages: Any, stream: bool, kwargs: dict[str, Any]) -> Any:
    """``completion()`` to a ``mode: responses`` deployment: a Responses call, answered in chat shape."""
    from .responses_api import responses

    call, include_usage = _chat_kwargs(messages, stream, kwargs)
    result = responses(model=model, **call)
    if stream:
        return BridgedChatStream(result, include_usage)
    return chat_from_response(result)  # type: ignore[arg-type]


async def acompletion_via_responses(model: str, messages: Any, stream: bool, kwargs: dict[str, Any]) -> Any:
    """The async twin of :func:`completion_via_responses`."""
    from .responses_api import aresponses

    call, include_usage = _chat_kwargs(messages, stream, kwargs)
    result = await aresponses(model=model, **call)
    if stream:
        return AsyncBridgedChatStream(result, include_usage)
    return chat_from_response(result)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- Responses -> chat


def responses_to_chat(params: dict[str, Any], *, drop: bool) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """A ``responses()`` call's parameters as chat messages and parameters."""
    messages: list[dict[str, Any]] = []
    if params.get("instructions"):
        messages.append({"role": "system", "content": params["instructions"]})
    inp = params.get("input")
    if inp is None:
        raise BadRequestError("responses() needs 'input'.", param="input")
    items = [{"role": "user", "content": inp}] if isinstance(inp, str) else inp
    if not isinstance(items, list):
        raise BadRequestError(f"'input' must be a string or a list of items, not {type(inp).__name__}.", param="input")
    for i, item in enumerate(items):
        where = f"input[{i}]"
        if not isinstance(item, dict):
            raise BadRequestError(f"{where} must be an object (a message or an item), not {type(item).__name__}.", param=where)
        kind = item.get("type", "message" if "role" in item else None)
        if kind == "message":
            content = item.get("content")
            if isinstance(content, list):
                content = [_chat_part(p, f"{where}.content[{j}]") for j, p in enumerate(content)]
            messages.append({"role": item.get("role"), "content": content})
        elif kind == "function_call":
            call = {"id": item.get("call_id"), "type": "function",
                    "function": {"name": item.get("name"), "arguments": item.get("arguments", "")}}  # fmt: skip
            if messages and messages[-1]["role"] == "assistant" and "tool_calls" in messages[-1]:
                messages[-1]["tool_calls"].append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            messages.append({"role": "tool", "tool_call_id": item.get("call_id"), "content": item.get("output", "")})
        else:
            raise BadRequestError(f"{where}.type {kind!r} has no chat counterpart.", param=f"{where}.type")
    out: dict[str, Any] = {}
    for name, value in params.items():
        if value is None or name in ("input", "instructions", "stream"):
            continue
        if name in _SAME:
            out[name] = value
        elif name == "max_output_tokens":
            out["max_completion_tokens"] = value
        elif name == "tools":
            out["tools"] = [_tool_to_chat(t, f"tools[{i}]") for i, t in enumerate(value)]
        elif name == "tool_choice":
            out["tool_choice"] = {"type": "function", "function": {"name": value.get("name")}} if isinstance(value, dict) else value
        elif name == "text":
            fmt = value.get("format") if isinstance(value, dict) else None
            if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
                out["response_format"] = {"type": "json_schema", "json_schema": {k: v for k, v in fmt.items() if k != "type"}}
            elif isinstance(fmt, dict) and fmt.get("type") in ("json_object", "text"):
                out["response_format"] = {"type": fmt["type"]}
        elif name == "reasoning":
            effort = value.get("effort") if isinstance(value, dict) else getattr(value, "effort", None)
            if effort is not None:
                out["reasoning_effort"] = effort
        elif name in _RESPONSES_ONLY:
            if not drop:
                raise _refuse(name, "chat completions API")
        else:
            out[name] = value
    out.pop("store", None)  # a chat completion is not stored as a response
    return messages, out


def _chat_part(part: Any, where: str) -> Any:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind in ("input_text", "output_text"):
        return {"type": "text", "text": part.get("text", "")}
    if kind == "input_image":
        return {"type": "image_url", "image_url": {"url": part.get("image_url"), "detail": part.get("detail") or "auto"}}
    if kind == "input_file":
        return {"type": "file", "file": {k: v for k, v in part.items() if k != "type"}}
    raise BadRequestError(f"{where} of type {kind!r} has no chat counterpart.", param=f"{where}.type")


def _tool_to_chat(tool: Any, where: str) -> Any:
    if isinstance(tool, dict) and tool.get("type") == "function":
        return {"type": "function", "function": {k: v for k, v in tool.items() if k != "type"}}
    kind = tool.get("type") if isinstance(tool, dict) else None
    raise BadRequestError(f"{where}: a {kind!r} tool has no chat counterpart (only function tools do).", param=f"{where}.type")


def response_from_chat(chat: ChatCompletion) -> ResponsesAPIResponse:
    """A chat completion in Responses shape: a ``message`` item, and a ``function_call`` item per tool call."""
    choice = chat.choices[0] if chat.choices else None
    message = choice.message if choice is not None else None
    output: list[dict[str, Any]] = []
    if message is not None and message.content:
        output.append({"id": f"msg_{chat.id}", "type": "message", "status": "completed", "role": "assistant",
                       "content": [{"type": "output_text", "text": message.content, "annotations": []}]})  # fmt: skip
    for call in (message.tool_calls if message is not None else None) or ():
        fn = call.function
        output.append({"id": f"fc_{call.id}", "type": "function_call", "status": "completed", "call_id": call.id,
                       "name": fn.name if fn else None, "arguments": fn.arguments if fn else ""})  # fmt: skip
    finish = choice.finish_reason if choice is not None else None
    data: dict[str, Any] = {
        "id": f"resp_{chat.id}",
        "object": "response",
        "created_at": chat.created,
        "status": "incomplete" if finish in ("length", "content_filter") else "completed",
        "model": chat.model,
        "output": output,
    }
    if finish in ("length", "content_filter"):
        data["incomplete_details"] = {"reason": "max_output_tokens" if finish == "length" else "content_filter"}
    if chat.usage is not None:
        data["usage"] = _responses_usage(chat.usage)
    response = ResponsesAPIResponse.model_validate(data)
    response._attach(chat._response_headers, chat._hidden_params)
    return response


def _responses_usage(usage: Any) -> dict[str, Any]:
    out = {"input_tokens": usage.prompt_tokens, "output_tokens": usage.completion_tokens, "total_tokens": usage.total_tokens}
    details = getattr(usage, "completion_tokens_details", None)
    if details is not None:
        out["output_tokens_details"] = {"reasoning_tokens": getattr(details, "reasoning_tokens", 0) or 0}
    return out


class _Events:
    """Chat chunks turned into Responses events, with the final response at the end."""

    def __init__(self) -> None:
        self.seq = 0
        self.id = f"resp_{uuid.uuid4().hex}"
        self.text: list[str] = []
        self.calls: dict[int, dict[str, Any]] = {}
        self.model = ""
        self.created = int(time.time())
        self.finish: str | None = None
        self.usage: Any = None
        self.started = False

    def _event(self, kind: str, **data: Any) -> ResponsesEvent:
        event = parse_event({"type": kind, "sequence_number": self.seq, **data})
        self.seq += 1
        return event

    def _response(self, status: str, output: list[dict[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "object": "response", "created_at": self.created, "status": status,
                               "model": self.model, "output": output}  # fmt: skip
        if self.usage is not None and status != "in_progress":
            out["usage"] = _responses_usage(self.usage)
        return out

    def feed(self, chunk: ChatCompletionChunk) -> list[ResponsesEvent]:
        events: list[ResponsesEvent] = []
        if not self.started:
            self.started = True
            self.model, self.created = chunk.model or "", chunk.created or self.created
            events.append(self._event("response.created", response=self._response("in_progress", [])))
        if chunk.usage is not None:
            self.usage = chunk.usage
        for choice in chunk.choices[:1]:
            delta = choice.delta
            if delta.content:
                self.text.append(delta.content)
                events.append(self._event("response.output_text.delta", item_id=f"msg_{self.id}", output_index=0,
                                          content_index=0, delta=delta.content))  # fmt: skip
            for call in delta.tool_calls or ():
                index = call.index if call.index is not None else 0
                fn = call.function
                entry = self.calls.setdefault(index, {"call_id": call.id, "name": None, "arguments": ""})
                if fn is not None and fn.name:
                    entry["name"] = fn.name
                if fn is not None and fn.arguments:
                    entry["arguments"] += fn.arguments
                    events.append(self._event("response.function_call_arguments.delta", item_id=f"fc_{entry['call_id']}",
                                              output_index=index, delta=fn.arguments))  # fmt: skip
            if choice.finish_reason:
                self.finish = choice.finish_reason
        return events

    def done(self) -> list[ResponsesEvent]:
        output: list[dict[str, Any]] = []
        if self.text:
            output.append({"id": f"msg_{self.id}", "type": "message", "status": "completed", "role": "assistant",
                           "content": [{"type": "output_text", "text": "".join(self.text), "annotations": []}]})  # fmt: skip
        for entry in self.calls.values():
            output.append({"id": f"fc_{entry['call_id']}", "type": "function_call", "status": "completed", **entry})
        status = "incomplete" if self.finish in ("length", "content_filter") else "completed"
        kind = "response.incomplete" if status == "incomplete" else "response.completed"
        return [self._event(kind, response=self._response(status, output))]


class BridgedResponsesStream(_BridgedStream):
    """Responses events (:class:`~modelyard.responses_types.ResponsesEvent`) from a chat stream."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._events = _Events()
        self.response: ResponsesAPIResponse | None = None

    def _final(self, events: list[ResponsesEvent]) -> list[ResponsesEvent]:
        self.response = getattr(events[-1], "response", None)
        return events

    def __iter__(self) -> Iterator[ResponsesEvent]:
        for chunk in self._stream:
            yield from self._events.feed(chunk)
        yield from self._final(self._events.done())


class AsyncBridgedResponsesStream(BridgedResponsesStream, _AsyncClosing):
    """The async twin of :class:`BridgedResponsesStream`."""

    async def __aiter__(self) -> AsyncIterator[ResponsesEvent]:
        async for chunk in self._stream:
            for event in self._events.feed(chunk):
                yield event
        for event in self._final(self._events.done()):
            yield event


def _responses_call(model: str, params: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any], bool]:
    conn, control, body = _split(params)
    control.pop("model_info", None)  # no loop back here
    stream = bool(body.pop("stream", False))
    messages, mapped = responses_to_chat(body, drop=_drop(control))
    if stream:
        mapped["stream_options"] = {"include_usage": True}
    return messages, {**conn, **control, **mapped}, stream


def responses_via_chat(model: str, params: dict[str, Any]) -> ResponsesAPIResponse | BridgedResponsesStream:
    """``responses()`` to a ``mode: chat`` deployment: a chat completion, answered in Responses shape."""
    from .api import completion

    messages, kwargs, stream = _responses_call(model, params)
    result = completion(model=model, messages=messages, stream=stream, **kwargs)
    if stream:
        return BridgedResponsesStream(result)
    return response_from_chat(result)  # type: ignore[arg-type]


async def aresponses_via_chat(model: str, params: dict[str, Any]) -> ResponsesAPIResponse | AsyncBridgedResponsesStream:
    """The async twin of :func:`responses_via_chat`."""
    from .api import acompletion

    messages, kwargs, stream = _responses_call(model, params)
    result = await acompletion(model=model, messages=messages, stream=stream, **kwargs)
    if stream:
        return AsyncBridgedResponsesStream(result)
    return response_from_chat(result)  # type: ignore[arg-type]
