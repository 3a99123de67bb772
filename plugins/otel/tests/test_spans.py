"""Spans of real calls to the emulator, read back from OpenTelemetry's in-memory exporter."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import modelyard
import pytest
from modelyard.plugins import get_plugins
from modelyard.testing import KEY, Deployment, Emulator, Faults, litellm_params, running_proxy
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

# Content the spans must not carry; not a credential (the proxy answers it back through the emulator).
PRIVATE_PROMPT = "the launch code is swordfish-4417"
MESSAGES = [{"role": "user", "content": PRIVATE_PROMPT}]
MASTER = "sk-otel-test-master-key-0123456789"
INCOMING = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.fixture
def exporter(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    """A real SDK tracer provider exporting to memory (set as the global one for the test)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    # The global provider can be set once per process; the plugin reads it at each call.
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", provider)
    yield exporter
    provider.shutdown()


def calls(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.kind == trace.SpanKind.CLIENT]


def everything(span: ReadableSpan) -> str:
    return repr(dict(span.attributes or {})) + repr([e.attributes for e in span.events]) + span.name


def sdk(api_base: str, deployment: str) -> dict[str, Any]:
    return {"model": f"azure/{deployment}", "api_base": api_base, "api_key": KEY, "api_version": "2024-10-21"}


def test_a_call_has_one_span_with_the_genai_attributes(api_base: str, emulator: Emulator, exporter: InMemorySpanExporter) -> None:
    reply = modelyard.completion(messages=MESSAGES, max_tokens=20, temperature=0.5, **sdk(api_base, "gpt-4o"))
    (span,) = calls(exporter)
    a = span.attributes or {}
    assert span.name == "chat gpt-4o"
    assert a["gen_ai.system"] == "az.ai.openai"
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.request.model"] == "gpt-4o"
    assert a["gen_ai.request.max_tokens"] == 20
    assert a["gen_ai.request.temperature"] == 0.5
    assert a["gen_ai.response.model"] == reply.model
    assert a["gen_ai.response.id"] == reply.id
    assert a["gen_ai.usage.input_tokens"] == reply.usage.prompt_tokens
    assert a["gen_ai.usage.output_tokens"] == reply.usage.completion_tokens
    assert list(a["gen_ai.response.finish_reasons"]) == ["stop"]
    assert a["server.address"] == "127.0.0.1"
    assert a["modelyard.retries"] == 0
    assert PRIVATE_PROMPT not in everything(span) and KEY not in everything(span)
    # the span's context went upstream
    sent = emulator.requests[-1].headers["traceparent"]
    assert sent.split("-")[1] == format(span.context.trace_id, "032x")
    assert sent.split("-")[2] == format(span.context.span_id, "016x")


def test_a_retried_call_has_child_spans(api_base: str, emulator: Emulator, exporter: InMemorySpanExporter) -> None:
    emulator.add_deployment(Deployment("ot-flaky", faults=Faults(script=[429, 503], retry_after=0.01)))
    modelyard.completion(messages=MESSAGES, num_retries=2, **sdk(api_base, "ot-flaky"))
    (span,) = calls(exporter)
    assert (span.attributes or {})["modelyard.retries"] == 2
    children = sorted((s for s in exporter.get_finished_spans() if s.parent and s.parent.span_id == span.context.span_id),
                      key=lambda s: s.start_time or 0)  # fmt: skip
    assert [c.name for c in children] == ["attempt", "retry", "retry"]
    assert [(c.attributes or {}).get("http.response.status_code") for c in children] == [429, 503, None]
    assert [c.status.status_code for c in children] == [StatusCode.ERROR, StatusCode.ERROR, StatusCode.UNSET]
    assert all(span.start_time <= c.start_time <= c.end_time <= span.end_time for c in children)  # type: ignore[operator]


def test_a_failed_call_names_the_error_class_not_its_message(api_base: str, emulator: Emulator, exporter: InMemorySpanExporter) -> None:
    emulator.add_deployment(Deployment("ot-down", faults=Faults(error_rate=1.0, error_status=500, echo_headers=True)))
    with pytest.raises(modelyard.APIError):
        modelyard.completion(messages=MESSAGES, num_retries=0, **sdk(api_base, "ot-down"))
    (span,) = calls(exporter)
    assert span.status.status_code is StatusCode.ERROR
    assert (span.attributes or {})["error.type"] == "InternalServerError"
    assert KEY not in everything(span) and KEY not in (span.status.description or "")


async def test_a_streamed_call(api_base: str, emulator: Emulator, exporter: InMemorySpanExporter) -> None:
    stream = await modelyard.acompletion(messages=MESSAGES, stream=True, stream_options={"include_usage": True},
                                         **sdk(api_base, "gpt-4o"))  # fmt: skip
    assert calls(exporter) == []  # open until the stream ends
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    (span,) = calls(exporter)
    a = span.attributes or {}
    assert a["modelyard.stream"] is True
    assert a["gen_ai.response.model"]
    assert a["gen_ai.usage.output_tokens"] > 0
    assert list(a["gen_ai.response.finish_reasons"]) == ["stop"]
    assert text and text not in everything(span)


def test_a_stream_closed_early_still_ends_its_span(api_base: str, emulator: Emulator, exporter: InMemorySpanExporter) -> None:
    with modelyard.completion(messages=MESSAGES, stream=True, **sdk(api_base, "gpt-4o")) as stream:
        for _ in stream:
            break  # the reader stops after the first chunk
    (span,) = calls(exporter)
    assert (span.attributes or {})["modelyard.cancelled"] is True
    assert span.status.status_code is StatusCode.UNSET


def test_content_capture_is_opt_in(api_base: str, emulator: Emulator, exporter: InMemorySpanExporter,
                                   monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    modelyard.completion(messages=MESSAGES, **sdk(api_base, "gpt-4o"))
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
    reply = modelyard.completion(messages=MESSAGES, **sdk(api_base, "gpt-4o"))
    off, on = calls(exporter)
    assert PRIVATE_PROMPT not in everything(off)
    assert PRIVATE_PROMPT in (on.attributes or {})["gen_ai.input.messages"]
    assert (reply.choices[0].message.content or "") in (on.attributes or {})["gen_ai.output.messages"]


def test_the_proxy_passes_the_incoming_trace_on(api_base: str, emulator: Emulator, exporter: InMemorySpanExporter,
                                               caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    """traceparent in -> the call's span is its child -> its traceparent goes upstream; the Router's
    retry and fallback are children of the first try; the access log has the trace id."""
    emulator.add_deployment(Deployment("ot-a", faults=Faults(script=[503], retry_after=0.01)))
    emulator.add_deployment(Deployment("ot-down", faults=Faults(error_rate=1.0, error_status=503)))
    config = {
        "model_list": [
            {"model_name": "pool", "litellm_params": litellm_params(api_base, "ot-a"), "model_info": {"id": "ot-a"}},
            {"model_name": "solo", "litellm_params": litellm_params(api_base, "ot-down"), "model_info": {"id": "ot-down"}},
        ],
        "router_settings": {"num_retries": 0, "fallbacks": [{"solo": ["pool"]}]},
        "general_settings": {"master_key": MASTER},
    }
    access = logging.getLogger("modelyard.proxy.access")
    access.addHandler(caplog.handler)
    caplog.set_level("INFO", logger="modelyard.proxy.access")
    try:
        with running_proxy(config, master_key=MASTER) as proxy:
            r = httpx.post(f"{proxy.url}/v1/chat/completions", json={"model": "solo", "messages": MESSAGES},
                           headers={"Authorization": f"Bearer {MASTER}", "traceparent": INCOMING}, timeout=30)  # fmt: skip
            assert r.status_code == 503, r.text  # solo fails, pool's ot-a answers 503 once too
            r = httpx.post(f"{proxy.url}/v1/chat/completions", json={"model": "solo", "messages": MESSAGES},
                           headers={"Authorization": f"Bearer {MASTER}", "traceparent": INCOMING}, timeout=30)  # fmt: skip
            assert r.status_code == 200, r.text
            r = httpx.post(f"{proxy.url}/v1/chat/completions", json={"model": "pool", "messages": MESSAGES},
                           headers={"Authorization": f"Bearer {MASTER}"}, timeout=30)  # fmt: skip
            assert r.status_code == 200, r.text
    finally:
        access.removeHandler(caplog.handler)
    *spans, own = calls(exporter)  # the last request came without a traceparent: a trace of its own
    trace_id = int(INCOMING.split("-")[1], 16)
    assert {s.context.trace_id for s in spans} == {trace_id}
    assert own.context.trace_id != trace_id and own.parent is None
    first, fallback = spans[-2:]  # the second request: solo's ot-down fails, then pool's ot-a answers
    assert first.parent is not None and first.parent.span_id == int(INCOMING.split("-")[2], 16)
    assert fallback.parent is not None and fallback.parent.span_id == first.context.span_id
    assert (fallback.attributes or {})["modelyard.router.fallback_from"] == "solo"
    assert (fallback.attributes or {})["modelyard.router.attempt"] == 1
    upstream = [rq.headers["traceparent"] for rq in emulator.requests if rq.path.split("/")[3] == "ot-a"]
    assert upstream[-2].split("-")[2] == format(fallback.context.span_id, "016x")
    assert upstream[-1].split("-")[2] == format(own.context.span_id, "016x")
    assert all(PRIVATE_PROMPT not in everything(s) for s in exporter.get_finished_spans())
    lines = {(line := json.loads(rec.getMessage()))["request_id"]: line for rec in caplog.records
             if rec.name == "modelyard.proxy.access"}  # fmt: skip
    # the incoming trace id, or the one the plugin started and sent upstream
    assert [line["trace_id"] for line in lines.values()] == [INCOMING.split("-")[1]] * 2 + [format(own.context.trace_id, "032x")]


def _observed() -> tuple[bool, bool, bool]:
    seen = get_plugins().observers()
    return seen.start, seen.success, seen.failure


def test_nothing_is_recorded_or_sent_without_a_tracer_provider(api_base: str, emulator: Emulator) -> None:
    modelyard.completion(messages=MESSAGES, **sdk(api_base, "gpt-4o"))
    assert "traceparent" not in emulator.requests[-1].headers
    # The hooks are skipped (HOOK_API 1.13's active_when), and the core builds no event for them.
    assert _observed() == (False, False, False)


def test_the_hooks_are_asked_once_a_provider_is_set(api_base: str, emulator: Emulator, exporter: InMemorySpanExporter) -> None:
    assert _observed() == (True, True, True)
    modelyard.completion(messages=MESSAGES, **sdk(api_base, "gpt-4o"))
    assert len(calls(exporter)) == 1 and "traceparent" in emulator.requests[-1].headers
