"""Routing strategies: choose one deployment among those that may take the call.

The Router has already removed deployments that are cooling down, full for this usage window
(``rpm`` / ``tpm``), out of quota by the upstream's own headers, or not in the best priority
tier; a strategy only ranks what is left. Each is a pure function of the candidates and their
:class:`~modelyard.router.state.Snapshot`, so it can be tested without a network.

=========================  ============================================================
``simple-shuffle``         random, weighted by ``weight``, else ``rpm``, else ``tpm``
``least-busy``             fewest calls in flight
``usage-based-routing``    fewest tokens used this window (``-v2`` is the same here)
``latency-based-routing``  lowest moving-average latency (time to first token for streams)
``quota-aware``            random, weighted by the remaining tokens Azure last reported
=========================  ============================================================
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .deployments import Deployment
from .state import Snapshot

__all__ = ["STRATEGIES", "choose"]


class _Context:
    def __init__(self, snaps: Mapping[str, Snapshot], stream: bool, rng: random.Random, now: float,
                 quota_ttl: float, args: Mapping[str, Any]) -> None:  # fmt: skip
        self.snaps = snaps
        self.stream = stream
        self.rng = rng
        self.now = now
        self.quota_ttl = quota_ttl
        self.args = args


def _lowest(candidates: Sequence[Deployment], key: Callable[[Deployment], float], ctx: _Context,
            buffer: float = 0.0) -> Deployment:  # fmt: skip
    scores = [key(d) for d in candidates]
    best = min(scores)
    limit = best * (1 + buffer) if best > 0 else best
    return ctx.rng.choice([d for d, s in zip(candidates, scores, strict=True) if s <= limit])


def _weighted(candidates: Sequence[Deployment], weights: Sequence[float], ctx: _Context) -> Deployment:
    if sum(weights) <= 0:
        return ctx.rng.choice(list(candidates))
    return ctx.rng.choices(list(candidates), weights=weights)[0]


def simple_shuffle(candidates: Sequence[Deployment], ctx: _Context) -> Deployment:
    """Weighted random: the first of ``weight``, ``rpm``, ``tpm`` that any candidate sets.

    As in LiteLLM, a candidate without the chosen number weighs 0 (unless all do).
    """
    for attr in ("weight", "rpm", "tpm"):
        values = [float(getattr(d, attr) or 0) for d in candidates]
        if any(values):
            return _weighted(candidates, values, ctx)
    return ctx.rng.choice(list(candidates))


def least_busy(candidates: Sequence[Deployment], ctx: _Context) -> Deployment:
    """Fewest calls in flight (across instances with Redis); ties broken at random."""
    return _lowest(candidates, lambda d: ctx.snaps[d.id].in_flight, ctx)


def usage_based(candidates: Sequence[Deployment], ctx: _Context) -> Deployment:
    """Fewest tokens used in this usage window, then fewest requests; ties at random."""
    return _lowest(candidates, lambda d: ctx.snaps[d.id].tokens * 1e6 + ctx.snaps[d.id].requests, ctx)


def latency_based(candidates: Sequence[Deployment], ctx: _Context) -> Deployment:
    """Lowest moving-average latency; for streams, time to first token when it is known.

    A deployment never measured scores 0, so each gets tried. ``routing_strategy_args``
    ``lowest_latency_buffer`` (e.g. 0.1) spreads load over those within 10% of the best.
    """

    def score(d: Deployment) -> float:
        s = ctx.snaps[d.id]
        value = s.ttft if ctx.stream and s.ttft is not None else s.latency
        return value or 0.0

    return _lowest(candidates, score, ctx, float(ctx.args.get("lowest_latency_buffer", 0.0)))


def quota_aware(candidates: Sequence[Deployment], ctx: _Context) -> Deployment:
    """Weighted random by the remaining tokens (else requests) in Azure's latest headers.

    A deployment without a fresh reading (none yet, or older than ``quota_ttl``) weighs as
    much as the best one, so it is tried and reports its own numbers.
    """
    readings: list[float | None] = []
    for d in candidates:
        q = ctx.snaps[d.id].quota
        if q is None or ctx.now - q.at >= ctx.quota_ttl:
            readings.append(None)
        elif q.remaining_tokens is not None:
            readings.append(float(q.remaining_tokens))
        elif q.remaining_requests is not None:
            # The largest provider grants about 6 requests per 1000 tokens per minute: one request ~ 167 tokens.
            readings.append(q.remaining_requests * 1000 / 6)
        else:
            readings.append(None)
    known = [r for r in readings if r is not None]
    default = max(known) if known else 1.0
    return _weighted(candidates, [default if r is None else r for r in readings], ctx)


_BY_NAME: dict[str, Callable[[Sequence[Deployment], _Context], Deployment]] = {
    "simple-shuffle": simple_shuffle,
    "least-busy": least_busy,
    "usage-based-routing": usage_based,
    "usage-based-routing-v2": usage_based,
    "latency-based-routing": latency_based,
    "quota-aware": quota_aware,
}
STRATEGIES = tuple(_BY_NAME)
"""The ``routing_strategy`` names the Router accepts."""


def choose(
    strategy: str,
    candidates: Sequence[Deployment],
    snaps: Mapping[str, Snapshot],
    *,
    stream: bool = False,
    rng: random.Random | None = None,
    now: float = 0.0,
    quota_ttl: float = 10.0,
    args: Mapping[str, Any] | None = None,
) -> Deployment:
    """Pick one of ``candidates`` (non-empty) with ``strategy``.

    Raises:
        KeyError: an unknown strategy (the Router checks names at construction).
    """
    if len(candidates) == 1:
        return candidates[0]
    ctx = _Context(snaps, stream, rng or random.Random(), now, quota_ttl, args or {})
    return _BY_NAME[strategy](candidates, ctx)
