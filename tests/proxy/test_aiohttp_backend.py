"""The SDK pipeline on the native and aiohttp async backends (the proxy uses native): same results, same errors."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from modelyard import acompletion, transport
from modelyard.errors import APIConnectionError, NotFoundError
from modelyard.testing import KEY, Emulator

MESSAGES = [{"role": "user", "content": "hi there"}]


@pytest.fixture(params=["native", "aiohttp"])
async def fast_transport(request: pytest.FixtureRequest) -> AsyncIterator[transport.Transport]:
    t = transport.Transport(async_backend=request.param)
    previous = transport.set_transport(t)
    try:
        yield t
    finally:
        await t.aclose()
        transport.set_transport(previous)


async def test_chat_stream_retry_and_errors(fast_transport: transport.Transport, api_base: str, emulator: Emulator) -> None:
    kw = {"api_base": api_base, "api_key": KEY, "api_version": "2024-10-21"}
    r = await acompletion(model="azure/gpt-4o", messages=MESSAGES, **kw)
    assert r.choices[0].message.content == "This is gpt-4o on the modelyard emulator. You said: hi there"
    assert emulator.requests[-1].headers["api-key"] == KEY
    assert emulator.requests[-1].query == {"api-version": "2024-10-21"}

    stream = await acompletion(model="azure/gpt-4o", messages=MESSAGES, stream=True, **kw)
    text = "".join([c.choices[0].delta.content or "" async for c in stream])  # type: ignore[union-attr]
    assert text.endswith("You said: hi there")

    emulator.deployments["gpt-4o"].faults.script = [429]
    emulator.deployments["gpt-4o"].faults.retry_after = 0.01
    r = await acompletion(model="azure/gpt-4o", messages=MESSAGES, num_retries=1, **kw)
    assert r.choices[0].message.content
    assert [q.path.split("/")[3] for q in emulator.requests[-2:]] == ["gpt-4o", "gpt-4o"]

    with pytest.raises(NotFoundError):
        await acompletion(model="azure/no-such-deployment", messages=MESSAGES, **kw)
    with pytest.raises(APIConnectionError) as exc:
        await acompletion(model="azure/gpt-4o", messages=MESSAGES, api_base="http://127.0.0.1:9", api_key=KEY, num_retries=0)
    assert KEY not in str(exc.value)


async def test_broken_stream_is_a_connection_error(fast_transport: transport.Transport, api_base: str, emulator: Emulator) -> None:
    emulator.deployments["gpt-4o"].faults.drop_stream_after = 2
    stream = await acompletion(model="azure/gpt-4o", messages=MESSAGES, stream=True, api_base=api_base, api_key=KEY)
    with pytest.raises(APIConnectionError):
        async for _ in stream:  # type: ignore[union-attr]
            pass


async def test_file_upload_and_batch_calls(fast_transport: transport.Transport, api_base: str, emulator: Emulator) -> None:
    # Multipart uploads go through httpx; the JSON calls around them through the fast backend.
    from modelyard import files

    line = {"custom_id": "r1", "method": "POST", "url": "/chat/completions",
            "body": {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}}  # fmt: skip
    kw = {"api_base": api_base, "api_key": KEY, "api_version": "2024-10-21"}
    uploaded = await files.acreate_file(file=("in.jsonl", (json.dumps(line) + "\n").encode()), purpose="batch", **kw)
    assert emulator.requests[-1].body["file"]["filename"] == "in.jsonl"
    again = await files.afile_retrieve(uploaded.id, **kw)
    assert again.id == uploaded.id
