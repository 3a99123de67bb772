"""Rate limits of virtual keys and teams: requests per minute, tokens per minute, calls in flight.

In one process the counters live in memory. With Redis configured for the Router
(``router_settings.redis_url`` or ``redis_host`` / ``redis_port`` / ``redis_password``), the same
server holds them, so every instance sees the others' traffic: ``rpm_limit`` holds for the sum
of the instances. Each check is one Lua script (atomic: two instances cannot both take the last
slot), timed by Redis's own clock (``TIME``), so instances with skewed clocks agree.

- ``rpm_limit``: a sliding 60-second window (a sorted set of request times per key / team).
- ``tpm_limit``: tokens of the current minute (a counter per whole minute); a call is refused
  once the minute's tokens have reached the limit, and its own tokens are added when it ends.
- ``max_parallel_requests``: a counter taken at the start and given back at the end (with a
  10-minute expiry in Redis, so a process that dies cannot hold slots forever).

When Redis cannot be reached the limiter logs one warning and counts in memory until it
answers again (as the Router does): rate limits never take the proxy down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import uuid
from collections import deque
from dataclasses import dataclass
from typing import Any

__all__ = ["LimitHit", "Limiter", "Usage", "Want"]

log = logging.getLogger("modelyard.proxy.keys")

WINDOW = 60.0
_PARALLEL_TTL_MS = 600_000

# KEYS: per scope a request zset; ARGV: window seconds, member, then one limit per key.
# Returns {1, remaining...} or {0, index of the full scope (1-based), seconds until a slot frees}.
_RPM = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local window = tonumber(ARGV[1])
local counts = {}
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  local n = redis.call('ZCARD', key)
  if n >= tonumber(ARGV[i + 2]) then
    local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    local wait = window
    if oldest[2] then wait = tonumber(oldest[2]) + window - now end
    return {0, i, tostring(wait)}
  end
  counts[i] = n
end
local out = {1}
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, now, ARGV[2])
  redis.call('PEXPIRE', key, math.ceil(window * 1000))
  out[i + 1] = tonumber(ARGV[i + 2]) - counts[i] - 1
end
return out
"""
# KEYS: per scope a counter; ARGV: ttl ms, then one limit per key. {1} or {0, index}.
_PARALLEL = """
for i, key in ipairs(KEYS) do
  local n = tonumber(redis.call('GET', key) or '0')
  if n >= tonumber(ARGV[i + 1]) then return {0, i} end
end
for i, key in ipairs(KEYS) do
  redis.call('INCR', key)
  redis.call('PEXPIRE', key, ARGV[1])
end
return {1}
"""
_RELEASE = """
for i, key in ipairs(KEYS) do
  if tonumber(redis.call('DECR', key)) <= 0 then redis.call('DEL', key) end
end
return 1
"""


@dataclass(frozen=True)
class Want:
    """The limits of one scope a request falls under (a key or its team).

    Attributes:
        kind: ``key`` or ``team`` (for messages).
        ident: the key's hash or the team id (never a key).
    """

    kind: str
    ident: str
    rpm: int | None
    tpm: int | None
    parallel: int | None


class LimitHit(Exception):
    """A limit refused the request: which scope, which limit, and when to come back."""

    def __init__(self, want: Want, limit: str, value: int, retry_after: float) -> None:
        super().__init__(f"{want.kind} {limit} {value}")
        self.want = want
        self.limit = limit
        self.value = value
        self.retry_after = max(1, math.ceil(retry_after))


@dataclass
class Usage:
    """What an admitted request took, to give back when it ends; and the headers' numbers."""

    parallel: list[Want]
    remaining_requests: int | None = None
    remaining_tokens: int | None = None


class Limiter:
    """Counts requests, tokens and calls in flight per key and team (memory, or Redis when given).

    Args:
        redis: ``{"url": ...}`` or ``{"host", "port", "password"}`` for a shared Redis; None for memory.
        prefix: the Redis key prefix (instances that share limits use the same one).
        retry_interval: after a Redis failure, seconds to count in memory before trying again.
    """

    def __init__(self, redis: dict[str, Any] | None = None, *, prefix: str = "modelyard:keys:",
                 retry_interval: float = 5.0) -> None:  # fmt: skip
        self._redis_options = redis
        self.prefix = prefix
        self._client: Any = None
        self._client_loop: asyncio.AbstractEventLoop | None = None
        self._down_until = 0.0
        self._warned = False
        self._retry_interval = retry_interval
        self._requests: dict[str, deque[float]] = {}
        self._tokens: dict[str, tuple[int, int]] = {}  # ident -> (minute, tokens)
        self._in_flight: dict[str, int] = {}

    def __repr__(self) -> str:
        return f"Limiter(shared={self._redis_options is not None})"

    # ------------------------------------------------------------------ Redis plumbing

    def _redis(self) -> Any:
        if self._redis_options is None or time.monotonic() < self._down_until:
            return None
        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop:
            import redis.asyncio as aredis

            options: dict[str, Any] = {
                "socket_timeout": 0.5,
                "socket_connect_timeout": 0.5,
                "decode_responses": True,
            }
            url = self._redis_options.get("url")
            if url:
                self._client = aredis.Redis.from_url(url, **options)
            else:
                self._client = aredis.Redis(host=self._redis_options.get("host") or "localhost",
                                            port=int(self._redis_options.get("port") or 6379),
                                            password=self._redis_options.get("password"), **options)  # fmt: skip
            self._client_loop = loop
        return self._client

    def _failed(self, exc: BaseException) -> None:
        self._down_until = time.monotonic() + self._retry_interval
        if not self._warned:
            self._warned = True
            log.warning("Redis is unreachable (%s); key rate limits count in this process until it answers",
                        type(exc).__name__)  # fmt: skip

    async def _script(self, script: str, keys: list[str], args: list[Any]) -> Any:
        """Run a Lua script on Redis; None when there is no Redis or it failed (count in memory)."""
        client = self._redis()
        if client is None:
            return None
        try:
            return await client.eval(script, len(keys), *keys, *args)
        except Exception as exc:  # redis.RedisError, OSError: fall back to memory
            self._failed(exc)
            return None

    async def aclose(self) -> None:
        """Close the Redis connection, if any."""
        if self._client is not None:
            client, self._client = self._client, None
            with contextlib.suppress(Exception):  # a loop already closing: nothing to give back
                await client.aclose()

    def _key(self, kind: str, want: Want) -> str:
        return f"{self.prefix}{want.kind}:{want.ident}:{kind}"

    # ------------------------------------------------------------------ the checks

    async def acquire(self, wants: list[Want]) -> Usage:
        """Count one request against every scope's limits, or refuse it having counted nothing.

        Raises:
            LimitHit: a scope is at its ``rpm_limit``, ``tpm_limit`` or ``max_parallel_requests``.
        """
        usage = Usage(parallel=[])
        tpm = [w for w in wants if w.tpm is not None]
        if tpm:
            usage.remaining_tokens = await self._check_tokens(tpm)
        rpm = [w for w in wants if w.rpm is not None]
        if rpm:
            usage.remaining_requests = await self._take_requests(rpm)
        parallel = [w for w in wants if w.parallel is not None]
        if parallel:
            await self._take_parallel(parallel)
            usage.parallel = parallel
        return usage

    async def release(self, usage: Usage, tokens: int, wants: list[Want]) -> None:
        """A request ended: give back its in-flight slots and count its ``tokens``."""
        if usage.parallel:
            usage_keys = [self._key("par", w) for w in usage.parallel]
            if await self._script(_RELEASE, usage_keys, []) is None:
                for w in usage.parallel:
                    self._in_flight[w.kind + w.ident] = max(0, self._in_flight.get(w.kind + w.ident, 0) - 1)
        counted = [w for w in wants if w.tpm is not None]
        if tokens > 0 and counted:
            minute = int(time.time() // WINDOW)
            client = self._redis()
            if client is not None:
                try:
                    async with client.pipeline(transaction=False) as pipe:
                        for w in counted:
                            key = f"{self._key('tok', w)}:{minute}"
                            pipe.incrby(key, tokens)
                            pipe.expire(key, int(WINDOW * 2))
                        await pipe.execute()
                    return
                except Exception as exc:
                    self._failed(exc)
            for w in counted:
                at, used = self._tokens.get(w.kind + w.ident, (minute, 0))
                self._tokens[w.kind + w.ident] = (minute, (used if at == minute else 0) + tokens)

    async def _check_tokens(self, wants: list[Want]) -> int:
        minute = int(time.time() // WINDOW)
        keys = [f"{self._key('tok', w)}:{minute}" for w in wants]
        client = self._redis()
        used: list[int] | None = None
        if client is not None:
            try:
                used = [int(v or 0) for v in await client.mget(keys)]
            except Exception as exc:
                self._failed(exc)
        if used is None:
            used = [
                n if at == minute else 0
                for at, n in (self._tokens.get(w.kind + w.ident, (minute, 0)) for w in wants)
            ]
        remaining = []
        for w, n in zip(wants, used, strict=True):
            assert w.tpm is not None
            if n >= w.tpm:
                raise LimitHit(w, "tpm_limit", w.tpm, (minute + 1) * WINDOW - time.time())
            remaining.append(w.tpm - n)
        return min(remaining)

    async def _take_requests(self, wants: list[Want]) -> int:
        limits = [w.rpm for w in wants]
        found = await self._script(
            _RPM, [self._key("req", w) for w in wants], [WINDOW, uuid.uuid4().hex, *limits]
        )
        if found is not None:
            if int(found[0]) == 0:
                want = wants[int(found[1]) - 1]
                assert want.rpm is not None
                raise LimitHit(want, "rpm_limit", want.rpm, float(found[2]))
            return min(int(n) for n in found[1:])
        now = time.monotonic()
        logs = [self._requests.setdefault(w.ident + w.kind, deque()) for w in wants]
        for w, times in zip(wants, logs, strict=True):
            while times and times[0] <= now - WINDOW:
                times.popleft()
            assert w.rpm is not None
            if len(times) >= w.rpm:
                raise LimitHit(w, "rpm_limit", w.rpm, times[0] + WINDOW - now)
        for times in logs:
            times.append(now)
        return min(
            w.rpm - len(times) for w, times in zip(wants, logs, strict=True) if w.rpm is not None
        )

    async def _take_parallel(self, wants: list[Want]) -> None:
        found = await self._script(
            _PARALLEL,
            [self._key("par", w) for w in wants],
            [_PARALLEL_TTL_MS, *[w.parallel for w in wants]],
        )
        if found is not None:
            if int(found[0]) == 0:
                want = wants[int(found[1]) - 1]
                assert want.parallel is not None
                raise LimitHit(want, "max_parallel_requests", want.parallel, 1)
            return
        for w in wants:
            assert w.parallel is not None
            if self._in_flight.get(w.kind + w.ident, 0) >= w.parallel:
                raise LimitHit(w, "max_parallel_requests", w.parallel, 1)
        for w in wants:
            self._in_flight[w.kind + w.ident] = self._in_flight.get(w.kind + w.ident, 0) + 1
