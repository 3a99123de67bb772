"""What the Router knows about its deployments: in this process, or shared through Redis.

Per deployment:

* requests and tokens used in the current usage window (fixed windows aligned on the epoch,
  so every instance agrees on which window it is);
* failures in the current window, and a cooldown deadline;
* calls in flight;
* a moving average of latency and of time to first token;
* the latest ``x-ratelimit-remaining-requests`` / ``-tokens`` the upstream reported.

:class:`MemoryState` keeps it in a dict. :class:`RedisState` keeps it in Redis, with atomic
updates (``INCR`` / small Lua scripts) and TTLs, so several Router instances act as one; it
mirrors every write into a :class:`MemoryState`, and when Redis cannot be reached it logs one
warning and carries on with that local copy until Redis answers again. Redis trouble never
fails a request.

A call's request slot is a :class:`Reservation`: :meth:`RouterState.reserve` hands one out and
the same object goes back to :meth:`RouterState.release` (or :meth:`RouterState.abandon`), so
a release always undoes its own reservation, wherever that was made.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .._loops import PerLoop

__all__ = ["MemoryState", "Quota", "RedisState", "Reservation", "RouterState", "Snapshot"]

log = logging.getLogger("modelyard.router")

EWMA_ALPHA = 0.3
"""Weight of the newest sample in the latency moving averages."""
_STATS_TTL = 3600
_INFLIGHT_TTL = 600.0


@dataclass(frozen=True)
class Quota:
    """The upstream's latest word on a deployment's remaining quota."""

    remaining_requests: int | None
    remaining_tokens: int | None
    at: float


@dataclass(frozen=True)
class Reservation:
    """One request slot handed out by :meth:`RouterState.reserve`; give it back exactly once.

    Attributes:
        id: the deployment's id.
        shared: True when the slot was taken in the shared store (Redis), False when it was
            taken in this process only (in memory, or while Redis was unreachable). Its
            release goes to the same place.
        token: tells this slot apart from every other in the shared store ("" when not shared).
    """

    id: str
    shared: bool = False
    token: str = ""


@dataclass(frozen=True)
class Snapshot:
    """One deployment's state as read at pick time."""

    requests: int = 0
    tokens: int = 0
    in_flight: int = 0
    cooldown_until: float = 0.0
    latency: float | None = None
    ttft: float | None = None
    quota: Quota | None = None


class RouterState:
    """The interface the Router uses; sync methods and their ``a``-prefixed async twins.

    Args:
        window: the usage window in seconds (``rpm`` / ``tpm`` count per window).
    """

    def __init__(self, window: float = 60.0) -> None:
        if window <= 0:
            raise ValueError("window must be positive")
        self.window = float(window)

    def window_index(self, now: float | None = None) -> int:
        """The number of the usage window ``now`` (epoch seconds) falls in."""
        return int((time.time() if now is None else now) // self.window)

    def snapshot(self, ids: Sequence[str]) -> dict[str, Snapshot]:
        """The state of each deployment in ``ids``."""
        raise NotImplementedError

    def reserve(self, id: str, rpm: int | None) -> Reservation | None:
        """Count one request for ``id`` in this window, unless that would pass ``rpm``; mark it in flight.

        Returns:
            The slot, to be given back with :meth:`release` (or :meth:`abandon`) exactly once;
            None (and nothing counted) when the window already holds ``rpm`` requests.
        """
        raise NotImplementedError

    def snapshot_reserve(self, ids: Sequence[str], id: str, rpm: int | None) -> tuple[dict[str, Snapshot], Reservation | None]:
        """:meth:`snapshot` of ``ids``, then :meth:`reserve` of ``id``, in one go when the store can
        (see :meth:`asnapshot_reserve`)."""
        return self.snapshot(ids), self.reserve(id, rpm)

    def release(
        self, slot: Reservation, *, tokens: int = 0, latency: float | None = None, ttft: float | None = None,
        quota: Quota | None = None,
    ) -> None:  # fmt: skip
        """End the call that holds ``slot`` (from :meth:`reserve`): add its tokens, timings and quota reading."""
        raise NotImplementedError

    def abandon(self, slot: Reservation) -> None:
        """Give ``slot`` back without a report (its stream was dropped unread).

        Called from a garbage-collection finalizer, in whatever thread that runs: it must not
        block, do I/O or take a lock the interrupted code may hold. The default calls
        :meth:`release`; override it when that is not safe.
        """
        self.release(slot)

    def add_failure(self, id: str) -> int:
        """Count one failure for ``id`` in this window; return the window's count."""
        raise NotImplementedError

    def cool_down(self, id: str, until: float) -> None:
        """Keep ``id`` out of rotation until ``until`` (epoch seconds); a later deadline wins."""
        raise NotImplementedError

    async def asnapshot(self, ids: Sequence[str]) -> dict[str, Snapshot]:
        """Async :meth:`snapshot`."""
        return self.snapshot(ids)

    async def areserve(self, id: str, rpm: int | None) -> Reservation | None:
        """Async :meth:`reserve`."""
        return self.reserve(id, rpm)

    async def asnapshot_reserve(
        self, ids: Sequence[str], id: str, rpm: int | None
    ) -> tuple[dict[str, Snapshot], Reservation | None]:
        """:meth:`asnapshot` of ``ids``, then :meth:`areserve` of ``id``, in one go when the store can.

        For a caller that will choose ``id`` unless the snapshot says it is blocked (a group of
        one deployment): it gives the slot back (:meth:`arelease`) when it is. The default makes
        the two calls; a shared store sends them together (one round trip, not two).
        """
        return await self.asnapshot(ids), await self.areserve(id, rpm)

    async def arelease(
        self, slot: Reservation, *, tokens: int = 0, latency: float | None = None, ttft: float | None = None,
        quota: Quota | None = None,
    ) -> None:  # fmt: skip
        """Async :meth:`release`."""
        self.release(slot, tokens=tokens, latency=latency, ttft=ttft, quota=quota)

    async def aadd_failure(self, id: str) -> int:
        """Async :meth:`add_failure`."""
        return self.add_failure(id)

    async def acool_down(self, id: str, until: float) -> None:
        """Async :meth:`cool_down`."""
        self.cool_down(id, until)

    def close(self) -> None:
        """Release connections (nothing to do in memory)."""

    async def aclose(self) -> None:
        """Release the running event loop's connections (nothing to do in memory)."""


def _ewma(old: float | None, sample: float | None) -> float | None:
    if sample is None:
        return old
    return sample if old is None else old + EWMA_ALPHA * (sample - old)


@dataclass
class _Entry:
    window: int = -1
    requests: int = 0
    tokens: int = 0
    failures: int = 0
    in_flight: int = 0
    cooldown_until: float = 0.0
    latency: float | None = None
    ttft: float | None = None
    quota: Quota | None = None


class MemoryState(RouterState):
    """State in this process (thread-safe). The default."""

    def __init__(self, window: float = 60.0) -> None:
        super().__init__(window)
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()
        # Slots given back by finalizers: deque.append needs no lock (a finalizer may run while
        # this thread holds self._lock); the next snapshot or reserve settles them.
        self._abandoned: deque[Reservation] = deque()

    def _settle(self) -> None:
        """Count abandoned slots out of flight (the caller holds the lock)."""
        while self._abandoned:
            try:
                slot = self._abandoned.popleft()
            except IndexError:  # another thread took the last one
                break
            e = self._entry(slot.id)
            e.in_flight = max(0, e.in_flight - 1)

    def _entry(self, id: str, w: int | None = None) -> _Entry:
        e = self._entries.get(id)
        if e is None:
            e = self._entries[id] = _Entry()
        if w is None:
            w = self.window_index()
        if e.window != w:
            e.window, e.requests, e.tokens, e.failures = w, 0, 0, 0
        return e

    def snapshot(self, ids: Sequence[str]) -> dict[str, Snapshot]:
        w = self.window_index()
        with self._lock:
            self._settle()
            return self._snapshot(ids, w)

    def _snapshot(self, ids: Sequence[str], w: int) -> dict[str, Snapshot]:
        """The entries of ``ids`` in window ``w`` (the lock held, settled)."""
        out = {}
        for id in ids:
            e = self._entry(id, w)
            out[id] = Snapshot(e.requests, e.tokens, e.in_flight, e.cooldown_until, e.latency, e.ttft, e.quota)
        return out

    def reserve(self, id: str, rpm: int | None) -> Reservation | None:
        with self._lock:
            self._settle()
            return self._reserve(self._entry(id), id, rpm)

    @staticmethod
    def _reserve(e: _Entry, id: str, rpm: int | None) -> Reservation | None:
        if rpm is not None and e.requests >= rpm:
            return None
        e.requests += 1
        e.in_flight += 1
        return Reservation(id)

    def snapshot_reserve(self, ids: Sequence[str], id: str, rpm: int | None) -> tuple[dict[str, Snapshot], Reservation | None]:
        """:meth:`snapshot` then :meth:`reserve`, under one hold of the lock (a subclass: its own two calls)."""
        if type(self) is not MemoryState:
            return super().snapshot_reserve(ids, id, rpm)
        w = self.window_index()
        with self._lock:
            self._settle()
            return self._snapshot(ids, w), self._reserve(self._entry(id, w), id, rpm)

    async def asnapshot_reserve(
        self, ids: Sequence[str], id: str, rpm: int | None
    ) -> tuple[dict[str, Snapshot], Reservation | None]:
        """:meth:`snapshot_reserve` (nothing to wait for in memory; a subclass: its own two calls)."""
        if type(self) is not MemoryState:
            return await super().asnapshot_reserve(ids, id, rpm)
        return self.snapshot_reserve(ids, id, rpm)

    def release(
        self, slot: Reservation, *, tokens: int = 0, latency: float | None = None, ttft: float | None = None,
        quota: Quota | None = None,
    ) -> None:  # fmt: skip
        with self._lock:
            e = self._entry(slot.id)
            e.in_flight = max(0, e.in_flight - 1)
            e.tokens += max(0, tokens)
            e.latency = _ewma(e.latency, latency)
            e.ttft = _ewma(e.ttft, ttft)
            if quota is not None:
                e.quota = quota

    def abandon(self, slot: Reservation) -> None:
        self._abandoned.append(slot)

    def add_failure(self, id: str) -> int:
        with self._lock:
            e = self._entry(id)
            e.failures += 1
            return e.failures

    def cool_down(self, id: str, until: float) -> None:
        with self._lock:
            e = self._entry(id)
            e.cooldown_until = max(e.cooldown_until, until)


# ------------------------------------------------------------------------------ Redis

# Count a request unless the window is full (ARGV[1] >= 0 is the limit); mark it in flight.
# Calls in flight are a sorted set of leases (member: the reservation's token, score: when it
# lapses), not a counter: a release removes its own lease (a second one, or one for a lease
# that was never taken, changes nothing), and a release that never arrives (the process died,
# Redis was unreachable) only counts until its lease lapses, whatever other traffic does.
_RESERVE = """
local n = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
local limit = tonumber(ARGV[1])
if limit >= 0 and n > limit then
  redis.call('DECR', KEYS[1])
  return 0
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[4])
redis.call('ZADD', KEYS[2], ARGV[5], ARGV[6])
redis.call('EXPIRE', KEYS[2], ARGV[3])
return 1
"""
# A later deadline wins; an earlier one never shortens a running cooldown.
_COOL_DOWN = """
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > cur then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
end
return 1
"""

_Command = tuple[Any, ...]


@dataclass(frozen=True)
class _Unreleased:
    """A shared lease whose release has not reached Redis yet."""

    key: str
    token: str
    lapses: float  # epoch seconds; after this Redis has forgotten the lease anyway


class RedisState(RouterState):
    """State shared through Redis by every Router that uses the same server and ``prefix``.

    Keys (``<prefix>`` defaults to ``modelyard:router:``), all with TTLs:
    ``<prefix><id>:req:<window>`` and ``:tok:<window>`` (usage), ``:fail:<window>``,
    ``:leases`` (calls in flight: a sorted set, one lease per call), ``:cooldown`` (value: the
    deadline, expiring with it) and ``:stats`` (a hash: latency, ttft, remaining requests /
    tokens and when they were reported).

    A slot reserved while Redis was unreachable lives in this process's local state only, and
    its release goes there too (never to Redis). A slot reserved in Redis whose release cannot
    reach Redis is remembered and sent with the next command that reaches it; if this process
    ends first, the lease lapses after ``in_flight_ttl`` seconds.

    Args:
        url: ``redis://[:password@]host:port/db``; or give ``host`` / ``port`` / ``password``.
        window: the usage window in seconds.
        prefix: the key prefix (instances that should share state use the same one).
        socket_timeout: seconds before a Redis call counts as failed.
        retry_interval: after a failure, seconds to run on local state before trying Redis again.
        in_flight_ttl: seconds after which a call still counted in flight stops counting (its
            release was lost); longer than any call or stream should last.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        host: str | None = None,
        port: int | None = None,
        password: str | None = None,
        window: float = 60.0,
        prefix: str = "modelyard:router:",
        socket_timeout: float = 0.5,
        retry_interval: float = 5.0,
        in_flight_ttl: float = _INFLIGHT_TTL,
    ) -> None:
        super().__init__(window)
        try:
            import redis
        except ImportError as exc:  # pragma: no cover - depends on the install
            from ..errors import ConfigError

            raise ConfigError(
                "Redis settings need the redis client: pip install 'modelyard[redis]'.", key="redis_host"
            ) from exc
        self._options: dict[str, Any] = {
            "socket_timeout": socket_timeout,
            "socket_connect_timeout": socket_timeout,
            "decode_responses": True,
        }
        if url is not None:
            self._url: str | None = url
        else:
            self._url = None
            self._options.update(host=host or "localhost", port=int(port or 6379), password=password)
        self.prefix = prefix
        self.local = MemoryState(window)
        self._retry_interval = retry_interval
        self._down_until = 0.0
        self._warned = False
        if not in_flight_ttl > 0:
            raise ValueError("in_flight_ttl must be positive")
        self._lease_seconds = float(in_flight_ttl)
        # Releases of shared leases that could not reach Redis; deque operations need no lock
        # (abandon() runs in finalizers). Sent ahead of the next command that reaches Redis.
        self._unreleased: deque[_Unreleased] = deque()
        # Async releases not sent yet: the ones made in one turn of the event loop go to Redis in
        # one pipeline, after the call has answered (one round trip fewer on each call's path).
        self._pending: deque[tuple[Reservation, list[_Command]]] = deque()
        self._flushes: dict[asyncio.AbstractEventLoop, asyncio.Task[None]] = {}
        self._errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        self._sync_client: Any = None
        # One async client per event loop, closed on its loop when the loop shuts down.
        self._async_clients: PerLoop[Any] = PerLoop(_aclose_client)

    def __repr__(self) -> str:
        where = "url" if self._url else f"{self._options['host']}:{self._options['port']}"
        return f"RedisState({where}, prefix={self.prefix!r}, window={self.window:g})"

    # -------------------------------------------------------------- connection handling

    def _client(self) -> Any:
        if self._sync_client is None:
            import redis
            from redis.backoff import NoBackoff
            from redis.retry import Retry

            # No client-side retries: a failed call falls back to local state at once.
            options = {**self._options, "retry": Retry(NoBackoff(), 0)}
            self._sync_client = redis.Redis.from_url(self._url, **options) if self._url else redis.Redis(**options)
        return self._sync_client

    def _aclient(self) -> Any:
        loop = asyncio.get_running_loop()
        client = self._async_clients.get(loop)
        if client is None:
            import redis.asyncio as aredis
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff

            options = {**self._options, "retry": Retry(NoBackoff(), 0)}
            client = aredis.Redis.from_url(self._url, **options) if self._url else aredis.Redis(**options)
            self._async_clients.set(loop, client)
        return client

    @property
    def available(self) -> bool:
        """False while the Router runs on local state after a Redis failure."""
        return time.monotonic() >= self._down_until

    def _failed(self, exc: BaseException) -> None:
        self._down_until = time.monotonic() + self._retry_interval
        if not self._warned:
            self._warned = True
            log.warning(
                "Redis is unreachable (%s); the Router carries on with this process's own state "
                "and retries Redis every %gs.", type(exc).__name__, self._retry_interval,
            )  # fmt: skip

    def _recovered(self) -> None:
        if self._warned:
            self._warned = False
            log.warning("Redis answers again; the Router shares its state through Redis once more.")

    def _defer(self, slot: Reservation) -> None:
        """Remember that ``slot``'s lease is to be removed from Redis when it next answers."""
        lapses = time.time() + self._lease_seconds  # an upper bound: the lease was taken earlier
        self._unreleased.append(_Unreleased(self._key(slot.id, "leases"), slot.token, lapses))

    def _take_unreleased(self) -> list[_Unreleased]:
        out = []
        now = time.time()
        while self._unreleased:
            try:
                item = self._unreleased.popleft()
            except IndexError:
                break
            if item.lapses > now:  # a lapsed lease is gone from Redis already
                out.append(item)
        return out

    def _with_unreleased(self, commands: list[_Command]) -> tuple[list[_Command], list[_Unreleased], int]:
        """``commands`` preceded by the releases still owed to Redis (ZREM is idempotent) and the
        async releases not sent yet, so that this process never reads its own released leases;
        and how many commands were put before ``commands``.

        The owed releases come back on failure (the caller puts them back); a pending release
        that fails is owed from then on, as one whose own send failed.
        """
        owed = self._take_unreleased() if self._unreleased else []
        before: list[_Command] = [("ZREM", u.key, u.token) for u in owed]
        while self._pending:
            try:
                slot, release = self._pending.popleft()
            except IndexError:  # another thread took the last one
                break
            before += release
            if slot.shared:
                owed.append(_Unreleased(self._key(slot.id, "leases"), slot.token, time.time() + self._lease_seconds))
        return before + commands, owed, len(before)

    def _run(self, commands: list[_Command]) -> list[Any] | None:
        if not self.available:
            return None
        commands, owed, sent_before = self._with_unreleased(commands)
        if not commands:
            return []
        try:
            pipe = self._client().pipeline(transaction=False)
            for cmd in commands:
                pipe.execute_command(*cmd)
            result: list[Any] = pipe.execute()
        except self._errors as exc:
            self._unreleased.extend(owed)
            self._failed(exc)
            return None
        except BaseException:
            self._unreleased.extend(owed)
            raise
        self._recovered()
        return result[sent_before:]

    async def _arun(self, commands: list[_Command]) -> list[Any] | None:
        if not self.available:
            return None
        commands, owed, sent_before = self._with_unreleased(commands)
        if not commands:
            return []
        try:
            pipe = self._aclient().pipeline(transaction=False)
            for cmd in commands:
                pipe.execute_command(*cmd)
            result: list[Any] = await pipe.execute()
        except self._errors as exc:
            self._unreleased.extend(owed)
            self._failed(exc)
            return None
        except BaseException:  # cancelled mid-call: they may not have been sent
            self._unreleased.extend(owed)
            raise
        self._recovered()
        return result[sent_before:]

    def close(self) -> None:
        if self._sync_client is not None:
            self._sync_client.close()
            self._sync_client = None

    async def aclose(self) -> None:
        loop = asyncio.get_running_loop()
        flush = self._flushes.pop(loop, None)
        if flush is not None:
            await asyncio.gather(flush, return_exceptions=True)
        if self._pending:
            await self._arun([])  # releases not sent yet go before the client closes
        await self._async_clients.aclose(loop)

    # -------------------------------------------------------------- commands

    def _key(self, id: str, what: str) -> str:
        return f"{self.prefix}{id}:{what}"

    def _snapshot_commands(self, ids: Sequence[str]) -> list[_Command]:
        now = time.time()
        w = self.window_index(now)
        cmds: list[_Command] = []
        for id in ids:
            cmds += [
                ("GET", self._key(id, f"req:{w}")),
                ("GET", self._key(id, f"tok:{w}")),
                ("ZCOUNT", self._key(id, "leases"), f"({now:.3f}", "+inf"),
                ("GET", self._key(id, "cooldown")),
                ("HMGET", self._key(id, "stats"), "latency", "ttft", "rreq", "rtok", "qat"),
            ]
        return cmds

    def _snapshot_parse(self, ids: Sequence[str], result: list[Any] | None) -> dict[str, Snapshot]:
        local = self.local.snapshot(ids)
        if result is None:
            return local
        out = {}
        for n, id in enumerate(ids):
            req, tok, inflight, cooldown, stats = result[5 * n : 5 * n + 5]
            latency, ttft, rreq, rtok, qat = stats
            quota = Quota(_int(rreq), _int(rtok), float(qat)) if qat else local[id].quota
            out[id] = Snapshot(
                requests=_int(req) or 0,
                tokens=_int(tok) or 0,
                in_flight=max(0, _int(inflight) or 0),
                cooldown_until=_float(cooldown) or 0.0,
                latency=_float(latency) if latency is not None else local[id].latency,
                ttft=_float(ttft) if ttft is not None else local[id].ttft,
                quota=quota,
            )
        return out

    def _reserve_commands(self, id: str, rpm: int | None, token: str) -> list[_Command]:
        now = time.time()
        w = self.window_index(now)
        return [
            ("EVAL", _RESERVE, 2, self._key(id, f"req:{w}"), self._key(id, "leases"),
             -1 if rpm is None else rpm, int(self.window * 2) + 1, int(self._lease_seconds) + 1,
             f"{now:.3f}", f"{now + self._lease_seconds:.3f}", token),
        ]  # fmt: skip

    def _release_commands(self, slot: Reservation, tokens: int, quota: Quota | None) -> list[_Command]:
        id = slot.id
        w = self.window_index()
        # The tokens were used whichever store counted the request; only a shared slot has a
        # lease in Redis to remove.
        cmds: list[_Command] = [("ZREM", self._key(id, "leases"), slot.token)] if slot.shared else []
        if tokens > 0:
            cmds += [("INCRBY", self._key(id, f"tok:{w}"), tokens),
                     ("EXPIRE", self._key(id, f"tok:{w}"), int(self.window * 2) + 1)]  # fmt: skip
        # Moving averages are kept locally and published: last writer wins, which is enough
        # for ranking deployments by speed.
        snap = self.local.snapshot([id])[id]
        fields: dict[str, Any] = {}
        if snap.latency is not None:
            fields["latency"] = f"{snap.latency:.6f}"
        if snap.ttft is not None:
            fields["ttft"] = f"{snap.ttft:.6f}"
        if quota is not None:
            fields.update(
                rreq="" if quota.remaining_requests is None else quota.remaining_requests,
                rtok="" if quota.remaining_tokens is None else quota.remaining_tokens,
                qat=f"{quota.at:.3f}",
            )
        if fields:
            flat = [x for kv in fields.items() for x in kv]
            cmds += [("HSET", self._key(id, "stats"), *flat), ("EXPIRE", self._key(id, "stats"), _STATS_TTL)]
        return cmds

    def _failure_commands(self, id: str) -> list[_Command]:
        key = self._key(id, f"fail:{self.window_index()}")
        return [("INCR", key), ("EXPIRE", key, int(self.window * 2) + 1)]

    def _cool_down_commands(self, id: str, until: float) -> list[_Command]:
        ms = max(1, int((until - time.time()) * 1000))
        return [("EVAL", _COOL_DOWN, 1, self._key(id, "cooldown"), f"{until:.3f}", ms)]

    # -------------------------------------------------------------- sync

    def snapshot(self, ids: Sequence[str]) -> dict[str, Snapshot]:
        return self._snapshot_parse(ids, self._run(self._snapshot_commands(ids)))

    def reserve(self, id: str, rpm: int | None) -> Reservation | None:
        token, tried = _token(), self.available
        result = self._run(self._reserve_commands(id, rpm, token))
        return self._reserved(id, rpm, result, token, tried)

    def snapshot_reserve(self, ids: Sequence[str], id: str, rpm: int | None) -> tuple[dict[str, Snapshot], Reservation | None]:
        token, tried = _token(), self.available
        reads = self._snapshot_commands(ids)
        result = self._run([*reads, *self._reserve_commands(id, rpm, token)])
        return self._snapshot_reserved(ids, id, rpm, len(reads), result, token, tried)

    def release(
        self, slot: Reservation, *, tokens: int = 0, latency: float | None = None, ttft: float | None = None,
        quota: Quota | None = None,
    ) -> None:  # fmt: skip
        self.local.release(slot, tokens=tokens, latency=latency, ttft=ttft, quota=quota)
        if self._run(self._release_commands(slot, tokens, quota)) is None and slot.shared:
            self._defer(slot)

    def abandon(self, slot: Reservation) -> None:
        self.local.abandon(slot)
        if slot.shared:
            self._defer(slot)  # no I/O here: sent with the next command

    def add_failure(self, id: str) -> int:
        local = self.local.add_failure(id)
        result = self._run(self._failure_commands(id))
        return local if result is None else int(result[0])

    def cool_down(self, id: str, until: float) -> None:
        self.local.cool_down(id, until)
        self._run(self._cool_down_commands(id, until))

    # -------------------------------------------------------------- async

    async def asnapshot(self, ids: Sequence[str]) -> dict[str, Snapshot]:
        return self._snapshot_parse(ids, await self._arun(self._snapshot_commands(ids)))

    async def areserve(self, id: str, rpm: int | None) -> Reservation | None:
        token, tried = _token(), self.available
        try:
            result = await self._arun(self._reserve_commands(id, rpm, token))
        except asyncio.CancelledError:
            self._defer(Reservation(id, shared=True, token=token))  # see _reserved
            raise
        return self._reserved(id, rpm, result, token, tried)

    async def asnapshot_reserve(
        self, ids: Sequence[str], id: str, rpm: int | None
    ) -> tuple[dict[str, Snapshot], Reservation | None]:
        # One pipeline: the snapshot's reads, then the reservation's script (so the snapshot
        # does not count the slot it takes, as when they are sent one after the other).
        token, tried = _token(), self.available
        reads = self._snapshot_commands(ids)
        try:
            result = await self._arun([*reads, *self._reserve_commands(id, rpm, token)])
        except asyncio.CancelledError:
            self._defer(Reservation(id, shared=True, token=token))  # see _reserved
            raise
        return self._snapshot_reserved(ids, id, rpm, len(reads), result, token, tried)

    def _snapshot_reserved(
        self, ids: Sequence[str], id: str, rpm: int | None, n: int, result: list[Any] | None, token: str, tried: bool
    ) -> tuple[dict[str, Snapshot], Reservation | None]:
        """The snapshot (the first ``n`` answers) and the slot (the rest) of one pipeline."""
        if result is None:
            return self._snapshot_parse(ids, None), self._reserved(id, rpm, None, token, tried)
        return self._snapshot_parse(ids, result[:n]), self._reserved(id, rpm, result[n:], token, tried)

    async def arelease(
        self, slot: Reservation, *, tokens: int = 0, latency: float | None = None, ttft: float | None = None,
        quota: Quota | None = None,
    ) -> None:  # fmt: skip
        self.local.release(slot, tokens=tokens, latency=latency, ttft=ttft, quota=quota)
        if not self.available:
            if slot.shared:
                self._defer(slot)
            return
        # Sent after the call has answered, with the other releases of this turn of the loop
        # (or ahead of this process's next command, whichever comes first).
        self._pending.append((slot, self._release_commands(slot, tokens, quota)))
        loop = asyncio.get_running_loop()
        if loop not in self._flushes:
            self._flushes[loop] = loop.create_task(self._flush(loop))

    async def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        """Send the pending releases in one pipeline (a failure leaves their leases owed)."""
        try:
            await asyncio.sleep(0)  # the releases of this turn of the loop join them
        finally:  # a release from now on schedules another flush
            if self._flushes.get(loop) is asyncio.current_task():
                del self._flushes[loop]
        try:
            if self._pending:
                await self._arun([])
        except Exception:  # not Redis's errors (they are handled): never an unretrieved task error
            log.exception("sending the Router's releases to Redis failed")

    async def aadd_failure(self, id: str) -> int:
        local = self.local.add_failure(id)
        result = await self._arun(self._failure_commands(id))
        return local if result is None else int(result[0])

    async def acool_down(self, id: str, until: float) -> None:
        self.local.cool_down(id, until)
        await self._arun(self._cool_down_commands(id, until))

    def _reserved(
        self, id: str, rpm: int | None, result: list[Any] | None, token: str, tried: bool
    ) -> Reservation | None:
        if result is None:  # Redis is down: this process's own count decides, and will be released
            if tried:  # the lease may have been taken before the answer was lost: take it back
                self._defer(Reservation(id, shared=True, token=token))
            return self.local.reserve(id, rpm)
        if not int(result[0]):
            return None
        self.local.reserve(id, None)  # mirror, for the day Redis goes away
        return Reservation(id, shared=True, token=token)


def _token() -> str:
    return os.urandom(9).hex()


async def _aclose_client(client: Any) -> None:
    await client.aclose()


def _int(value: Any) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _float(value: Any) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None

