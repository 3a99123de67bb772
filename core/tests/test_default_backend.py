"""The SDK's default transport sends with the native clients (sync and async), not httpx's."""

from __future__ import annotations

import asyncio

import modelyard
from modelyard import transport
from modelyard.testing import KEY, Emulator

MESSAGES = [{"role": "user", "content": "hi there"}]


def test_the_default_transport_sends_sync_and_async_calls_with_the_native_clients(api_base: str, emulator: Emulator) -> None:
    t = transport.Transport()
    previous = transport.set_transport(t)
    kw = {"api_base": api_base, "api_key": KEY, "api_version": "2024-10-21"}
    try:
        assert modelyard.completion(model="azure/gpt-4o", messages=MESSAGES, **kw).choices[0].message.content

        async def acall() -> None:
            try:
                await modelyard.acompletion(model="azure/gpt-4o", messages=MESSAGES, **kw)
            finally:
                await t.aclose()

        asyncio.run(acall())
    finally:
        transport.set_transport(previous)
        t.close()
    sync, async_ = emulator.requests[-2:]
    for seen in (sync, async_):  # httpx would have said "user-agent: python-httpx/..."
        assert "user-agent" not in seen.headers and seen.headers["accept-encoding"] == "gzip, deflate"
        assert seen.headers["api-key"] == KEY


def test_the_aiohttp_backend_sends_no_user_agent_either(api_base: str, emulator: Emulator) -> None:
    # aiohttp adds "user-agent: Python/3.x aiohttp/3.x" unless the session skips it.
    t = transport.Transport(async_backend="aiohttp")
    previous = transport.set_transport(t)

    async def acall() -> None:
        try:
            await modelyard.acompletion(model="azure/gpt-4o", messages=MESSAGES, api_base=api_base, api_key=KEY,
                                        api_version="2024-10-21", extra_headers={"Accept": "application/json"})  # fmt: skip
        finally:
            await t.aclose()

    try:
        asyncio.run(acall())
    finally:
        transport.set_transport(previous)
        t.close()
    seen = emulator.requests[-1].headers
    assert "user-agent" not in seen and seen["api-key"] == KEY
    assert seen["accept"] == "application/json"  # the caller's own header wins over aiohttp's default
    assert seen["accept-encoding"] == "gzip, deflate"


def test_httpx_stays_one_keyword_away(api_base: str, emulator: Emulator) -> None:
    t = transport.Transport(sync_backend="httpx", async_backend="httpx")
    previous = transport.set_transport(t)
    try:
        modelyard.completion(model="azure/gpt-4o", messages=MESSAGES, api_base=api_base, api_key=KEY,
                             api_version="2024-10-21")  # fmt: skip
    finally:
        transport.set_transport(previous)
        t.close()
    assert emulator.requests[-1].headers["user-agent"].startswith("python-httpx/")
