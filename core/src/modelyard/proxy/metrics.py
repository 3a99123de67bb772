"""``GET /metrics``: the proxy's Prometheus metrics (``prometheus-client``).

Everything is recorded once per request, when it ends, from what the request's
:class:`~modelyard.observe.CallScope` gathered (its pipeline calls, the Router's retries,
fallbacks and cooldowns) and from :meth:`ProxyMetrics.health` after ``/health`` probes. Label
values are bounded: the model group is a configured one (else ``""``), the endpoint one of the
proxy's paths (else ``other``); a path a plugin adds for its own clients (a model in the path)
counts as its operation's own path.

A request's counts are tallied in plain numbers (per request shape and per upstream call) and
added to prometheus-client's metrics by :meth:`ProxyMetrics.flush`, one increment per series and
bucket rather than a locked one per value (issue 17, round ten: 55 K instructions a request down
to 16 K). The proxy flushes before it renders ``/metrics``.

Several workers (``modelyard serve --num_workers N``) write to the files of
``PROMETHEUS_MULTIPROC_DIR`` (prometheus-client's multiprocess mode), and any worker answering
``/metrics`` reads them all: one view. A worker flushes when it falls idle, and a busy one at
least every ``_FLUSH_SECONDS``, so a scrape sees the others' requests that far behind at most.
``modelyard serve`` sets the variable to a temporary
directory it removes at exit, unless it is set already.
"""

from __future__ import annotations

import asyncio
import os
from bisect import bisect_left
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._ratelimit import remaining

if TYPE_CHECKING:
    from ..observe import CallScope

__all__ = ["ProxyMetrics", "available"]

_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
_OVERHEAD_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
_LATENCY_LE = (*_LATENCY_BUCKETS, float("inf"))
_OVERHEAD_LE = (*_OVERHEAD_BUCKETS, float("inf"))
"""The buckets' upper bounds as prometheus-client keeps them: an amount counts in the first
bucket whose bound it does not exceed (``bisect_left``)."""
_TOKEN_KINDS = ("prompt", "completion", "cached", "reasoning")
_FLUSH_SECONDS = 1.0
"""In multiprocess mode, the longest a busy worker keeps its tallies before flushing them."""
_SERIES_CAP = 4096
"""Request shapes (path, status, model, deployment) whose metric children are kept bound."""
_ENDPOINTS = frozenset({"/chat/completions", "/completions", "/models", "/health", "/metrics", "/files",
                        "/batches", "/health/readiness", "/health/liveliness", "/health/liveness"})  # fmt: skip


def available() -> bool:
    """Whether ``prometheus-client`` is installed (the ``modelyard[server]`` extra)."""
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        return False
    return True


def endpoint_label(path: str, endpoints: Callable[[str], str | None] | None = None) -> str:
    """A bounded label for ``path``: ``/v1`` dropped, ids cut; ``endpoints`` labels the operations'
    paths and the plugins' (:class:`~modelyard.operations.ProxyPath`: as their operation's path)."""
    if endpoints is not None:
        label = endpoints(path)
        if label is not None:
            return label
    if path.startswith("/v1/"):
        path = path[3:]
        if endpoints is not None and (label := endpoints(path)) is not None:
            return label
    if path in _ENDPOINTS:
        return path
    for prefix in ("/models", "/files", "/batches"):
        if path.startswith(prefix + "/"):
            return prefix + "/{id}"
    return "other"


class ProxyMetrics:
    """The proxy's metrics in their own registry (so apps in one process do not collide).

    Args:
        model_groups: the configured model groups (other names a client sends count as ``""``).
        endpoints: the label of a path beyond the built-in endpoints (an operation's path, a
            plugin's path), or None (see :func:`endpoint_label`).
    """

    def __init__(self, model_groups: list[str], endpoints: Callable[[str], str | None] | None = None) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.groups = frozenset(model_groups)
        self.endpoints = endpoints
        self.multiproc_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None
        self.registry = CollectorRegistry(auto_describe=False)
        r = self.registry
        self.requests = Counter("modelyard_requests", "Proxy requests by model group, deployment, endpoint and status.",
                                ["model_group", "deployment", "endpoint", "status"], registry=r)  # fmt: skip
        self.latency = Histogram("modelyard_request_duration_seconds", "Time from a request's arrival to its last byte.",
                                 ["model_group", "endpoint"], buckets=_LATENCY_BUCKETS, registry=r)  # fmt: skip
        self.overhead = Histogram(
            "modelyard_proxy_overhead_seconds",
            "The proxy's own time per model request: the total minus the time spent in upstream calls.",
            ["model_group", "endpoint"], buckets=_OVERHEAD_BUCKETS, registry=r,
        )  # fmt: skip
        self.calls = Counter("modelyard_deployment_calls", "Upstream calls (each try) by deployment and status.",
                             ["model_group", "deployment", "status"], registry=r)  # fmt: skip
        self.tokens = Counter("modelyard_tokens", "Tokens by kind: prompt, completion, cached (prompt), reasoning (completion).",
                              ["model_group", "deployment", "kind"], registry=r)  # fmt: skip
        self.cost = Counter("modelyard_cost_usd", "Cost of the calls, in USD, when a cost is known.",
                            ["model_group", "deployment"], registry=r)  # fmt: skip
        self.retries = Counter("modelyard_router_retries", "The Router's retries (another try in the same group).",
                               ["model_group"], registry=r)  # fmt: skip
        self.fallbacks = Counter("modelyard_router_fallbacks", "The Router's fallbacks from a group to another.",
                                 ["model_group", "fallback_group"], registry=r)  # fmt: skip
        self.cooldowns = Counter("modelyard_deployment_cooldowns", "Times a deployment was cooled down.",
                                 ["deployment"], registry=r)  # fmt: skip
        self.cooldown_until = Gauge("modelyard_deployment_cooldown_until_timestamp_seconds",
                                    "When the deployment's latest cooldown ends (UNIX time): cooling down while > time().",
                                    ["deployment"], multiprocess_mode="max", registry=r)  # fmt: skip
        self.remaining_requests = Gauge("modelyard_deployment_remaining_requests",
                                        "The latest x-ratelimit-remaining-requests the deployment sent.",
                                        ["deployment"], multiprocess_mode="mostrecent", registry=r)  # fmt: skip
        self.remaining_tokens = Gauge("modelyard_deployment_remaining_tokens",
                                      "The latest x-ratelimit-remaining-tokens the deployment sent.",
                                      ["deployment"], multiprocess_mode="mostrecent", registry=r)  # fmt: skip
        self.healthy = Gauge("modelyard_deployment_healthy", "1 when the latest /health probe of the deployment passed, else 0.",
                             ["deployment"], multiprocess_mode="mostrecent", registry=r)  # fmt: skip
        self.key_budget = Gauge("modelyard_key_budget_remaining_usd",
                                "A virtual key's budget left after its latest settled call (max_budget minus spend and "
                                "what its calls in flight reserve), by key alias (else the first 12 digits of its hash).",
                                ["key"], multiprocess_mode="mostrecent", registry=r)  # fmt: skip
        self.team_budget = Gauge("modelyard_team_budget_remaining_usd",
                                 "A team's budget left after its latest settled call, by team id.",
                                 ["team"], multiprocess_mode="mostrecent", registry=r)  # fmt: skip
        self._children: dict[tuple[Any, ...], Any] = {}
        self._requests: dict[tuple[str, int, str | None, str | None], _RequestSeries] = {}
        self._labelled: dict[tuple[str, int, str, str | None], _RequestSeries] = {}
        self._calls: dict[tuple[str, str, int | None], _CallSeries] = {}
        self._remaining_gauges = (self.remaining_requests, self.remaining_tokens)
        self._dirty: list[_RequestSeries | _CallSeries] = []  # series with tallies not yet flushed
        self._latest: dict[tuple[Any, str], float] = {}  # (gauge, label): its latest value, not yet set
        self._timer: asyncio.TimerHandle | None = None

    def _child(self, metric: Any, *labels: str) -> Any:
        # labels() validates and locks on every call; the children are cached here instead.
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def _request_series(self, path: str, status: int, model: str | None, deployment: str | None) -> _RequestSeries:
        # One series per set of label values. The request path looks a series up by the raw
        # values it carries, which are cached here only when they are the labels themselves (a
        # built-in endpoint's path, a configured model): a client's file ids, unknown model
        # names and unknown paths would otherwise each keep a series (~1 KB) up to the cap,
        # ~4 MiB after a few thousand file requests (issue 17, round thirteen). The cap starts
        # both over, the tallies flushed first, so the dirty list holds at most the cap's worth.
        group = model if model in self.groups else ""
        endpoint = endpoint_label(path, self.endpoints)
        key = (endpoint, status, group, deployment)
        series = self._labelled.get(key)
        if series is None:
            if len(self._labelled) >= _SERIES_CAP:
                self.flush()
                self._labelled.clear()
                self._requests.clear()
            series = self._labelled[key] = _RequestSeries(
                self._child(self.requests, group, deployment or "", endpoint, str(status)),
                self._child(self.latency, group, endpoint), group, endpoint,
            )  # fmt: skip
        if group == (model or "") and path in (endpoint, "/v1" + endpoint):
            self._requests[(path, status, model, deployment)] = series
        return series

    def request(self, *, path: str, status: int, model: str | None, deployment: str | None,
                seconds: float, scope: CallScope | None, idle: bool = True) -> None:  # fmt: skip
        """Record one finished request (and what its scope gathered).

        ``idle``: no other request is in flight in this process. The counts are tallied here
        and reach prometheus-client's metrics at :meth:`flush`: at once when the process is
        idle in multiprocess mode (other workers answer scrapes too), else within
        ``_FLUSH_SECONDS``; in one process, when ``/metrics`` is rendered.
        """
        series = self._requests.get((path, status, model, deployment))
        if series is None:
            series = self._request_series(path, status, model, deployment)
        if not series.dirty:
            series.dirty = True
            self._dirty.append(series)
        series.count += 1
        series.latency_counts[bisect_left(_LATENCY_LE, seconds)] += 1
        series.latency_sum += seconds
        if scope is not None:
            group = series.group
            calls = scope.calls
            if calls:
                overhead = seconds - scope.upstream_seconds
                if overhead < 0.0:
                    overhead = 0.0
                series.overhead_counts[bisect_left(_OVERHEAD_LE, overhead)] += 1
                series.overhead_sum += overhead
                for call_group, dep_id, event in calls:
                    self._call(call_group or group, dep_id or "", event)
            if scope.retries:
                self._child(self.retries, group).inc(scope.retries)
            for source, target in scope.fallbacks:
                self._child(self.fallbacks, source if source in self.groups else "", target).inc()
            for dep_id, until in scope.cooldowns:
                self._child(self.cooldowns, dep_id).inc()
                self._child(self.cooldown_until, dep_id).set(until)
        if self.multiproc_dir is not None:
            if idle:
                self.flush()
            elif self._timer is None:
                self._timer = asyncio.get_running_loop().call_later(_FLUSH_SECONDS, self.flush)

    def _call(self, group: str, dep: str, event: Any) -> None:
        status = event.status_code
        series = self._calls.get((group, dep, status))
        if series is None:
            if len(self._calls) >= _SERIES_CAP:
                self.flush()
                self._calls.clear()
            series = self._calls[(group, dep, status)] = _CallSeries(group, dep, str(status or "error"))
        if not series.dirty:
            series.dirty = True
            self._dirty.append(series)
        series.count += 1
        usage = event.usage
        if usage:
            tokens = series.tokens  # prompt, completion, cached (prompt), reasoning (completion)
            value = usage.get("prompt_tokens")
            if isinstance(value, int) and value > 0:
                tokens[0] += value
            value = usage.get("completion_tokens")
            if isinstance(value, int) and value > 0:
                tokens[1] += value
            details = usage.get("prompt_tokens_details")
            if details and isinstance(value := details.get("cached_tokens"), int) and value > 0:
                tokens[2] += value
            details = usage.get("completion_tokens_details")
            if details and isinstance(value := details.get("reasoning_tokens"), int) and value > 0:
                tokens[3] += value
        cost = getattr(event, "cost", None)  # set by a core that computes costs
        if isinstance(cost, (int, float)) and cost > 0:
            series.cost += cost
        headers = event.response_headers
        if headers is not None:
            for gauge, value in zip(self._remaining_gauges, remaining(headers), strict=True):
                if value is not None:
                    try:
                        number = float(value)
                    except ValueError:  # not a number: the gauge keeps its value
                        continue
                    self._latest[gauge, dep] = number

    def budget(self, *, key: str | None = None, team: str | None = None, remaining: float) -> None:
        """Record what a key's (or a team's) budget has left once a call of it settled."""
        if key is not None:
            self._latest[self.key_budget, key] = remaining
        if team is not None:
            self._latest[self.team_budget, team] = remaining

    def health(self, deployment: str, healthy: bool) -> None:
        """Record a ``/health`` probe's outcome."""
        self._child(self.healthy, deployment).set(1.0 if healthy else 0.0)

    def flush(self) -> None:
        """Add what was tallied since the last flush to prometheus-client's metrics.

        Call it on the thread that records (the proxy's event loop): the tallies are plain
        numbers, not locked.
        """
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        dirty, self._dirty = self._dirty, []
        for series in dirty:
            series.dirty = False
            series.flush(self)
        if self._latest:
            latest, self._latest = self._latest, {}
            for (gauge, label), value in latest.items():
                self._child(gauge, label).set(value)

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type; every worker's values in multiprocess mode."""
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

        if self.multiproc_dir is None:
            return generate_latest(self.registry), CONTENT_TYPE_LATEST
        from prometheus_client.multiprocess import MultiProcessCollector

        registry = CollectorRegistry(auto_describe=False)
        MultiProcessCollector(registry, path=self.multiproc_dir)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST


class _RequestSeries:
    """One request shape's (path, status, model, deployment) metric children and its tallies."""

    __slots__ = ("count", "dirty", "endpoint", "group", "latency", "latency_counts", "latency_sum", "overhead",
                 "overhead_counts", "overhead_sum", "requests")  # fmt: skip

    def __init__(self, requests: Any, latency: Any, group: str, endpoint: str) -> None:
        self.requests = requests
        self.latency = latency
        self.overhead: Any = None  # bound on the first flush with a model call
        self.group = group
        self.endpoint = endpoint
        self.dirty = False
        self.count = 0
        self.latency_counts = [0] * len(_LATENCY_LE)  # per bucket, as prometheus-client's le
        self.latency_sum = 0.0
        self.overhead_counts = [0] * len(_OVERHEAD_LE)
        self.overhead_sum = 0.0

    def flush(self, metrics: ProxyMetrics) -> None:
        self.requests.inc(self.count)
        self.count = 0
        _add_observed(self.latency, self.latency_counts, self.latency_sum)
        self.latency_sum = 0.0
        if any(self.overhead_counts):
            if self.overhead is None:
                self.overhead = metrics._child(metrics.overhead, self.group, self.endpoint)
            _add_observed(self.overhead, self.overhead_counts, self.overhead_sum)
            self.overhead_sum = 0.0


class _CallSeries:
    """One upstream call's (group, deployment, status) metric children and its tallies."""

    __slots__ = ("calls", "cost", "cost_child", "count", "dep", "dirty", "group", "status", "token_children", "tokens")

    def __init__(self, group: str, dep: str, status: str) -> None:
        self.group = group
        self.dep = dep
        self.calls: Any = None  # the children, bound at the first flush
        self.token_children: list[Any] = [None] * len(_TOKEN_KINDS)  # each bound when first counted
        self.cost_child: Any = None
        self.dirty = False
        self.count = 0
        self.tokens = [0] * len(_TOKEN_KINDS)
        self.cost = 0.0
        self.status = status

    def flush(self, metrics: ProxyMetrics) -> None:
        if self.calls is None:
            self.calls = metrics._child(metrics.calls, self.group, self.dep, self.status)
        self.calls.inc(self.count)
        self.count = 0
        for i, value in enumerate(self.tokens):
            if value:
                child = self.token_children[i]
                if child is None:  # no zero series for kinds never seen
                    child = self.token_children[i] = metrics._child(metrics.tokens, self.group, self.dep, _TOKEN_KINDS[i])
                child.inc(value)
                self.tokens[i] = 0
        if self.cost:
            if self.cost_child is None:
                self.cost_child = metrics._child(metrics.cost, self.group, self.dep)
            self.cost_child.inc(self.cost)
            self.cost = 0.0


def _add_observed(histogram: Any, counts: list[int], total: float) -> None:
    """Add ``counts`` (per bucket) observations summing to ``total`` to a histogram child: what
    as many ``observe()`` calls add, in one increment per bucket. prometheus-client has no public
    call for this; its ``_buckets`` and ``_sum`` values (stable since its first releases, checked
    against ``observe()`` in tests/proxy/test_metrics_tally.py) take it."""
    histogram._sum.inc(total)
    buckets = histogram._buckets
    for i, n in enumerate(counts):
        if n:
            buckets[i].inc(n)
            counts[i] = 0
