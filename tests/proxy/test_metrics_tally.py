"""The proxy's metrics are tallied per request and flushed into prometheus-client (issue 17, round ten).

What a flush adds must be exactly what prometheus-client's own ``inc()``/``observe()``/``set()``
per value would have recorded, bucket boundaries included; and in multiprocess mode a worker's
counts must reach the shared files when it falls idle, or soon after while it stays busy.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from modelyard.observe import CallScope
from modelyard.proxy import metrics as metrics_module
from modelyard.proxy.metrics import ProxyMetrics
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

GROUPS = ["pool", "solo"]
BOUNDARIES = [*metrics_module._LATENCY_BUCKETS, *metrics_module._OVERHEAD_BUCKETS]


@dataclass
class Event:
    """What the metrics read of a CallRecord."""

    status_code: int | None
    usage: dict[str, Any] | None
    cost: float | None
    response_headers: Any


@dataclass
class Request:
    path: str
    status: int
    model: str | None
    deployment: str | None
    seconds: float
    upstream: float
    calls: list[tuple[str | None, str | None, Event]] = field(default_factory=list)


def usage(prompt: int, completion: int, cached: int, reasoning: int) -> dict[str, Any]:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": cached}, "completion_tokens_details": {"reasoning_tokens": reasoning}}  # fmt: skip


seconds = st.one_of(st.sampled_from(BOUNDARIES), st.floats(0, 200, allow_nan=False), st.just(0.0))


def ratelimit(requests: str, tokens: str) -> httpx.Headers:
    return httpx.Headers({"x-ratelimit-remaining-requests": requests, "x-ratelimit-remaining-tokens": tokens})


events = st.builds(
    Event,
    status_code=st.sampled_from([200, 429, None]),
    usage=st.one_of(st.none(), st.builds(usage, *[st.integers(0, 50)] * 4)),
    cost=st.one_of(st.none(), st.floats(0, 1, allow_nan=False)),
    response_headers=st.one_of(
        st.none(), st.builds(ratelimit, st.sampled_from(["0", "7", "12.5", "many"]), st.sampled_from(["100", "n/a"]))
    ),
)
requests = st.builds(
    Request,
    path=st.sampled_from(["/v1/chat/completions", "/chat/completions", "/health", "/nowhere"]),
    status=st.sampled_from([200, 404, 429]),
    model=st.sampled_from([*GROUPS, "unknown", None]),
    deployment=st.sampled_from(["dep-a", "dep-b", None]),
    seconds=seconds,
    upstream=seconds,
    calls=st.lists(st.tuples(st.sampled_from([*GROUPS, None]), st.sampled_from(["dep-a", "dep-b", None]), events), max_size=3),
)


def reference(sequence: list[Request]) -> CollectorRegistry:
    """The same requests recorded with prometheus-client's per-value calls (what the proxy did before)."""
    r = CollectorRegistry(auto_describe=False)
    req = Counter("modelyard_requests", "", ["model_group", "deployment", "endpoint", "status"], registry=r)
    lat = Histogram("modelyard_request_duration_seconds", "", ["model_group", "endpoint"],
                    buckets=metrics_module._LATENCY_BUCKETS, registry=r)  # fmt: skip
    ovh = Histogram("modelyard_proxy_overhead_seconds", "", ["model_group", "endpoint"],
                    buckets=metrics_module._OVERHEAD_BUCKETS, registry=r)  # fmt: skip
    calls = Counter("modelyard_deployment_calls", "", ["model_group", "deployment", "status"], registry=r)
    tokens = Counter("modelyard_tokens", "", ["model_group", "deployment", "kind"], registry=r)
    cost = Counter("modelyard_cost_usd", "", ["model_group", "deployment"], registry=r)
    remaining = [Gauge(f"modelyard_deployment_remaining_{kind}", "", ["deployment"], registry=r) for kind in ("requests", "tokens")]
    for q in sequence:
        group = q.model if q.model in GROUPS else ""
        endpoint = metrics_module.endpoint_label(q.path)
        req.labels(group, q.deployment or "", endpoint, str(q.status)).inc()
        lat.labels(group, endpoint).observe(q.seconds)
        if q.calls:
            ovh.labels(group, endpoint).observe(max(0.0, q.seconds - q.upstream))
        for call_group, dep, event in q.calls:
            g, d = call_group or group, dep or ""
            calls.labels(g, d, str(event.status_code or "error")).inc()
            for kind, value in (("prompt", (event.usage or {}).get("prompt_tokens")),
                                ("completion", (event.usage or {}).get("completion_tokens")),
                                ("cached", (event.usage or {}).get("prompt_tokens_details", {}).get("cached_tokens")),
                                ("reasoning", (event.usage or {}).get("completion_tokens_details", {}).get("reasoning_tokens"))):  # fmt: skip
                if value:
                    tokens.labels(g, d, kind).inc(value)
            if event.cost:
                cost.labels(g, d).inc(event.cost)
            if event.response_headers is not None:
                for gauge, name in zip(remaining, ("x-ratelimit-remaining-requests", "x-ratelimit-remaining-tokens"), strict=True):
                    try:
                        number = float(event.response_headers[name])
                    except ValueError:  # not a number: the gauge keeps its value
                        continue
                    gauge.labels(d).set(number)
    return r


def values(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample but the ``_created`` times, as {(name, sorted labels): value}."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for family in registry.collect() for s in family.samples
            if not s.name.endswith("_created")}  # fmt: skip


def record(metrics: ProxyMetrics, q: Request, idle: bool = True) -> None:
    scope = CallScope(upstream_seconds=q.upstream)
    scope.calls.extend(q.calls)
    metrics.request(path=q.path, status=q.status, model=q.model, deployment=q.deployment, seconds=q.seconds,
                    scope=scope, idle=idle)  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(first=st.lists(requests, max_size=12), second=st.lists(requests, max_size=12))
def test_a_flush_adds_what_per_value_calls_would_have(first: list[Request], second: list[Request]) -> None:
    metrics = ProxyMetrics(GROUPS)
    for q in first:
        record(metrics, q)
    metrics.flush()
    for q in second:  # tallies start again from zero after a flush: nothing counted twice
        record(metrics, q)
    metrics.flush()
    mine = values(metrics.registry)
    theirs = values(reference(first + second))
    shared = {k: v for k, v in mine.items() if k[0] in {name for name, _ in theirs}}
    assert shared.keys() == theirs.keys()
    for key, value in theirs.items():
        assert shared[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key


def test_an_amount_on_a_bucket_boundary_counts_in_that_bucket() -> None:
    metrics = ProxyMetrics(GROUPS)
    for seconds in (0.01, 0.0100001, 120.0, 120.5):
        record(metrics, Request("/v1/chat/completions", 200, "pool", "dep-a", seconds, 0.0))
    metrics.flush()
    sample = metrics.registry.get_sample_value
    labels = {"model_group": "pool", "endpoint": "/chat/completions"}
    assert sample("modelyard_request_duration_seconds_bucket", {**labels, "le": "0.01"}) == 1
    assert sample("modelyard_request_duration_seconds_bucket", {**labels, "le": "0.025"}) == 2
    assert sample("modelyard_request_duration_seconds_bucket", {**labels, "le": "120.0"}) == 3
    assert sample("modelyard_request_duration_seconds_bucket", {**labels, "le": "+Inf"}) == 4
    assert sample("modelyard_request_duration_seconds_sum", labels) == pytest.approx(0.01 + 0.0100001 + 240.5)


def test_nothing_is_added_to_prometheus_client_before_a_flush_in_one_process() -> None:
    metrics = ProxyMetrics(GROUPS)
    record(metrics, Request("/v1/chat/completions", 200, "pool", "dep-a", 0.2, 0.1))
    metrics.budget(key="bench", remaining=3.5)
    labels = {"model_group": "pool", "deployment": "dep-a", "endpoint": "/chat/completions", "status": "200"}
    assert metrics.registry.get_sample_value("modelyard_requests_total", labels) == 0  # the series, bound, empty
    assert metrics.registry.get_sample_value("modelyard_key_budget_remaining_usd", {"key": "bench"}) is None
    metrics.flush()
    assert metrics.registry.get_sample_value("modelyard_requests_total", labels) == 1
    assert metrics.registry.get_sample_value("modelyard_key_budget_remaining_usd", {"key": "bench"}) == 3.5


def test_in_multiprocess_mode_an_idle_worker_flushes_at_once_and_a_busy_one_soon(monkeypatch: pytest.MonkeyPatch) -> None:
    # prometheus-client picks its multiprocess values at import; here only the flushing policy
    # (ProxyMetrics.multiproc_dir set) is under test, read through the registry.
    monkeypatch.setattr(metrics_module, "_FLUSH_SECONDS", 0.05)
    metrics = ProxyMetrics(GROUPS)
    metrics.multiproc_dir = "/nonexistent"
    labels = {"model_group": "pool", "deployment": "dep-a", "endpoint": "/chat/completions", "status": "200"}

    def count() -> float | None:
        return metrics.registry.get_sample_value("modelyard_requests_total", labels)

    async def scenario() -> list[float | None]:
        seen = []
        busy = Request("/v1/chat/completions", 200, "pool", "dep-a", 0.2, 0.1)
        record(metrics, busy, idle=False)
        record(metrics, busy, idle=False)  # one timer for both
        seen.append(count())
        await asyncio.sleep(0.2)
        seen.append(count())
        record(metrics, busy, idle=True)
        seen.append(count())
        return seen

    assert asyncio.run(scenario()) == [0, 2, 3]
    assert metrics._timer is None


def test_tallies_stay_bounded_without_a_scrape(monkeypatch: pytest.MonkeyPatch) -> None:
    # Clients choose the model names (unknown ones count as ""): past the cap of request shapes
    # the tallies are flushed, so a proxy nobody scrapes keeps a bounded number of series.
    monkeypatch.setattr(metrics_module, "_SERIES_CAP", 8)
    metrics = ProxyMetrics(GROUPS)
    event = Event(200, usage(3, 4, 0, 0), None, None)
    for i in range(500):  # a new request shape each time
        record(metrics, Request("/v1/chat/completions", 404, f"nope-{i}", None, 0.001, 0.0))
        assert len(metrics._dirty) <= 2 * 8 + 1  # at most the cap of each kind of series
    for i in range(500):  # one request shape, a new upstream call series each time
        record(metrics, Request("/v1/chat/completions", 200, "pool", None, 0.2, 0.1, [("pool", f"dep-{i}", event)]))
        assert len(metrics._dirty) <= 2 * 8 + 1
    metrics.flush()
    sample = metrics.registry.get_sample_value
    labels = {"model_group": "", "deployment": "", "endpoint": "/chat/completions", "status": "404"}
    assert sample("modelyard_requests_total", labels) == 500
    assert sum(sample("modelyard_tokens_total", {"model_group": "pool", "deployment": f"dep-{i}", "kind": "prompt"})
               for i in range(500)) == 3 * 500  # fmt: skip


def test_requests_whose_path_or_model_is_not_a_label_share_their_labels_series() -> None:
    # A file id in the path, a model name no group has: each request used to keep a series of
    # its own until the cap (4,096, ~4 MiB; the soak's file requests did), now the labels' one.
    metrics = ProxyMetrics(GROUPS)
    for i in range(300):
        record(metrics, Request(f"/v1/files/file-{i}", 200, None, None, 0.001, 0.0))
        record(metrics, Request("/v1/chat/completions", 404, f"nope-{i}", None, 0.001, 0.0))
        record(metrics, Request("/v1/chat/completions", 200, "pool", "dep-a", 0.001, 0.0))
    assert len(metrics._labelled) == 3
    assert list(metrics._requests) == [("/v1/chat/completions", 200, "pool", "dep-a")]  # found by its raw values
    metrics.flush()
    sample = metrics.registry.get_sample_value
    assert sample("modelyard_requests_total", {"model_group": "", "deployment": "", "endpoint": "/files/{id}", "status": "200"}) == 300
    assert sample("modelyard_requests_total", {"model_group": "", "deployment": "", "endpoint": "/chat/completions", "status": "404"}) == 300
    assert sample("modelyard_requests_total", {"model_group": "pool", "deployment": "dep-a", "endpoint": "/chat/completions", "status": "200"}) == 300
