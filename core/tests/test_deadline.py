"""The async calls' deadlines (modelyard._deadline): one timer per event loop, with
``asyncio.timeout``'s semantics. Each scenario runs on both, and must end the same way."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import modelyard
import pytest
from modelyard import _deadline, errors, transport
from modelyard.testing import KEY, Emulator, Faults

MESSAGES = [{"role": "user", "content": "hi there"}]


@contextlib.asynccontextmanager
async def shared(delay: float) -> AsyncIterator[None]:
    """``_deadline.enter`` / ``leave`` used as Transport.asend uses them."""
    deadline = _deadline.enter(delay)
    try:
        yield
    except BaseException as exc:
        _deadline.leave(deadline, exc)
        raise
    _deadline.leave(deadline, None)


GUARDS: dict[str, Callable[[float], Any]] = {"asyncio.timeout": asyncio.timeout, "shared": shared}


@pytest.fixture(params=list(GUARDS))
def guard(request: pytest.FixtureRequest) -> Callable[[float], Any]:
    return GUARDS[request.param]


async def outcome(guard: Callable[[float], Any], delay: float, work: float) -> str:
    """How a guarded ``sleep(work)`` under a deadline of ``delay`` ends: 'ok' or 'timeout'."""
    try:
        async with guard(delay):
            await asyncio.sleep(work)
    except TimeoutError:
        return "timeout"
    return "ok"


def test_an_expired_deadline_raises_timeout_error(guard: Callable[[float], Any]) -> None:
    assert asyncio.run(outcome(guard, 0.05, 5.0)) == "timeout"
    assert asyncio.run(outcome(guard, 0.0, 5.0)) == "timeout"  # already due: the next iteration
    assert asyncio.run(outcome(guard, -1.0, 5.0)) == "timeout"
    assert asyncio.run(outcome(guard, float("nan"), 5.0)) == "timeout"


def test_a_nan_deadline_does_not_block_the_others(guard: Callable[[float], Any]) -> None:
    async def main() -> list[str]:
        return await asyncio.gather(outcome(guard, float("nan"), 5.0), outcome(guard, 0.05, 5.0), outcome(guard, 5.0, 0.0))

    assert asyncio.run(main()) == ["timeout", "timeout", "ok"]


def test_a_call_that_finished_is_not_cancelled_later(guard: Callable[[float], Any]) -> None:
    async def main() -> int:
        for _ in range(20):
            assert await outcome(guard, 0.3, 0.0) == "ok"
        await asyncio.sleep(0.5)  # every deadline above is past now: none may cancel this task
        task = asyncio.current_task()
        assert task is not None
        return task.cancelling()

    assert asyncio.run(main()) == 0


def test_many_calls_with_different_deadlines(guard: Callable[[float], Any]) -> None:
    rng = random.Random(17)
    # Entered in random order, so an earlier deadline often comes after later ones (the shared
    # timer must be armed again for it); each call's work ends 0.25 s or more from its deadline
    # (a loaded machine delays the loop: work and deadline due in one iteration is a timeout).
    plan = [(0.3 + 0.03 * i, rng.choice((True, False))) for i in range(40)]
    rng.shuffle(plan)

    async def main() -> list[str]:
        return await asyncio.gather(*(outcome(guard, d, d + 0.3 if late else d - 0.25) for d, late in plan))

    got = asyncio.run(main())
    assert got == ["timeout" if late else "ok" for _, late in plan]


def test_a_long_deadline_does_not_hide_a_shorter_one(guard: Callable[[float], Any]) -> None:
    async def main() -> list[str]:
        long = asyncio.create_task(outcome(guard, 600.0, 0.2))
        await asyncio.sleep(0)  # entered first: the timer is armed for 600 s
        return [await outcome(guard, 0.05, 5.0), await long]

    assert asyncio.run(main()) == ["timeout", "ok"]


def test_a_cancel_from_outside_is_not_swallowed(guard: Callable[[float], Any]) -> None:
    async def main() -> None:
        task = asyncio.create_task(outcome(guard, 5.0, 5.0))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())


def test_a_cancel_from_outside_at_the_deadline_is_not_swallowed(guard: Callable[[float], Any]) -> None:
    # The caller's cancel and the deadline land in the same loop iteration: the task was
    # cancelled twice, so the caller's CancelledError wins over the TimeoutError.
    async def guarded() -> str:
        async with guard(0.05):
            loop = asyncio.get_running_loop()
            task = asyncio.current_task()
            assert task is not None
            loop.call_at(loop.time() + 0.01, task.cancel)
            time.sleep(0.1)  # the loop is held past both: they run in its next iteration, together
            await asyncio.sleep(5.0)
        return "ok"

    async def main() -> None:
        with pytest.raises(asyncio.CancelledError):
            await guarded()

    asyncio.run(main())


def test_a_cancel_from_outside_after_the_deadline_is_not_lost(guard: Callable[[float], Any]) -> None:
    # The deadline fired and was handled; a cancel arriving during the cleanup that follows
    # (the timeout's except clause awaits) still cancels the task.
    async def main() -> str:
        try:
            async with guard(0.02):
                await asyncio.sleep(5.0)
        except TimeoutError:
            await asyncio.sleep(5.0)  # the caller cancels here
        return "not cancelled"

    async def outer() -> None:
        task = asyncio.create_task(main())
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(outer())


def test_left_deadlines_do_not_pile_up() -> None:
    async def main() -> None:
        for _ in range(1000):  # 600 s deadlines, taken back long before they are due
            assert await outcome(shared, 600.0, 0.0) == "ok"
        owner = _deadline.enter(600.0)
        heap = owner.owner.heap
        assert len(heap) <= 2 * owner.owner.waiting + 64
        _deadline.leave(owner, None)

    asyncio.run(main())


def test_a_deadline_needs_a_task() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        loop.call_soon(lambda: fut.set_result(_try_enter()))
        assert await fut == "RuntimeError"

    def _try_enter() -> str:
        try:
            _deadline.enter(1.0)
        except RuntimeError:
            return "RuntimeError"
        return "entered"

    asyncio.run(main())


# --------------------------------------------------------------------------- through the SDK


@pytest.fixture(params=["native", "aiohttp", "httpx"])
def async_backend(request: pytest.FixtureRequest) -> Any:
    t = transport.Transport(async_backend=request.param)
    previous = transport.set_transport(t)
    try:
        yield request.param
    finally:
        transport.set_transport(previous)
        t.close()


def _call(api_base: str, timeout: float) -> Any:
    return modelyard.acompletion(
        model="azure/gpt-4o", messages=MESSAGES, api_base=api_base, api_key=KEY, api_version="2024-10-21",
        timeout=timeout, num_retries=0,
    )  # fmt: skip


def test_sdk_calls_with_different_deadlines(async_backend: str, api_base: str, emulator: Emulator) -> None:
    emulator.deployments["gpt-4o"].faults = Faults(latency=0.6)

    async def one(timeout: float) -> str:
        try:
            await _call(api_base, timeout)
        except errors.APITimeoutError as err:
            assert err.request_sent
            return "timeout"
        return "ok"

    async def main() -> list[str]:
        try:
            return await asyncio.gather(*(one(t) for t in (0.2, 10.0, 0.1, 600.0, 0.3, 10.0)))
        finally:
            await transport.get_transport().aclose()

    assert asyncio.run(main()) == ["timeout", "ok", "timeout", "ok", "timeout", "ok"]


def test_sdk_call_cancelled_by_its_caller_is_cancelled(async_backend: str, api_base: str, emulator: Emulator) -> None:
    emulator.deployments["gpt-4o"].faults = Faults(latency=1.0)

    async def main() -> None:
        try:
            task = asyncio.create_task(_call(api_base, 5.0))
            await asyncio.sleep(0.3)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            emulator.deployments["gpt-4o"].faults = Faults()
            assert (await _call(api_base, 5.0)).choices[0].message.content  # the loop's pools still work
        finally:
            await transport.get_transport().aclose()

    asyncio.run(main())


def test_a_left_deadline_does_not_keep_its_task() -> None:
    import gc
    import weakref

    async def main() -> None:
        async def call() -> str:
            return await outcome(shared, 600.0, 0.0)

        task = asyncio.create_task(call())
        assert await task == "ok"
        ref = weakref.ref(task)
        del task
        await asyncio.sleep(0)  # the loop's handle that woke us up holds the task until the next step
        gc.collect()
        assert ref() is None  # its deadline still waits in the heap, without it

    asyncio.run(main())
