"""Every in-flight slot the Router reserves comes back, in memory and in Redis (issue 22, bugs 7 and 9)."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest
from modelyard import Router
from modelyard.router import MemoryState, RedisState
from modelyard.testing import Deployment, Emulator, Faults

from .test_router import HELLO, entry, served


@pytest.fixture(params=["memory", "redis"])
def state_kwargs(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Router settings for in-memory state, or for the session's real redis-server (emptied)."""
    if request.param == "memory":
        return {}
    return {"redis_url": request.getfixturevalue("redis_url")}


def in_flight(router: Router) -> list[int]:
    """Calls in flight per deployment, as the Router sees them (in Redis, when it uses Redis)."""
    ids = [d.id for d in router.deployments]
    snaps = router.state.snapshot(ids)
    counts = [snaps[i].in_flight for i in ids]
    if isinstance(router.state, RedisState):
        assert router.state.available  # these counts came from Redis, not the local fallback
        local = router.state.local.snapshot(ids)
        assert [local[i].in_flight for i in ids] == counts  # and the local mirror agrees
    return counts


def test_cancel_during_backoff_releases_in_flight_slot(
    emu: Emulator, emu_url: str, state_kwargs: dict[str, Any]
) -> None:
    # A lone deployment answering 500 is retried after a backoff of at least 0.375 s; the call
    # is cancelled by wait_for while it sleeps. Before the fix the slot was reserved before the
    # sleep and never given back: in_flight read 1, 2, 3 after three such calls.
    emu.add_deployment(Deployment("broken", faults=Faults(error_rate=1.0, error_status=500)))
    router = Router(model_list=[entry("broken", emu_url)], num_retries=3, **state_kwargs)

    async def main() -> None:
        for _ in range(3):
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(router.acompletion(model="gpt-4o", messages=HELLO), 0.3)
        await router.aclose()

    asyncio.run(main())
    assert len(emu.requests) >= 3  # every call reached the deployment before it was cancelled
    assert in_flight(router) == [0]
    router.close()


def test_cancel_while_the_call_runs_releases_in_flight_slot(
    emu: Emulator, emu_url: str, state_kwargs: dict[str, Any]
) -> None:
    emu.add_deployment(Deployment("slow", faults=Faults(latency=5.0)))
    router = Router(model_list=[entry("slow", emu_url)], **state_kwargs)

    async def main() -> None:
        task = asyncio.create_task(router.acompletion(model="gpt-4o", messages=HELLO))
        while not emu.requests:  # the call is upstream now
            await asyncio.sleep(0.01)
        assert (await router.state.asnapshot([router.deployments[0].id]))[router.deployments[0].id].in_flight == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await router.aclose()

    asyncio.run(main())
    assert in_flight(router) == [0]
    router.close()


def test_unconsumed_stream_releases_slot(emu: Emulator, emu_url: str, state_kwargs: dict[str, Any]) -> None:
    # A routed stream that is neither read nor closed gives its slot back when it is
    # garbage-collected; one that already gave it back does not give it back twice.
    emu.add_deployment(Deployment("a"))
    router = Router(model_list=[entry("a", emu_url)], **state_kwargs)
    read = router.completion(model="gpt-4o", messages=HELLO, stream=True)
    dropped = router.completion(model="gpt-4o", messages=HELLO, stream=True)
    assert in_flight(router) == [2]
    assert "".join(c.choices[0].delta.content or "" for c in read if c.choices).startswith("This is a")
    assert in_flight(router) == [1]
    del read
    gc.collect()
    assert in_flight(router) == [1]  # the exhausted stream's finalizer gives nothing back again
    del dropped
    gc.collect()
    assert in_flight(router) == [0]
    assert served(emu) == ["a", "a"]
    router.close()


def test_unconsumed_async_stream_releases_slot(emu: Emulator, emu_url: str, state_kwargs: dict[str, Any]) -> None:
    emu.add_deployment(Deployment("a"))
    emu.add_deployment(Deployment("b"))
    router = Router(
        model_list=[entry("a", emu_url), entry("b", emu_url)], routing_strategy="least-busy", **state_kwargs
    )  # fmt: skip

    async def main() -> None:
        for _ in range(4):  # dropped unread, one after the other
            stream = await router.acompletion(model="gpt-4o", messages=HELLO, stream=True)
            assert sum(in_flight(router)) == 1
            del stream
            gc.collect()
            assert in_flight(router) == [0, 0]
        await router.aclose()

    asyncio.run(main())
    assert len(emu.requests) == 4
    router.close()


def test_memory_state_settles_abandoned_slots_without_taking_its_lock() -> None:
    # abandon() runs in garbage-collection finalizers, which may fire while the same thread
    # holds the state's lock: it must not take it (a deadlock) nor lose the slot.
    state = MemoryState()
    slot = state.reserve("a", None)
    assert slot is not None
    with state._lock:
        state.abandon(slot)
    assert state.snapshot(["a"])["a"].in_flight == 0


def test_disable_cooldowns_overrides_deployment_cooldown_time(emu: Emulator, emu_url: str) -> None:
    emu.add_deployment(Deployment("a", faults=Faults(script=[429, 429], retry_after=30)))
    emu.add_deployment(Deployment("b"))
    model_list = [entry("a", emu_url, order=1, cooldown_time=30), entry("b", emu_url, order=2)]
    router = Router(model_list=model_list, disable_cooldowns=True)
    for _ in range(3):
        router.completion(model="gpt-4o", messages=HELLO)
    # each 429 spills the call to tier 2, and the next call is back on "a": never cooled down
    assert served(emu) == ["a", "b", "a", "b", "a"]
    snaps = router.state.snapshot([d.id for d in router.deployments])
    assert [s.cooldown_until for s in snaps.values()] == [0.0, 0.0]

    emu.reset()
    cooling = Router(model_list=model_list)  # the same list without disable_cooldowns cools "a" down
    emu.deployments["a"].faults = Faults(script=[429], retry_after=30)
    for _ in range(3):
        cooling.completion(model="gpt-4o", messages=HELLO)
    assert served(emu) == ["a", "b", "b", "b"]


class _AsyncOwnRelease(MemoryState):
    """A state with an ``arelease`` of its own (as a shared store has): it must be the one called."""

    def __init__(self) -> None:
        super().__init__()
        self.areleased: list[dict[str, Any]] = []

    async def arelease(self, slot: Any, **stats: Any) -> None:
        self.areleased.append(stats)
        self.release(slot, **stats)


@pytest.mark.parametrize("own", [False, True])
def test_async_calls_give_the_slot_back_with_their_stats_through_the_states_own_arelease(
    emu: Emulator, emu_url: str, own: bool
) -> None:
    # A plain and a streamed async call give their slot back through the state's arelease,
    # with the call's tokens (a shortcut to release() was measured in issue 17 round five: 0.15 µs).
    emu.add_deployment(Deployment("solo"))
    state = _AsyncOwnRelease() if own else MemoryState()
    router = Router(model_list=[entry("solo", emu_url)], state=state)

    async def main() -> int:
        result = await router.acompletion(model="gpt-4o", messages=HELLO)
        stream = await router.acompletion(model="gpt-4o", messages=HELLO, stream=True)
        async for _ in stream:
            pass
        await router.aclose()
        return int(result.usage.total_tokens)

    tokens = asyncio.run(main())
    assert in_flight(router) == [0]
    assert router.state.snapshot([router.deployments[0].id])[router.deployments[0].id].tokens > tokens > 0  # both calls' tokens
    if own:
        assert len(state.areleased) == 2 and state.areleased[0]["tokens"] == tokens  # type: ignore[attr-defined]
    router.close()
