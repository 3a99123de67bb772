"""modelyard-otel: OpenTelemetry traces of modelyard calls (GenAI semantic conventions).

Install it next to ``modelyard`` and configure an OpenTelemetry tracer provider (the SDK and
an exporter, or ``opentelemetry-instrument``); see ``docs/observability.md``.
"""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
