"""Issue 22, transport bugs 3-6: retry-after parsing, retries of sent requests, the call's
deadline, and per-loop pools, against the emulator on loopback on the five ways to send
(sync httpx, sync native, async httpx, async native, async aiohttp)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Iterator
from email.utils import formatdate
from typing import Any

import modelyard
import pytest
from modelyard import errors, transport
from modelyard.plugins import reset_plugins
from modelyard.testing import KEY, Emulator, Faults

MESSAGES = [{"role": "user", "content": "hi there"}]
BACKENDS = ["sync", "sync-native", "httpx", "native", "aiohttp"]


class Recorder:
    HOOK_API = (1, 0)

    def __init__(self) -> None:
        self.events: list[Any] = []

    @modelyard.hookimpl
    def on_success(self, event: Any) -> None:
        self.events.append(event)

    @modelyard.hookimpl
    def on_failure(self, event: Any) -> None:
        self.events.append(event)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Iterator[str]:
    """How the call is sent: ``completion`` on httpx or native, ``acompletion`` on httpx, native or aiohttp."""
    if request.param == "sync-native":
        t = transport.Transport(sync_backend="native", async_backend="httpx")
    elif request.param in ("native", "aiohttp"):
        t = transport.Transport(sync_backend="httpx", async_backend=request.param)
    elif request.param in ("sync", "httpx"):
        t = transport.Transport(sync_backend="httpx", async_backend="httpx")
    else:
        raise AssertionError(request.param)
    previous = transport.set_transport(t)
    try:
        yield request.param
    finally:
        transport.set_transport(previous)
        t.close()


def call(backend: str, api_base: str, **kw: Any) -> Any:
    """One chat call on ``backend``; a stream is read to its end and returned as its text."""
    kw = {"api_base": api_base, "api_key": KEY, "api_version": "2024-10-21", **kw}
    kw.setdefault("model", "azure/gpt-4o")
    if backend.startswith("sync"):
        result = modelyard.completion(messages=MESSAGES, **kw)
        return "".join(c.choices[0].delta.content or "" for c in result) if kw.get("stream") else result

    async def run() -> Any:
        try:
            result = await modelyard.acompletion(messages=MESSAGES, **kw)
            if kw.get("stream"):
                return "".join([c.choices[0].delta.content or "" async for c in result])
            return result
        finally:
            await transport.get_transport().aclose()

    return asyncio.run(run())


# ---------------------------------------------------------------------- bug 3: retry-after


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "soon", "retry-after-ms": None}, None),  # neither a number nor a date: ignored
        ({"retry-after": "inf", "retry-after-ms": None}, None),  # not finite: refused
        ({"retry-after": "nan", "retry-after-ms": "inf"}, None),
        ({"retry-after": "-3", "retry-after-ms": None}, None),
        ({"retry-after": "3600", "retry-after-ms": None}, 60.0),  # clamped to MAX_RETRY_AFTER  # clamped
        ({"retry-after": "2", "retry-after-ms": "1e400"}, 2.0),  # an unusable ms value falls back
        ({"retry-after": formatdate(time.time() + 7200, usegmt=True), "retry-after-ms": None}, 60.0),  # clamped to MAX_RETRY_AFTER
    ],
)
def test_bug3_unusable_retry_after_never_raises_and_is_clamped(
    backend: str, api_base: str, emulator: Emulator, headers: dict[str, str | None], expected: float | None
) -> None:
    emulator.deployments["gpt-4o"].faults = Faults(script=[429], headers=headers)
    with pytest.raises(errors.RateLimitError) as caught:  # was ValueError for "soon"
        call(backend, api_base, num_retries=0)
    assert caught.value.retry_after == expected


def test_bug3_unparseable_retry_after_falls_back_to_backoff(backend: str, api_base: str, emulator: Emulator) -> None:
    emulator.deployments["gpt-4o"].faults = Faults(script=[429, 503], headers={"retry-after": "soon", "retry-after-ms": None})
    assert call(backend, api_base, num_retries=2).choices[0].message.content
    assert len(emulator.requests) == 3


def test_bug3_retry_after_http_date_is_honoured() -> None:
    import httpx

    soon = formatdate(time.time() + 5, usegmt=True)
    assert 3.0 <= (transport.parse_retry_after(httpx.Headers({"retry-after": soon})) or 0) <= 5.0
    past = formatdate(time.time() - 60, usegmt=True)
    assert transport.parse_retry_after(httpx.Headers({"retry-after": past})) == 0.0
    assert errors.RateLimitError("x", retry_after=float("inf")).retry_after is None


# ---------------------------------------------------------------------- bug 4: retries of a sent POST


def test_bug4_post_is_not_resent_after_a_read_timeout(backend: str, api_base: str, emulator: Emulator) -> None:
    rec = Recorder()
    reset_plugins(extra=[rec])
    emulator.deployments["gpt-4o"].faults = Faults(latency=1.0)
    with pytest.raises(errors.APITimeoutError) as caught:
        call(backend, api_base, timeout=0.5, num_retries=2)
    assert caught.value.request_sent
    assert len(emulator.requests) == 1  # was 3: Azure may have run (and billed) each
    [event] = rec.events
    assert (event.retries, event.resent) == (0, 0)


def test_bug4_retry_on_timeout_resends_and_counts_it(backend: str, api_base: str, emulator: Emulator) -> None:
    rec = Recorder()
    reset_plugins(extra=[rec])
    emulator.deployments["gpt-4o"].faults = Faults(latency=1.0)
    with pytest.raises(errors.APITimeoutError):
        call(backend, api_base, timeout=0.5, num_retries=2, retry_on_timeout=True)
    assert len(emulator.requests) == 3
    [event] = rec.events
    assert (event.retries, event.resent) == (2, 2)


def test_bug4_retry_on_timeout_from_the_environment(
    api_base: str, emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELYARD_RETRY_ON_TIMEOUT", "1")
    emulator.deployments["gpt-4o"].faults = Faults(latency=1.0)
    with pytest.raises(errors.APITimeoutError):
        call("sync", api_base, timeout=0.5, num_retries=1)
    assert len(emulator.requests) == 2
    with pytest.raises(errors.BadRequestError) as caught:
        call("sync", api_base, retry_on_timeout="yes")
    assert caught.value.param == "retry_on_timeout"


def test_bug4_a_connection_that_was_never_made_is_still_retried(backend: str) -> None:
    rec = Recorder()
    reset_plugins(extra=[rec])
    with pytest.raises(errors.APIConnectionError) as caught:
        call(backend, "http://127.0.0.1:9", num_retries=2)  # nothing listens on the discard port
    assert not caught.value.request_sent
    [event] = rec.events
    assert (event.retries, event.resent) == (2, 0)


def test_bug4_retries_of_answers_are_counted(backend: str, api_base: str, emulator: Emulator) -> None:
    rec = Recorder()
    reset_plugins(extra=[rec])
    emulator.deployments["gpt-4o"].faults = Faults(script=[503], headers={"retry-after-ms": "10"})
    assert call(backend, api_base, num_retries=2).choices[0].message.content
    [event] = rec.events
    assert (event.status_code, event.retries, event.resent) == (200, 1, 0)


# ---------------------------------------------------------------------- bug 5: the call's deadline


def test_bug5_timeout_bounds_the_whole_call_not_each_read(backend: str, api_base: str, emulator: Emulator) -> None:
    emulator.deployments["gpt-4o"].faults = Faults(drip=3.0)  # ten pieces, 0.3 s apart
    started = time.monotonic()
    with pytest.raises(errors.APITimeoutError):
        call(backend, api_base, timeout=1.0, num_retries=0)
    assert time.monotonic() - started < 2.5  # was 'ok' after 3.2 s
    assert len(emulator.requests) == 1


def test_bug5_a_stream_timeout_is_an_idle_timeout(backend: str, api_base: str, emulator: Emulator) -> None:
    # about a dozen events spread over 2.4 s: each well within the 1 s idle timeout
    emulator.deployments["gpt-4o"].faults = Faults(drip=2.4)
    text = call(backend, api_base, timeout=1.0, stream=True, num_retries=0)
    assert text == "This is gpt-4o on the modelyard emulator. You said: hi there"


def test_bug5_a_stream_that_stalls_past_the_idle_timeout_fails(backend: str, api_base: str, emulator: Emulator) -> None:
    emulator.deployments["gpt-4o"].faults = Faults(drip=24.0)  # ~2 s between events
    started = time.monotonic()
    with pytest.raises(errors.APIConnectionError):
        call(backend, api_base, timeout=0.5, stream=True, num_retries=0)
    assert time.monotonic() - started < 10


# ---------------------------------------------------------------------- bug 6: per-loop pools


def _sockets() -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
    return count


@pytest.mark.parametrize("async_backend", ["httpx", "native", "aiohttp"])
def test_bug6_pools_of_finished_event_loops_are_closed(
    async_backend: str, api_base: str, emulator: Emulator, capfd: pytest.CaptureFixture[str]
) -> None:
    t = transport.Transport(async_backend=async_backend)
    previous = transport.set_transport(t)
    kw = {"api_base": api_base, "api_key": KEY, "api_version": "2024-10-21"}
    try:
        before = _sockets()
        for _ in range(30):
            asyncio.run(modelyard.acompletion(model="azure/gpt-4o", messages=MESSAGES, **kw))
            assert t.pools() <= 1
        assert t.pools() == 0  # each loop's pool closed as its loop shut down (was 30)
        assert _sockets() - before <= 2  # was 30 open sockets
    finally:
        transport.set_transport(previous)
    assert "Unclosed" not in capfd.readouterr().err


def test_bug6_pool_of_a_loop_closed_without_shutdown_is_swept(api_base: str, emulator: Emulator) -> None:
    t = transport.Transport(async_backend="httpx")  # httpx's clients, per origin and loop
    previous = transport.set_transport(t)
    kw = {"api_base": api_base, "api_key": KEY, "api_version": "2024-10-21"}
    try:
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(modelyard.acompletion(model="azure/gpt-4o", messages=MESSAGES, **kw))
            clients = t._async.get(loop)
            assert clients is not None

            async def close_connections() -> None:  # so nothing is left for the collector to warn about
                for client in clients.values():
                    await client.aclose()

            loop.run_until_complete(close_connections())  # but the loop never shuts down its generators
        finally:
            loop.close()
        assert t.pools() == 1
        asyncio.run(modelyard.acompletion(model="azure/gpt-4o", messages=MESSAGES, **kw))
        assert t.pools() == 0  # the dead loop's entry went when the next loop opened its pool
    finally:
        transport.set_transport(previous)


def test_bug4_batch_creation_is_not_resent_after_a_read_timeout(api_base: str, emulator: Emulator) -> None:
    # files.py shares the transport: a batch created twice would run (and bill) twice
    kw = {"api_base": api_base, "api_key": KEY, "api_version": "2024-10-21", "timeout": 0.5, "num_retries": 2}
    emulator.batches.latency = 1.0
    with pytest.raises(errors.APITimeoutError):
        modelyard.create_batch(input_file_id="file-abc", endpoint="/v1/chat/completions", **kw)
    assert [r.method for r in emulator.requests] == ["POST"]
    with pytest.raises(errors.APITimeoutError):
        modelyard.create_batch(input_file_id="file-abc", endpoint="/v1/chat/completions", retry_on_timeout=True, **kw)
    assert [r.method for r in emulator.requests] == ["POST"] * 4
