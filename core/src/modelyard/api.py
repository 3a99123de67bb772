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

import asyncio
import json
import math
import mimetypes
import pathlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any, Generic, Self, TypeVar

import httpx
from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticSerializationError, from_json, to_json

from ._calls import (
    CallRecord,
    _connection,
    _control_setting,
    _field,
    _first,
    _module_settings,
    _retries,
    _retry_on_timeout,
    _split,
)
from ._dispatch import Observers
from ._kept import changed, kept_checks, unclaimed
from ._sse import END, SSEParser, aiter_sse_batches
from .binary import BinaryResponse
from .errors import APIError, BadRequestError, PluginError, error_for_status
from .families import Family, apply_rules, check_needed_plugins
from .hookspecs import Authenticator
from .observe import CallScope, current_scope, trace_id_of
from .operations import OPERATIONS, Operation
from .plugins import Plugins, get_plugins
from .pricing import PRICE_KEYS, call_cost, price_overrides
from .transport import Attempts, get_transport, iter_sse, timeout_seconds
from .types import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatParams,
    ChatRequest,
    ChoiceLogprobs,
    CompletionTokensDetails,
    Connection,
    PromptTokensDetails,
    ProviderRequest,
    ProviderResponse,
    Route,
    TextCompletion,
    TextParams,
    Usage,
    _ForwardedChatCompletion,
    _Response,
)

__all__ = [
    "AsyncChatStream",
    "AsyncTextStream",
    "CallRecord",
    "CallStarted",
    "ChatStream",
    "TextStream",
    "acompletion",
    "aembedding",
    "aimage_edit",
    "aimage_generation",
    "aspeech",
    "atext_completion",
    "atranscription",
    "atranslation",
    "completion",
    "embedding",
    "image_edit",
    "image_generation",
    "speech",
    "text_completion",
    "transcription",
    "translation",
]

@dataclass
class CallStarted:
    """One pipeline call about to be sent, as ``on_call_start`` sees it (see ``hookspecs.CallStart``)."""

    route: Route
    request: ChatRequest
    url: str
    stream: bool
    scope: CallScope | None
    state: dict[str, Any]


@dataclass(slots=True)
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
    observers: Observers
    """Which observers see this call, decided at its start (``Plugins.observers``)."""
    text: bool = False
    retry_on_timeout: bool = False
    attempts: Attempts | None = None
    scope: CallScope | None = None
    state: dict[str, Any] | None = None
    started_at: float = 0.0
    owned: list[IO[bytes]] = field(default_factory=list)
    """Files this call opened for a multipart upload (paths, bytes): closed when it is done."""
    base_model: str | None = None
    price_overrides: dict[str, Any] | None = None

    priced: dict[str, Any] | None = None
    """An operation's validated parameters, for the units its price needs (size, quality, input)."""

    def cost(self, usage: Any, reported_model: str | None, result: Any = None) -> float | None:
        """The call's cost from its usage (docs/spend.md); None when no price is known."""
        route = self.route
        return call_cost(
            route.operation, usage, self.priced, result, overrides=self.price_overrides, base_model=self.base_model,
            reported_model=reported_model or None, deployment=route.deployment, provider=route.provider,
        )  # fmt: skip

    def hidden_params(self, cost: float | None) -> dict[str, Any]:
        """LiteLLM's ``_hidden_params`` of a result: its cost and what it was priced with."""
        return {"response_cost": cost, "base_model": self.base_model, "price_overrides": self.price_overrides}


# --------------------------------------------------------------------------- prepare


def _validate_messages(messages: Any) -> list[dict[str, Any]]:
    if not isinstance(messages, list) or not messages:
        raise BadRequestError("'messages' must be a non-empty list of message objects.", param="messages")
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            raise BadRequestError(f"messages[{i}] must be an object, got {type(m).__name__}.", param=f"messages[{i}]")
        if not isinstance(m.get("role"), str):
            raise BadRequestError(f"messages[{i}].role must be a string.", param=f"messages[{i}].role")
    return messages


# Validated parameters, per (schema, parameters) when every value is a plain scalar (each with its
# type in the key: True and 1 hash alike): ``{"temperature": 0.2, "max_tokens": 256}`` is checked
# by pydantic once, not on every call (~4-5 µs). Failures are not kept (they raise each time).
# Only the core's own request models (pure checks); a plugin's may have validators that do more.
_VALIDATED: dict[tuple[Any, ...], dict[str, Any]] = {}
_KEYED = frozenset({bool, int, float, str})
_MAX_KEYED_STR = 128  # longer strings (a prompt, an input) are not worth keeping


def _params_key(schema: type[BaseModel], params: dict[str, Any]) -> tuple[Any, ...] | None:
    if not schema.__module__.startswith("modelyard."):
        return None
    types = tuple(map(type, params.values()))
    if not _KEYED.issuperset(types):
        return None
    if str in types and any(type(v) is str and len(v) > _MAX_KEYED_STR for v in params.values()):
        return None
    return (schema, tuple(params.items()), types)


def _validate_params(params: dict[str, Any], schema: type[BaseModel] = ChatParams, model: str | None = None) -> dict[str, Any]:
    if not params and _empty_is_valid(schema):
        return {}  # what validating and dumping ``{}`` gives, without the ~5 µs it costs
    key = _params_key(schema, params)
    if key is not None:
        known = _VALIDATED.get(key)
        if known is not None:
            return dict(known)  # a copy: the rules and the caller may change theirs
    try:
        valid = schema.model_validate(params).model_dump(exclude_unset=True)
    except ValidationError as exc:
        err = exc.errors()[0]
        # A union's errors carry the member tried in their location ("input.str",
        # "input.list[str]"): the field a client sent stops before it.
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and (p in _UNION_TAGS or "[" in p)))
        field = _field(loc)
        raise BadRequestError(f"Invalid value for {field!r}: {err['msg']}.", param=field, model=model) from None
    # Parameters the model does not know are sent as they are; NaN and Infinity are not JSON.
    for name, value in valid.items():
        where = _non_finite(value, (name,))
        if where is not None:
            field = _field(where)
            raise BadRequestError(f"{field!r} is NaN or Infinity, which JSON does not allow; send a finite number.",
                                  param=field, model=model)  # fmt: skip
    if key is not None:
        if len(_VALIDATED) >= 256:
            _VALIDATED.clear()
        _VALIDATED[key] = dict(valid)
    return valid


_EMPTY_VALID: dict[type[BaseModel], bool] = {}


def _empty_is_valid(schema: type[BaseModel]) -> bool:
    """Whether ``schema`` takes ``{}`` as it is: no required field, no validator of the whole model."""
    known = _EMPTY_VALID.get(schema)
    if known is None:
        decorators = schema.__pydantic_decorators__
        known = _EMPTY_VALID[schema] = not (
            any(f.is_required() for f in schema.model_fields.values())
            or decorators.model_validators
            or decorators.root_validators
        )
    return known


def _non_finite(value: Any, loc: tuple[Any, ...]) -> tuple[Any, ...] | None:
    """Where in ``value`` a NaN or infinite float sits, or None."""
    if isinstance(value, float):
        return None if math.isfinite(value) else loc
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, (list, tuple)) else ()
    for key, item in items:
        found = _non_finite(item, (*loc, key))
        if found is not None:
            return found
    return None


_UNION_TAGS = frozenset({"str", "int", "float", "bool", "dict", "list", "none", "function-after"})
_CHAT_REQUEST = ChatRequest.__pydantic_validator__.validate_python


def _prepare(model: str, messages: Any, stream: bool, kwargs: dict[str, Any], *, text: bool = False) -> _Call:
    started = time.perf_counter()
    if not isinstance(model, str) or not model:
        raise BadRequestError("'model' must be a non-empty string such as '<provider>/<deployment>'.", param="model")
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
    # The model's validator itself, as ``ChatRequest(...)`` validates (the same checks and copies),
    # without BaseModel.__init__'s keyword packing around it (~0.4 µs).
    real = stream and not simulate
    request: ChatRequest = _CHAT_REQUEST({"messages": messages, "params": params, "stream": real, "stream_usage": real})
    call = _build_call(plugins, route, family, request, connection, control, settings, started)
    call.simulate_stream, call.include_usage, call.text = simulate, include_usage, text
    return call


def _build_call(
    plugins: Plugins, route: Route, family: Family, request: ChatRequest, connection: Connection,
    control: dict[str, Any], settings: dict[str, Any], started: float,
) -> _Call:  # fmt: skip
    """Steps 3 and 4, the same for every operation: the provider's request, then its authenticator."""
    hook = plugins.hook
    provider_request = _first(
        hook.transform_request, ProviderRequest, "transform_request", route, via=plugins, request=request,
        connection=connection,
    )  # fmt: skip
    retries = _control_setting(control, settings, ("num_retries", "max_retries"), "num_retries")
    timeout = _control_setting(control, settings, ("timeout", "request_timeout"), "request_timeout")
    auth = _first(hook.resolve_auth, object, "resolve_auth", route, via=plugins, connection=connection,
                  timeout=timeout_seconds(timeout))  # fmt: skip
    scope = current_scope()
    state: dict[str, Any] | None = None
    observers = plugins.observers()  # which observers see this call, decided once
    if observers.start:
        state = {}
        provider_request = _call_started(plugins, route, request, provider_request, scope, state, observers.down)
    model_info = control.get("model_info") or {}
    base_model = control.get("base_model") or model_info.get("base_model")
    return _Call(
        plugins=plugins,
        route=route,
        family=family,
        request=provider_request,
        auth=auth,
        timeout=timeout,
        num_retries=_retries(retries, "num_retries" in control or "max_retries" in control),
        simulate_stream=False,
        include_usage=False,
        started=started,
        retry_on_timeout=_retry_on_timeout(control),
        scope=scope,
        state=state,
        observers=observers,
        started_at=time.time() - (time.perf_counter() - started),
        base_model=base_model,
        # A call's control settings hold price keys only under their names (_split): without
        # those and without model_info there is nothing to look for.
        price_overrides=(price_overrides(control, model_info) or None)
        if model_info or not PRICE_KEYS.isdisjoint(control) else None,
    )


def _prepare_operation(op: Operation, model: str, kwargs: dict[str, Any]) -> _Call:
    """Steps 1-4 for an operation driven by its :class:`~modelyard.operations.Operation` row.

    The route is the model's (provider, family, deployment) with ``operation`` set to the row's
    name; the parameters validate against the row's request model, then the family's parameter
    rules apply as for chat (``unsupported`` / ``fixed`` refused unless ``drop_params``,
    ``rename``, ``defaults``, ``needs_plugin``). The provider's
    ``transform_request`` gets a :class:`ChatRequest` with no messages and the validated body
    in ``params``.
    """
    started = time.perf_counter()
    if not isinstance(model, str) or not model:
        raise BadRequestError("'model' must be a non-empty string such as '<provider>/<deployment>'.", param="model")
    plugins = get_plugins()
    conn_kw, control, params = _split(kwargs)
    model_info = control.get("model_info") or {}
    base_model = control.get("base_model") or model_info.get("base_model")
    route, family = plugins.families.resolve(
        model, family=control.get("model_family") or model_info.get("model_family"), base_model=base_model
    )
    route = route.model_copy(update={"operation": op.name})
    settings = _module_settings()
    connection = _connection(conn_kw, settings, model)
    for name in op.payload:
        if params.get(name) is None:
            raise BadRequestError(f"{op.sdk}() needs {name!r}.", param=name, model=model)
    # File fields are not the request model's to copy (pydantic would turn a file object into
    # an iterator): they are set aside, and become streamed multipart parts after validation.
    uploads = {name: params.pop(name) for name in op.files if params.get(name) is not None}
    for name, value in uploads.items():
        if isinstance(value, list) and not value:
            raise BadRequestError(f"{op.sdk}() needs at least one file in {name!r}.", param=name, model=model)
    params = _validate_params(params, op.request, model)
    # The family's parameter rules, as for chat: a parameter it refuses is refused here too
    # (or left out with drop_params), its renames and defaults apply, and a parameter needing
    # a plugin that is not loaded fails before sending.
    check_needed_plugins(family, params, missing=plugins.missing, model=model)
    drop = control.get("drop_params")
    if drop is None:
        drop = settings.get("drop_params")
    _, params = apply_rules(family, [], params, drop_params=bool(drop), model=model)
    owned: list[IO[bytes]] = []
    try:
        for name, value in uploads.items():
            params[name] = _upload_parts(value, name, owned)
        request = ChatRequest(messages=[], params=params)
        call = _build_call(plugins, route, family, request, connection, control, settings, started)
    except BaseException:
        _close(owned)
        raise
    call.owned = owned
    call.priced = params
    return call


def _upload_parts(value: Any, name: str, owned: list[IO[bytes]]) -> Any:
    """A file field's value as httpx multipart part(s): ``(filename, fileobj, content_type)``.

    Takes what the openai SDK takes (bytes, a path (``str`` too), a binary file object, ``(filename,
    content[, content_type])``), or a list of them (one part each). File objects are streamed
    from where they are, never read whole; what this opens is added to ``owned``.
    """
    from .files import _coerce_upload

    if isinstance(value, list):
        return [_upload_parts(v, f"{name}[{i}]", owned) for i, v in enumerate(value)]
    if isinstance(value, str):  # a path, as LiteLLM takes it (the proxy never passes text here)
        value = pathlib.Path(value)
    try:
        upload, opened = _coerce_upload(value, "")
    except BadRequestError as err:
        raise BadRequestError(err.message.replace("'file'", repr(name)), param=name) from None
    if opened is not None:
        owned.append(opened)
    content_type = upload.content_type
    if not (isinstance(value, tuple) and len(value) == 3):  # no type given: by the file name, as httpx does
        content_type = mimetypes.guess_type(upload.filename)[0] or content_type
    return (upload.filename, upload.file, content_type)


def _close(owned: list[IO[bytes]]) -> None:
    for f in owned:
        f.close()
    owned.clear()


def _call_started(plugins: Plugins, route: Route, request: ChatRequest, provider_request: ProviderRequest,
                  scope: CallScope | None, state: dict[str, Any], down: frozenset[Any]) -> ProviderRequest:  # fmt: skip
    """Run ``on_call_start``; the request with the headers its observers add (never replacing one)."""
    event = CallStarted(route, request, provider_request.url, provider_request.stream, scope, state)
    try:
        answers = plugins.call(plugins.hook.on_call_start, down, call=event)
    except Exception:  # observers must not break a call
        import logging

        logging.getLogger("modelyard").exception("an on_call_start observer raised")
        return provider_request
    extra: dict[str, str] = {}
    for answer in answers:
        if isinstance(answer, dict):
            extra.update((str(k), str(v)) for k, v in answer.items())
    if not extra:
        return provider_request
    have = {k.lower() for k in provider_request.headers}
    headers = {**provider_request.headers, **{k: v for k, v in extra.items() if k.lower() not in have}}
    if scope is not None:
        scope.trace_id = trace_id_of(headers.get("traceparent")) or scope.trace_id
    return provider_request.model_copy(update={"headers": headers})


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


def _observe(call: _Call, *, status: int | None, usage: Any = None, error: APIError | None = None,
             headers: Any = None, response: Any = None, ids: tuple[str | None, str | None, list[str] | None] | None = None,
             cancelled: bool = False, cost: float | None = None) -> None:  # fmt: skip
    hook = call.plugins.hook.on_failure if error else call.plugins.hook.on_success
    scope = call.scope
    observers = call.observers  # decided at the call's start
    observed = observers.failure if error else observers.success
    if scope is None and not observed:
        return
    usage_dict = _usage_dump(usage) if isinstance(usage, BaseModel) else usage
    attempts = call.attempts or Attempts()
    duration = time.perf_counter() - call.started
    if ids is None:
        ids = (getattr(response, "model", None), getattr(response, "id", None), _finish_reasons(response))
    record = CallRecord(
        call.route, duration, status, usage_dict, error, attempts.retries, attempts.resent,
        scope, call.state, call.started_at, attempts.log, headers, response, *ids, cancelled, cost,
    )  # fmt: skip
    if scope is not None:
        scope.upstream_seconds += duration
        scope.calls.append((scope.model_group, scope.deployment_id, record))
    if not observed:
        return
    try:
        call.plugins.call(hook, observers.down, event=record)
    except Exception:  # observers must not break a call
        import logging

        logging.getLogger("modelyard").exception("an on_success/on_failure observer raised")


def _usage_dump(usage: BaseModel) -> dict[str, Any]:
    """``usage.model_dump()``; for a plain :class:`Usage` (counts, details, no extra fields)
    its fields copied, a third of model_dump's ~1-1.8 µs."""
    dumped = _plain_dump(usage) if type(usage) in _PLAIN_USAGE else None
    return usage.model_dump() if dumped is None else dumped


def _plain_dump(model: BaseModel) -> dict[str, Any] | None:
    if model.__pydantic_extra__:
        return None
    out = model.__dict__.copy()
    for key, value in out.items():
        if value is not None and type(value) is not int:
            if type(value) not in _PLAIN_USAGE:
                return None
            inner = _plain_dump(value)
            if inner is None:
                return None
            out[key] = inner
    return out


_PLAIN_USAGE = frozenset({Usage, PromptTokensDetails, CompletionTokensDetails})


def _finish_reasons(result: Any) -> list[str] | None:
    choices = getattr(result, "choices", None)
    if not choices:
        return None
    return [c.finish_reason for c in choices if getattr(c, "finish_reason", None)]


def _normalize(call: _Call, response: httpx.Response) -> Any:
    result = _kept_response(call, response)
    if result is None:
        result = _first(
            call.plugins.hook.normalize_response, object, "normalize_response", call.route, via=call.plugins,
            response=_provider_response(response),
        )  # fmt: skip
    usage = getattr(result, "usage", None)
    cost = call.cost(usage, getattr(result, "model", None), result)
    if isinstance(result, _Response):
        # As LiteLLM keeps them (the Router reads x-ratelimit-remaining-* here): httpx's own
        # case-insensitive Headers, not a copy.
        result._attach(response.headers, call.hidden_params(cost))
    _observe(call, status=response.status_code, usage=usage, headers=response.headers, response=result, cost=cost)
    return result


def _kept_response(call: _Call, response: httpx.Response) -> Any:
    """An answer no plugin changes (``keeps_answers``), validated here as its plugin would, and
    marked for the proxy to send as it came; None when the normalize hook must make it.

    When the caller forwards the bytes (``CallScope.forwards_answers``), no observer sees the
    call and it is not turned into a stream, a chat answer is validated as
    :class:`~modelyard.types._ForwardedChatCompletion`: what the pipeline reads, typed; the
    rest kept as the upstream's JSON objects.
    """
    model = _KEPT_MODELS.get(call.route.operation)
    if model is None:
        return None
    scope = call.scope
    if scope is not None and scope.forwards_answers and not call.observers.success and not call.simulate_stream:
        model = _FORWARDED_MODELS.get(model, model)
    checks = kept_checks(call.plugins, call.route, "response")
    if checks is None:
        return None
    content = response.content
    if content[:1] != b"{":  # a BOM, leading space, another encoding: the plugin's way
        return None
    # The model's validator itself: what model_validate calls, without its ~0.5 µs of
    # argument checks.
    validator = model.__pydantic_validator__
    result: Any = None
    if not checks or unclaimed(checks, content):
        # No check can claim it (none, or none of their markers is in the bytes): validated
        # straight from the bytes, with no dict parsed for the checks (HOOK_API 1.12).
        try:
            result = validator.validate_json(content)
        except ValidationError:
            if not checks:  # the plugin's hook raises it, as before
                return None
            # Parsed and checked below, as before: an answer the model refuses may still be
            # one a check claims (and the hook's to answer), or JSON only json.loads reads.
    if result is None:
        try:
            data = from_json(content)  # pydantic-core's parser: a third of json.loads's ~5 µs
        except ValueError:
            try:  # what it refuses and json.loads takes (a lone surrogate escape): as before
                data = json.loads(content)
            except ValueError:
                return None
        if changed(checks, data):
            return None
        try:
            result = validator.validate_python(data)
        except ValidationError:  # the plugin's hook raises it, as before
            return None
    if isinstance(result, _Response) and _envelope(model).issubset(result.__pydantic_fields_set__):
        result._state()["_upstream"] = (id(result), content)
    return result


_KEPT_MODELS: dict[str, type[BaseModel]] = {
    name: op.response for name, op in OPERATIONS.items() if op.answer != "binary" and not op.text_formats
}
"""The operations whose answer may be kept as sent: a JSON body, validated as the row's model."""
_FORWARDED_MODELS: dict[type[BaseModel], type[BaseModel]] = {ChatCompletion: _ForwardedChatCompletion}
"""What a kept answer is validated as when its caller forwards the upstream's bytes (:func:`_kept_response`)."""
_ENVELOPES: dict[type, frozenset[str]] = {}


def _envelope(model: type[BaseModel]) -> frozenset[str]:
    """The envelope fields (``_ENVELOPE``) a model has: an answer kept as sent must carry them."""
    found = _ENVELOPES.get(model)
    if found is None:
        found = _ENVELOPES[model] = _ENVELOPE.intersection(model.model_fields)
    return found


def _fail(call: _Call, err: APIError, headers: Any = None) -> APIError:
    _observe(call, status=err.status_code, error=err, headers=headers)
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
        self._filters: list[Any] | None = None
        self._raw_filters: Any = None
        self._pending_filters = False
        self.usage: Usage | None = None
        self.model: str | None = None
        self._started: set[int] = set()
        self.id: str | None = None
        self.finish_reasons: list[str] = []
        # A provider whose stream is not in chat chunks translates it with per-stream state
        # (HOOK_API 1.8); streams already in chunks answer None and keep normalize_chunk.
        self.translator: Any = call.plugins.call(call.plugins.hook.translate_stream, route=call.route)
        # Events no plugin changes (HOOK_API 1.10 keeps_answers) skip normalize_chunk: the
        # caller gets them validated as the plugin would, the proxy as they were parsed.
        self.checks = None
        if self.translator is None and call.route.operation == "chat" and not call.text:
            self.checks = kept_checks(call.plugins, call.route, "chunk")

    @property
    def prompt_filter_results(self) -> list[Any] | None:
        """Azure's prompt annotations from the stream's first event (typed when first read)."""
        if self._raw_filters is not None:
            self._filters = ChatCompletionChunk.model_validate({"prompt_filter_results": self._raw_filters}).prompt_filter_results
            self._raw_filters = None
        return self._filters

    def feed(self, event: dict[str, Any]) -> Any:
        """The chunk(s) one event makes: a chunk, a list of chunks (translated streams), None, or
        the event itself (a dict) when it is kept as sent: :meth:`chunk` makes its chunk."""
        if self.translator is not None:
            return [c for c in map(self._keep, self.translator.feed(event)) if c is not None]
        checks = self.checks
        kept = checks is not None and not changed(checks, event)
        if not event.get("choices") and not event.get("id") and not event.get("usage"):
            if "prompt_filter_results" in event:
                if kept:
                    self._filters, self._raw_filters = None, event["prompt_filter_results"]
                else:
                    first = self.call.plugins.hook.normalize_chunk(route=self.call.route, chunk=event)
                    self._filters = getattr(first, "prompt_filter_results", None)
                    self._raw_filters = None
                self._pending_filters = True
            return None
        if kept and _ENVELOPE.issubset(event) and type(choices := event["choices"]) is list:
            return self._keep_event(event, choices)
        return self._keep(self.call.plugins.hook.normalize_chunk(route=self.call.route, chunk=event))

    def _keep_event(self, event: dict[str, Any], choices: list[Any]) -> dict[str, Any] | None:
        """What :meth:`_keep` notes of a chunk, read from an event kept as sent."""
        if self._pending_filters:
            raw = self._raw_filters
            if raw is None and self._filters is not None:  # typed by a plugin: as it gave them
                raw = [f.model_dump(exclude_unset=True) if isinstance(f, BaseModel) else f for f in self._filters]
            event["prompt_filter_results"] = raw
            self._pending_filters = False
        model = event["model"]
        if model and self.model is None and type(model) is str:
            self.model = model
        usage = event.get("usage")
        if usage is not None:
            self.usage = Usage.model_validate(usage)
            if not choices and not self.call.include_usage:
                return None  # asked for pricing only (ChatRequest.stream_usage): not the caller's
        if self.id is None:
            self.id = event["id"] or None
        for choice in choices:
            reason = choice.get("finish_reason") if type(choice) is dict else None
            if reason:
                self.finish_reasons.append(reason)
        return event

    @staticmethod
    def chunk(event: dict[str, Any]) -> ChatCompletionChunk:
        """The chunk of an event kept as sent: validated as its plugin's ``normalize_chunk`` does."""
        return ChatCompletionChunk.model_validate(event)

    def _keep(self, chunk: Any) -> Any:
        """Check one normalized chunk and note its model, id, usage and finish reasons."""
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
        if self.id is None:
            self.id = chunk.id or None
        for choice in chunk.choices:
            if choice.finish_reason:
                self.finish_reasons.append(choice.finish_reason)
        return chunk

    def ids(self) -> tuple[str | None, str | None, list[str] | None]:
        """The stream's (model, id, finish reasons) for observers."""
        return self.model, self.id, self.finish_reasons or None


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
    chat._attach(text._response_headers, text._hidden_params)
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
_ENVELOPE = frozenset(("id", "object", "created", "model", "choices"))
"""The fields an event needs to be sent as it came (the proxy adds them to chunks it serialises)."""


def _dumps(event: dict[str, Any]) -> bytes:
    # pydantic-core's encoder: compact UTF-8, a fifth of json.dumps' time on a chunk.
    try:
        return to_json(event)
    except PydanticSerializationError:  # a lone surrogate (an escape JSON allows): as an escape again
        return json.dumps(event, separators=(",", ":")).encode()


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
        _observe(self._call, status=self._response.status_code, usage=usage, headers=self._response.headers,
                 ids=self._assembler.ids(), cost=cost)  # fmt: skip

    @property
    def prompt_filter_results(self) -> list[Any] | None:
        """Azure's prompt annotations from the stream's first event (None before it is read)."""
        return self._assembler.prompt_filter_results

    @property
    def _response_headers(self) -> httpx.Headers:
        """The upstream's response headers, under the name LiteLLM uses (same as :attr:`headers`)."""
        return self.headers

    if not TYPE_CHECKING:  # typed attributes stay checked

        def __getattr__(self, name: str) -> Any:
            # A typed view of the response headers a provider plugin contributes (header_views).
            return _header_views().read_view(self, self.__dict__.get("headers"), name)


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
                if type(chunk) is dict:
                    yield self._assembler.chunk(chunk)  # type: ignore[misc]
                elif type(chunk) is list:
                    yield from chunk
                elif chunk is not None:
                    yield chunk
        except httpx.TransportError as exc:
            raise _fail(self._call, _stream_broken(exc)) from exc
        except APIError as err:  # an error event inside the stream, raised by its translator
            raise _fail(self._call, _annotate(self._call, err)) from err
        except GeneratorExit:  # closed or dropped before its end: observers still see the call end
            _observe_cancelled(self._call, self._response, self._assembler)
            raise
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

    def __aiter__(self) -> AsyncIterator[_ChunkT]:
        return self._items(False)  # type: ignore[return-value]

    def _wire_items(self) -> AsyncIterator[list[_ChunkT | bytes]]:
        """The stream for the proxy: a list per upstream read of what it made (never waiting for
        more), of chunks, except that an event no plugin changes (``keeps_answers``) comes as
        its JSON: the upstream's own bytes, or the event as parsed when the first event's
        annotations were folded into it or its bytes were not kept. When the upstream's
        ``[DONE]`` came in a read, the stream is priced and observed first, and that read's list
        ends with :data:`modelyard._sse.END`: nothing follows it."""
        return self._items(True)  # type: ignore[return-value]

    async def _items(self, wire: bool) -> AsyncIterator[_ChunkT | bytes | list[_ChunkT | bytes]]:
        if self._replay is not None:
            if wire:  # all there at once: one list, and the end
                whole: list[_ChunkT | bytes] = list(self._replay)
                whole.append(END)
                yield whole
                return
            for replayed in self._replay:
                yield replayed
            return
        assert self._response is not None
        assembler = self._assembler
        parser = SSEParser()
        last: list[_ChunkT | bytes] | None = None
        try:
            async for events in aiter_sse_batches(self._response, parser):
                if wire:
                    out: list[_ChunkT | bytes] = []
                    for event, raw in events:
                        folded = assembler._pending_filters  # a kept event gets the first event's annotations
                        chunk = assembler.feed(event)
                        if type(chunk) is dict:
                            out.append(_dumps(chunk) if raw is None or folded else raw)
                        elif type(chunk) is list:
                            out.extend(chunk)
                        elif chunk is not None:
                            out.append(chunk)
                    if parser.done:  # the upstream's [DONE] came with this read: sent with it, after the bookkeeping
                        last = out
                        continue  # the batches end here (a break would leave them to asyncio to close)
                    if out:
                        yield out
                    continue
                for event, _ in events:
                    chunk = assembler.feed(event)
                    if type(chunk) is dict:
                        yield assembler.chunk(chunk)  # type: ignore[misc]
                    elif type(chunk) is list:
                        for translated in chunk:
                            yield translated
                    elif chunk is not None:
                        yield chunk
        except httpx.TransportError as exc:
            raise _fail(self._call, _stream_broken(exc)) from exc
        except APIError as err:  # an error event inside the stream, raised by its translator
            raise _fail(self._call, _annotate(self._call, err)) from err
        except (GeneratorExit, asyncio.CancelledError):  # closed, dropped or cancelled (a client left)
            _observe_cancelled(self._call, self._response, self._assembler)
            raise
        finally:
            await self._response.aclose()
        self._finished()
        if last is not None:
            last.append(END)
            yield last

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
            and, typed, the header views provider plugins register (``azure_headers`` ...).
    """


class AsyncChatStream(_AsyncStream[ChatCompletionChunk]):
    """The async twin of :class:`ChatStream` (``async for chunk in stream``)."""


class TextStream(_SyncStream[TextCompletion]):
    """A sync iterator of legacy completion chunks (:class:`TextCompletion`, ``choices[i].text``)."""


class AsyncTextStream(_AsyncStream[TextCompletion]):
    """The async twin of :class:`TextStream`."""


def _observe_cancelled(call: _Call, response: httpx.Response, assembler: _ChunkAssembler) -> None:
    """``on_success`` for a stream its reader stopped before the end (``cancelled``, usage so far)."""
    _observe(call, status=response.status_code, usage=assembler.usage, headers=response.headers,
             ids=assembler.ids(), cancelled=True)  # fmt: skip


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
        raise _fail(call, _error(call, response), response.headers)
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
        raise _fail(call, _error(call, response), response.headers)
    return response


# --------------------------------------------------------------------------- public API


def _mode(kwargs: dict[str, Any]) -> Any:
    """The deployment's ``model_info.mode`` when the caller (the Router, the proxy) passed it."""
    info = kwargs.get("model_info")
    return info.get("mode") if info.__class__ is dict else None


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
    if _mode(kwargs) == "responses":  # a deployment serving only the Responses API (docs/responses.md)
        from .responses_bridge import completion_via_responses

        return completion_via_responses(model, messages, stream, kwargs)  # type: ignore[no-any-return]
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
    if _mode(kwargs) == "responses":
        from .responses_bridge import acompletion_via_responses

        return await acompletion_via_responses(model, messages, stream, kwargs)  # type: ignore[no-any-return]
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


# --------------------------------------------------------------------------- table-driven operations


def _bind(op: Operation, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """The call's model and its other arguments by name, positional ones named by ``op.signature``."""
    names = op.signature
    if len(args) > len(names):
        raise TypeError(f"{op.sdk}() takes at most {len(names)} positional argument(s) ({', '.join(names)})")
    for name, value in zip(names, args, strict=False):
        if name in kwargs:
            raise TypeError(f"{op.sdk}() got multiple values for argument {name!r}")
        kwargs[name] = value
    if "model" not in kwargs:
        raise TypeError(f"{op.sdk}() missing required argument 'model'")
    return kwargs.pop("model"), kwargs


def _result(call: _Call, op: Operation, response: httpx.Response) -> Any:
    result = _normalize(call, response)
    if not isinstance(result, op.response):
        names = ", ".join(i.plugin_name for i in call.plugins.hook.normalize_response.get_hookimpls())
        raise PluginError(
            f"normalize_response returned {type(result).__name__} for {op.name!r}, expected "
            f"{op.response.__name__} (plugins implementing it: {names})"
        )
    return result


def _streamed(call: _Call) -> _Call:
    """A binary answer is not read by the transport: the caller streams it (bounded memory)."""
    call.request = call.request.model_copy(update={"stream": True})
    return call


def _binary(call: _Call, response: httpx.Response) -> BinaryResponse:
    """An open binary answer; the observers run once its body has been read.

    A passed-through answer (``Operation.streams_through``) is read on the side for its usage
    and cost (:mod:`modelyard._passthrough`).
    """
    op = OPERATIONS.get(call.route.operation)
    if op is not None and op.streams_through:
        from ._passthrough import UsageMeter

        meter = UsageMeter(call, response)
        return BinaryResponse(response, on_done=meter.done, tap=meter.feed)
    return BinaryResponse(response, on_done=lambda: _observe(call, status=response.status_code, cost=call.cost(None, None)))


def _doc(op: Operation, twin: bool) -> str:
    if twin:
        return f"The async twin of :func:`{op.sdk}`."
    model = "        model: ``<provider>/<deployment>`` (a model string any provider plugin serves)."
    args = "\n".join(
        model if name == "model" else f"        {name}: the operation's ``{name}`` (see :class:`~modelyard.types.{op.request.__name__}`)."
        for name in op.signature
    )
    return f"""Call the {op.description} operation, as LiteLLM's ``{op.sdk}`` (driven by its row in :mod:`modelyard.operations`).

    Args:
{args}
        **kwargs: the fields of :class:`~modelyard.types.{op.request.__name__}`, and the same
            connection and control settings as :func:`completion` (``api_key``, ``api_base``,
            ``api_version``, ``timeout``, ``num_retries``, ``extra_headers``, ``extra_body`` ...).

    Returns:
        A :class:`~modelyard.types.{op.response.__name__}`.

    Raises:
        BadRequestError: invalid input (the message names the field), before anything is sent.
        PluginNotLoadedError: no loaded plugin serves {op.name!r} for the model's provider.
        APIError: the upstream's error, mapped to its class.
    """


def operation_functions(op: Operation) -> tuple[Callable[..., Any], Callable[..., Awaitable[Any]]]:
    """The SDK function and its async twin for a JSON-in, JSON-out operation row.

    Both run the one pipeline: :func:`_prepare_operation` (steps 1-4), the transport's send
    (step 5), the provider's ``normalize_response`` checked against ``op.response`` (step 6),
    ``map_error`` and the observers (7, 8).
    """

    def call(*args: Any, **kwargs: Any) -> Any:
        prepared = _prepare_operation(op, *_bind(op, args, kwargs))
        try:
            if op.answer == "binary":
                return _binary(prepared, _send(_streamed(prepared)))
            return _result(prepared, op, _send(prepared))
        finally:
            _close(prepared.owned)  # the upload is sent once the answer has started

    async def acall(*args: Any, **kwargs: Any) -> Any:
        prepared = _prepare_operation(op, *_bind(op, args, kwargs))
        try:
            if op.answer == "binary":
                return _binary(prepared, await _asend(_streamed(prepared)))
            return _result(prepared, op, await _asend(prepared))
        finally:
            _close(prepared.owned)

    for fn, name, twin in ((call, op.sdk, False), (acall, op.async_sdk, True)):
        fn.__name__ = fn.__qualname__ = name
        fn.__module__ = __name__
        fn.__doc__ = _doc(op, twin)
    return call, acall


embedding, aembedding = operation_functions(OPERATIONS["embeddings"])
image_generation, aimage_generation = operation_functions(OPERATIONS["image_generation"])
image_edit, aimage_edit = operation_functions(OPERATIONS["image_edit"])
speech, aspeech = operation_functions(OPERATIONS["speech"])
transcription, atranscription = operation_functions(OPERATIONS["transcriptions"])
translation, atranslation = operation_functions(OPERATIONS["translations"])


def __getattr__(name: str) -> Any:
    # The Responses API has its own functions (typed event streams, id-addressed calls, the
    # bridge to chat) in modelyard.responses_api; the Router finds them here by the row's SDK name.
    if name in ("responses", "aresponses"):
        from . import responses_api

        return getattr(responses_api, name)
    if name.startswith("_"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    # The SDK functions of the operation rows the loaded plugins contribute (register_operations).
    from .operation_table import sdk_function

    return sdk_function(name, __name__)


def _header_views() -> Any:
    """:mod:`modelyard.header_views` (imported on first use: it loads the plugins)."""
    from . import header_views

    return header_views
