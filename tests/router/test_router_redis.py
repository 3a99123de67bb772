"""The Router with shared state in a real redis-server."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import redis
from modelyard import RateLimitError, Router
from modelyard.router import RedisState
from modelyard.router.state import Quota
from modelyard.testing import Deployment, Emulator, Faults

from .conftest import RedisServer
from .test_router import HELLO, entry, served

WORKER = Path(__file__).with_name("rpm_worker.py")


def test_two_router_processes_sharing_redis_respect_a_combined_rpm(
    emu: Emulator, emu_url: str, redis_url: str
) -> None:
    emu.add_deployment(Deployment("capped"))
    emu.add_deployment(Deployment("spare"))
    window = RedisState(redis_url).window_index()  # 60 s windows, as every Router here uses
    start_at = time.time() + 2.0  # both processes imported and ready by then
    command = [sys.executable, str(WORKER), emu_url, redis_url, "15", str(start_at)]
    workers = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [w.communicate(timeout=120)[0].strip() for w in workers]
    windows = RedisState(redis_url).window_index() - window + 1
    assert [w.returncode for w in workers] == [0, 0]
    assert outputs == ["15", "15"]  # every call succeeded
    counts = Counter(served(emu))
    assert counts["capped"] + counts["spare"] == 30
    # usage-based routing sends each process's calls to the least used deployment, so both
    # reach for "capped" until the shared counter says its 5 requests are gone. Exact per
    # window: the slot is taken atomically in Redis before the call. (If the run crossed a
    # minute boundary, the new window has 5 more.)
    assert 5 <= counts["capped"] <= 5 * windows


def test_a_cooldown_set_by_one_router_is_seen_by_another(emu: Emulator, emu_url: str, redis_url: str) -> None:
    emu.add_deployment(Deployment("a", faults=Faults(script=[429], retry_after=30)))
    emu.add_deployment(Deployment("b"))
    model_list = [entry("a", emu_url, order=1), entry("b", emu_url, order=2)]
    first = Router(model_list=model_list, redis_url=redis_url)
    second = Router(model_list=model_list, redis_url=redis_url)
    first.completion(model="gpt-4o", messages=HELLO)
    assert served(emu) == ["a", "b"]
    for _ in range(5):
        second.completion(model="gpt-4o", messages=HELLO)
    assert served(emu)[2:] == ["b"] * 5  # "a" is tier 1, but cooling down for everyone
    assert isinstance(second.state, RedisState) and second.state.available


def test_async_router_on_redis(emu: Emulator, emu_url: str, redis_url: str) -> None:
    emu.add_deployment(Deployment("a"))
    emu.add_deployment(Deployment("b"))

    async def main() -> None:
        router = Router(
            model_list=[entry("a", emu_url, rpm=3), entry("b", emu_url)],
            redis_url=redis_url, routing_strategy="least-busy",
        )  # fmt: skip
        # A snapshot counts the current usage window only: start well inside one (it may take a
        # few seconds' wait), so that the twelve requests and the snapshot share it.
        left = router.state.window - time.time() % router.state.window
        if left < 5:
            await asyncio.sleep(left + 0.05)
        window = router.state.window_index()
        replies = await asyncio.gather(*(router.acompletion(model="gpt-4o", messages=HELLO) for _ in range(12)))
        assert len(replies) == 12
        snaps = await router.state.asnapshot([d.id for d in router.deployments])
        assert router.state.window_index() == window
        assert sum(s.requests for s in snaps.values()) == 12
        assert all(s.in_flight == 0 for s in snaps.values())
        windows = router.state.window_index() - window + 1
        assert Counter(served(emu))["a"] <= 3 * windows
        await router.aclose()

    asyncio.run(main())


def test_redis_killed_mid_run_requests_keep_succeeding(
    emu: Emulator, emu_url: str, fresh_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    emu.add_deployment(Deployment("a"))
    emu.add_deployment(Deployment("b"))
    router = Router(
        model_list=[entry("a", emu_url), entry("b", emu_url)],
        redis_host="127.0.0.1", redis_port=str(fresh_redis.port), redis_password=fresh_redis.password,
        routing_strategy="usage-based-routing",
    )  # fmt: skip
    for _ in range(10):
        router.completion(model="gpt-4o", messages=HELLO)
    assert isinstance(router.state, RedisState) and router.state.available
    fresh_redis.stop()
    caplog.set_level(logging.WARNING, logger="modelyard.router")
    replies = [router.completion(model="gpt-4o", messages=HELLO) for _ in range(20)]
    assert len(replies) == 20 and len(emu.requests) == 30
    warnings = [r for r in caplog.records if "Redis is unreachable" in r.getMessage()]
    assert len(warnings) == 1  # once, not per call
    assert not router.state.available
    # local state carried on: usage-based routing still balances the two
    counts = Counter(served(emu)[10:])
    assert abs(counts["a"] - counts["b"]) <= 2


def test_cooldown_in_redis_keeps_the_later_deadline(redis_url: str) -> None:
    state = RedisState(redis_url)
    now = time.time()
    state.cool_down("dep", now + 30)
    state.cool_down("dep", now + 5)  # shorter: must not cut the running cooldown
    other = RedisState(redis_url)
    assert other.snapshot(["dep"])["dep"].cooldown_until == pytest.approx(now + 30, abs=0.01)
    state.close()
    other.close()


def test_the_router_goes_back_to_redis_when_it_answers_again(
    emu: Emulator, emu_url: str, fresh_redis: RedisServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    emu.add_deployment(Deployment("a"))
    emu.add_deployment(Deployment("b"))
    state = RedisState(fresh_redis.url, retry_interval=0.2)
    router = Router(model_list=[entry("a", emu_url), entry("b", emu_url)], state=state)
    caplog.set_level(logging.WARNING, logger="modelyard.router")
    fresh_redis.stop()
    router.completion(model="gpt-4o", messages=HELLO)
    assert not state.available
    revived = RedisServer(tmp_path / "revived", port=fresh_redis.port)
    try:
        time.sleep(0.3)  # past retry_interval: the next call tries Redis again
        router.completion(model="gpt-4o", messages=HELLO)
        assert state.available
        assert "Redis answers again" in caplog.text
        # the call after the outage was counted in Redis, where another instance sees it
        other = RedisState(revived.url)
        snaps = other.snapshot([d.id for d in router.deployments])
        assert sum(s.requests for s in snaps.values()) == 1
        other.close()
    finally:
        revived.stop()
        state.close()


def _leases_in_redis(url: str, router: Router) -> int:
    """Calls in flight across instances, read from Redis by an instance of its own."""
    observer = RedisState(url)
    try:
        snaps = observer.snapshot([d.id for d in router.deployments])
        assert observer.available
        return sum(s.in_flight for s in snaps.values())
    finally:
        observer.close()


def test_redis_release_goes_where_reserve_went(
    emu: Emulator, emu_url: str, fresh_redis: RedisServer, tmp_path: Path
) -> None:
    # A stream holds its slot while it is open, so each step below happens with the slot in
    # a known place. Instance A takes a slot while Redis is down (kept locally); Redis comes
    # back and instance B takes a slot there. A's release must not take B's slot out of
    # Redis (before the fix it did: in flight read 0 while B's call ran).
    emu.add_deployment(Deployment("a"))
    model_list = [entry("a", emu_url)]
    first = Router(model_list=model_list, state=RedisState(fresh_redis.url, retry_interval=0.2))
    second = Router(model_list=model_list, state=RedisState(fresh_redis.url))
    assert isinstance(first.state, RedisState)
    fresh_redis.stop()
    during_outage = first.completion(model="gpt-4o", messages=HELLO, stream=True)
    assert not first.state.available  # reserved in A's local state
    revived = RedisServer(tmp_path / "revived", port=fresh_redis.port)
    try:
        time.sleep(0.3)  # past retry_interval: A talks to Redis again
        in_redis = second.completion(model="gpt-4o", messages=HELLO, stream=True)
        assert _leases_in_redis(revived.url, first) == 1
        during_outage.close()
        assert first.state.available  # the release ran while Redis answered ...
        assert _leases_in_redis(revived.url, first) == 1  # ... and left B's slot alone
        assert first.state.local.snapshot([first.deployments[0].id])[first.deployments[0].id].in_flight == 0
        in_redis.close()
        assert _leases_in_redis(revived.url, first) == 0
    finally:
        first.close()
        second.close()
        revived.stop()


def test_redis_release_lost_in_an_outage_is_sent_when_redis_returns(
    emu: Emulator, emu_url: str, fresh_redis: RedisServer
) -> None:
    # A slot taken in Redis, released while Redis is down, then Redis restarts with its data
    # (saved before it went down). Before the fix the count stayed at 1 with nothing in flight,
    # for good: each later call added one and took one away, renewing the key's TTL.
    emu.add_deployment(Deployment("a"))
    state = RedisState(fresh_redis.url, retry_interval=0.2)
    router = Router(model_list=[entry("a", emu_url)], state=state)
    stream = router.completion(model="gpt-4o", messages=HELLO, stream=True)
    assert _leases_in_redis(fresh_redis.url, router) == 1
    redis.Redis.from_url(fresh_redis.url).save()  # the restart below loads this snapshot
    fresh_redis.stop()
    stream.close()  # its release cannot reach Redis
    assert not state.available
    revived = RedisServer(fresh_redis.workdir, port=fresh_redis.port)
    try:
        assert _leases_in_redis(revived.url, router) == 1  # the restart brought the stale lease back
        time.sleep(0.3)  # past retry_interval
        for _ in range(3):
            router.completion(model="gpt-4o", messages=HELLO)
        assert state.available
        assert _leases_in_redis(revived.url, router) == 0
    finally:
        router.close()
        revived.stop()


def test_redis_lease_of_a_lost_release_lapses(redis_url: str) -> None:
    # A process that dies with a call in flight never releases it; its lease lapses after
    # in_flight_ttl, even while other calls keep the key busy.
    dying = RedisState(redis_url, in_flight_ttl=1.0)
    assert dying.reserve("dep", None) is not None
    dying.close()
    other = RedisState(redis_url)
    assert other.snapshot(["dep"])["dep"].in_flight == 1
    time.sleep(1.3)
    slot = other.reserve("dep", None)
    assert slot is not None
    assert other.snapshot(["dep"])["dep"].in_flight == 1  # only the live call
    other.release(slot)
    other.release(slot)  # a second release of the same slot takes nothing more out of Redis
    assert other.snapshot(["dep"])["dep"].in_flight == 0
    other.close()


def test_async_releases_reach_redis_after_the_calls_in_one_round(emu: Emulator, emu_url: str, redis_url: str) -> None:
    # An async call's release is not awaited on its path: the releases of one turn of the loop
    # go to Redis together, or ahead of this instance's next command. Another instance sees
    # no lease once the loop has had its turn; this instance never sees its own released ones.
    emu.add_deployment(Deployment("a"))

    async def main() -> None:
        router = Router(model_list=[entry("a", emu_url)], redis_url=redis_url)
        state = router.state
        assert isinstance(state, RedisState)
        replies = await asyncio.gather(*(router.acompletion(model="gpt-4o", messages=HELLO) for _ in range(8)))
        assert len(replies) == 8
        ids = [d.id for d in router.deployments]
        assert (await state.asnapshot(ids))[ids[0]].in_flight == 0  # its own releases go first
        await router.acompletion(model="gpt-4o", messages=HELLO)
        for _ in range(3):
            await asyncio.sleep(0)  # the flush's turn
        assert _leases_in_redis(redis_url, router) == 0
        snap = (await state.asnapshot(ids))[ids[0]]
        assert snap.requests == 9 and snap.tokens > 0  # the releases' token counts arrived too
        await router.aclose()

    asyncio.run(main())


def test_async_release_pending_at_close_is_sent(emu: Emulator, emu_url: str, redis_url: str) -> None:
    emu.add_deployment(Deployment("a"))

    async def main() -> Router:
        router = Router(model_list=[entry("a", emu_url)], redis_url=redis_url)
        await router.acompletion(model="gpt-4o", messages=HELLO)
        await router.aclose()  # right after the call: its release had not had its turn yet
        return router

    router = asyncio.run(main())
    assert _leases_in_redis(redis_url, router) == 0


class _CountingState(RedisState):
    """A RedisState that records the commands of each round trip it makes (its pipelines)."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.trips: list[list[str]] = []

    async def _arun(self, commands: list[Any]) -> list[Any] | None:
        if commands:  # not a flush of releases alone (those go after the answer)
            self.trips.append([str(c[0]) for c in commands])
        return await super()._arun(commands)

    def _run(self, commands: list[Any]) -> list[Any] | None:
        self.trips.append([str(c[0]) for c in commands])
        return super()._run(commands)


def test_a_lone_deployment_is_read_and_reserved_in_one_round_trip(emu: Emulator, emu_url: str, redis_url: str) -> None:
    # On an async call's path, a group of one deployment costs one round trip to Redis before
    # the upstream call: the snapshot's reads and the reservation go in one pipeline.
    emu.add_deployment(Deployment("a"))

    async def main() -> tuple[list[list[str]], int]:
        state = _CountingState(redis_url)
        router = Router(model_list=[entry("a", emu_url)], state=state)
        for _ in range(2):
            await router.acompletion(model="gpt-4o", messages=HELLO)
        snap = (await state.asnapshot([router.deployments[0].id]))[router.deployments[0].id]
        await router.aclose()
        return state.trips[:2], snap.requests

    trips, requests = asyncio.run(main())
    read_and_reserve = ["GET", "GET", "ZCOUNT", "GET", "HMGET", "EVAL"]
    assert trips == [read_and_reserve, read_and_reserve]
    assert requests == 2


def test_a_lone_deployment_out_of_quota_gets_its_slot_back(emu: Emulator, emu_url: str, redis_url: str) -> None:
    # Reserved with the look, the slot of a deployment the look finds blocked (no requests
    # left, by the upstream's latest reading) is given back: nothing stays in flight.
    emu.add_deployment(Deployment("a"))

    async def main() -> Router:
        router = Router(model_list=[entry("a", emu_url)], redis_url=redis_url, timeout=1.0)
        dep = router.deployments[0].id
        other = RedisState(redis_url)
        slot = other.reserve(dep, None)
        assert slot is not None
        other.release(slot, quota=Quota(0, None, time.time()))  # for 10 s (quota_ttl), nothing left
        other.close()
        with pytest.raises(RateLimitError):
            await router.acompletion(model="gpt-4o", messages=HELLO)
        await router.aclose()
        return router

    router = asyncio.run(main())
    assert _leases_in_redis(redis_url, router) == 0
    assert emu.requests == []


def test_a_sync_call_to_a_lone_deployment_reads_and_reserves_in_one_round_trip(
    emu: Emulator, emu_url: str, redis_url: str
) -> None:
    # The sync twin: a look and a slot in one trip, then the release (sent on the call's path).
    emu.add_deployment(Deployment("a"))
    state = _CountingState(redis_url)
    router = Router(model_list=[entry("a", emu_url)], state=state)
    try:
        router.completion(model="gpt-4o", messages=HELLO)
    finally:
        router.close()
    assert len(state.trips) == 2  # read + reserve, then the release
    assert state.trips[0] == ["GET", "GET", "ZCOUNT", "GET", "HMGET", "EVAL"]
    assert state.trips[1][0] == "ZREM"
