"""Issue 22, transport bugs 3, 4 and 6 as the Router sees them: ``retry-after: inf``, failover
after a timeout, and the Redis state's per-loop clients."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections import Counter
from typing import Any

import pytest
from modelyard import Router
from modelyard.errors import APITimeoutError
from modelyard.router.state import RedisState
from modelyard.testing import KEY, Deployment, Emulator, Faults

HELLO = [{"role": "user", "content": "Hello there"}]


def entry(name: str, api_base: str, **extra: Any) -> dict[str, Any]:
    params = {"model": f"azure/{name}", "api_key": KEY, "api_base": api_base, "api_version": "2024-10-21"}
    return {"model_name": "gpt-4o", "litellm_params": params, **extra}


def served(emu: Emulator) -> list[str]:
    return [r.path.split("/")[3] for r in emu.requests]


@pytest.mark.parametrize("shared", ["memory", "redis"])
def test_bug3_retry_after_inf_does_not_cool_a_deployment_down_for_ever(
    shared: str, emu: Emulator, emu_url: str, request: pytest.FixtureRequest
) -> None:
    emu.add_deployment(Deployment("east", faults=Faults(script=[429], headers={"retry-after": "inf", "retry-after-ms": None})))
    emu.add_deployment(Deployment("west"))
    redis = {"redis_url": request.getfixturevalue("redis_url")} if shared == "redis" else {}
    router = Router(model_list=[entry("east", emu_url, order=1), entry("west", emu_url, order=2)], cooldown_time=1, **redis)
    try:
        # east's 429 moves the call to west (was OverflowError from the Redis state)
        assert router.completion(model="gpt-4o", messages=HELLO).choices[0].message.content.startswith("This is west")
        [east] = [d for d in router.deployments if d.model == "azure/east"]
        until = router.state.snapshot([east.id])[east.id].cooldown_until
        assert time.time() < until <= time.time() + 1.5  # cooldown_time, not for ever
    finally:
        router.close()


def test_bug4_the_router_does_not_fail_over_after_a_read_timeout(emu: Emulator, emu_url: str) -> None:
    emu.add_deployment(Deployment("stuck", faults=Faults(latency=1.0)))
    emu.add_deployment(Deployment("fine"))
    model_list = [entry("stuck", emu_url, order=1), entry("fine", emu_url, order=2)]
    router = Router(model_list=model_list, timeout=0.5, num_retries=2, fallbacks=[{"gpt-4o": ["gpt-4o"]}])
    with pytest.raises(APITimeoutError):
        router.completion(model="gpt-4o", messages=HELLO)
    assert served(emu) == ["stuck"]  # was stuck, then fine: two runs of one request
    # per call, or for the Router, a timeout may be retried on another deployment
    reply = router.completion(model="gpt-4o", messages=HELLO, retry_on_timeout=True)
    assert reply.choices[0].message.content.startswith("This is fine")
    assert Counter(served(emu)) == {"stuck": 2, "fine": 1}


def _sockets() -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
    return count


def test_bug6_redis_state_closes_the_client_of_each_finished_event_loop(redis_url: str) -> None:
    state = RedisState(redis_url)
    before = _sockets()
    for _ in range(20):
        asyncio.run(state.areserve("dep", None))
        assert len(state._async_clients) <= 1
    assert len(state._async_clients) == 0  # was 20 clients, one per dead loop
    assert _sockets() - before <= 2  # was 20 open connections to Redis
    assert state.snapshot(["dep"])["dep"].requests == 20
    state.close()
