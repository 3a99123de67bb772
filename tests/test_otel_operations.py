"""The otel plugin traces every operation of the table, not only chat: one span per call, named for it."""

from __future__ import annotations

from collections.abc import Iterator

import modelyard
import pytest
from modelyard.testing import KEY, Deployment, Emulator
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

PROMPT = "a private prompt: the launch code is swordfish-4417"


@pytest.fixture
def exporter(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", provider)
    yield exporter
    provider.shutdown()


def test_embeddings_and_images_have_their_own_spans(api_base: str, emulator: Emulator, exporter: InMemorySpanExporter) -> None:
    emulator.add_deployment(Deployment("ot-embed", model="text-embedding-3-small"))
    emulator.add_deployment(Deployment("ot-dalle", model="dall-e-3"))
    common = {"api_base": api_base, "api_key": KEY, "api_version": "2024-10-21"}
    reply = modelyard.embedding(model="azure/ot-embed", input=[PROMPT], **common)
    modelyard.image_generation(model="azure/ot-dalle", prompt=PROMPT, **common)
    spans = {s.name: s for s in exporter.get_finished_spans() if s.kind == trace.SpanKind.CLIENT}
    assert set(spans) == {"embeddings ot-embed", "image_generation ot-dalle"}
    embed = spans["embeddings ot-embed"].attributes or {}
    assert embed["gen_ai.operation.name"] == "embeddings"
    assert embed["gen_ai.request.model"] == "ot-embed"
    assert embed["gen_ai.usage.input_tokens"] == reply.usage.prompt_tokens
    assert spans["image_generation ot-dalle"].attributes["gen_ai.operation.name"] == "image_generation"  # type: ignore[index]
    for span in spans.values():  # no prompt text by default
        assert PROMPT not in repr(dict(span.attributes or {})) + repr([e.attributes for e in span.events])
    # each call's span context went upstream
    sent = [r.headers.get("traceparent") for r in emulator.requests]
    assert len(sent) == 2 and all(sent)
