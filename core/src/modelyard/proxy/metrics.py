"""``GET /metrics``: the proxy's Prometheus metrics (``prometheus-client``).

Everything is recorded once per request, when it ends, from what the request's
:class:`~modelyard.observe.CallScope` gathered (its pipeline calls, the Router's retries,
fallbacks and cooldowns) and from :meth:`ProxyMetrics.health` after ``/health`` probes. Label
values are bounded: the model group is a configured one (else ``""``), the endpoint one of the
proxy's paths (else ``other``); a path a plugin adds for its own clients (a model in the path)
counts as its operation's own path.

Several workers (``modelyard serve --num_workers N``) write to the files of
``PROMETHEUS_MULTIPROC_DIR`` (prometheus-client's multiprocess mode), and any worker answering
``/metrics`` reads them all: one view. ``modelyard serve`` sets the variable to a temporary
directory it removes at exit, unless it is set already.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._ratelimit import remaining

if TYPE_CHECKING:
    from ..observe import CallScope

__all__ = ["ProxyMetrics", "available"]

_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
_OVERHEAD_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
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
        self._calls: dict[tuple[str, str, int | None], _CallSeries] = {}

    def _child(self, metric: Any, *labels: str) -> Any:
        # labels() validates and locks on every call; the children are cached here instead.
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def _request_series(self, path: str, status: int, model: str | None, deployment: str | None) -> _RequestSeries:
        # Keyed by what the request carries (a client's path and model name), so bounded by a
        # size cap rather than by the label values: past it the cache starts over.
        group = model if model in self.groups else ""
        endpoint = endpoint_label(path, self.endpoints)
        if len(self._requests) >= _SERIES_CAP:
            self._requests.clear()
        series = self._requests[(path, status, model, deployment)] = _RequestSeries(
            self._child(self.requests, group, deployment or "", endpoint, str(status)),
            self._child(self.latency, group, endpoint), group, endpoint,
        )  # fmt: skip
        return series

    def request(self, *, path: str, status: int, model: str | None, deployment: str | None,
                seconds: float, scope: CallScope | None) -> None:  # fmt: skip
        """Record one finished request (and what its scope gathered)."""
        series = self._requests.get((path, status, model, deployment))
        if series is None:
            series = self._request_series(path, status, model, deployment)
        series.requests.inc()
        series.latency.observe(seconds)
        if scope is None:
            return
        group = series.group
        if scope.calls:
            overhead = series.overhead
            if overhead is None:
                overhead = series.overhead = self._child(self.overhead, group, series.endpoint)
            overhead.observe(max(0.0, seconds - scope.upstream_seconds))
            for call_group, dep_id, event in scope.calls:
                self._call(call_group or group, dep_id or "", event)
        if scope.retries:
            self._child(self.retries, group).inc(scope.retries)
        for source, target in scope.fallbacks:
            self._child(self.fallbacks, source if source in self.groups else "", target).inc()
        for dep_id, until in scope.cooldowns:
            self._child(self.cooldowns, dep_id).inc()
            self._child(self.cooldown_until, dep_id).set(until)

    def _call(self, group: str, dep: str, event: Any) -> None:
        status = event.status_code
        series = self._calls.get((group, dep, status))
        if series is None:
            if len(self._calls) >= _SERIES_CAP:
                self._calls.clear()
            series = self._calls[(group, dep, status)] = _CallSeries(
                self._child(self.calls, group, dep, str(status or "error"))
            )
        series.calls.inc()
        usage = event.usage
        if usage:
            for kind, value in (("prompt", usage.get("prompt_tokens")), ("completion", usage.get("completion_tokens")),
                                ("cached", (usage.get("prompt_tokens_details") or {}).get("cached_tokens")),
                                ("reasoning", (usage.get("completion_tokens_details") or {}).get("reasoning_tokens"))):  # fmt: skip
                if isinstance(value, int) and value > 0:
                    tokens = series.tokens.get(kind)
                    if tokens is None:  # bound when first counted: no zero series for kinds never seen
                        tokens = series.tokens[kind] = self._child(self.tokens, group, dep, kind)
                    tokens.inc(value)
        cost = getattr(event, "cost", None)  # set by a core that computes costs
        if isinstance(cost, int | float) and cost > 0:
            if series.cost is None:
                series.cost = self._child(self.cost, group, dep)
            series.cost.inc(cost)
        headers = event.response_headers
        if headers is not None:
            gauges = series.remaining
            for i, value in enumerate(remaining(headers)):
                if value is None:
                    continue
                try:
                    number = float(value)
                except ValueError:
                    continue
                gauge = gauges[i]
                if gauge is None:
                    gauge = gauges[i] = self._child(self.remaining_requests if i == 0 else self.remaining_tokens, dep)
                gauge.set(number)

    def budget(self, *, key: str | None = None, team: str | None = None, remaining: float) -> None:
        """Record what a key's (or a team's) budget has left once a call of it settled."""
        if key is not None:
            self._child(self.key_budget, key).set(remaining)
        if team is not None:
            self._child(self.team_budget, team).set(remaining)

    def health(self, deployment: str, healthy: bool) -> None:
        """Record a ``/health`` probe's outcome."""
        self._child(self.healthy, deployment).set(1.0 if healthy else 0.0)

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
    """The metric children one request shape (path, status, model, deployment) records to."""

    __slots__ = ("endpoint", "group", "latency", "overhead", "requests")

    def __init__(self, requests: Any, latency: Any, group: str, endpoint: str) -> None:
        self.requests = requests
        self.latency = latency
        self.overhead: Any = None  # bound on the first request with a model call
        self.group = group
        self.endpoint = endpoint


class _CallSeries:
    """The metric children one upstream call's (group, deployment, status) records to."""

    __slots__ = ("calls", "cost", "remaining", "tokens")

    def __init__(self, calls: Any) -> None:
        self.calls = calls
        self.tokens: dict[str, Any] = {}  # by kind, each bound when first counted
        self.cost: Any = None
        self.remaining: list[Any] = [None, None]  # the deployment's x-ratelimit-remaining-* gauges
