"""The Responses API through the one pipeline: LiteLLM's ``responses`` family, sync and async.

``responses(input, model, ...)`` creates a response (or a :class:`ResponsesStream` of typed
events with ``stream=True``); ``get_responses``, ``delete_responses``, ``list_input_items`` and
``cancel_responses`` address a stored response by its id. Each has an async twin named with an
``a`` prefix. The steps are :mod:`modelyard.api`'s (resolve, validate against
:class:`~modelyard.responses_types.ResponsesParams`, the family's parameter rules, the
provider's ``transform_request``, auth, send with retries, ``normalize_response``,
``map_error``, the observers); the operation names are ``responses``, ``responses.get``,
``responses.delete``, ``responses.input_items`` and ``responses.cancel``.

Stream events are OpenAI's wire shape whatever the provider, so they are typed here
(:func:`~modelyard.responses_types.parse_event`), not by ``normalize_chunk`` (whose Azure
answer is chat's).

A deployment whose ``model_info.mode`` is ``chat`` gets the call as a chat completion, answered
in Responses shape (:mod:`modelyard.responses_bridge`, docs/responses.md).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any, Self

import httpx

from . import api
from ._calls import _connection, _module_settings, _split
from .errors import BadRequestError
from .operations import OPERATIONS
from .plugins import Plugins, get_plugins
from .responses_types import (
    DeleteResponseResult,
    ResponseCompletedEvent,
    ResponseCreatedEvent,
    ResponseFailedEvent,
    ResponseInputItemList,
    ResponsesAPIResponse,
    ResponsesEvent,
    parse_event,
)
from .transport import aiter_sse, iter_sse
from .types import ChatRequest

__all__ = [
    "AsyncResponsesStream",
    "ResponsesStream",
    "acancel_responses",
    "adelete_responses",
    "aget_responses",
    "alist_input_items",
    "aresponses",
    "cancel_responses",
    "delete_responses",
    "get_responses",
    "list_input_items",
    "responses",
]

_OP = OPERATIONS["responses"]


def _mode(kwargs: dict[str, Any]) -> Any:
    info = kwargs.get("model_info")
    return info.get("mode") if isinstance(info, dict) else None


def _create_kwargs(input: Any, model: Any, stream: bool, kwargs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    if model is None:
        raise TypeError("responses() missing required argument 'model'")
    params = dict(kwargs)
    if input is not None:
        params["input"] = input
    if stream:
        params["stream"] = True
    return model, params


def _prepare_create(model: str, params: dict[str, Any]) -> api._Call:
    call = api._prepare_operation(_OP, model, params)
    if call.request.stream:
        call.request = call.request.model_copy(update={"stream": True})
    return call


def responses(input: Any = None, model: str | None = None, *, stream: bool = False, **kwargs: Any) -> ResponsesAPIResponse | ResponsesStream:
    """Create a response, as OpenAI's ``responses.create`` and LiteLLM's ``responses``.

    Args:
        input: a string, or a list of input items (messages with ``input_text`` /
            ``input_image`` / ``input_file`` parts, ``function_call_output`` items ...).
        model: ``azure/<deployment>`` (the family's rules apply: o-series and GPT-5 refuse
            ``temperature`` and ``top_p``, unless ``drop_params``).
        stream: return a :class:`ResponsesStream` of typed events instead of one response.
        **kwargs: the fields of :class:`~modelyard.responses_types.ResponsesParams`
            (``instructions``, ``tools``, ``tool_choice``, ``previous_response_id``, ``store``,
            ``reasoning``, ``text``, ``max_output_tokens``, ``truncation``, ``background``,
            ``metadata``, ``include`` ...), and the connection and control settings of
            :func:`modelyard.completion`.

    Returns:
        A :class:`~modelyard.responses_types.ResponsesAPIResponse` (``r.output_text``), or a stream.

    Raises:
        BadRequestError: invalid input (the message names the field), before anything is sent.
        UnsupportedParamsError: a parameter the model family refuses, unless ``drop_params``.
        APIError: the upstream's error (a missing ``input``, an unknown tool type or
            ``previous_response_id`` ...), mapped to its class.
    """
    model, params = _create_kwargs(input, model, stream, kwargs)
    if _mode(params) == "chat":
        from .responses_bridge import responses_via_chat

        return responses_via_chat(model, params)  # type: ignore[return-value]
    call = _prepare_create(model, params)
    response = api._send(call)
    if call.request.stream:
        return ResponsesStream(call, response)
    return api._result(call, _OP, response)  # type: ignore[no-any-return]


async def aresponses(
    input: Any = None, model: str | None = None, *, stream: bool = False, **kwargs: Any
) -> ResponsesAPIResponse | AsyncResponsesStream:
    """The async twin of :func:`responses`; a stream is an :class:`AsyncResponsesStream`."""
    model, params = _create_kwargs(input, model, stream, kwargs)
    if _mode(params) == "chat":
        from .responses_bridge import aresponses_via_chat

        return await aresponses_via_chat(model, params)  # type: ignore[return-value]
    call = _prepare_create(model, params)
    response = await api._asend(call)
    if call.request.stream:
        return AsyncResponsesStream(call, response)
    return api._result(call, _OP, response)  # type: ignore[no-any-return]


# --------------------------------------------------------------------------- by id


def _response_id(value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or "/" in value or value in (".", ".."):
        raise BadRequestError(f"'response_id' must be a non-empty id string without '/', got {value!r}.", param="response_id")
    return value


def _prepare_id(operation: str, response_id: Any, model: Any, kwargs: dict[str, Any], query: dict[str, Any]) -> api._Call:
    """Steps 1-4 for a call addressing a stored response: the route is the provider's, with no deployment.

    ``model`` (``azure/<deployment>``) may be given, as LiteLLM's callers do; else
    ``custom_llm_provider`` (default ``azure``: see :func:`_default_provider`) says whose API it is.
    """
    started = time.perf_counter()
    rid = _response_id(response_id)
    plugins = get_plugins()
    conn_kw, control, params = _split(kwargs)
    if params:
        name = sorted(params)[0]
        raise BadRequestError(f"Unexpected argument {name!r} for {operation.replace('.', ' ')}.", param=name)
    provider = control.get("custom_llm_provider") or _default_provider(plugins, operation)
    model_string = model if isinstance(model, str) and model else f"{provider}/responses"
    route, family = plugins.families.resolve(model_string)
    route = route.model_copy(update={"operation": operation, "deployment": ""})
    settings = _module_settings()
    connection = _connection(conn_kw, settings, model_string)
    clean = {k: (",".join(v) if isinstance(v, list) else v) for k, v in query.items() if v is not None}
    request = ChatRequest(messages=[], params={"response_id": rid, "query": clean})
    return api._build_call(plugins, route, family, request, connection, control, settings, started)


def _default_provider(plugins: Plugins, operation: str) -> str:
    """The provider of a call by id that names none: the one provider whose plugins declare who
    serves ``operation`` (``register_providers``, ``transform_request:<operation>``).

    Raises:
        BadRequestError: none or several do; the message asks for ``model`` or ``custom_llm_provider``.
    """
    hook = f"transform_request:{operation}"
    declared = sorted(name for name, p in plugins.providers.items() if hook in p.served_by)
    if len(declared) == 1:
        return declared[0]
    which = f"several providers serve it ({', '.join(declared)})" if declared else "no loaded plugin declares one"
    raise BadRequestError(f"Name the provider of {operation} with model or custom_llm_provider: {which}.",
                          param="custom_llm_provider")  # fmt: skip


def _by_id(operation: str, expected: type[Any], response_id: Any, kwargs: dict[str, Any], query: dict[str, Any]) -> Any:
    call = _prepare_id(operation, response_id, kwargs.pop("model", None), kwargs, query)
    return _checked(call, expected, api._send(call))


async def _aby_id(operation: str, expected: type[Any], response_id: Any, kwargs: dict[str, Any], query: dict[str, Any]) -> Any:
    call = _prepare_id(operation, response_id, kwargs.pop("model", None), kwargs, query)
    return _checked(call, expected, await api._asend(call))


def _checked(call: api._Call, expected: type[Any], response: httpx.Response) -> Any:
    from .errors import PluginError

    result = api._normalize(call, response)
    if not isinstance(result, expected):
        raise PluginError(f"normalize_response returned {type(result).__name__} for {call.route.operation!r}, expected {expected.__name__}")
    return result


def get_responses(response_id: str, *, include: list[str] | None = None, **kwargs: Any) -> ResponsesAPIResponse:
    """Retrieve a stored response by id, as LiteLLM's ``get_responses`` (``GET /responses/{id}``).

    Args:
        response_id: the id ``responses()`` returned.
        include: extra fields to include (``reasoning.encrypted_content`` ...).
        **kwargs: ``model`` (``azure/<deployment>``) or ``custom_llm_provider`` (default
            ``azure``), and the connection and control settings of :func:`modelyard.completion`.

    Raises:
        NotFoundError: the resource holds no such response.
    """
    return _by_id("responses.get", ResponsesAPIResponse, response_id, kwargs, {"include": include})  # type: ignore[no-any-return]


async def aget_responses(response_id: str, *, include: list[str] | None = None, **kwargs: Any) -> ResponsesAPIResponse:
    """The async twin of :func:`get_responses`."""
    return await _aby_id("responses.get", ResponsesAPIResponse, response_id, kwargs, {"include": include})  # type: ignore[no-any-return]


def delete_responses(response_id: str, **kwargs: Any) -> DeleteResponseResult:
    """Delete a stored response (``DELETE /responses/{id}``), as LiteLLM's ``delete_responses``."""
    return _by_id("responses.delete", DeleteResponseResult, response_id, kwargs, {})  # type: ignore[no-any-return]


async def adelete_responses(response_id: str, **kwargs: Any) -> DeleteResponseResult:
    """The async twin of :func:`delete_responses`."""
    return await _aby_id("responses.delete", DeleteResponseResult, response_id, kwargs, {})  # type: ignore[no-any-return]


def _page(after: str | None, before: str | None, limit: int | None, order: str | None, include: list[str] | None) -> dict[str, Any]:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 100):
        raise BadRequestError(f"'limit' must be an integer from 1 to 100, got {limit!r}.", param="limit")
    if order is not None and order not in ("asc", "desc"):
        raise BadRequestError(f"'order' must be 'asc' or 'desc', got {order!r}.", param="order")
    return {"after": after, "before": before, "limit": limit, "order": order, "include": include}


def list_input_items(
    response_id: str, *, after: str | None = None, before: str | None = None, limit: int | None = None,
    order: str | None = None, include: list[str] | None = None, **kwargs: Any,
) -> ResponseInputItemList:  # fmt: skip
    """A page of a stored response's input items (``GET /responses/{id}/input_items``), as LiteLLM's ``list_input_items``."""
    query = _page(after, before, limit, order, include)
    return _by_id("responses.input_items", ResponseInputItemList, response_id, kwargs, query)  # type: ignore[no-any-return]


async def alist_input_items(
    response_id: str, *, after: str | None = None, before: str | None = None, limit: int | None = None,
    order: str | None = None, include: list[str] | None = None, **kwargs: Any,
) -> ResponseInputItemList:  # fmt: skip
    """The async twin of :func:`list_input_items`."""
    query = _page(after, before, limit, order, include)
    return await _aby_id("responses.input_items", ResponseInputItemList, response_id, kwargs, query)  # type: ignore[no-any-return]


def cancel_responses(response_id: str, **kwargs: Any) -> ResponsesAPIResponse:
    """Cancel a ``background`` response still running (``POST /responses/{id}/cancel``), as LiteLLM's ``cancel_responses``."""
    return _by_id("responses.cancel", ResponsesAPIResponse, response_id, kwargs, {})  # type: ignore[no-any-return]


async def acancel_responses(response_id: str, **kwargs: Any) -> ResponsesAPIResponse:
    """The async twin of :func:`cancel_responses`."""
    return await _aby_id("responses.cancel", ResponsesAPIResponse, response_id, kwargs, {})  # type: ignore[no-any-return]


# --------------------------------------------------------------------------- streams


class _EventStream:
    """What sync and async event streams share.

    Attributes:
        headers: the upstream's response headers.
        response: the final response, once ``response.completed`` (or ``response.failed``) is read.
        response_id: the response's id, once ``response.created`` is read.
        cost: what the call cost in USD, once the stream is read to its end.
    """

    def __init__(self, call: api._Call, response: httpx.Response) -> None:
        self._call = call
        self._response = response
        self.headers: httpx.Headers = response.headers
        self.response: ResponsesAPIResponse | None = None
        self.response_id: str | None = None
        self._model: str | None = None
        self._cost: float | None = None

    if not TYPE_CHECKING:  # typed attributes stay checked

        def __getattr__(self, name: str) -> Any:
            # A typed view of the response headers a provider plugin contributes (header_views).
            return _header_views().read_view(self, self.__dict__.get("headers"), name)

    def _feed(self, data: Any) -> ResponsesEvent | None:
        if not isinstance(data, dict) or not isinstance(data.get("type"), str):
            return None
        event = parse_event(data)
        if isinstance(event, ResponseCreatedEvent):
            self.response_id = event.response.id or None
            self._model = event.response.model or None
        elif isinstance(event, ResponseCompletedEvent | ResponseFailedEvent):
            self.response = event.response
        return event

    @property
    def cost(self) -> float | None:
        """What the call cost in USD, once ``response.completed`` is read (None before, or unpriced)."""
        return self._cost

    def _finished(self, *, cancelled: bool = False) -> None:
        usage = self.response.usage if self.response is not None else None
        if not cancelled and usage is not None:
            self._cost = self._call.cost(usage, self._model)
        api._observe(self._call, status=self._response.status_code, usage=usage, headers=self.headers,
                     ids=(self._model, self.response_id, None), cancelled=cancelled, cost=self._cost)  # fmt: skip


class ResponsesStream(_EventStream):
    """A sync iterator of typed events (:class:`~modelyard.responses_types.ResponsesEvent`);
    use it in a ``with`` block or exhaust it. A connection that breaks mid-way raises
    ``APIConnectionError``, as a chat stream does."""

    def __iter__(self) -> Iterator[ResponsesEvent]:
        try:
            for data in iter_sse(self._response):
                event = self._feed(data)
                if event is not None:
                    yield event
        except httpx.TransportError as exc:
            raise api._fail(self._call, api._stream_broken(exc)) from exc
        except GeneratorExit:
            self._finished(cancelled=True)
            raise
        finally:
            self._response.close()
        self._finished()

    def close(self) -> None:
        """Stop reading and release the connection."""
        self._response.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncResponsesStream(_EventStream):
    """The async twin of :class:`ResponsesStream` (``async for event in stream``)."""

    async def __aiter__(self) -> AsyncIterator[ResponsesEvent]:
        try:
            async for data in aiter_sse(self._response):
                event = self._feed(data)
                if event is not None:
                    yield event
        except httpx.TransportError as exc:
            raise api._fail(self._call, api._stream_broken(exc)) from exc
        except (GeneratorExit, asyncio.CancelledError):
            self._finished(cancelled=True)
            raise
        finally:
            await self._response.aclose()
        self._finished()

    async def aclose(self) -> None:
        """Stop reading and release the connection."""
        await self._response.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _header_views() -> Any:
    """:mod:`modelyard.header_views` (imported on first use: it loads the plugins)."""
    from . import header_views

    return header_views
