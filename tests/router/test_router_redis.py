"""The Router with shared state in a real redis-server."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from modelyard import Router
from modelyard.router import RedisState
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
        window = router.state.window_index()
        replies = await asyncio.gather(*(router.acompletion(model="gpt-4o", messages=HELLO) for _ in range(12)))
        assert len(replies) == 12
        snaps = await router.state.asnapshot([d.id for d in router.deployments])
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
