"""Traffic per model group over the last minutes, for the dashboard (docs/dashboard.md).

The request path pays one ``deque.append`` of a tuple (:meth:`Traffic.record`); everything
else happens off it. Once a second a task started with the proxy (:meth:`Traffic.run`) folds
the queued events into per-second buckets per model group: a request count, an error count
and a latency histogram with logarithmic bins (each bin 20% wider than the one below, from
1 ms: a percentile read from it is within 10% of the exact value). Ten minutes of buckets are
kept in memory.

With Redis configured for the Router (``router_settings.redis_url`` / ``redis_host``), each
fold also adds its buckets to Redis (one pipeline of ``HINCRBY`` per second with traffic, keys
expiring after the ten minutes), and :meth:`Traffic.series` reads the sum of every instance and
worker process from there; when Redis cannot be reached it answers from this process's own
buckets and says so (``"source": "local"``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from array import array
from collections import deque
from collections.abc import Iterable, MutableSequence, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["BINS", "Traffic", "bin_of", "percentile"]

log = logging.getLogger("modelyard.proxy.ui")

BINS = 64
"""Latency histogram bins: bin 0 is under 1 ms, bin ``i`` ends at ``1.2**i`` ms."""
_GROWTH = 1.2
_LOG_GROWTH = math.log(_GROWTH)
KEEP_SECONDS = 600
"""Seconds of buckets kept (in memory and in Redis)."""
_QUEUE_MAX = 200_000
_PREFIX = "modelyard:ui:traffic:"


def bin_of(seconds: float) -> int:
    """The histogram bin of a latency in seconds."""
    ms = seconds * 1000.0
    if ms < 1.0:
        return 0
    return min(BINS - 1, int(math.log(ms) / _LOG_GROWTH) + 1)


def _bin_ms(index: int) -> float:
    """A representative latency (ms) for bin ``index``: the geometric middle of its bounds."""
    if index == 0:
        return 0.5
    return float(_GROWTH ** (index - 0.5))


def percentile(hist: Sequence[int], q: float) -> float | None:
    """The ``q`` quantile (0-1) of a latency histogram, in milliseconds; None when it is empty."""
    total = sum(hist)
    if total == 0:
        return None
    rank = max(1, math.ceil(q * total))
    seen = 0
    for index, count in enumerate(hist):
        seen += count
        if seen >= rank:
            return round(_bin_ms(index), 1)
    return round(_bin_ms(BINS - 1), 1)  # pragma: no cover - seen reaches total above


_NO_COUNTS = array("I", [0]) * BINS


def _new_hist() -> array[int]:
    return _NO_COUNTS[:]


@dataclass(slots=True)
class _Bucket:
    """One second of one model group's traffic (or a sum of them, when read).

    Ten minutes of these are kept per model group: the histogram is an array of 32-bit counts
    (336 bytes; a list of 64 ints took 568) and the bucket has slots (no instance dict). With
    the per-deployment counts, ten minutes of traffic every second cost 0.34 MiB per model group
    instead of 0.49 (bench/README.md, "rss2").
    """

    requests: int = 0
    errors: int = 0
    hist: MutableSequence[int] = field(default_factory=_new_hist)


def _is_error(status: int) -> bool:
    """A failure the operator should see: the upstream's or the proxy's (5xx), or a rate limit (429)."""
    return status >= 500 or status == 429


class Traffic:
    """Requests, errors and latency per model group, per second, over the last ten minutes.

    Args:
        groups: the model groups to count (a request naming another model is not counted: no
            client can grow this table by inventing names).
        redis_state: the Router's :class:`~modelyard.router.state.RedisState` when the proxy
            shares state through Redis (its connection is reused), else None.
    """

    def __init__(self, groups: Iterable[str], redis_state: Any = None) -> None:
        self._groups = frozenset(groups)
        self._queue: deque[tuple[float, str, str | None, int, float]] = deque(maxlen=_QUEUE_MAX)
        self.record = self._queue.append
        """Queue one finished request: ``record((time.time(), model_group, deployment_id, status, seconds))``."""
        # second -> model group -> bucket; and second -> model group -> deployment -> (requests, errors)
        self._buckets: dict[int, dict[str, _Bucket]] = {}
        self._deployments: dict[int, dict[str, list[int]]] = {}
        self._redis = redis_state
        self._pending: dict[int, dict[str, _Bucket]] = {}  # folded, not yet in Redis

    def __repr__(self) -> str:
        return f"Traffic(queued={len(self._queue)}, seconds={len(self._buckets)}, redis={self._redis is not None})"

    # ------------------------------------------------------------------ off the request path

    def fold(self, now: float | None = None) -> None:
        """Move the queued events into their per-second buckets; drop buckets past ten minutes."""
        queue = self._queue
        while queue:
            try:
                at, group, deployment, status, seconds = queue.popleft()
            except IndexError:  # pragma: no cover - another thread took the last one
                break
            if group not in self._groups:
                continue
            second = int(at)
            error = _is_error(status)
            for target in (self._buckets, self._pending) if self._redis is not None else (self._buckets,):
                bucket = target.setdefault(second, {}).get(group)
                if bucket is None:
                    bucket = target[second][group] = _Bucket()
                bucket.requests += 1
                bucket.errors += error
                bucket.hist[bin_of(seconds)] += 1
            if deployment is not None:
                counts = self._deployments.setdefault(second, {}).setdefault(deployment, [0, 0])
                counts[0] += 1
                counts[1] += error
        oldest = int(time.time() if now is None else now) - KEEP_SECONDS
        for table in (self._buckets, self._deployments):
            for second in [s for s in table if s < oldest]:
                del table[second]

    async def run(self, interval: float = 1.0) -> None:
        """Fold (and push to Redis) every ``interval`` seconds until cancelled."""
        while True:
            await asyncio.sleep(interval)
            try:
                self.fold()
                if self._pending:
                    await self._push()
            except Exception:  # the dashboard's figures must never stop the proxy
                log.exception("folding the dashboard's traffic figures failed")

    async def _push(self) -> None:
        pending, self._pending = self._pending, {}
        if not self._redis.available:
            return
        try:
            client = self._redis._aclient()
            async with client.pipeline(transaction=False) as pipe:
                for second, groups in pending.items():
                    key = f"{_PREFIX}{second}"
                    for group, b in groups.items():
                        pipe.hincrby(key, f"{group}|n", b.requests)
                        if b.errors:
                            pipe.hincrby(key, f"{group}|e", b.errors)
                        for index, count in enumerate(b.hist):
                            if count:
                                pipe.hincrby(key, f"{group}|{index}", count)
                    pipe.expire(key, KEEP_SECONDS + 60)
                await pipe.execute()
        except Exception as exc:  # Redis trouble: these seconds stay local only
            log.warning("the dashboard's traffic figures could not reach Redis: %s", type(exc).__name__)

    async def aclose(self) -> None:
        """Fold and push what is queued (at shutdown)."""
        self.fold()
        if self._pending:
            with contextlib.suppress(Exception):
                await self._push()

    # ------------------------------------------------------------------ reading

    def deployment_counts(self, seconds: int = 60, now: float | None = None) -> dict[str, tuple[int, int]]:
        """Requests and errors per deployment id over the last ``seconds`` (this process)."""
        self.fold(now)
        start = int(time.time() if now is None else now) - seconds
        out: dict[str, list[int]] = {}
        for second, deployments in self._deployments.items():
            if second > start:
                for id, (n, e) in deployments.items():
                    total = out.setdefault(id, [0, 0])
                    total[0] += n
                    total[1] += e
        return {id: (n, e) for id, (n, e) in out.items()}

    async def _read_redis(self, first: int, last: int) -> dict[int, dict[str, _Bucket]] | None:
        if self._redis is None or not self._redis.available:
            return None
        try:
            client = self._redis._aclient()
            async with client.pipeline(transaction=False) as pipe:
                for second in range(first, last + 1):
                    pipe.hgetall(f"{_PREFIX}{second}")
                answers = await pipe.execute()
        except Exception as exc:
            log.warning("the dashboard could not read traffic figures from Redis: %s", type(exc).__name__)
            return None
        out: dict[int, dict[str, _Bucket]] = {}
        for second, fields in zip(range(first, last + 1), answers, strict=True):
            for name, value in (fields or {}).items():
                group, _, part = str(name).rpartition("|")
                bucket = out.setdefault(second, {}).setdefault(group, _Bucket())
                if part == "n":
                    bucket.requests += int(value)
                elif part == "e":
                    bucket.errors += int(value)
                elif part.isdigit() and int(part) < BINS:
                    bucket.hist[int(part)] += int(value)
        return out

    async def series(self, seconds: int = 300, step: int = 5, now: float | None = None) -> dict[str, Any]:
        """Per model group, ``seconds`` of traffic in ``step``-second points, and totals.

        Returns:
            ``{"source": "local" | "redis", "step": step, "times": [epoch seconds ...],
            "groups": {group: {"rps": [...], "p50_ms": [...], "p99_ms": [...],
            "error_rate": [...], "requests": n, "errors": n, "p50_ms_total": x,
            "p99_ms_total": x}}}``; a point without requests has null latencies and error rate.
            The newest (still filling) second is left out.
        """
        self.fold(now)
        last = int(time.time() if now is None else now) - 1
        first = last - seconds + 1
        buckets = await self._read_redis(first, last)
        source = "redis"
        if buckets is None:
            buckets, source = self._buckets, "local"
        points = range(first, last + 1, step)
        groups: dict[str, Any] = {}
        names = sorted({g for s in range(first, last + 1) for g in buckets.get(s, {})})
        for group in names:
            rps: list[float] = []
            p50: list[float | None] = []
            p99: list[float | None] = []
            rate: list[float | None] = []
            total = _Bucket()
            for start in points:
                point = _Bucket()
                for second in range(start, min(start + step, last + 1)):
                    b = buckets.get(second, {}).get(group)
                    if b is not None:
                        point.requests += b.requests
                        point.errors += b.errors
                        point.hist = [x + y for x, y in zip(point.hist, b.hist, strict=True)]
                rps.append(round(point.requests / step, 3))
                p50.append(percentile(point.hist, 0.5))
                p99.append(percentile(point.hist, 0.99))
                rate.append(round(point.errors / point.requests, 4) if point.requests else None)
                total.requests += point.requests
                total.errors += point.errors
                total.hist = [x + y for x, y in zip(total.hist, point.hist, strict=True)]
            groups[group] = {
                "rps": rps, "p50_ms": p50, "p99_ms": p99, "error_rate": rate,
                "requests": total.requests, "errors": total.errors,
                "p50_ms_total": percentile(total.hist, 0.5), "p99_ms_total": percentile(total.hist, 0.99),
            }  # fmt: skip
        return {"source": source, "step": step, "seconds": seconds, "times": list(points), "groups": groups}
