"""A caller's own ``Content-Type`` (``extra_headers``) is sent as given, once, on every async backend."""

from __future__ import annotations

import asyncio

import modelyard
import pytest
from modelyard import transport
from modelyard.testing import KEY, Emulator


@pytest.mark.parametrize("backend", ["native", "aiohttp", "httpx"])
def test_a_callers_content_type_wins(backend: str, api_base: str, emulator: Emulator) -> None:
    t = transport.Transport(async_backend=backend)
    previous = transport.set_transport(t)

    async def main() -> None:
        try:
            await modelyard.acompletion(
                model="azure/gpt-4o", messages=[{"role": "user", "content": "hi"}], api_base=api_base, api_key=KEY,
                api_version="2024-10-21", extra_headers={"Content-Type": "application/json; charset=utf-8"},
            )  # fmt: skip
        finally:
            await transport.get_transport().aclose()

    try:
        asyncio.run(main())
    finally:
        transport.set_transport(previous)
        t.close()
    sent = emulator.requests[-1].headers
    # aiohttp sent its own "content-type: application/json" beside the caller's (the server kept that one)
    assert [v for k, v in sent.items() if k.lower() == "content-type"] == ["application/json; charset=utf-8"]
