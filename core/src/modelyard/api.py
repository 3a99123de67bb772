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

import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any, Generic, Self, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from .errors import APIError, BadRequestError, PluginError, error_for_status
from .families import Family, apply_rules, check_needed_plugins
from .hookspecs import Authenticator
from .plugins import Plugins, get_plugins
from .transport import aiter_sse, get_transport, iter_sse
from .types import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatParams,
    ChatRequest,
    Choice,
    ChunkChoice,
    Connection,
    Delta,
    Message,
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
     "base_model", "model_info", "extra_body", "custom_llm_provider"}
)  # fmt: skip


@dataclass
class CallRecord:
    """One finished call, as the ``on_success`` / ``on_failure`` observers see it."""

    route: Route
    duration: float
    status_code: int | None = None
    usage: dict[str, Any] | None = None
    error: APIError | None = None


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


# --------------------------------------------------------------------------- prepare


def _settings_drop_params() -> bool:
    return bool(getattr(sys.modules.get("modelyard"), "drop_params", False))


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


def _first(hook: Any, expected: type | tuple[type, ...], what: str, route: Route, **kwargs: Any) -> Any:
    """Call a firstresult hook and check its answer's type, naming the plugin at fault."""
    result = hook(route=route, **kwargs)
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
    try:
        connection = Connection(**conn_kw)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = _field(err["loc"])
        raise BadRequestError(f"Invalid value for {field!r}: {err['msg']}.", param=field, model=model) from None
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
    messages, params = apply_rules(
        family, messages, params, drop_params=_settings_drop_params() if drop is None else bool(drop), model=model
    )
    simulate = stream and family.rules.simulate_stream
    include_usage = bool((params.get("stream_options") or {}).get("include_usage"))
    if simulate:
        params.pop("stream_options", None)
    request = ChatRequest(messages=messages, params=params, stream=stream and not simulate)
    hook = plugins.hook
    provider_request = _first(
        hook.transform_request, ProviderRequest, "transform_request", route, request=request, connection=connection
    )
    auth = _first(hook.resolve_auth, object, "resolve_auth", route, connection=connection)
    retries = control.get("num_retries", control.get("max_retries", DEFAULT_NUM_RETRIES))
    return _Call(
        plugins=plugins,
        route=route,
        family=family,
        request=provider_request,
        auth=auth,
        timeout=control.get("timeout", control.get("request_timeout")),
        num_retries=int(retries),
        simulate_stream=simulate,
        include_usage=include_usage,
        started=started,
        text=text,
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


def _observe(call: _Call, *, status: int | None, usage: Any = None, error: APIError | None = None) -> None:
    hook = call.plugins.hook.on_failure if error else call.plugins.hook.on_success
    if not hook.get_hookimpls():
        return
    usage_dict = usage.model_dump() if isinstance(usage, Usage) else usage
    record = CallRecord(call.route, time.perf_counter() - call.started, status, usage_dict, error)
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
        # the Router reads x-ratelimit-remaining-* here (LiteLLM keeps the same attribute)
        setattr(result, "_response_headers", dict(response.headers))  # noqa: B010
    _observe(call, status=response.status_code, usage=getattr(result, "usage", None))
    return result


def _fail(call: _Call, err: APIError) -> APIError:
    _observe(call, status=err.status_code, error=err)
    return err


# --------------------------------------------------------------------------- streams


class _ChunkAssembler:
    """Turns parsed events into chunks, folding Azure's empty first chunk into the next one.

    Azure opens a stream with ``{"choices": [], "id": "", "prompt_filter_results": [...]}``.
    It is not yielded alone (callers index ``chunk.choices[0]``); its
    ``prompt_filter_results`` are kept on the stream and on the next chunk.
    """

    def __init__(self, call: _Call) -> None:
        self.call = call
        self.prompt_filter_results: list[Any] | None = None
        self._pending_filters = False
        self.usage: Usage | None = None
        self._started: set[int] = set()

    def feed(self, event: dict[str, Any]) -> Any:
        if not event.get("choices") and not event.get("id") and not event.get("usage"):
            if "prompt_filter_results" in event:
                self.prompt_filter_results = event["prompt_filter_results"]
                self._pending_filters = True
            return None
        chunk = self.call.plugins.hook.normalize_chunk(route=self.call.route, chunk=event)
        if isinstance(chunk, TextCompletion) and not self.call.text:
            chunk = _chunk_from_text(chunk, self._started)
        expected = TextCompletion if self.call.text else ChatCompletionChunk
        if not isinstance(chunk, expected):
            raise PluginError(f"normalize_chunk gave {type(chunk).__name__}, expected {expected.__name__}")
        if self._pending_filters:
            setattr(chunk, "prompt_filter_results", self.prompt_filter_results)  # noqa: B010  (an extra field)
            self._pending_filters = False
        if chunk.usage is not None:
            self.usage = chunk.usage
        return chunk


def _chat_from_text(text: TextCompletion) -> ChatCompletion:
    """A legacy text completion in chat shape; Azure's extra fields are kept."""
    extra = {k: v for k, v in (text.model_extra or {}).items() if k != "object"}
    choices = [
        Choice(
            index=c.index,
            message=Message(role="assistant", content=c.text),
            finish_reason=c.finish_reason,
            logprobs=c.logprobs,
            **(c.model_extra or {}),
        )
        for c in text.choices
    ]
    chat = ChatCompletion(id=text.id, created=text.created, model=text.model, choices=choices, usage=text.usage, **extra)
    chat._response_headers = text._response_headers
    return chat


def _chunk_from_text(text: TextCompletion, started: set[int]) -> ChatCompletionChunk:
    """One legacy stream event in chat-chunk shape; ``role`` on each choice's first delta."""
    extra = {k: v for k, v in (text.model_extra or {}).items() if k != "object"}
    choices = []
    for c in text.choices:
        first = c.index not in started
        started.add(c.index)
        delta = Delta(role="assistant" if first else None, content=c.text or None)
        choices.append(
            ChunkChoice(
                index=c.index, delta=delta, finish_reason=c.finish_reason, logprobs=c.logprobs, **(c.model_extra or {})
            )
        )
    return ChatCompletionChunk(
        id=text.id, created=text.created, model=text.model, choices=choices, usage=text.usage, **extra
    )


def _simulated_chunks(completion: ChatCompletion, include_usage: bool) -> list[ChatCompletionChunk]:
    """Replay a whole completion as a stream: a content chunk and a finish chunk per choice."""
    base = {"id": completion.id, "created": completion.created, "model": completion.model}
    chunks = []
    for choice in completion.choices:
        msg = choice.message
        delta = Delta(role=msg.role, content=msg.content, tool_calls=msg.tool_calls, audio=msg.audio)
        chunks.append(ChatCompletionChunk(**base, choices=[ChunkChoice(index=choice.index, delta=delta)]))
        chunks.append(
            ChatCompletionChunk(
                **base, choices=[ChunkChoice(index=choice.index, delta=Delta(), finish_reason=choice.finish_reason)]
            )
        )
    if include_usage and completion.usage is not None:
        chunks.append(ChatCompletionChunk(**base, choices=[], usage=completion.usage))
    return chunks


_ChunkT = TypeVar("_ChunkT", ChatCompletionChunk, TextCompletion)


class _SyncStream(Generic[_ChunkT]):
    """A sync iterator of chunks; use it in a ``with`` block or exhaust it.

    Attributes:
        prompt_filter_results: Azure's prompt annotations from the stream's first event.
        headers: the upstream response headers.
    """

    def __init__(self, call: _Call, response: httpx.Response | None, replay: list[_ChunkT] | None = None):
        self._call = call
        self._response = response
        self._replay: list[_ChunkT] | None = replay
        self._assembler = _ChunkAssembler(call)
        self.headers: httpx.Headers = response.headers if response is not None else httpx.Headers()

    @property
    def prompt_filter_results(self) -> list[Any] | None:
        return self._assembler.prompt_filter_results

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
        _observe(self._call, status=self._response.status_code, usage=self._assembler.usage)

    def close(self) -> None:
        """Stop reading and release the connection."""
        if self._response is not None:
            self._response.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _AsyncStream(Generic[_ChunkT]):
    """The async twin of :class:`_SyncStream` (``async for chunk in stream``)."""

    def __init__(self, call: _Call, response: httpx.Response | None, replay: list[_ChunkT] | None = None):
        self._call = call
        self._response = response
        self._replay: list[_ChunkT] | None = replay
        self._assembler = _ChunkAssembler(call)
        self.headers: httpx.Headers = response.headers if response is not None else httpx.Headers()

    @property
    def prompt_filter_results(self) -> list[Any] | None:
        return self._assembler.prompt_filter_results

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
        _observe(self._call, status=self._response.status_code, usage=self._assembler.usage)

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
        headers: the upstream response headers.
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
    try:
        response = get_transport().send(call.request, call.auth, timeout=call.timeout, num_retries=call.num_retries)
    except APIError as err:
        raise _fail(call, _annotate(call, err)) from err.__cause__
    if response.status_code >= 400:
        raise _fail(call, _error(call, response))
    return response


async def _asend(call: _Call) -> httpx.Response:
    """The async twin of :func:`_send`."""
    try:
        response = await get_transport().asend(
            call.request, call.auth, timeout=call.timeout, num_retries=call.num_retries
        )
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
            ``azure_ad_token_provider`` ...); and ``timeout`` (seconds, default 600),
            ``num_retries`` (default 2), ``drop_params``, ``model_family``, ``base_model``,
            ``extra_headers``, ``extra_body``.

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
        return ChatStream(call, None, replay=_simulated_chunks(result, call.include_usage))
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
        return AsyncChatStream(call, None, replay=_simulated_chunks(result, call.include_usage))
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
        return TextStream(call, None, replay=[result])
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
        return AsyncTextStream(call, None, replay=[result])
    return result  # type: ignore[no-any-return]  # checked by _first
