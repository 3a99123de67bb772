"""``modelyard serve`` with OpenTelemetry tracing on, for ``./dev bench --observability``.

Sets an SDK tracer provider whose spans go through a ``BatchSpanProcessor`` to an exporter that
drops them (the cost of making and exporting spans, without a collector), then runs the CLI.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult


class DropExporter(SpanExporter):
    """Accepts spans and keeps nothing."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


provider = TracerProvider()
provider.add_span_processor(BatchSpanProcessor(DropExporter()))
trace.set_tracer_provider(provider)

from modelyard.cli import main  # noqa: E402  (after the provider is set)

sys.exit(main(sys.argv[1:]))
