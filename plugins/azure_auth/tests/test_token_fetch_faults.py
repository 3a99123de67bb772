"""The token cache when Entra ID is slow, hangs or fails (issue 22, bugs 1 and 2).

Real azure-identity credentials against the HTTPS Entra emulator, whose faults
(``token_latency``, ``token_failure``) make the token endpoint hold or refuse requests.
Calls that must not hang run in daemon threads joined with a generous bound, so a regression
fails the test instead of blocking the suite; ``entra.reset()`` lets held requests go.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import math
import threading
import time
from collections.abc import Callable

import pytest
from modelyard import acompletion, completion
from modelyard.errors import APITimeoutError
from modelyard.testing import Emulator
from modelyard.testing.entra import EntraEmulator
from modelyard.testing.pytest_plugin import CLIENT_ID, CLIENT_SECRET, COGNITIVE_SCOPE, TENANT
from modelyard_azure_auth import entra as cache
from modelyard_azure_auth.entra import CredentialSpec, TokenSource, token_source

MESSAGES = [{"role": "user", "content": "hello"}]
CREDENTIAL = {"tenant_id": TENANT, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}


def _call(api_base: str, **kwargs: object) -> object:
    return completion(model="azure/gpt-4o", api_base=api_base, api_version="2024-10-21", messages=MESSAGES, **kwargs)


def _source() -> TokenSource:
    """The shared source behind ``CREDENTIAL`` (the one the calls use)."""
    spec = CredentialSpec("client_secret", tenant_id=TENANT, client_id=CLIENT_ID, secret=CLIENT_SECRET)
    return token_source(spec, COGNITIVE_SCOPE)


def _bearers(emulator: Emulator) -> list[str]:
    return [r.headers["authorization"].removeprefix("Bearer ") for r in emulator.requests]


def _in_threads(n: int, work: Callable[[], object], bound: float) -> tuple[list[object], list[BaseException], bool]:
    """Run ``work`` in ``n`` daemon threads at once; (results, errors, all finished within ``bound``)."""
    results: list[object] = []
    errors: list[BaseException] = []
    start = threading.Barrier(n)

    def run() -> None:
        start.wait()
        try:
            results.append(work())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, daemon=True) for _ in range(n)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + bound
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    return results, errors, not any(t.is_alive() for t in threads)


# --------------------------------------------------------------------------- bug 1


async def test_cancelled_waiter_does_not_break_shared_fetch(entra: EntraEmulator) -> None:
    entra.token_latency = 1.5  # a slow token endpoint: everyone waits for the one fetch
    source = _source()
    owner = asyncio.create_task(source.atoken())
    await asyncio.sleep(0)  # the owner has started the fetch
    cancelled = asyncio.create_task(source.atoken())
    other = asyncio.create_task(source.atoken())
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        in_thread = pool.submit(source.token)
        await asyncio.sleep(0.2)  # all four are waiting
        cancelled.cancel()
        tokens = await asyncio.gather(owner, other)
        thread_token = await asyncio.wrap_future(in_thread)
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert tokens[0] == tokens[1] == thread_token
    assert entra.validate(thread_token)
    assert entra.token_request_count == 1


async def test_call_timing_out_while_waiting_for_a_token_does_not_fail_the_others(
    entra: EntraEmulator, emulator: Emulator, api_base: str
) -> None:
    # The same through the public API: asyncio.wait_for cancels the call it gives up on.
    entra.token_latency = 1.5
    kw = dict(model="azure/gpt-4o", api_base=api_base, api_version="2024-10-21", messages=MESSAGES, **CREDENTIAL)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        in_thread = pool.submit(lambda: _call(api_base, **CREDENTIAL))
        results = await asyncio.gather(
            asyncio.wait_for(acompletion(**kw), 0.3), acompletion(**kw), acompletion(**kw), return_exceptions=True
        )
        thread_result = await asyncio.wrap_future(in_thread)
    assert isinstance(results[0], TimeoutError)
    assert not isinstance(results[1], BaseException) and not isinstance(results[2], BaseException), results
    assert thread_result is not None
    assert entra.token_request_count == 1 and len(emulator.requests) == 3


# --------------------------------------------------------------------------- bug 2


def test_hanging_token_endpoint_respects_call_timeout(entra: EntraEmulator, emulator: Emulator, api_base: str) -> None:
    entra.token_latency = math.inf  # accepts the request and never answers
    started = time.monotonic()
    _, errors, finished = _in_threads(4, lambda: _call(api_base, timeout=1.0, **CREDENTIAL), bound=30)
    elapsed = time.monotonic() - started
    entra.reset()  # let the held request go
    assert finished, "calls with timeout=1.0 were still blocked on the token endpoint after 30 s"
    assert elapsed < 10  # about 1 s; generous for a loaded machine (was 300 s per attempt)
    assert len(errors) == 4 and all(isinstance(e, APITimeoutError) for e in errors), errors
    for e in errors:
        assert "Entra ID" in str(e) and CLIENT_SECRET not in str(e) and CLIENT_SECRET not in repr(e)
    assert emulator.requests == []  # nothing sent upstream without a token

    async def one() -> object:
        return await acompletion(model="azure/gpt-4o", api_base=api_base, api_version="2024-10-21",
                                 messages=MESSAGES, timeout=1.0, **CREDENTIAL)  # fmt: skip

    entra.token_latency = math.inf
    source = _source()
    assert source.wait_idle(30)  # the earlier fetch got its answer at reset()
    source.close()  # drop that token: the next call has to fetch again
    _, errors, finished = _in_threads(1, lambda: asyncio.run(one()), bound=30)
    entra.reset()
    assert finished and len(errors) == 1 and isinstance(errors[0], APITimeoutError), errors
    assert source.wait_idle(30)


def test_hanging_token_endpoint_fails_the_fetch_in_bounded_time(
    entra: EntraEmulator, api_base: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A call with no timeout of its own is bounded by the credential's read timeout (and one retry).
    monkeypatch.setattr(cache, "TOKEN_READ_TIMEOUT", 0.5, raising=False)
    entra.token_latency = math.inf
    _, errors, finished = _in_threads(1, lambda: _call(api_base, **CREDENTIAL), bound=30)
    entra.reset()
    assert finished, "a fetch from a token endpoint that never answers was still running after 30 s"
    assert len(errors) == 1 and isinstance(errors[0], APITimeoutError), errors
    assert "did not answer in time" in str(errors[0]) and CLIENT_SECRET not in str(errors[0])


def test_refresh_ahead_runs_in_background_with_backoff(
    entra: EntraEmulator, emulator: Emulator, api_base: str, caplog: pytest.LogCaptureFixture
) -> None:
    _call(api_base, **CREDENTIAL)
    [first] = _bearers(emulator)
    source = _source()

    # 1. Refresh due, the token endpoint hangs: calls go on with the valid token, not waiting.
    source._refresh_at = 0.0  # due for refresh; still valid for an hour
    entra.token_latency = math.inf
    _, errors, finished = _in_threads(1, lambda: [_call(api_base, **CREDENTIAL) for _ in range(10)], bound=30)
    assert finished and errors == [], "calls waited for a refresh ahead of expiry"
    assert not source.wait_idle(0)  # the refresh is still held at the endpoint...
    assert _bearers(emulator) == [first] * 11  # ...and every call was served the current token
    entra.reset()  # the endpoint answers
    assert source.wait_idle(30)
    _call(api_base, **CREDENTIAL)
    second = _bearers(emulator)[-1]
    assert second != first and entra.validate(second)

    # 2. Refresh due, the token endpoint fails at once: retried with a backoff, not per call.
    source._refresh_at = 0.0
    entra.token_failure = 7000112  # a 400 azure-core does not retry: each fetch is one request
    before = len(emulator.requests)
    for _ in range(60):  # about 3 s of traffic
        _call(api_base, **CREDENTIAL)
        time.sleep(0.05)
    assert source.wait_idle(30)
    failed = [r for r in entra.token_requests if r.status != 200]
    assert _bearers(emulator)[before:] == [second] * 60
    # a try at once, then after about 1 s, 2 s ...: a handful, not one per call (60 before)
    assert 2 <= len(failed) <= 6, len(failed)
    assert "refresh failed" in caplog.text and "next try in" in caplog.text
    assert CLIENT_SECRET not in caplog.text


# --------------------------------------------------------------------------- a cancel in the fetch's last turn


async def test_a_cancel_arriving_as_the_fetch_ends_is_never_lost() -> None:
    # asyncio.wait_for (Python 3.11) returned the token when the waiting task was cancelled in
    # the turn the fetch ended, losing the cancel (CPython gh-86296): a request whose client had
    # gone carried on. The fetch's end and the cancel are stepped here turn by turn, each offset
    # on a fresh source whose fetch the test holds and finishes itself.
    spec = CredentialSpec("client_secret", tenant_id=TENANT, client_id=CLIENT_ID, secret=CLIENT_SECRET)
    raced = 0
    for turns in range(8):
        source = TokenSource(spec, COGNITIVE_SCOPE)
        fetch: concurrent.futures.Future[str] = concurrent.futures.Future()
        fetch.set_running_or_notify_cancel()
        source._inflight = fetch  # the fetch every caller waits for (no thread, no endpoint)
        waiter = asyncio.create_task(source.atoken(30.0))
        for _ in range(3):
            await asyncio.sleep(0)  # the waiter is waiting
        fetch.set_result("the-token")
        for _ in range(turns):
            await asyncio.sleep(0)
        if waiter.cancel():  # not finished yet: the cancel must win
            raced += turns > 0
            with pytest.raises(asyncio.CancelledError):
                await waiter
        else:
            assert await waiter == "the-token"
    assert raced >= 1  # some offsets cancelled after the fetch had ended: the race was run
