"""The emulator's Responses API: ``/openai/v1/responses`` and the dated ``/openai/responses?api-version=``.

Routes (each on both prefixes): ``POST /responses``, ``GET`` / ``DELETE /responses/{id}``,
``GET /responses/{id}/input_items``, ``POST /responses/{id}/cancel``. The dated prefix needs an
``api-version`` from ``2025-03-01-preview`` on (older ones answer 404, as Azure's do).

As strict as Azure where a client can tell, each a 400 with ``param``: keys the v1 spec's
``CreateResponse`` does not declare; ``model`` and ``input`` required; ``input`` a string or a
non-empty list of items of known types (messages with a known role and known content part
types, ``function_call``, ``function_call_output``, ``item_reference``, ``reasoning``); tools of
a type Azure knows, function tools with a ``name``; ``tool_choice``; a
``previous_response_id`` the resource holds (``previous_response_not_found``); ``reasoning``
only for reasoning models, sampling parameters not for them; ``max_output_tokens`` at least 16;
``text.format`` ``json_schema`` with ``name`` and ``schema``.

Answers are deterministic: with function tools (and ``tool_choice`` not ``none``), a
``function_call`` item whose arguments follow the tool's schema; after a
``function_call_output``, text about it; else ``This is <deployment> on the modelyard emulator.
You said: <last user text>`` (or an example of the ``json_schema``). ``previous_response_id``
chains: the earlier inputs and outputs count as the conversation. Responses are stored unless
``store`` is false. ``background: true`` answers ``queued``; the response completes once it has
been retrieved :attr:`ResponsesService.background_polls` times (or is cancelled first).
Streams send the full typed event sequence as ``event:`` / ``data:`` pairs; the faults
(``drop_stream_after``, ``drip``, scripted statuses, quotas) apply. A user text containing
:data:`FAIL_TRIGGER` makes the response fail (``response.failed`` in a stream, ``status:
failed`` otherwise); one containing :data:`ERROR_TRIGGER` sends an ``error`` event mid-stream.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from . import emulator as _emu
from .families import _OPERATION_HELP, _bad, model_kind

if TYPE_CHECKING:
    from .emulator import Deployment, Emulator

__all__ = ["ERROR_TRIGGER", "FAIL_TRIGGER", "ResponsesService"]

FAIL_TRIGGER = "emulator:fail-response"
ERROR_TRIGGER = "emulator:stream-error"
FIRST_VERSION = "2025-03-01-preview"

DECLARED = frozenset({
    "background", "conversation", "include", "input", "instructions", "max_output_tokens", "max_tool_calls",
    "metadata", "model", "parallel_tool_calls", "previous_response_id", "prompt", "prompt_cache_key",
    "prompt_cache_retention", "reasoning", "safety_identifier", "store", "stream", "stream_options", "temperature",
    "text", "tool_choice", "tools", "top_logprobs", "top_p", "truncation", "user",
})  # fmt: skip
"""The keys of the v1 spec's ``OpenAI.CreateResponse``."""
TOOL_TYPES = frozenset({
    "code_interpreter", "function", "file_search", "computer_use_preview", "web_search", "mcp", "image_generation",
    "local_shell", "shell", "custom", "web_search_preview", "apply_patch",
})  # fmt: skip
ITEM_TYPES = frozenset({"message", "function_call", "function_call_output", "item_reference", "reasoning"})
ROLES = frozenset({"user", "assistant", "system", "developer"})
PART_TYPES = frozenset({"input_text", "input_image", "input_file", "output_text", "refusal"})
_REASONING_KINDS = frozenset({"o_series", "o1_legacy", "gpt5"})


def _words(text: str) -> int:
    return max(1, len(text.split()))


def _rid(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


class ResponsesService:
    """One resource's stored responses (Azure keeps them per resource).

    Attributes:
        stored: response id -> the stored response object (as ``GET`` answers it).
        inputs: response id -> its input items (as ``input_items`` lists them).
        background_polls: how many retrievals a ``background`` response stays ``in_progress``
            for before it completes (1: the second ``GET`` sees it ``completed``).
    """

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator
        self.stored: dict[str, dict[str, Any]] = {}
        self.inputs: dict[str, list[dict[str, Any]]] = {}
        self.background_polls = 1
        self._pending: dict[str, tuple[int, dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def reset(self) -> None:
        """Forget every stored response."""
        with self._lock:
            self.stored.clear()
            self.inputs.clear()
            self._pending.clear()
            self.background_polls = 1

    def routes(self) -> list[Route]:
        """The Starlette routes, on ``/openai/v1`` and the dated ``/openai``."""
        out = []
        for prefix in ("/openai/v1", "/openai"):
            out += [
                Route(f"{prefix}/responses", self.create, methods=["POST"]),
                Route(f"{prefix}/responses/{{rid}}", self.retrieve, methods=["GET"]),
                Route(f"{prefix}/responses/{{rid}}", self.delete, methods=["DELETE"]),
                Route(f"{prefix}/responses/{{rid}}/input_items", self.input_items, methods=["GET"]),
                Route(f"{prefix}/responses/{{rid}}/cancel", self.cancel, methods=["POST"]),
            ]
        return out

    # ------------------------------------------------------------------ checks

    async def _checked(self, request: Request) -> tuple[Any, Response | None]:
        body, bad = await self.emulator._record(request)
        v1 = request.url.path.startswith("/openai/v1/")
        denied = self.emulator._check_auth(request, v1) or self.emulator._check_version(request, v1)
        if denied is not None:
            return body, denied
        if not v1 and request.query_params.get("api-version", "")[:10] < FIRST_VERSION[:10]:
            return body, _emu._error(404, "404", "Resource not found")
        return body, bad

    def _validate(self, d: Deployment, body: dict[str, Any]) -> Response | None:
        for key in body:
            if key not in DECLARED:
                return _bad("unknown_parameter", key, f"Unknown parameter: '{key}'.")
        inp = body.get("input")
        if inp is None:
            return _bad("missing_required_parameter", "input", "Missing required parameter: 'input'.")
        if isinstance(inp, list):
            if not inp:
                return _bad("empty_array", "input", "Invalid 'input': empty array. Expected an array with minimum length 1.")
            for i, item in enumerate(inp):
                refused = _check_item(item, i)
                if refused is not None:
                    return refused
        elif not isinstance(inp, str):
            return _bad("invalid_type", "input", "Invalid type for 'input': expected a string or an array of input items.")
        tools = body.get("tools") or []
        if not isinstance(tools, list):
            return _bad("invalid_type", "tools", "Invalid type for 'tools': expected an array.")
        for i, tool in enumerate(tools):
            kind = tool.get("type") if isinstance(tool, dict) else None
            if kind not in TOOL_TYPES:
                return _bad("invalid_value", f"tools[{i}].type",
                            f"Invalid value: {kind!r}. Supported values are: {', '.join(sorted(repr(t) for t in TOOL_TYPES))}.")  # fmt: skip
            if kind == "function" and not isinstance(tool.get("name"), str):
                return _bad("missing_required_parameter", f"tools[{i}].name", f"Missing required parameter: 'tools[{i}].name'.")
        choice = body.get("tool_choice")
        if choice is not None and not (choice in ("none", "auto", "required") or (isinstance(choice, dict) and isinstance(choice.get("type"), str))):
            return _bad("invalid_value", "tool_choice", f"Invalid value for 'tool_choice': {choice!r}.")
        kind = model_kind(d.model)
        if body.get("reasoning") is not None and kind not in _REASONING_KINDS:
            return _bad("unsupported_parameter", "reasoning.effort",
                        "Unsupported parameter: 'reasoning.effort' is not supported with this model.")  # fmt: skip
        if kind in _REASONING_KINDS:
            for name in ("temperature", "top_p"):
                if body.get(name) is not None:
                    return _bad("unsupported_parameter", name, f"Unsupported parameter: '{name}' is not supported with this model.")
        limit = body.get("max_output_tokens")
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 16):
            return _bad("integer_below_min_value", "max_output_tokens",
                        f"Invalid 'max_output_tokens': integer below minimum value. Expected a value >= 16, but got {limit!r} instead.")  # fmt: skip
        fmt = (body.get("text") or {}).get("format") if isinstance(body.get("text"), dict) else None
        if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
            for name in ("name", "schema"):
                if name not in fmt:
                    return _bad("missing_required_parameter", f"text.format.{name}", f"Missing required parameter: 'text.format.{name}'.")
        if body.get("truncation") not in (None, "auto", "disabled"):
            return _bad("invalid_value", "truncation", f"Invalid value: {body['truncation']!r}. Supported values are: 'auto' and 'disabled'.")
        prev = body.get("previous_response_id")
        if prev is not None and prev not in self.stored:
            return _bad("previous_response_not_found", "previous_response_id", f"Previous response with id '{prev}' not found.")
        return None

    # ------------------------------------------------------------------ create

    async def create(self, request: Request) -> Response:
        """``POST /responses``."""
        body, refused = await self._checked(request)
        if refused is not None:
            return refused
        if not isinstance(body, dict):
            return _emu._error(400, "BadRequest", "The request body must be a JSON object.", type="invalid_request_error")
        name = body.get("model")
        if name is None:
            return _bad("missing_required_parameter", "model", "Missing required parameter: 'model'.")
        d = self.emulator.deployments.get(name) if isinstance(name, str) else None
        if d is None:
            return _emu._deployment_not_found()
        if model_kind(d.model) not in ("chat", *_REASONING_KINDS):
            return _bad("OperationNotSupported", None,
                        f"The responses operation does not work with the specified model, {d.model}. {_OPERATION_HELP}")  # fmt: skip
        refused = self._validate(d, body)
        if refused is not None:
            return refused
        fault = await self.emulator._faults(d, request)
        if fault is not None:
            return fault
        items = _items(body["input"])
        history = self._history(body.get("previous_response_id"))
        prompt_tokens = sum(_words(_item_text(i)) for i in (*history, *items)) + _words(body.get("instructions") or "")
        limited, rl_headers = self.emulator._quota(d, prompt_tokens + int(body.get("max_output_tokens") or 0))
        if limited is not None:
            return limited
        headers = {"apim-request-id": str(uuid.uuid4()), "x-request-id": str(uuid.uuid4()), "x-ms-region": "East US 2", **rl_headers}
        response = self._respond(d, body, items, history, prompt_tokens)
        if body.get("store") is not False:
            with self._lock:
                self.inputs[response["id"]] = items
                self.stored[response["id"]] = response
        if body.get("background"):
            queued = {**response, "status": "queued", "output": [], "usage": None}
            with self._lock:
                self._pending[response["id"]] = (self.background_polls, response)
                self.stored[response["id"]] = queued
            return JSONResponse(queued, headers=headers)
        if body.get("stream"):
            return StreamingResponse(self._stream(d, response), media_type="text/event-stream",
                                     headers={**headers, "cache-control": "no-cache"})  # fmt: skip
        if d.faults.drip > 0:
            return _emu._dripped(JSONResponse(response, headers=headers), d.faults.drip)
        return JSONResponse(response, headers=headers)

    def _history(self, previous: str | None) -> list[dict[str, Any]]:
        """The items of the chain ending at ``previous``: each response's inputs, then its outputs."""
        chain: list[dict[str, Any]] = []
        while previous is not None and previous in self.stored:
            stored = self.stored[previous]
            chain = [*self.inputs.get(previous, []), *stored.get("output", []), *chain]
            previous = stored.get("previous_response_id")
        return chain

    def _respond(self, d: Deployment, body: dict[str, Any], items: list[dict[str, Any]],
                 history: list[dict[str, Any]], prompt_tokens: int) -> dict[str, Any]:  # fmt: skip
        conversation = [*history, *items]
        last = conversation[-1] if conversation else {}
        user_text = next((_item_text(i) for i in reversed(conversation) if i.get("role") == "user"), "")
        tools = [t for t in body.get("tools") or [] if t.get("type") == "function"]
        choice = body.get("tool_choice", "auto")
        output: list[dict[str, Any]] = []
        status, incomplete, error = "completed", None, None
        if model_kind(d.model) in _REASONING_KINDS:
            output.append({"id": _rid("rs"), "type": "reasoning", "summary": []})
        if tools and choice != "none" and last.get("type") != "function_call_output":
            wanted = choice.get("name") if isinstance(choice, dict) else None
            fn = next((t for t in tools if t.get("name") == wanted), tools[0])
            args = _emu._example(fn.get("parameters") or {}, user_text[:40])
            call_id = f"call_{uuid.uuid5(uuid.NAMESPACE_URL, fn['name'] + user_text).hex[:24]}"
            output.append({"id": _rid("fc"), "type": "function_call", "status": "completed", "name": fn["name"],
                           "call_id": call_id, "arguments": json.dumps(args)})  # fmt: skip
            text = None
        elif last.get("type") == "function_call_output":
            text = f"Based on the tool result: {last.get('output')}"
        else:
            text = f"This is {d.name} on the modelyard emulator. You said: {user_text}"
            fmt = (body.get("text") or {}).get("format") or {}
            if fmt.get("type") == "json_schema":
                text = json.dumps(_emu._example(fmt.get("schema") or {}, user_text[:40]))
            elif fmt.get("type") == "json_object":
                text = json.dumps({"reply": text})
        if FAIL_TRIGGER in user_text:
            status, text = "failed", None
            error = {"code": "server_error", "message": "The model failed to generate a response (emulator trigger)."}
        limit = body.get("max_output_tokens")
        if text is not None and limit and _words(text) > limit:
            text = " ".join(text.split()[:limit])
            status, incomplete = "incomplete", {"reason": "max_output_tokens"}
        if text is not None:
            output.append({"id": _rid("msg"), "type": "message", "status": "completed", "role": "assistant",
                           "content": [{"type": "output_text", "text": text, "annotations": []}]})  # fmt: skip
        output_tokens = sum(_words(_item_text(i)) for i in output if i["type"] != "reasoning")
        reasoning = body.get("reasoning") or {}
        fmt = (body.get("text") or {}).get("format") or {"type": "text"}
        return {
            "id": _rid("resp"),
            "object": "response",
            "created_at": int(time.time()),
            "status": status,
            "background": bool(body.get("background")),
            "error": error,
            "incomplete_details": incomplete,
            "instructions": body.get("instructions"),
            "max_output_tokens": limit,
            "model": d.model,
            "output": output,
            "parallel_tool_calls": body.get("parallel_tool_calls", True),
            "previous_response_id": body.get("previous_response_id"),
            "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
            "store": body.get("store", True),
            "temperature": body.get("temperature", 1.0),
            "text": {"format": fmt},
            "tool_choice": choice,
            "tools": body.get("tools") or [],
            "top_p": body.get("top_p", 1.0),
            "truncation": body.get("truncation", "disabled"),
            "usage": {
                "input_tokens": prompt_tokens,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": output_tokens,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": prompt_tokens + output_tokens,
            },
            "user": body.get("user"),
            "metadata": body.get("metadata") or {},
            "content_filters": None,
        }

    async def _stream(self, d: Deployment, response: dict[str, Any]) -> AsyncIterator[bytes]:
        seq = 0
        cut = d.faults.drop_stream_after

        def event(kind: str, **data: Any) -> bytes:
            nonlocal seq
            payload = {"type": kind, "sequence_number": seq, **data}
            seq += 1
            return f"event: {kind}\ndata: {json.dumps(payload, separators=(',', ':'))}\n\n".encode()

        start = {**response, "status": "in_progress", "output": [], "usage": None, "error": None, "incomplete_details": None}
        events = [event("response.created", response=start), event("response.in_progress", response=start)]
        trigger = ERROR_TRIGGER in json.dumps(self.inputs.get(response["id"], []))
        for index, item in enumerate(response["output"]):
            events.append(event("response.output_item.added", output_index=index, item={**item, "status": "in_progress",
                                **({"arguments": ""} if item["type"] == "function_call" else {}),
                                **({"content": []} if item["type"] == "message" else {})}))  # fmt: skip
            if item["type"] == "message":
                text = item["content"][0]["text"]
                part = {"type": "output_text", "text": "", "annotations": []}
                events.append(event("response.content_part.added", item_id=item["id"], output_index=index, content_index=0, part=part))
                for piece in re.findall(r"\S+\s*", text) or [""]:
                    events.append(event("response.output_text.delta", item_id=item["id"], output_index=index, content_index=0, delta=piece))
                if trigger:
                    events.append(event("error", code="server_error", message="The stream failed (emulator trigger).", param=None))
                    break
                events.append(event("response.output_text.done", item_id=item["id"], output_index=index, content_index=0, text=text))
                events.append(event("response.content_part.done", item_id=item["id"], output_index=index, content_index=0,
                                    part=item["content"][0]))  # fmt: skip
            elif item["type"] == "function_call":
                args = item["arguments"]
                for i in range(0, len(args), 8):
                    events.append(event("response.function_call_arguments.delta", item_id=item["id"], output_index=index, delta=args[i : i + 8]))
                events.append(event("response.function_call_arguments.done", item_id=item["id"], output_index=index, arguments=args))
            events.append(event("response.output_item.done", output_index=index, item=item))
        if not trigger:
            final = {"failed": "response.failed", "incomplete": "response.incomplete"}.get(response["status"], "response.completed")
            events.append(event(final, response=response))
        pause = d.faults.drip / max(1, len(events))
        for sent, chunk in enumerate(events):
            if cut is not None and sent >= cut:
                raise ConnectionResetError("emulator: stream dropped by fault injection")
            yield chunk
            if pause:
                await asyncio.sleep(pause)

    # ------------------------------------------------------------------ by id

    def _advance(self, rid: str) -> None:
        """A background response's next state on retrieval: in_progress, then its result."""
        with self._lock:
            pending = self._pending.get(rid)
            if pending is None:
                return
            left, final = pending
            if left > 0:
                self._pending[rid] = (left - 1, final)
                self.stored[rid] = {**self.stored[rid], "status": "in_progress"}
            else:
                del self._pending[rid]
                self.stored[rid] = final

    def _missing(self, rid: str) -> JSONResponse:
        return _emu._error(404, "not_found", f"Response with id '{rid}' not found.", type="invalid_request_error", param=None)

    async def retrieve(self, request: Request) -> Response:
        """``GET /responses/{id}``."""
        _, refused = await self._checked(request)
        if refused is not None:
            return refused
        rid = request.path_params["rid"]
        if rid not in self.stored:
            return self._missing(rid)
        self._advance(rid)
        return JSONResponse(self.stored[rid])

    async def delete(self, request: Request) -> Response:
        """``DELETE /responses/{id}``."""
        _, refused = await self._checked(request)
        if refused is not None:
            return refused
        rid = request.path_params["rid"]
        with self._lock:
            found = self.stored.pop(rid, None)
            self.inputs.pop(rid, None)
            self._pending.pop(rid, None)
        if found is None:
            return self._missing(rid)
        return JSONResponse({"id": rid, "object": "response.deleted", "deleted": True})

    async def input_items(self, request: Request) -> Response:
        """``GET /responses/{id}/input_items`` (``order`` desc by default, ``limit``, ``after``)."""
        _, refused = await self._checked(request)
        if refused is not None:
            return refused
        rid = request.path_params["rid"]
        if rid not in self.stored:
            return self._missing(rid)
        q = request.query_params
        order = q.get("order", "desc")
        if order not in ("asc", "desc"):
            return _bad("invalid_value", "order", f"Invalid value: {order!r}. Supported values are: 'asc' and 'desc'.")
        try:
            limit = int(q.get("limit", "20"))
        except ValueError:
            return _bad("invalid_type", "limit", "Invalid type for 'limit': expected an integer.")
        if not 1 <= limit <= 100:
            return _bad("invalid_value", "limit", "Invalid 'limit': expected a value from 1 to 100.")
        items = list(self.inputs.get(rid, []))
        if order == "desc":
            items.reverse()
        after = q.get("after")
        if after is not None:
            ids = [i.get("id") for i in items]
            items = items[ids.index(after) + 1 :] if after in ids else []
        page = items[:limit]
        return JSONResponse({"object": "list", "data": page, "first_id": page[0]["id"] if page else None,
                             "last_id": page[-1]["id"] if page else None, "has_more": len(items) > limit})  # fmt: skip

    async def cancel(self, request: Request) -> Response:
        """``POST /responses/{id}/cancel``: only a background response still running."""
        _, refused = await self._checked(request)
        if refused is not None:
            return refused
        rid = request.path_params["rid"]
        if rid not in self.stored:
            return self._missing(rid)
        with self._lock:
            if rid not in self._pending:
                return _bad("invalid_request", None, "Only background responses that are still in progress can be cancelled.")
            del self._pending[rid]
            self.stored[rid] = {**self.stored[rid], "status": "cancelled"}
        return JSONResponse(self.stored[rid])


def _check_item(item: Any, i: int) -> JSONResponse | None:
    where = f"input[{i}]"
    if not isinstance(item, dict):
        return _bad("invalid_type", where, f"Invalid type for '{where}': expected an object.")
    kind = item.get("type", "message" if "role" in item else None)
    if kind not in ITEM_TYPES:
        return _bad("invalid_value", f"{where}.type",
                    f"Invalid value: {kind!r}. Supported values are: {', '.join(sorted(repr(t) for t in ITEM_TYPES))}.")  # fmt: skip
    if kind == "message":
        if item.get("role") not in ROLES:
            return _bad("invalid_value", f"{where}.role", f"Invalid value: {item.get('role')!r}. Supported values are: 'assistant', 'developer', 'system' and 'user'.")
        content = item.get("content")
        if isinstance(content, list):
            for j, part in enumerate(content):
                ptype = part.get("type") if isinstance(part, dict) else None
                if ptype not in PART_TYPES:
                    return _bad("invalid_value", f"{where}.content[{j}].type",
                                f"Invalid value: {ptype!r}. Supported values are: {', '.join(sorted(repr(t) for t in PART_TYPES))}.")  # fmt: skip
        elif not isinstance(content, str):
            return _bad("invalid_type", f"{where}.content", f"Invalid type for '{where}.content': expected a string or an array.")
    if kind == "function_call_output" and not isinstance(item.get("call_id"), str):
        return _bad("missing_required_parameter", f"{where}.call_id", f"Missing required parameter: '{where}.call_id'.")
    if kind == "function_call" and not (isinstance(item.get("call_id"), str) and isinstance(item.get("name"), str)):
        return _bad("missing_required_parameter", f"{where}.call_id", f"Missing required parameter: '{where}.call_id'.")
    return None


def _items(value: Any) -> list[dict[str, Any]]:
    """``input`` as stored input items, each with an id (a string is one user message)."""
    if isinstance(value, str):
        value = [{"role": "user", "content": value}]
    out = []
    for item in value:
        kind = item.get("type", "message")
        stored = {"id": item.get("id") or _rid("msg" if kind == "message" else "fc"), "type": kind, **item}
        if kind == "message":
            content = item.get("content")
            if isinstance(content, str):
                content = [{"type": "input_text" if item.get("role") != "assistant" else "output_text", "text": content}]
            stored["content"] = content
            stored.setdefault("status", "completed")
        out.append(stored)
    return out


def _item_text(item: dict[str, Any]) -> str:
    content = item.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(p["text"]) for p in content if isinstance(p, dict) and p.get("text"))
    return str(item.get("arguments") or item.get("output") or "")
