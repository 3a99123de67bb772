"""The SDK entry points and the one request pipeline behind them.

``completion`` and ``acompletion`` (and the proxy and the Router, which call them), and
``text_completion`` / ``atext_completion`` for the legacy completions operation, go through
the same steps:

1. resolve    the model string to a Route and a Family (``families.FamilyRegistry``)
2. prepare    validate parameters and messages; apply the family's rules
3. transform  ``transform_request`` hook: Route + request -> ProviderRequest
4. auth       ``resolve_auth`` hook: an Authenticator whose headers are added per attempt
5. send       ``transport.Transport``: pooled client, timeout, retries
6. normalize  ``normalize_response`` / ``normalize_chunk`` hooks: OpenAI-shaped results
7. errors     ``map_error`` hook, else by status code
8. observe    ``on_success`` / ``on_failure`` hooks

Sync and async share steps 1-4 and 6-8; only sending differs.

A family whose operation is ``completions`` answers in the legacy text shape
(:class:`TextCompletion`); ``completion()`` hands its callers the chat shape, converted here
(``choices[i].text`` -> ``choices[i].message.content``, and ``delta.content`` in streams), and
``text_completion()`` the native shape.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, Self, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from .errors import APIError, BadRequestError, PluginError, error_for_status
from .families import Family, apply_rules, check_needed_plugins
from .hookspecs import Authenticator
from .plugins import Plugins, get_plugins
from .pricing import PRICE_KEYS, Units, price_overrides
from .transport import Attempts, aiter_sse, get_transport, iter_sse, timeout_seconds
from .types import (
    AzureHeaders,
    ChatCompletion,
    ChatCompletionChunk,
    ChatParams,
    ChatRequest,
    ChoiceLogprobs,
    Connection,
    ConnectionSettings,
    ProviderRequest,
    ProviderResponse,
    Route,
    TextCompletion,
    TextParams,
    Usage,
)

__all__ = [
    "AsyncChatStream",
    "AsyncTextStream",
    "CallRecord",
    "ChatStream",
    "TextStream",
    "acompletion",
    "atext_completion",
    "completion",
    "text_completion",
]

DEFAULT_NUM_RETRIES = 2
_CONNECTION_KEYS = frozenset(Connection.model_fields)
_CONTROL_KEYS = frozenset(
    {"timeout", "request_timeout", "num_retries", "max_retries", "drop_params", "model_family",
     "base_model", "model_info", "extra_body", "custom_llm_provider", "retry_on_timeout"}
) | PRICE_KEYS  # fmt: skip


@dataclass
class CallRecord:
    """One finished call, as the ``on_success`` / ``on_failure`` observers see it.

    Attributes:
        retries: attempts after the first (429s, 5xx, connections that failed ...).
        resent: of those, retries of a request the upstream may already have received (a
            read timeout, a connection dropped after sending; only with ``retry_on_timeout``):
            each may have run, and been billed, twice.
        cost: what the call cost in USD (docs/spend.md); None when no price is known or the
            call failed.
    """

    route: Route
    duration: float
    status_code: int | None = None
    usage: dict[str, Any] | None = None
    error: APIError | None = None
    retries: int = 0
    resent: int = 0
    cost: float | None = None


@dataclass
class _Call:
    plugins: Plugins
    route: Route
    family: Family
    request: ProviderRequest
    auth: Authenticator
    timeout: float | httpx.Timeout | None
    num_retries: int
    simulate_stream: bool
    include_usage: bool
    started: float
    text: bool = False
    retry_on_timeout: bool = False
    attempts: Attempts | None = None
    base_model: str | None = None
    price_overrides: dict[str, Any] | None = None

    def cost(self, usage: Any, reported_model: str | None) -> float | None:
        """The call's cost from its usage (docs/spend.md); None when no price is known."""
        from .pricing import cost, usage_dict

        return cost(
            Units(usage=usage_dict(usage)),
            overrides=self.price_overrides, base_model=self.base_model, reported_model=reported_model or None,
            deployment=self.route.deployment, provider=self.route.provider,
        )  # fmt: skip

    def hidden_params(self, cost: float | None) -> dict[str, Any]:
        """LiteLLM's ``_hidden_params`` of a result: its cost and what it was priced with."""
        return {"response_cost": cost, "base_model": self.base_model, "price_overrides": self.price_overrides}


# --------------------------------------------------------------------------- prepare


# Module settings (``modelyard.api_key = ...``, as ``litellm.api_key``) fill what a call leaves
# unset; the plugins fall back to the environment only for what is still unset, which gives
# call arguments > module settings > environment. They are read from the module's namespace at
# each call (a dict lookup per name), so a change takes effect on the next call and no lock is
# needed. Credentials are one group: a call that passes any credential gets none from the
# module (a module api_key must not turn a call's azure_ad_token into "two credentials");
# likewise api_base / base_url.
_MODULE_CONNECTION_KEYS = tuple(ConnectionSettings.model_fields)
_CREDENTIAL_KEYS = frozenset(
    {"api_key", "azure_ad_token", "azure_ad_token_provider", "client_secret", "client_certificate_path",
     "client_certificate_password", "azure_username", "azure_password"}
)  # fmt: skip
_ENDPOINT_KEYS = frozenset({"api_base", "base_url"})


def _module_settings() -> dict[str, Any]:
    module = sys.modules.get("modelyard")
    return module.__dict__ if module is not None else {}


def _fill_from_module(conn_kw: dict[str, Any], settings: dict[str, Any]) -> set[str]:
    """Add the module's connection settings the call did not pass; return the names added."""
    added: set[str] = set()
    given_credential = not _CREDENTIAL_KEYS.isdisjoint(conn_kw) or any(
        k.lower() in ("api-key", "authorization") for k in conn_kw.get("extra_headers") or ()
    )
    given_endpoint = not _ENDPOINT_KEYS.isdisjoint(conn_kw)
    for key in _MODULE_CONNECTION_KEYS:
        if key in conn_kw or (given_credential and key in _CREDENTIAL_KEYS) or (given_endpoint and key in _ENDPOINT_KEYS):
            continue
        value = settings.get(key)
        if key == "api_key" and value is None:
            value = settings.get("azure_key")  # LiteLLM's second name for it
        if value is not None:
            conn_kw[key] = value
            added.add(key)
    return added


def _connection(conn_kw: dict[str, Any], settings: dict[str, Any], model: str | None = None) -> Connection:
    """The call's :class:`Connection`, completed from the module settings.

    Raises:
        BadRequestError: a value of the wrong type, naming the argument (``api_version``) or
            the module setting (``modelyard.api_version``) it came from.
    """
    from_module = _fill_from_module(conn_kw, settings)
    try:
        return Connection(**conn_kw)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = _field(err["loc"])
        if err["loc"] and err["loc"][0] in from_module:
            field = f"modelyard.{field}"
        raise BadRequestError(f"Invalid value for {field!r}: {err['msg']}.", param=field, model=model) from None


def _control_setting(control: dict[str, Any], settings: dict[str, Any], names: tuple[str, ...], module_name: str) -> Any:
    """A control argument under any of ``names``, else the module setting ``module_name``."""
    for name in names:
        if name in control:
            return control[name]
    return settings.get(module_name)


def _retries(value: Any, from_call: bool) -> int:
    if value is None:
        return DEFAULT_NUM_RETRIES
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0 or int(value) != value:
        where = "num_retries" if from_call else "modelyard.num_retries"
        raise BadRequestError(f"{where} must be a non-negative integer, got {value!r}.", param=where)
    return int(value)


def _retry_on_timeout(control: dict[str, Any]) -> bool:
    """``retry_on_timeout`` of a call: its own value, else ``MODELYARD_RETRY_ON_TIMEOUT``, else False."""
    value = control.get("retry_on_timeout")
    if value is None:
        return os.environ.get("MODELYARD_RETRY_ON_TIMEOUT", "").strip().lower() in ("1", "true", "yes", "on")
    if not isinstance(value, bool):
        raise BadRequestError(f"retry_on_timeout must be true or false, got {value!r}.", param="retry_on_timeout")
    return value


def _field(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _validate_messages(messages: Any) -> list[dict[str, Any]]:
    if not isinstance(messages, list) or not messages:
        raise BadRequestError("'messages' must be a non-empty list of message objects.", param="messages")
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            raise BadRequestError(f"messages[{i}] must be an object, got {type(m).__name__}.", param=f"messages[{i}]")
        if not isinstance(m.get("role"), str):
            raise BadRequestError(f"messages[{i}].role must be a string.", param=f"messages[{i}].role")
    return messages


def _validate_params(params: dict[str, Any], schema: type[BaseModel] = ChatParams) -> dict[str, Any]:
    try:
        return schema.model_validate(params).model_dump(exclude_unset=True)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = _field(err["loc"])
        raise BadRequestError(f"Invalid value for {field!r}: {err['msg']}.", param=field) from None


def _split(kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    connection: dict[str, Any] = {}
    control: dict[str, Any] = {}
    params: dict[str, Any] = {}
    for key, value in kwargs.items():
        if value is None:
            continue
        if key in _CONNECTION_KEYS:
            connection[key] = value
        elif key in _CONTROL_KEYS:
            control[key] = value
        else:
            params[key] = value
    if "extra_body" in control:
        params.update(control.pop("extra_body"))
    return connection, control, params


def _first(hook: Any, expected: type | tuple[type, ...], what: str, route: Route, *,
           unknown: Callable[[], APIError | None] | None = None, **kwargs: Any) -> Any:  # fmt: skip
    """Call a firstresult hook and check its answer's type, naming the plugin at fault.

    ``unknown`` builds the error for no answer when the caller named a provider no loaded plugin
    knows (a client's mistake, not a missing plugin), or returns None when the provider is known;
    otherwise no answer is a :class:`PluginNotLoadedError` naming the distribution to install.
    """
    result = hook(route=route, **kwargs)
    if result is None and unknown is not None and (error := unknown()) is not None:
        raise error
    if result is None:
        # Names the distribution the provider's plugins declare for this hook, and why it is
        # not loaded: a 501 with the install line, not a broken-configuration 500.
        raise get_plugins().unserved(what, route)
    if not isinstance(result, expected):
        names = ", ".join(i.plugin_name for i in hook.get_hookimpls())
        raise PluginError(
            f"{what} returned {type(result).__name__}, expected {getattr(expected, '__name__', expected)} "
            f"(plugins implementing it: {names})",
        )
    return result


def _prepare(model: str, messages: Any, stream: bool, kwargs: dict[str, Any], *, text: bool = False) -> _Call:
    started = time.perf_counter()
    if not isinstance(model, str) or not model:
        raise BadRequestError("'model' must be a non-empty string such as 'azure/<deployment>'.", param="model")
    plugins = get_plugins()
    conn_kw, control, params = _split(kwargs)
    model_info = control.get("model_info") or {}
    base_model = control.get("base_model") or model_info.get("base_model")
    route, family = plugins.families.resolve(
        model, family=control.get("model_family") or model_info.get("model_family"), base_model=base_model
    )
    settings = _module_settings()
    connection = _connection(conn_kw, settings, model)
    if text:
        if route.operation != "completions":
            raise BadRequestError(
                f"text_completion() needs a model whose family calls the 'completions' operation; "
                f"{model!r} is in family {family.name!r} ({route.operation!r}). Use completion() for it.",
                param="model",
                model=model,
            )
        messages, params = [], _validate_params(params, TextParams)
    else:
        messages = _validate_messages(messages)
        params = _validate_params(params)
    check_needed_plugins(family, params, missing=plugins.missing, model=model)
    drop = control.get("drop_params")
    if drop is None:
        drop = settings.get("drop_params")
    messages, params = apply_rules(family, messages, params, drop_params=bool(drop), model=model)
    simulate = stream and family.rules.simulate_stream
    include_usage = bool((params.get("stream_options") or {}).get("include_usage"))
    if simulate:
        params.pop("stream_options", None)
    # A real stream asks for its usage (to price it); the chunk is dropped for callers who did not.
    request = ChatRequest(messages=messages, params=params, stream=stream and not simulate, stream_usage=stream and not simulate)
    hook = plugins.hook
    provider_request = _first(
        hook.transform_request, ProviderRequest, "transform_request", route, request=request, connection=connection
    )
    retries = _control_setting(control, settings, ("num_retries", "max_retries"), "num_retries")
    timeout = _control_setting(control, settings, ("timeout", "request_timeout"), "request_timeout")
    auth = _first(hook.resolve_auth, object, "resolve_auth", route, connection=connection, timeout=timeout_seconds(timeout))
    return _Call(
        plugins=plugins,
        route=route,
        family=family,
        request=provider_request,
        auth=auth,
        timeout=timeout,
        num_retries=_retries(retries, "num_retries" in control or "max_retries" in control),
        simulate_stream=simulate,
        include_usage=include_usage,
        started=started,
        text=text,
        retry_on_timeout=_retry_on_timeout(control),
        base_model=base_model,
        price_overrides=price_overrides(control, model_info) or None,
    )


# --------------------------------------------------------------------------- finish


def _provider_response(response: httpx.Response) -> ProviderResponse:
    return ProviderResponse.model_construct(
        status_code=response.status_code, headers=response.headers, content=response.content
    )


def _error(call: _Call, response: httpx.Response) -> APIError:
    presp = _provider_response(response)
    err = call.plugins.hook.map_error(route=call.route, response=presp)
    if not isinstance(err, APIError):
        body = presp.json_body()
        detail = body.get("error") if isinstance(body, dict) else None
        message = (detail or {}).get("message") if isinstance(detail, dict) else None
        err = error_for_status(response.status_code)(
            message or f"Upstream answered HTTP {response.status_code}.", status_code=response.status_code, body=body
        )
    err.request_id = err.request_id or presp.request_id
    return _annotate(call, err)


def _annotate(call: _Call, err: APIError) -> APIError:
    err.provider = err.provider or call.route.provider
    err.model = err.model or call.route.model
    err.deployment = err.deployment or call.route.deployment
    return err


def _observe(
    call: _Call, *, status: int | None, usage: Any = None, error: APIError | None = None, cost: float | None = None
) -> None:
    hook = call.plugins.hook.on_failure if error else call.plugins.hook.on_success
    if not hook.get_hookimpls():
        return
    usage_dict = usage.model_dump() if isinstance(usage, Usage) else usage
    attempts = call.attempts or Attempts()
    record = CallRecord(
        call.route, time.perf_counter() - call.started, status, usage_dict, error, attempts.retries, attempts.resent,
        cost,
    )
    try:
        hook(event=record)
    except Exception:  # observers must not break a call
        import logging

        logging.getLogger("modelyard").exception("an on_success/on_failure observer raised")


def _normalize(call: _Call, response: httpx.Response) -> Any:
    result = _first(
        call.plugins.hook.normalize_response, object, "normalize_response", call.route,
        response=_provider_response(response),
    )  # fmt: skip
    if isinstance(result, BaseModel) and "_response_headers" in type(result).__private_attributes__:
        # As LiteLLM keeps them (the Router reads x-ratelimit-remaining-* here). httpx's own
        # case-insensitive Headers, not a copy; written to the private dict directly, which
        # skips pydantic's __setattr__.
        private = result.__pydantic_private__
        if private is not None:
            private["_response_headers"] = response.headers
    usage = getattr(result, "usage", None)
    cost = call.cost(usage, getattr(result, "model", None))
    if isinstance(result, BaseModel) and "_hidden_params" in type(result).__private_attributes__:
        private = result.__pydantic_private__
        if private is not None:
            private["_hidden_params"] = call.hidden_params(cost)
    _observe(call, status=response.status_code, usage=usage, cost=cost)
    return result


def _fail(call: _Call, err: APIError) -> APIError:
    _observe(call, status=err.status_code, error=err)
    return err


# --------------------------------------------------------------------------- streams


class _ChunkAssembler:
    """Turns parsed events into chunks, folding Azure's empty first chunk into the next one.

    Azure opens a stream with ``{"choices": [], "id": "", "prompt_filter_results": [...]}``.
    It is not yielded alone (callers index ``chunk.choices[0]``); its
    ``prompt_filter_results`` (typed by the plugin's ``normalize_chunk``) are kept on the
    stream and on the next chunk.
    """

    def __init__(self, call: _Call) -> None:
        self.call = call
        self.prompt_filter_results: list[Any] | None = None
        self._pending_filters = False
        self.usage: Usage | None = None
        self.model: str | None = None
        self._started: set[int] = set()

    def feed(self, event: dict[str, Any]) -> Any:
        if not event.get("choices") and not event.get("id") and not event.get("usage"):
            if "prompt_filter_results" in event:
                first = self.call.plugins.hook.normalize_chunk(route=self.call.route, chunk=event)
                self.prompt_filter_results = getattr(first, "prompt_filter_results", None)
                self._pending_filters = True
            return None
        chunk = self.call.plugins.hook.normalize_chunk(route=self.call.route, chunk=event)
        if isinstance(chunk, TextCompletion) and not self.call.text:
            chunk = _chunk_from_text(chunk, self._started)
        expected = TextCompletion if self.call.text else ChatCompletionChunk
        if not isinstance(chunk, expected):
            raise PluginError(f"normalize_chunk gave {type(chunk).__name__}, expected {expected.__name__}")
        if self._pending_filters:
            chunk.prompt_filter_results = self.prompt_filter_results
            self._pending_filters = False
        if chunk.model and self.model is None:
            self.model = chunk.model
        if chunk.usage is not None:
            self.usage = chunk.usage
            if not chunk.choices and not self.call.include_usage:
                return None  # asked for pricing only (ChatRequest.stream_usage): not the caller's
        return chunk


def _chat_choice_logprobs(choice: dict[str, Any]) -> None:
    # Legacy logprobs ({tokens, token_logprobs ...}) are kept, as extra fields of chat's.
    if choice.get("logprobs") is not None:
        choice["logprobs"] = ChoiceLogprobs.model_validate(choice["logprobs"])


def _chat_from_text(text: TextCompletion) -> ChatCompletion:
    """A legacy text completion in chat shape; Azure's extra fields are kept."""
    data = text.model_dump(exclude_unset=True)
    data.pop("object", None)
    for choice in data.get("choices", ()):
        choice["message"] = {"role": "assistant", "content": choice.pop("text", "")}
        _chat_choice_logprobs(choice)
    chat = ChatCompletion.model_validate(data)
    chat.__pydantic_private__["_response_headers"] = text._response_headers  # type: ignore[index]
    chat.__pydantic_private__["_hidden_params"] = text._hidden_params  # type: ignore[index]
    return chat


def _chunk_from_text(text: TextCompletion, started: set[int]) -> ChatCompletionChunk:
    """One legacy stream event in chat-chunk shape; ``role`` on each choice's first delta."""
    data = text.model_dump(exclude_unset=True)
    data.pop("object", None)
    for choice in data.get("choices", ()):
        index = choice.get("index", 0)
        delta: dict[str, Any] = {} if index in started else {"role": "assistant"}
        started.add(index)
        if choice.get("text"):
            delta["content"] = choice["text"]
        choice.pop("text", None)
        choice["delta"] = delta
        _chat_choice_logprobs(choice)
    return ChatCompletionChunk.model_validate(data)


def _simulated_chunks(completion: ChatCompletion, include_usage: bool) -> list[ChatCompletionChunk]:
    """Replay a whole completion as a stream: a content chunk and a finish chunk per choice.

    Tool calls get the ``index`` stream deltas carry (the openai SDK requires it).
    """
    base = {"id": completion.id, "created": completion.created, "model": completion.model}
    chunks = []
    for choice in completion.choices:
        message = choice.message.model_dump(exclude_unset=True)
        message.setdefault("role", choice.message.role)
        for i, call in enumerate(message.get("tool_calls") or ()):
            call["index"] = i
        chunks.append(ChatCompletionChunk.model_validate({**base, "choices": [{"index": choice.index, "delta": message}]}))
        finish = {"index": choice.index, "delta": {}, "finish_reason": choice.finish_reason}
        chunks.append(ChatCompletionChunk.model_validate({**base, "choices": [finish]}))
    if include_usage and completion.usage is not None:
        chunks.append(ChatCompletionChunk(**base, choices=[], usage=completion.usage))
    return chunks


_ChunkT = TypeVar("_ChunkT", ChatCompletionChunk, TextCompletion)


class _Stream(Generic[_ChunkT]):
    """What sync and async streams share: the call, the upstream response, its headers.

    Attributes:
        headers: the upstream response headers (``httpx.Headers``, case-insensitive).
        usage: the stream's usage, once its last chunk is read (None before).
        _hidden_params: LiteLLM's name; ``response_cost`` is set when the stream ends.
    """

    def __init__(
        self,
        call: _Call,
        response: httpx.Response | None,
        replay: list[_ChunkT] | None = None,
        headers: httpx.Headers | None = None,
        hidden_params: dict[str, Any] | None = None,
    ):
        self._call = call
        self._response = response
        self._replay: list[_ChunkT] | None = replay
        self._assembler = _ChunkAssembler(call)
        if response is not None:
            headers = response.headers
        self.headers: httpx.Headers = headers if headers is not None else httpx.Headers()
        self._hidden_params: dict[str, Any] = hidden_params if hidden_params is not None else {}

    @property
    def cost(self) -> float | None:
        """What the call cost in USD, known once the stream is read to its end (None before, or
        when no price is known). Priced from the usage chunk, which the SDK asks the upstream
        for even when the caller did not (and then does not yield)."""
        value = self._hidden_params.get("response_cost")
        return value if isinstance(value, float | int) else None

    @property
    def usage(self) -> Usage | None:
        """The stream's token usage, once its last chunk is read."""
        return self._assembler.usage

    @property
    def model(self) -> str | None:
        """The model the upstream reported in the stream's chunks."""
        return self._assembler.model

    def _finished(self) -> None:
        """Price the stream from its usage chunk and tell the observers."""
        assert self._response is not None
        usage = self._assembler.usage
        cost = self._call.cost(usage, self._assembler.model)
        self._hidden_params = self._call.hidden_params(cost)
        _observe(self._call, status=self._response.status_code, usage=usage, cost=cost)

    @property
    def prompt_filter_results(self) -> list[Any] | None:
        """Azure's prompt annotations from the stream's first event (None before it is read)."""
        return self._assembler.prompt_filter_results

    @property
    def _response_headers(self) -> httpx.Headers:
        """The upstream's response headers, under the name LiteLLM uses (same as :attr:`headers`)."""
        return self.headers

    @property
    def azure_headers(self) -> AzureHeaders:
        """Azure's request id, region and remaining quota from the response headers."""
        return AzureHeaders.from_headers(self.headers)


class _SyncStream(_Stream[_ChunkT]):
    """A sync iterator of chunks; use it in a ``with`` block or exhaust it."""

    def __iter__(self) -> Iterator[_ChunkT]:
        if self._replay is not None:
            yield from self._replay
            return
        assert self._response is not None
        try:
            for event in iter_sse(self._response):
                chunk = self._assembler.feed(event)
                if chunk is not None:
                    yield chunk
        except httpx.TransportError as exc:
            raise _fail(self._call, _stream_broken(exc)) from exc
        finally:
            self._response.close()
        self._finished()

    def close(self) -> None:
        """Stop reading and release the connection."""
        if self._response is not None:
            self._response.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _AsyncStream(_Stream[_ChunkT]):
    """The async twin of :class:`_SyncStream` (``async for chunk in stream``)."""

    async def __aiter__(self) -> AsyncIterator[_ChunkT]:
        if self._replay is not None:
            for replayed in self._replay:
                yield replayed
            return
        assert self._response is not None
        try:
            async for event in aiter_sse(self._response):
                chunk = self._assembler.feed(event)
                if chunk is not None:
                    yield chunk
        except httpx.TransportError as exc:
            raise _fail(self._call, _stream_broken(exc)) from exc
        finally:
            await self._response.aclose()
        self._finished()

    async def aclose(self) -> None:
        """Stop reading and release the connection."""
        if self._response is not None:
            await self._response.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class ChatStream(_SyncStream[ChatCompletionChunk]):
    """A sync iterator of :class:`ChatCompletionChunk`; use it in a ``with`` block or exhaust it.

    Attributes:
        prompt_filter_results: Azure's prompt annotations from the stream's first event.
        headers: the upstream response headers; also ``_response_headers`` (LiteLLM's name)
            and, typed, ``azure_headers``.
    """


class AsyncChatStream(_AsyncStream[ChatCompletionChunk]):
    """The async twin of :class:`ChatStream` (``async for chunk in stream``)."""


class TextStream(_SyncStream[TextCompletion]):
    """A sync iterator of legacy completion chunks (:class:`TextCompletion`, ``choices[i].text``)."""


class AsyncTextStream(_AsyncStream[TextCompletion]):
    """The async twin of :class:`TextStream`."""


def _stream_broken(exc: Exception) -> APIError:
    from .errors import APIConnectionError

    return APIConnectionError(f"The upstream stream broke off: {type(exc).__name__}.")


def _send(call: _Call) -> httpx.Response:
    """Step 5 for sync calls: send with retries; a failure is mapped, observed and raised."""
    call.attempts = Attempts()
    try:
        response = get_transport().send(
            call.request, call.auth, timeout=call.timeout, num_retries=call.num_retries,
            retry_on_timeout=call.retry_on_timeout, attempts=call.attempts,
        )  # fmt: skip
    except APIError as err:
        raise _fail(call, _annotate(call, err)) from err.__cause__
    if response.status_code >= 400:
        raise _fail(call, _error(call, response))
    return response


async def _asend(call: _Call) -> httpx.Response:
    """The async twin of :func:`_send`."""
    call.attempts = Attempts()
    try:
        response = await get_transport().asend(
            call.request, call.auth, timeout=call.timeout, num_retries=call.num_retries,
            retry_on_timeout=call.retry_on_timeout, attempts=call.attempts,
        )  # fmt: skip
    except APIError as err:
        raise _fail(call, _annotate(call, err)) from err.__cause__
    if response.status_code >= 400:
        raise _fail(call, _error(call, response))
    return response


# --------------------------------------------------------------------------- public API


def completion(
    model: str, messages: list[dict[str, Any]], *, stream: bool = False, **kwargs: Any
) -> ChatCompletion | ChatStream:
    """Create a chat completion, as OpenAI's ``chat.completions.create`` and LiteLLM's ``completion``.

    Args:
        model: ``azure/<deployment>``, ``azure/o_series/<deployment>``, ``azure_text/<deployment>`` ...
        messages: OpenAI chat messages.
        stream: return a :class:`ChatStream` of chunks instead of one response.
        **kwargs: every OpenAI chat parameter (``tools``, ``response_format``, ``seed`` ...);
            connection settings (``api_key``, ``api_base``, ``api_version``, ``azure_ad_token``,
            ``azure_ad_token_provider`` ...); and ``timeout`` (seconds, default 600: the
            longest one attempt may take as a whole; for a stream, until it starts and then
            between chunks), ``num_retries`` (default 2), ``retry_on_timeout`` (default False,
            or ``MODELYARD_RETRY_ON_TIMEOUT``: also retry a request the upstream may already
            have, after a read timeout or a dropped connection; it may run and bill twice),
            ``drop_params``, ``model_family``, ``base_model``, ``extra_headers``, ``extra_body``.

    Returns:
        A :class:`ChatCompletion` (``r.choices[0].message.content``), or a :class:`ChatStream`.

    Raises:
        BadRequestError: invalid input (the message names the field), before anything is sent.
        UnsupportedParamsError: a parameter the model family refuses, unless ``drop_params``.
        APIError: the upstream's error, mapped to its class (see :mod:`modelyard.errors`).
    """
    call = _prepare(model, messages, stream, kwargs)
    response = _send(call)
    if call.request.stream:
        return ChatStream(call, response)
    result = _normalize(call, response)
    if isinstance(result, TextCompletion):
        result = _chat_from_text(result)
    if call.simulate_stream:
        return ChatStream(
            call, None, _simulated_chunks(result, call.include_usage), result._response_headers, result._hidden_params
        )
    return result  # type: ignore[no-any-return]  # checked by _first


async def acompletion(
    model: str, messages: list[dict[str, Any]], *, stream: bool = False, **kwargs: Any
) -> ChatCompletion | AsyncChatStream:
    """The async twin of :func:`completion`; a stream is an :class:`AsyncChatStream`."""
    call = _prepare(model, messages, stream, kwargs)
    response = await _asend(call)
    if call.request.stream:
        return AsyncChatStream(call, response)
    result = _normalize(call, response)
    if isinstance(result, TextCompletion):
        result = _chat_from_text(result)
    if call.simulate_stream:
        return AsyncChatStream(
            call, None, _simulated_chunks(result, call.include_usage), result._response_headers, result._hidden_params
        )
    return result  # type: ignore[no-any-return]  # checked by _first


def text_completion(prompt: Any, model: str, *, stream: bool = False, **kwargs: Any) -> TextCompletion | TextStream:
    """Create a legacy text completion, as OpenAI's ``completions.create`` and LiteLLM's ``text_completion``.

    Args:
        prompt: a string or a list of strings (or token arrays), sent unchanged.
        model: a model of a ``completions`` family, e.g. ``azure_text/<deployment>``.
        stream: return a :class:`TextStream` of chunks instead of one response.
        **kwargs: the completions parameters (``max_tokens``, ``temperature``, ``stop``, ``n``,
            ``logprobs`` (an integer), ``echo``, ``suffix``, ``best_of`` ...) and the same
            connection and control settings as :func:`completion`.

    Returns:
        A :class:`TextCompletion` (``r.choices[0].text``), or a :class:`TextStream`.

    Raises:
        BadRequestError: invalid input, or a model whose family is not a completions family.
        UnsupportedParamsError: a parameter the model family refuses, unless ``drop_params``.
        APIError: the upstream's error, mapped to its class.
    """
    call = _prepare(model, None, stream, {**kwargs, "prompt": prompt}, text=True)
    response = _send(call)
    if call.request.stream:
        return TextStream(call, response)
    result = _normalize(call, response)
    if call.simulate_stream:
        return TextStream(call, None, [result], result._response_headers, result._hidden_params)
    return result  # type: ignore[no-any-return]  # checked by _first


async def atext_completion(
    prompt: Any, model: str, *, stream: bool = False, **kwargs: Any
) -> TextCompletion | AsyncTextStream:
    """The async twin of :func:`text_completion`; a stream is an :class:`AsyncTextStream`."""
    call = _prepare(model, None, stream, {**kwargs, "prompt": prompt}, text=True)
    response = await _asend(call)
    if call.request.stream:
        return AsyncTextStream(call, response)
    result = _normalize(call, response)
    if call.simulate_stream:
        return AsyncTextStream(call, None, [result], result._response_headers, result._hidden_params)
    return result  # type: ignore[no-any-return]  # checked by _first
