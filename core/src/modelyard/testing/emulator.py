"""An Azure OpenAI data plane on loopback: the emulator behind the tests and the quickstart.

It behaves like Azure where a client can tell: deployment-scoped and v1 paths, api-version
checks, ``api-key`` and Bearer auth, ``DeploymentNotFound``, Azure's error shapes, content
filter results and errors, 429 with ``retry-after`` and ``x-ratelimit-remaining-*`` headers,
and SSE streams that open with Azure's empty, annotation-only chunk. Replies are
deterministic, so tests can assert on them.

It imports nothing of what it tests (no plugin, no proxy, no router): only Starlette.
Every chat request is validated against Azure's published request schema, as Azure does: a
wrong type, a value out of range, a message without a role or a tool without a function is a
400 ``invalid_request_error`` naming the field in ``param`` (:mod:`._schema`).
Each deployment's ``model`` decides what it accepts, as on Azure (reasoning, instruct and
audio models: see :mod:`modelyard.testing.families`).

Triggers in the last user message:
    ``emulator:filter-prompt``  the prompt is blocked: 400 ``content_filter``.
    ``emulator:filter-output``  the reply is cut: 200 with ``finish_reason: "content_filter"``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import random
import re
import socket
import struct
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from . import _schema, anthropic, audio, embeddings, families, images, vision

__all__ = [
    "API_VERSIONS",
    "FILTER_OUTPUT_TRIGGER",
    "FILTER_PROMPT_TRIGGER",
    "Deployment",
    "Emulator",
    "Faults",
    "RecordedRequest",
]

API_VERSIONS = frozenset(
    {
        "2022-12-01", "2023-05-15", "2024-02-01", "2024-06-01", "2024-10-21",
        "2022-03-01-preview", "2022-06-01-preview", "2023-03-15-preview", "2023-06-01-preview",
        "2023-07-01-preview", "2023-08-01-preview", "2023-09-01-preview", "2023-10-01-preview",
        "2023-12-01-preview", "2024-02-15-preview", "2024-03-01-preview", "2024-04-01-preview",
        "2024-05-01-preview", "2024-07-01-preview", "2024-08-01-preview", "2024-09-01-preview",
        "2024-10-01-preview", "2024-12-01-preview", "2025-01-01-preview", "2025-02-01-preview",
        "2025-03-01-preview", "2025-04-01-preview",
    }
)  # fmt: skip
"""Every dated api-version Azure has published (GA and preview)."""
V1_API_VERSIONS = frozenset({"v1", "preview"})

FILTER_PROMPT_TRIGGER = "emulator:filter-prompt"
FILTER_OUTPUT_TRIGGER = "emulator:filter-output"

_SAFE = {"filtered": False, "severity": "safe"}
_SAFE_RESULTS = {"hate": _SAFE, "self_harm": _SAFE, "sexual": _SAFE, "violence": _SAFE}
_PROMPT_RESULTS = {**_SAFE_RESULTS, "jailbreak": {"filtered": False, "detected": False}}
_BLOCKED_RESULTS = {
    **_PROMPT_RESULTS,
    "hate": {"filtered": True, "severity": "high"},
}
_KEY_DENIED = (
    "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a "
    "valid key for an active subscription and use a correct regional API endpoint for your resource."
)
_TOKEN_DENIED = (
    "Unauthorized. Access token is missing, invalid, audience is incorrect "
    "(https://cognitiveservices.azure.com), or have expired."
)
_STATUS_ERRORS = {
    500: ("InternalServerError", "The server had an error while processing your request. Sorry about that!"),
    502: ("BadGateway", "Bad gateway."),
    503: ("ServiceUnavailable", "The service is temporarily unable to process your request. Please try again later."),
    504: ("GatewayTimeout", "The operation was timeout."),
    408: ("Timeout", "The operation was timeout."),
}


@dataclass
class Faults:
    """Fault injection for one deployment.

    Attributes:
        latency: seconds to wait before answering.
        error_rate: probability (0-1) of answering ``error_status`` instead of a reply.
        error_status: the status for ``error_rate`` failures (500, 503 ...).
        script: statuses to answer to the next requests, one each, before normal service
            (``[429, 429]``: two rate limits, then replies). Deterministic, for tests.
        retry_after: seconds sent in ``retry-after`` with an injected 429.
        headers: response headers for the scripted / injected error answers, over the
            defaults (``{"retry-after": "soon"}``; a value of None removes a default header).
        drop_stream_after: cut a stream's connection after this many chunks.
        reset_rate: probability (0-1) of closing the connection with a TCP reset once the request
            has been read, answering nothing (a crashed upstream or a middlebox): the client
            cannot know whether the request ran, so modelyard retries it only with
            ``retry_on_timeout``. Checked before ``error_rate``; uvicorn servers only.
        echo_headers: injected errors quote the request's headers in their message, as some
            gateways and debugging proxies do (a client must not pass the credential on).
        drip: spread a reply over this many seconds: a JSON body is sent in ten pieces, a
            stream's events evenly (a slow upstream that keeps the connection busy).
    """

    latency: float = 0.0
    error_rate: float = 0.0
    error_status: int = 503
    script: list[int] = field(default_factory=list)
    retry_after: float = 1.0
    headers: dict[str, str | None] = field(default_factory=dict)
    drop_stream_after: int | None = None
    reset_rate: float = 0.0
    echo_headers: bool = False
    drip: float = 0.0


@dataclass
class Deployment:
    """One emulated deployment.

    Attributes:
        name: the deployment name in URLs (or in the body, on the v1 API).
        model: the underlying model reported in responses (Azure reports the model, not the
            deployment).
        rpm, tpm: quota per ``window`` seconds; a request over it gets 429.
        window: the quota window in seconds (Azure evaluates over short windows; 60 by default).
        context_window: prompt tokens above this get 400 ``context_length_exceeded``.
        faults: injected latency and errors.
    """

    name: str
    model: str = "gpt-4o-2024-08-06"
    rpm: int = 100_000
    tpm: int = 100_000_000
    window: float = 60.0
    context_window: int = 128_000
    faults: Faults = field(default_factory=Faults)
    _window_start: float = 0.0
    _requests: int = 0
    _tokens: int = 0
    _prompts_seen: set[str] = field(default_factory=set)


@dataclass
class RecordedRequest:
    """One request the emulator received, for tests to assert on."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    raw_path: str = ""
    """The path as it arrived, still percent-encoded (``path`` is decoded and loses control characters)."""


PROMPT_CACHE_MIN_TOKENS = 1024
"""Azure caches prompts of at least 1,024 tokens, then in steps of 128 tokens."""


def _cached_tokens(d: Deployment, messages: list[Any], prompt_tokens: int) -> int:
    """Azure's prompt caching, simplified: a prompt of 1,024 tokens or more that this deployment
    has seen before reports its first 1,024 + 128·k tokens as ``cached_tokens``."""
    if prompt_tokens < PROMPT_CACHE_MIN_TOKENS:
        return 0
    key = json.dumps(messages, sort_keys=True, default=str)
    if key not in d._prompts_seen:
        if len(d._prompts_seen) < 10_000:
            d._prompts_seen.add(key)
        return 0
    return PROMPT_CACHE_MIN_TOKENS + (prompt_tokens - PROMPT_CACHE_MIN_TOKENS) // 128 * 128


def _tokens(text: str) -> int:
    return len(re.findall(r"\w+|[^\w\s]", text))


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def _example(schema: dict[str, Any], hint: str) -> Any:
    """A deterministic value that satisfies a (simple) JSON schema."""
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        props = schema.get("properties", {})
        required = schema.get("required", list(props))
        return {k: _example(props[k], hint) for k in required if k in props}
    if kind == "array":
        return [_example(schema.get("items", {}), hint)]
    if kind in ("number", "integer"):
        return 1
    if kind == "boolean":
        return True
    return hint or "example"


def _dripped(response: Response, seconds: float, pieces: int = 10) -> Response:
    """``response`` with its body sent in ``pieces`` parts spread over ``seconds`` (fault injection)."""
    body = bytes(response.body)
    size = -(-len(body) // pieces)

    async def drip() -> AsyncIterator[bytes]:
        for i in range(0, len(body), size):
            yield body[i : i + size]
            await asyncio.sleep(seconds / pieces)

    headers = {k: v for k, v in response.headers.items() if k != "content-length"}
    return StreamingResponse(drip(), status_code=response.status_code, headers=headers)


class _KeepServerSend:
    """The emulator's ASGI app: its Starlette routes, with the server's own ``send`` in the scope.

    Starlette wraps ``send``; a reset (``Faults.reset_rate``) needs the server's to reach the
    connection. A class with an async ``__call__`` so that uvicorn sees ASGI 3.
    """

    def __init__(self, app: Starlette) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            scope["modelyard.server_send"] = send
        await self.app(scope, receive, send)


class _NoAnswer(Response):
    """Sends nothing: the connection was reset (:func:`_reset_connection`)."""

    def __init__(self) -> None:
        super().__init__()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        return None


async def _reset_connection(send: Any) -> bool:
    """Close the client's connection with a TCP reset, before any answer; False when not possible.

    uvicorn's ``send`` is a method of its request cycle, which holds the transport: with
    ``SO_LINGER`` 0 the abort sends a RST, as a crashed upstream does. Waits until uvicorn has
    seen the connection go, so it does not answer a 500 on it when the app returns.
    """
    cycle = getattr(send, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if transport is None:
        return False
    sock = transport.get_extra_info("socket")
    with contextlib.suppress(AttributeError, OSError):  # still aborted then, only without the RST
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
    for _ in range(200):
        if getattr(cycle, "disconnected", True):
            break
        await asyncio.sleep(0.005)
    return True


def _deployment_not_found() -> JSONResponse:
    """Azure's 404 for a deployment name the resource does not have."""
    return _error(
        404,
        "DeploymentNotFound",
        "The API deployment for this resource does not exist. If you created the deployment "
        "within the last 5 minutes, please wait a moment and try again.",
    )


def _error(status: int, code: str | None, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message, **extra}}, status_code=status)


class Emulator:
    """An Azure OpenAI resource in a process: configure it, then serve :attr:`app`.

    Args:
        deployments: the deployments it serves (names or :class:`Deployment` objects).
        api_keys: keys accepted in ``api-key`` (and as Bearer on the v1 API).
        ad_tokens: static bearer tokens accepted (Entra tokens are checked by ``token_validator``).
        seed: seeds the random source behind ``error_rate``.

    Attributes:
        requests: every request received, in order (:class:`RecordedRequest`).
        batches: the resource's files and batches (``modelyard.testing.batches.BatchService``;
            ``step_seconds`` sets how fast batches run).
        fine_tuning: the resource's fine-tuning jobs (``modelyard.testing.fine_tuning.FineTuningService``).
        responses: the resource's stored responses (``modelyard.testing.responses.ResponsesService``).
        token_validator: a callable ``(token) -> bool`` for bearer tokens that are not in
            ``ad_tokens`` (the Entra emulator installs one).
    """

    def __init__(
        self,
        deployments: Iterable[str | Deployment] = ("gpt-4o",),
        *,
        api_keys: Iterable[str] = ("emulator-key",),
        ad_tokens: Iterable[str] = (),
        seed: int = 0,
    ) -> None:
        self.deployments: dict[str, Deployment] = {}
        for d in deployments:
            self.add_deployment(d)
        self.api_keys = set(api_keys)
        self.ad_tokens = set(ad_tokens)
        self.token_validator: Any = None
        self.requests: list[RecordedRequest] = []
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        from .batches import BatchService

        self.batches = BatchService(self)  # files and batches; .step_seconds sets their speed
        from .fine_tuning import FineTuningService

        self.fine_tuning = FineTuningService(self)  # fine-tuning jobs on the same files
        from .responses import ResponsesService

        self.responses = ResponsesService(self)  # stored responses; .background_polls sets their speed
        self.app = _KeepServerSend(Starlette(routes=self._routes()))

    # ------------------------------------------------------------------ configuration

    def add_deployment(self, deployment: str | Deployment) -> Deployment:
        """Serve one more deployment; returns it (so faults can be set on it)."""
        d = Deployment(deployment) if isinstance(deployment, str) else deployment
        self.deployments[d.name] = d
        return d

    def reset(self) -> None:
        """Forget recorded requests, scripted faults and quota usage."""
        with self._lock:
            self.requests.clear()
            self.batches.reset()
            self.fine_tuning.reset()
            self.responses.reset()
            for d in self.deployments.values():
                d.faults = Faults()
                d._window_start, d._requests, d._tokens = 0.0, 0, 0
                d._prompts_seen.clear()

    def _routes(self) -> list[Route]:
        return [
            Route("/openai/deployments/{deployment}/chat/completions", self._chat_classic, methods=["POST"]),
            Route("/openai/v1/chat/completions", self._chat_v1, methods=["POST"]),
            *self.batches.routes(),
            *self.fine_tuning.routes(),
            vision.extensions_route(self),
            Route("/openai/deployments/{deployment}/completions", functools.partial(families.completions, self), methods=["POST"]),
            Route("/openai/v1/completions", functools.partial(families.completions, self), methods=["POST"]),
            Route("/openai/deployments/{deployment}/embeddings", functools.partial(embeddings.embeddings, self), methods=["POST"]),
            Route("/openai/v1/embeddings", functools.partial(embeddings.embeddings, self), methods=["POST"]),
            Route("/openai/deployments/{deployment}/images/generations", functools.partial(images.generations, self), methods=["POST"]),
            Route("/openai/v1/images/generations", functools.partial(images.generations, self), methods=["POST"]),
            Route("/openai/deployments/{deployment}/images/edits", functools.partial(images.edits, self), methods=["POST"]),
            Route("/openai/v1/images/edits", functools.partial(images.edits, self), methods=["POST"]),
            Route("/emulator/images/{image}.png", functools.partial(images.image_file, self), methods=["GET"]),
            *audio.routes(self),
            Route("/anthropic/v1/messages", functools.partial(anthropic.messages, self), methods=["POST"]),
            *self.responses.routes(),
            Route("/{path:path}", self._not_found, methods=["GET", "POST", "DELETE", "PUT", "PATCH"]),
        ]

    # ------------------------------------------------------------------ request checks

    async def _record(self, request: Request) -> tuple[Any, Response | None]:
        raw = await request.body()
        try:
            body: Any = json.loads(raw) if raw else None
            bad = None
        except (ValueError, RecursionError):  # RecursionError: nested deeper than Python's stack
            body, bad = raw.decode("utf-8", "replace"), _error(
                400, "BadRequest", "The request body is not valid JSON.", type="invalid_request_error"
            )
        self.requests.append(
            RecordedRequest(
                method=request.method,
                path=request.url.path,
                query=dict(request.query_params),
                headers={k.lower(): v for k, v in request.headers.items()},
                body=body,
                raw_path=request.scope.get("raw_path", b"").decode("latin-1"),
            )
        )
        return body, bad

    def _check_auth(self, request: Request, v1: bool) -> Response | None:
        key = request.headers.get("api-key")
        if key is not None:  # Azure prefers api-key when both are sent
            return None if key in self.api_keys else _error(401, "401", _KEY_DENIED)
        auth = request.headers.get("authorization", "")
        if not auth.lower().startswith("bearer "):
            return _error(401, "401", _KEY_DENIED)
        token = auth[7:].strip()
        if v1 and token in self.api_keys:
            return None
        if token in self.ad_tokens or (self.token_validator is not None and self.token_validator(token)):
            return None
        return JSONResponse({"statusCode": 401, "message": _TOKEN_DENIED}, status_code=401)

    @staticmethod
    def _check_version(request: Request, v1: bool) -> Response | None:
        version = request.query_params.get("api-version")
        if v1:
            if version is None or version in V1_API_VERSIONS:
                return None
            return _error(400, "BadRequest", f"Unsupported api-version {version!r} on the v1 API; use 'v1' or 'preview'.")
        if version is None:
            return _error(404, "404", "Resource not found. The api-version query parameter is required.")
        if version not in API_VERSIONS:
            return _error(404, "404", "Resource not found")
        return None

    def _quota(self, d: Deployment, tokens: int) -> tuple[Response | None, dict[str, str]]:
        now = time.monotonic()
        with self._lock:
            if now - d._window_start >= d.window:
                d._window_start, d._requests, d._tokens = now, 0, 0
            over = d._requests + 1 > d.rpm or d._tokens + tokens > d.tpm
            if not over:
                d._requests += 1
                d._tokens += tokens
            headers = {
                "x-ratelimit-remaining-requests": str(max(0, d.rpm - d._requests)),
                "x-ratelimit-remaining-tokens": str(max(0, d.tpm - d._tokens)),
            }
            wait = max(1, int(d.window - (now - d._window_start) + 0.999))
        if not over:
            return None, headers
        kind = "call" if d._requests + 1 > d.rpm else "token"
        msg = (
            "Requests to the ChatCompletions_Create Operation under Azure OpenAI API version "
            f"have exceeded {kind} rate limit of your current OpenAI S0 pricing tier. "
            f"Please retry after {wait} seconds."
        )
        headers.update({"retry-after": str(wait), "retry-after-ms": str(wait * 1000)})
        return JSONResponse({"error": {"code": "429", "message": msg}}, status_code=429, headers=headers), headers

    async def _faults(self, d: Deployment, request: Request | None = None) -> Response | None:
        f = d.faults
        if f.latency:
            await asyncio.sleep(f.latency)
        status = None
        reset = False
        with self._lock:
            if f.script:
                status = f.script.pop(0)
            elif f.reset_rate and self._random.random() < f.reset_rate:
                reset = True
            elif f.error_rate and self._random.random() < f.error_rate:
                status = f.error_status
        if reset and request is not None and await _reset_connection(request.scope.get("modelyard.server_send")):
            return _NoAnswer()
        if status is None or status < 400:
            return None
        if status == 429:
            wait = f.retry_after
            response: Response = JSONResponse(
                {"error": {"code": "429", "message": f"Rate limit is exceeded. Try again in {wait:g} seconds."}},
                status_code=429,
                headers={
                    "retry-after": f"{wait:g}",
                    "retry-after-ms": str(int(wait * 1000)),
                    "x-ratelimit-remaining-requests": "0",
                    "x-ratelimit-remaining-tokens": "0",
                },
            )
        else:
            code, message = _STATUS_ERRORS.get(status, (str(status), f"Injected HTTP {status}."))
            if f.echo_headers and request is not None:
                message += " Request headers: " + json.dumps(dict(request.headers))
            response = _error(status, code, message)
        for name, value in f.headers.items():
            if value is None:
                if name in response.headers:
                    del response.headers[name]
            else:
                response.headers[name] = value
        return response

    # ------------------------------------------------------------------ chat

    async def _not_found(self, request: Request) -> Response:
        await self._record(request)
        return _error(404, "404", "Resource not found")

    async def _chat_classic(self, request: Request) -> Response:
        return await self._chat(request, request.path_params["deployment"], v1=False)

    async def _chat_v1(self, request: Request) -> Response:
        return await self._chat(request, None, v1=True)

    async def _chat(self, request: Request, deployment: str | None, *, v1: bool, extension: bool = False) -> Response:
        body, bad = await self._record(request)
        denied = self._check_auth(request, v1) or self._check_version(request, v1)
        if denied is not None:
            return denied
        if bad is not None:
            return bad
        if not isinstance(body, dict):
            return _error(400, "BadRequest", "The request body must be a JSON object.", type="invalid_request_error")
        name = body.get("model") if v1 else deployment
        d = self.deployments.get(name) if isinstance(name, str) else None
        if d is None:
            return _deployment_not_found()
        # As Azure, every request is checked against the published schema (a 400 naming the
        # field); the model's own refusals come first when the messages are a list, as they
        # carry Azure's more specific codes (``invalid_image_url``, ``unsupported_parameter``).
        invalid = _schema.first_error("createChatCompletionRequest", body)
        messages = body.get("messages")
        if invalid is not None and not (isinstance(messages, list) and messages):
            return _error(400, None, invalid.message, type="invalid_request_error", param=invalid.param)
        refused = families.check_chat(d, body, None if v1 else request.query_params.get("api-version"))
        refused = refused or vision.check_chat(body, d, request.query_params.get("api-version"), extension=extension)
        if refused is not None:
            return refused
        if invalid is not None:
            return _error(400, None, invalid.message, type="invalid_request_error", param=invalid.param)
        assert isinstance(messages, list)  # the schema requires it
        fault = await self._faults(d, request)
        if fault is not None:
            return fault
        prompt = " ".join(_text(m.get("content")) for m in messages if isinstance(m, dict))
        prompt_tokens = _tokens(prompt) + 3 * len(messages)
        limited, rl_headers = self._quota(d, prompt_tokens + int(body.get("max_tokens") or 0))
        if limited is not None:
            return limited
        headers = {
            "apim-request-id": str(uuid.uuid4()),
            "x-request-id": str(uuid.uuid4()),
            "x-ms-region": "East US 2",
            **rl_headers,
        }
        if FILTER_PROMPT_TRIGGER in prompt:
            return JSONResponse(
                {
                    "error": {
                        "message": "The response was filtered due to the prompt triggering Azure OpenAI's "
                        "content management policy. Please modify your prompt and retry.",
                        "type": None,
                        "param": "prompt",
                        "code": "content_filter",
                        "status": 400,
                        "innererror": {
                            "code": "ResponsibleAIPolicyViolation",
                            "content_filter_result": _BLOCKED_RESULTS,
                        },
                    }
                },
                status_code=400,
                headers=headers,
            )
        if prompt_tokens > d.context_window:
            return _error(
                400,
                "context_length_exceeded",
                f"This model's maximum context length is {d.context_window} tokens. However, your "
                f"messages resulted in {prompt_tokens} tokens. Please reduce the length of the messages.",
                type="invalid_request_error",
                param="messages",
            )
        completion = self._reply(d, body, messages, prompt_tokens)
        families.decorate(d, body, completion)
        if extension:
            completion = vision.shape_extension_reply(completion, body, d)
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return StreamingResponse(
                self._stream(d, completion, include_usage),
                media_type="text/event-stream",
                headers={**headers, "cache-control": "no-cache, must-revalidate", "x-accel-buffering": "no"},
            )
        if d.faults.drip > 0:
            return _dripped(JSONResponse(completion, headers=headers), d.faults.drip)
        return JSONResponse(completion, headers=headers)

    def _reply(self, d: Deployment, body: dict[str, Any], messages: list[Any], prompt_tokens: int) -> dict[str, Any]:
        last = next((m for m in reversed(messages) if isinstance(m, dict)), {})
        last_text = _text(last.get("content"))
        user_text = next(
            (_text(m.get("content")) for m in reversed(messages) if isinstance(m, dict) and m.get("role") == "user"),
            "",
        )
        tools = body.get("tools") or []
        tool_choice = body.get("tool_choice", "auto")
        finish = "stop"
        tool_calls = None
        content: str | None
        if tools and tool_choice != "none" and last.get("role") != "tool":
            wanted = tool_choice.get("function", {}).get("name") if isinstance(tool_choice, dict) else None
            fn = next((t["function"] for t in tools if t.get("function", {}).get("name") == wanted), tools[0]["function"])
            args = _example(fn.get("parameters") or {}, user_text[:40])
            tool_calls = [
                {
                    "id": f"call_{uuid.uuid5(uuid.NAMESPACE_URL, fn['name'] + user_text).hex[:24]}",
                    "type": "function",
                    "function": {"name": fn["name"], "arguments": json.dumps(args)},
                }
            ]
            content, finish = None, "tool_calls"
        elif last.get("role") == "tool":
            content = f"Based on the tool result: {last_text}"
        else:
            content = f"This is {d.name} on the modelyard emulator. You said: {user_text}"
            fmt = body.get("response_format") or {}
            if fmt.get("type") == "json_object":
                content = json.dumps({"reply": content})
            elif fmt.get("type") == "json_schema":
                content = json.dumps(_example(fmt.get("json_schema", {}).get("schema") or {}, user_text[:40]))
        filters = dict(_SAFE_RESULTS)
        if FILTER_OUTPUT_TRIGGER in user_text:
            content, finish = "This is", "content_filter"
            filters["violence"] = {"filtered": True, "severity": "medium"}
        limit = body.get("max_tokens") or body.get("max_completion_tokens")
        if content is not None and limit and _tokens(content) > limit:
            content = " ".join(content.split()[: int(limit)])
            finish = "length"
        completion_tokens = _tokens(content or "") + (12 if tool_calls else 0)
        n = int(body.get("n") or 1)
        choices = [
            {
                "index": i,
                "finish_reason": finish,
                "logprobs": None,
                "message": {"role": "assistant", "content": content, "refusal": None, **({"tool_calls": tool_calls} if tool_calls else {})},
                "content_filter_results": filters,
            }
            for i in range(n)
        ]
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:29]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": d.model,
            "system_fingerprint": "fp_emulator",
            "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": _PROMPT_RESULTS}],
            "choices": choices,
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens * n,
                "total_tokens": prompt_tokens + completion_tokens * n,
                "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                              "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
                "prompt_tokens_details": {"cached_tokens": _cached_tokens(d, messages, prompt_tokens), "audio_tokens": 0},
            },
        }  # fmt: skip

    async def _stream(self, d: Deployment, completion: dict[str, Any], include_usage: bool) -> AsyncIterator[bytes]:
        def event(obj: dict[str, Any]) -> bytes:
            return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"

        head = {"id": completion["id"], "object": completion["object"] + ".chunk", "created": completion["created"],
                "model": completion["model"], "system_fingerprint": completion["system_fingerprint"]}  # fmt: skip
        sent = 0
        cut = d.faults.drop_stream_after
        yield event({"choices": [], "created": 0, "id": "", "model": "", "object": "",
                     "prompt_filter_results": completion["prompt_filter_results"]})  # fmt: skip
        by_choice = [self._pieces(choice["message"]) for choice in completion["choices"]]
        pause = d.faults.drip / max(1, sum(len(p) for p in by_choice))  # drip: events spread evenly
        for choice, pieces in zip(completion["choices"], by_choice, strict=True):
            for piece in pieces:
                if cut is not None and sent >= cut:
                    raise ConnectionResetError("emulator: stream dropped by fault injection")
                yield event({**head, "choices": [{"index": choice["index"], "delta": piece, "finish_reason": None,
                                                  "content_filter_results": {} if "role" in piece else choice["content_filter_results"]}]})  # fmt: skip
                sent += 1
                await asyncio.sleep(pause)
            yield event({**head, "choices": [{"index": choice["index"], "delta": {}, "finish_reason": choice["finish_reason"],
                                              "content_filter_results": {}}]})  # fmt: skip
        if include_usage:
            yield event({**head, "choices": [], "usage": completion["usage"]})
        yield b"data: [DONE]\n\n"

    @staticmethod
    def _pieces(msg: dict[str, Any]) -> list[dict[str, Any]]:
        """A reply message cut into stream deltas: the role, then tool calls, audio or words."""
        pieces: list[dict[str, Any]] = [{"role": "assistant", "content": "", "refusal": None}]
        if msg.get("tool_calls"):
            for i, call in enumerate(msg["tool_calls"]):
                pieces.append({"tool_calls": [{"index": i, "id": call["id"], "type": "function",
                                               "function": {"name": call["function"]["name"], "arguments": ""}}]})  # fmt: skip
                pieces.append({"tool_calls": [{"index": i, "function": {"arguments": call["function"]["arguments"]}}]})
        elif msg.get("audio"):
            pieces += families.audio_pieces(msg["audio"])
        else:
            pieces += [{"content": w} for w in re.findall(r"\S+\s*", msg.get("content") or "")]
        return pieces
