"""Claude on Azure AI Foundry: the emulator's ``POST /anthropic/v1/messages`` (Anthropic's Messages API).

A Foundry resource serves Claude deployments at ``https://<resource>.services.ai.azure.com/anthropic/v1/messages``,
the deployment named by the body's ``model``. This endpoint is as strict as the real one where a
client can tell, with Anthropic's error shape ``{"type": "error", "error": {"type", "message"}}``:

* ``anthropic-version`` is required (400 ``invalid_request_error``);
* the credential: ``x-api-key`` (what Anthropic's Foundry SDK sends) or ``api-key`` with one of
  the emulator's keys, or ``Authorization: Bearer`` with a static AD token or an Entra token for
  the ``https://ai.azure.com`` audience (else 401 ``authentication_error``);
* ``model`` must name a Claude deployment (404 ``not_found_error``); ``max_tokens`` is required;
  ``messages`` hold only ``user`` and ``assistant`` roles (a ``system`` role is a 400 pointing
  at the top-level ``system``); tools need ``name`` and ``input_schema``; ``thinking`` needs
  ``budget_tokens`` of at least 1,024 and below ``max_tokens``; ``temperature`` is 0 to 1.

Replies are deterministic: with tools offered (and ``tool_choice`` not ``none``) and no tool
result yet, Claude calls the first tool (or the one ``tool_choice`` names) with arguments made
from its schema; otherwise it answers ``Claude heard: <the last user text>``. ``thinking``
adds a thinking block first. Prompt caching: a request with ``cache_control`` reports
``cache_creation_input_tokens`` the first time and ``cache_read_input_tokens`` after.
Streams send the full event sequence: ``message_start``, ``ping``, ``content_block_start`` /
``content_block_delta`` / ``content_block_stop`` per block, ``message_delta``, ``message_stop``.

Faults: the deployment's ``Faults.script`` statuses answer in Anthropic's shape (529
``overloaded_error``, 429 ``rate_limit_error`` with ``retry-after``, 5xx ``api_error``); the
trigger ``emulator:overloaded-midstream`` in the last user message ends a stream with an
``error`` event after its first block.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

if TYPE_CHECKING:
    from .emulator import Deployment, Emulator

__all__ = ["FOUNDRY_AUDIENCE", "MIDSTREAM_OVERLOAD_TRIGGER", "messages"]

FOUNDRY_AUDIENCE = "https://ai.azure.com"
"""The Entra token audience Foundry's Claude endpoint accepts here (scope ``https://ai.azure.com/.default``)."""
MIDSTREAM_OVERLOAD_TRIGGER = "emulator:overloaded-midstream"

_ids = itertools.count(1)  # message ids, unique in the process (next() on a count is atomic in CPython)
_ROLES = frozenset({"user", "assistant"})
_BLOCKS = frozenset({"text", "image", "document", "tool_use", "tool_result", "thinking", "redacted_thinking"})
_STATUS_TYPES = {
    400: "invalid_request_error", 401: "authentication_error", 403: "permission_error", 404: "not_found_error",
    413: "request_too_large", 429: "rate_limit_error", 500: "api_error", 529: "overloaded_error",
}  # fmt: skip


def _error(status: int, message: str, kind: str | None = None, headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"type": "error", "error": {"type": kind or _STATUS_TYPES.get(status, "api_error"), "message": message}}
    return JSONResponse(body, status_code=status, headers={"request-id": "req_emulator", **(headers or {})})


def _invalid(message: str) -> JSONResponse:
    return _error(400, message, "invalid_request_error")


def _check_auth(emulator: Emulator, request: Request) -> Response | None:
    key = request.headers.get("x-api-key") or request.headers.get("api-key")
    if key is not None:
        return None if key in emulator.api_keys else _error(401, "invalid x-api-key")
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        token = auth[7:].strip()
        if token in emulator.ad_tokens:
            return None
        validator = emulator.token_validator
        if validator is not None:
            try:
                ok = validator(token, audience=FOUNDRY_AUDIENCE)
            except TypeError:  # a validator that takes no audience
                ok = validator(token)
            if ok:
                return None
        return _error(401, "Invalid bearer token (Foundry accepts Entra ID tokens for https://ai.azure.com).")
    return _error(401, "Missing credential: send x-api-key, api-key, or an Authorization bearer token.")


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(b.get("text", "")) for b in content if isinstance(b, dict) and b.get("type") == "text")
    return ""


def _tokens(text: str) -> int:
    return len(re.findall(r"\w+|[^\w\s]", text))


def _validate(body: Any, emulator: Emulator) -> tuple[Deployment | None, Response | None]:
    """The deployment the body names, or Anthropic's 400/404 for what the real endpoint refuses."""
    if not isinstance(body, dict):
        return None, _invalid("The request body must be a JSON object.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return None, _invalid("model: Field required")
    d = emulator.deployments.get(model)
    if d is None or not d.model.startswith("claude"):
        return None, _error(404, f"model: {model} (no Claude deployment of that name on this resource)")
    max_tokens = body.get("max_tokens")
    if max_tokens is None:
        return d, _invalid("max_tokens: Field required")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        return d, _invalid("max_tokens: Input should be a valid integer greater than or equal to 1")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return d, _invalid("messages: Field required (a non-empty list)")
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            return d, _invalid(f"messages.{i}: Input should be a valid dictionary")
        role = m.get("role")
        if role == "system":
            return d, _invalid(
                f'messages.{i}.role: Unexpected role "system". The Messages API accepts a top-level '
                '`system` parameter, not "system" as an input message role.'
            )
        if role not in _ROLES:
            return d, _invalid(f"messages.{i}.role: Input should be 'user' or 'assistant'")
        content = m.get("content")
        if isinstance(content, list):
            for j, block in enumerate(content):
                if not isinstance(block, dict) or block.get("type") not in _BLOCKS:
                    return d, _invalid(f"messages.{i}.content.{j}.type: Input tag is not one of the expected tags")
                if block["type"] == "tool_result" and not block.get("tool_use_id"):
                    return d, _invalid(f"messages.{i}.content.{j}.tool_use_id: Field required")
                if block["type"] == "tool_use" and not (block.get("id") and block.get("name")):
                    return d, _invalid(f"messages.{i}.content.{j}: tool_use blocks need id and name")
                if block["type"] == "image":
                    source = block.get("source") or {}
                    if source.get("type") not in ("base64", "url"):
                        return d, _invalid(f"messages.{i}.content.{j}.source.type: Input should be 'base64' or 'url'")
        elif not isinstance(content, str):
            return d, _invalid(f"messages.{i}.content: Input should be a valid string or list")
    system = body.get("system")
    if system is not None and not isinstance(system, str | list):
        return d, _invalid("system: Input should be a valid string or list of text blocks")
    temperature = body.get("temperature")
    if temperature is not None and (not isinstance(temperature, int | float) or not 0 <= temperature <= 1):
        return d, _invalid("temperature: Input should be less than or equal to 1")
    for i, tool in enumerate(body.get("tools") or ()):
        if not isinstance(tool, dict) or not tool.get("name"):
            return d, _invalid(f"tools.{i}.name: Field required")
        if "type" not in tool and not isinstance(tool.get("input_schema"), dict):
            return d, _invalid(f"tools.{i}.input_schema: Field required")
    choice = body.get("tool_choice")
    if choice is not None and (not isinstance(choice, dict) or choice.get("type") not in ("auto", "any", "tool", "none")):
        return d, _invalid("tool_choice.type: Input tag is not one of 'auto', 'any', 'tool', 'none'")
    thinking = body.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") == "enabled":
        budget = thinking.get("budget_tokens")
        if not isinstance(budget, int) or budget < 1024:
            return d, _invalid("thinking.enabled.budget_tokens: Input should be greater than or equal to 1024")
        if budget >= max_tokens:
            return d, _invalid("`max_tokens` must be greater than `thinking.budget_tokens`.")
    return d, None


def _has_cache_control(body: dict[str, Any]) -> bool:
    return '"cache_control"' in json.dumps([body.get("system"), body.get("messages"), body.get("tools")])


def _reply(d: Deployment, body: dict[str, Any], msg_id: str) -> dict[str, Any]:
    messages = body["messages"]
    last = messages[-1]
    last_text = _text_of(last.get("content"))
    content: list[dict[str, Any]] = []
    thinking = body.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") == "enabled":
        content.append({"type": "thinking", "thinking": "Let me think about this step by step.",
                        "signature": "emulator-signature-" + msg_id[-8:]})  # fmt: skip
    tools = [t for t in body.get("tools") or () if isinstance(t, dict)]
    choice = body.get("tool_choice") or {"type": "auto"}
    answered = isinstance(last.get("content"), list) and any(
        isinstance(b, dict) and b.get("type") == "tool_result" for b in last["content"]
    )
    stop_reason = "end_turn"
    stop_sequence = None
    if tools and choice.get("type") != "none" and not answered:
        tool = next((t for t in tools if t.get("name") == choice.get("name")), tools[0])
        from .emulator import _example

        hint = (re.findall(r"[A-Z][a-z]+", last_text) or ["Paris"])[-1]
        content.append({"type": "tool_use", "id": f"toolu_emu_{msg_id[-12:]}", "name": tool["name"],
                        "input": _example(tool.get("input_schema") or {}, hint)})  # fmt: skip
        stop_reason = "tool_use"
    else:
        if answered:
            results = [b for b in last["content"] if isinstance(b, dict) and b.get("type") == "tool_result"]
            text = "The tool said: " + " ".join(_text_of(r.get("content")) or str(r.get("content", "")) for r in results)
        else:
            text = f"Claude heard: {last_text}"
        for stop in body.get("stop_sequences") or ():
            if isinstance(stop, str) and stop and stop in text:
                text, stop_reason, stop_sequence = text.split(stop, 1)[0], "stop_sequence", stop
                break
        words = re.findall(r"\S+\s*", text)
        if len(words) > body["max_tokens"]:
            text, stop_reason = "".join(words[: body["max_tokens"]]).rstrip(), "max_tokens"
        content.append({"type": "text", "text": text})
    prompt = json.dumps([body.get("system"), messages, body.get("tools")])
    input_tokens = _tokens(prompt)
    usage: dict[str, Any] = {"input_tokens": input_tokens, "output_tokens": sum(_tokens(json.dumps(b)) for b in content),
                             "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}  # fmt: skip
    if _has_cache_control(body):
        if prompt in d._prompts_seen:
            usage["cache_read_input_tokens"] = input_tokens
        else:
            d._prompts_seen.add(prompt)
            usage["cache_creation_input_tokens"] = input_tokens
        usage["input_tokens"] = 0
    return {"id": msg_id, "type": "message", "role": "assistant", "model": d.model, "content": content,
            "stop_reason": stop_reason, "stop_sequence": stop_sequence, "usage": usage}  # fmt: skip


def _sse(kind: str, data: dict[str, Any]) -> bytes:
    return f"event: {kind}\ndata: {json.dumps({'type': kind, **data}, separators=(',', ':'))}\n\n".encode()


async def _stream(message: dict[str, Any], midstream_error: bool) -> AsyncIterator[bytes]:
    usage = message["usage"]
    start = {**message, "content": [], "stop_reason": None, "stop_sequence": None,
             "usage": {**usage, "output_tokens": 1}}  # fmt: skip
    yield _sse("message_start", {"message": start})
    yield _sse("ping", {})
    for index, block in enumerate(message["content"]):
        kind = block["type"]
        if kind == "text":
            yield _sse("content_block_start", {"index": index, "content_block": {"type": "text", "text": ""}})
            for piece in re.findall(r"\S+\s*", block["text"]) or [""]:
                yield _sse("content_block_delta", {"index": index, "delta": {"type": "text_delta", "text": piece}})
        elif kind == "thinking":
            yield _sse("content_block_start", {"index": index, "content_block": {"type": "thinking", "thinking": ""}})
            yield _sse("content_block_delta", {"index": index, "delta": {"type": "thinking_delta", "thinking": block["thinking"]}})
            yield _sse("content_block_delta", {"index": index, "delta": {"type": "signature_delta", "signature": block["signature"]}})
        else:  # tool_use: the arguments arrive as partial JSON
            head = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
            yield _sse("content_block_start", {"index": index, "content_block": head})
            raw = json.dumps(block["input"])
            for i in range(0, len(raw), 8):
                yield _sse("content_block_delta", {"index": index, "delta": {"type": "input_json_delta", "partial_json": raw[i : i + 8]}})
        yield _sse("content_block_stop", {"index": index})
        if midstream_error:
            yield _sse("error", {"error": {"type": "overloaded_error", "message": "Overloaded"}})
            return
    yield _sse("message_delta", {"delta": {"stop_reason": message["stop_reason"], "stop_sequence": message["stop_sequence"]},
                                 "usage": {"output_tokens": usage["output_tokens"]}})  # fmt: skip
    yield _sse("message_stop", {})


def _scripted(d: Deployment, emulator: Emulator) -> Response | None:
    with emulator._lock:
        status = d.faults.script.pop(0) if d.faults.script else None
    if status is None or status < 400:
        return None
    if status == 429:
        wait = f"{d.faults.retry_after:g}"
        return _error(429, "Number of request tokens has exceeded your per-minute rate limit.", headers={"retry-after": wait})
    if status == 529:
        return _error(529, "Overloaded", "overloaded_error")
    return _error(status, f"Injected HTTP {status}.")


async def messages(emulator: Emulator, request: Request) -> Response:
    """``POST /anthropic/v1/messages``: one Messages API call to the Claude deployment ``model`` names."""
    body, bad = await emulator._record(request)
    if bad is not None:
        return _invalid("The request body is not valid JSON.")
    denied = _check_auth(emulator, request)
    if denied is not None:
        return denied
    if not request.headers.get("anthropic-version"):
        return _invalid("anthropic-version: header is required")
    d, refused = _validate(body, emulator)
    if refused is not None:
        return refused
    assert d is not None
    fault = _scripted(d, emulator)
    if fault is not None:
        return fault
    msg_id = f"msg_emu_{next(_ids):012d}"
    message = _reply(d, body, msg_id)
    headers = {"request-id": f"req_{msg_id}"}
    if body.get("stream"):
        midstream = MIDSTREAM_OVERLOAD_TRIGGER in _text_of(body["messages"][-1].get("content"))
        return StreamingResponse(_stream(message, midstream), media_type="text/event-stream", headers=headers)
    return JSONResponse(message, headers=headers)
