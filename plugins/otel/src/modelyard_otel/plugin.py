"""The hooks: a span per pipeline call, with the OpenTelemetry GenAI semantic conventions.

``on_call_start`` opens a CLIENT span named ``{operation} {deployment}`` (``chat gpt-4o``) and
returns the ``traceparent`` that carries it upstream; ``on_success`` / ``on_failure`` add the
response's attributes and end it. The parent is, in order: the first try of the same Router
call (so the Router's retries and fallbacks are its children), the trace context the proxy
request came with, the caller's current span. Retries inside one call (the transport's, after
a 429 or a 5xx) become child spans ``retry`` with their real start and end.

Nothing is recorded while no tracer provider is configured (OpenTelemetry's default): the hooks
declare :func:`tracing` as their ``active_when`` check, so the core skips them, and the events
it would build for them, until one is. No prompt or completion is put in an attribute unless
``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` is ``true``.
"""

from __future__ import annotations

import functools
import json
import os
from typing import Any
from urllib.parse import urlsplit

from modelyard import hookimpl
from modelyard.plugin import active_when
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

HOOK_API = (1, 13)  # active_when (1.13); on_call_start (1.5)

_KEY = "modelyard-otel"
_CAPTURE = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
_SYSTEMS = {"azure": "az.ai.openai", "azure_text": "az.ai.openai"}
_PROVIDERS = {"azure": "azure.ai.openai", "azure_text": "azure.ai.openai"}
_REQUEST_PARAMS = {
    "max_tokens": "gen_ai.request.max_tokens", "max_completion_tokens": "gen_ai.request.max_tokens",
    "temperature": "gen_ai.request.temperature", "top_p": "gen_ai.request.top_p", "seed": "gen_ai.request.seed",
    "frequency_penalty": "gen_ai.request.frequency_penalty", "presence_penalty": "gen_ai.request.presence_penalty",
    "n": "gen_ai.request.choice.count",
}  # fmt: skip
_tracer: trace.Tracer | None = None


_UNSET = (trace.ProxyTracerProvider, trace.NoOpTracerProvider)


def tracing() -> bool:
    """Whether a tracer provider is set (until one is, OpenTelemetry would record nothing)."""
    return not isinstance(trace.get_tracer_provider(), _UNSET)


def _get_tracer() -> trace.Tracer | None:
    """The plugin's tracer, or None while no tracer provider is set (nothing would be recorded)."""
    global _tracer
    provider = trace.get_tracer_provider()
    if isinstance(provider, _UNSET):
        return None
    if _tracer is None or getattr(_tracer, "_modelyard_provider", None) is not provider:
        from . import __version__

        _tracer = provider.get_tracer("modelyard_otel", __version__)
        _tracer._modelyard_provider = provider  # type: ignore[attr-defined]  # a new provider (tests) gets a new tracer
    return _tracer


def capture_content() -> bool:
    """Whether prompts and completions may go into span attributes (the standard opt-in)."""
    return os.environ.get(_CAPTURE, "").strip().lower() == "true"


# The GenAI semantic conventions' operation names where they have one; else the operation's own
# name (image_generation, speech, transcriptions ...), so every operation's span says what it is.
_OPERATIONS = {"chat": "chat", "completions": "text_completion", "embeddings": "embeddings",
               "responses": "chat", "messages": "chat"}  # fmt: skip


def _operation(route: Any) -> str:
    operation = str(route.operation)
    return _OPERATIONS.get(operation, operation)


def _parent(call: Any) -> Any:
    scope = call.scope
    if scope is not None:
        first = scope.state.get(_KEY)
        if first is not None:  # a retry or fallback of the Router: a child of its first try
            return trace.set_span_in_context(first)
        if scope.trace_headers:
            return propagate.extract(scope.trace_headers)
    return otel_context.get_current()


@hookimpl
@active_when(tracing)
def on_call_start(call: Any) -> dict[str, str] | None:
    """Open the call's span; return the ``traceparent`` for the upstream request."""
    tracer = _get_tracer()
    if tracer is None:
        return None
    route = call.route
    operation = _operation(route)
    # What a sampler may look at (the conventions' "at span creation" set); the rest only when
    # the span records, so an unsampled call costs little.
    first: dict[str, Any] = {
        "gen_ai.operation.name": operation,
        "gen_ai.system": _SYSTEMS.get(route.provider, route.provider),
        "gen_ai.provider.name": _PROVIDERS.get(route.provider, route.provider),
        "gen_ai.request.model": route.deployment,
    }
    host, port = _server(call.url.partition("?")[0])
    if host:
        first["server.address"] = host
        if port:
            first["server.port"] = port
    span = tracer.start_span(f"{operation} {route.deployment}", context=_parent(call), kind=SpanKind.CLIENT,
                             attributes=first)  # fmt: skip
    scope = call.scope
    call.state[_KEY] = span
    if scope is not None and _KEY not in scope.state:
        scope.state[_KEY] = span
    if span.is_recording():
        span.set_attributes(_request_attributes(call))
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=trace.set_span_in_context(span))
    return carrier or None


def _request_attributes(call: Any) -> dict[str, Any]:
    attributes: dict[str, Any] = {"modelyard.stream": bool(call.stream), "modelyard.family": call.route.family}
    params = call.request.params
    for name, attribute in _REQUEST_PARAMS.items():
        value = params.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            attributes[attribute] = value
    stop = params.get("stop")
    if stop:
        attributes["gen_ai.request.stop_sequences"] = [stop] if isinstance(stop, str) else [str(s) for s in stop]
    scope = call.scope
    if scope is not None:
        if scope.model_group:
            attributes["modelyard.router.model_group"] = scope.model_group
        if scope.deployment_id:
            attributes["modelyard.router.deployment_id"] = scope.deployment_id
        attributes["modelyard.router.attempt"] = scope.attempt
        if scope.fallback_from:
            attributes["modelyard.router.fallback_from"] = scope.fallback_from
    if capture_content():
        messages = call.request.messages or [{"role": "user", "content": params.get("prompt")}]
        attributes["gen_ai.input.messages"] = json.dumps(messages, default=str, ensure_ascii=False)
    return attributes


@functools.lru_cache(maxsize=256)
def _server(url: str) -> tuple[str | None, int | None]:
    """``server.address`` / ``server.port`` of an upstream URL (cached: a proxy calls a few bases)."""
    try:
        parts = urlsplit(url)
        return parts.hostname, parts.port
    except ValueError:
        return None, None


def _end(event: Any) -> Any:
    state = getattr(event, "state", None) or {}
    span = state.get(_KEY)
    if span is None:
        return None
    if not span.is_recording():
        span.end()
        return None
    attributes: dict[str, Any] = {"modelyard.retries": getattr(event, "retries", 0)}
    tracer = _get_tracer()
    log = getattr(event, "attempt_log", None) or []
    if tracer is not None and log:
        parent = trace.set_span_in_context(span)
        for i, (start, end, outcome) in enumerate(log):
            child = tracer.start_span("retry" if i else "attempt", context=parent, kind=SpanKind.INTERNAL,
                                      start_time=int(start * 1e9),
                                      attributes={"modelyard.attempt": i, "modelyard.attempt.outcome": outcome})  # fmt: skip
            if outcome.isdigit():
                child.set_attribute("http.response.status_code", int(outcome))
            child.set_status(Status(StatusCode.ERROR, outcome))
            child.end(end_time=int(end * 1e9))
        last = tracer.start_span("retry", context=parent, kind=SpanKind.INTERNAL, start_time=int(log[-1][1] * 1e9),
                                 attributes={"modelyard.attempt": len(log)})  # fmt: skip
        last.end()
    status = getattr(event, "status_code", None)
    if status is not None:
        attributes["http.response.status_code"] = status
    for attribute, value in (("gen_ai.response.model", getattr(event, "response_model", None)),
                             ("gen_ai.response.id", getattr(event, "response_id", None))):  # fmt: skip
        if value:
            attributes[attribute] = value
    reasons = getattr(event, "finish_reasons", None)
    if reasons:
        attributes["gen_ai.response.finish_reasons"] = list(reasons)
    usage = event.usage or {}
    for key, attribute in (("prompt_tokens", "gen_ai.usage.input_tokens"), ("completion_tokens", "gen_ai.usage.output_tokens")):
        if isinstance(usage.get(key), int):
            attributes[attribute] = usage[key]
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens")
    if isinstance(cached, int) and cached:
        attributes["gen_ai.usage.cache_read.input_tokens"] = cached
    if getattr(event, "cancelled", False):
        attributes["modelyard.cancelled"] = True  # a stream closed before its end
    cost = getattr(event, "cost", None)  # set by a core that computes costs
    if isinstance(cost, int | float):
        attributes["modelyard.cost_usd"] = float(cost)
    span.set_attributes(attributes)  # one lock and one pass, not one per attribute
    return span


@hookimpl
@active_when(tracing)
def on_success(event: Any) -> None:
    """Finish the call's span with the response's attributes."""
    span = _end(event)
    if span is None:
        return
    response = getattr(event, "response", None)
    if response is not None and capture_content():
        choices = getattr(response, "choices", None) or []
        out = [c.model_dump(exclude_unset=True, mode="json") for c in choices]
        span.set_attribute("gen_ai.output.messages", json.dumps(out, default=str, ensure_ascii=False))
    span.end()


@hookimpl
@active_when(tracing)
def on_failure(event: Any) -> None:
    """Finish the call's span as failed: ``error.type`` is the error's class, never its message."""
    span = _end(event)
    if span is None:
        return
    error = event.error
    kind = type(error).__name__ if error is not None else "error"
    span.set_attribute("error.type", kind)
    span.set_status(Status(StatusCode.ERROR, kind))  # an upstream message may quote the prompt
    span.end()
