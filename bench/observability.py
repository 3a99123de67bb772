"""The CPU the proxy's metrics and the OpenTelemetry plugin add per request, measured in-process.

    .venv/bin/python bench/observability.py

The proxy benchmark (``./dev bench --only proxy --observability``) measures the same thing end
to end, but on a shared machine its CPU-per-request figures swing by more than the few percent
at stake; this times just the added work, with ``time.process_time`` (all threads, so the span
exporter's thread counts too), over many iterations:

- metrics: what the proxy does at the end of a chat request with ``/metrics`` on
  (:meth:`ProxyMetrics.request` with one upstream call in the scope), and the scope itself;
- tracing: ``modelyard-otel``'s ``on_call_start`` + ``on_success`` with an SDK tracer provider,
  a ``BatchSpanProcessor`` and an exporter that drops the spans; a bare span for comparison; and
  the plugin again with 10% of traces sampled.

Compare with the proxy's CPU per request from ``./dev bench`` (about 500-700 us on the reference
two-core machine).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import httpx
from modelyard.api import CallRecord, CallStarted
from modelyard.observe import CallScope
from modelyard.proxy.metrics import ProxyMetrics
from modelyard.types import ChatRequest, Route
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import TraceIdRatioBased

ROUTE = Route(model="azure/gpt-4o", provider="azure", family="gpt", deployment="gpt-4o")
HEADERS = httpx.Headers({"x-ratelimit-remaining-requests": "99", "x-ratelimit-remaining-tokens": "9999"})
USAGE = {"prompt_tokens": 10, "completion_tokens": 20, "total_tokens": 30,
         "prompt_tokens_details": {"cached_tokens": 0}, "completion_tokens_details": {"reasoning_tokens": 0}}  # fmt: skip
URL = "http://127.0.0.1:8000/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21"


class DropExporter(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def per_call_us(fn: Callable[[], None], n: int = 20000) -> float:
    for _ in range(n // 10):
        fn()
    started = time.process_time()
    for _ in range(n):
        fn()
    return (time.process_time() - started) / n * 1e6


def main() -> None:
    metrics = ProxyMetrics(["gpt-4o"])

    def scope_only() -> None:
        scope = CallScope()
        scope.calls.append(("gpt-4o", "gpt-4o", CallRecord(ROUTE, 0.01, 200, USAGE, response_headers=HEADERS)))

    def with_metrics() -> None:
        scope = CallScope()
        scope.calls.append(("gpt-4o", "gpt-4o", CallRecord(ROUTE, 0.01, 200, USAGE, response_headers=HEADERS)))
        scope.upstream_seconds = 0.01
        metrics.request(path="/v1/chat/completions", status=200, model="gpt-4o", deployment="gpt-4o",
                        seconds=0.012, scope=scope)  # fmt: skip

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(DropExporter()))
    trace.set_tracer_provider(provider)
    from modelyard_otel import plugin

    request = ChatRequest(messages=[{"role": "user", "content": "hi"}], params={"max_tokens": 10}, stream=False)

    def traced() -> None:
        scope, state = CallScope(), {}
        plugin.on_call_start(CallStarted(ROUTE, request, URL, False, scope, state))
        plugin.on_success(CallRecord(ROUTE, 0.01, 200, USAGE, scope=scope, state=state, response_model="gpt-4o-2024-08-06",
                                     response_id="chatcmpl-1", finish_reasons=["stop"]))  # fmt: skip

    tracer = provider.get_tracer("bench")

    def bare_span() -> None:
        tracer.start_span("chat gpt-4o", kind=trace.SpanKind.CLIENT).end()

    base = per_call_us(scope_only)
    print(f"scope + call record (always, metrics on or off): {base:6.1f} us per request")
    print(f"metrics recorded at the end of a request:        {per_call_us(with_metrics) - base:6.1f} us per request")
    print(f"modelyard-otel span (start, attributes, end):    {per_call_us(traced, 5000) - base:6.1f} us per call")
    print(f"  of which OpenTelemetry's bare span:            {per_call_us(bare_span, 5000):6.1f} us")
    provider.shutdown()
    sampled = TracerProvider(sampler=TraceIdRatioBased(0.1))
    sampled.add_span_processor(BatchSpanProcessor(DropExporter()))
    trace._TRACER_PROVIDER = sampled  # set_tracer_provider works once per process
    print(f"  sampled at 10% (TraceIdRatioBased(0.1)):       {per_call_us(traced, 5000) - base:6.1f} us per call")
    sampled.shutdown()


if __name__ == "__main__":
    main()
