"""A provider that answers in-process (``ProviderRequest.handler``): no HTTP, the core's pipeline.

The ``local`` provider below is written only against :mod:`modelyard.plugin`. Its handler gets
the ``httpx.Request`` the core built and answers like an upstream would (JSON, SSE bytes, a 503,
a 400); retries, error mapping, streaming and observers are the core's. Sockets are switched off
for these tests, so any network use would fail them.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import modelyard
import pytest
from modelyard.plugin import (
    APIError,
    BadRequestError,
    ChatCompletion,
    ChatCompletionChunk,
    ChatRequest,
    Connection,
    Family,
    NoCredential,
    ProviderRequest,
    ProviderResponse,
    Route,
    hookimpl,
)
from modelyard.plugins import reset_plugins

HI = [{"role": "user", "content": "hi there"}]


class LocalModel:
    """An in-process "model": echoes the last message; scripted statuses first."""

    def __init__(self) -> None:
        self.script: list[int] = []
        self.seen: list[httpx.Request] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        body = json.loads(request.content)
        if self.script:
            status = self.script.pop(0)
            return httpx.Response(status, json={"error": {"message": f"scripted {status}", "code": str(status)}})
        text = f"echo: {body['messages'][-1]['content']}"
        if body.get("stream"):
            words = text.split(" ")
            events = [
                {"id": "c1", "object": "chat.completion.chunk", "created": 0, "model": "local",
                 "choices": [{"index": 0, "delta": {"content": w if i == 0 else " " + w}, "finish_reason": None}]}
                for i, w in enumerate(words)
            ]  # fmt: skip
            events.append({"id": "c1", "object": "chat.completion.chunk", "created": 0, "model": "local",
                           "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})  # fmt: skip
            sse = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
            return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=sse.encode())
        return httpx.Response(200, json={
            "id": "c1", "object": "chat.completion", "created": 0, "model": "local",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5},
        })  # fmt: skip


MODEL = LocalModel()
EVENTS: list[Any] = []


class LocalProvider:
    HOOK_API = (1, 7)

    @staticmethod
    @hookimpl
    def register_families(register: Any) -> None:
        register(Family(name="local", provider="local", prefix="local/"))

    @staticmethod
    @hookimpl
    def transform_request(route: Route, request: ChatRequest, connection: Connection) -> ProviderRequest | None:
        if route.provider != "local":
            return None
        body = {"messages": request.messages, **request.params, **({"stream": True} if request.stream else {})}
        return ProviderRequest(url="http://local.invalid/chat", json_body=body, stream=request.stream,
                               handler=MODEL.handle)  # fmt: skip

    @staticmethod
    @hookimpl
    def resolve_auth(route: Route, connection: Connection, timeout: float | None) -> NoCredential | None:
        return NoCredential() if route.provider == "local" else None

    @staticmethod
    @hookimpl
    def normalize_response(route: Route, response: ProviderResponse) -> Any:
        return ChatCompletion.model_validate_json(response.content) if route.provider == "local" else None

    @staticmethod
    @hookimpl
    def normalize_chunk(route: Route, chunk: dict[str, Any]) -> Any:
        return ChatCompletionChunk.model_validate(chunk) if route.provider == "local" else None

    @staticmethod
    @hookimpl
    def map_error(route: Route, response: ProviderResponse) -> APIError | None:
        if route.provider != "local" or response.status_code != 400:
            return None
        return BadRequestError("the local model refused it", status_code=400, provider="local", model=route.model)

    @staticmethod
    @hookimpl
    def on_success(event: Any) -> None:
        EVENTS.append(event)


@pytest.fixture(autouse=True)
def local(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalModel]:
    def no_network(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the in-process provider opened a connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    reset_plugins(extra=[LocalProvider])
    MODEL.script.clear()
    MODEL.seen.clear()
    EVENTS.clear()
    yield MODEL
    reset_plugins()


def test_sync_answer_in_process(local: LocalModel) -> None:
    r = modelyard.completion(model="local/m", messages=HI)
    assert r.choices[0].message.content == "echo: hi there"
    assert r.usage.total_tokens == 5
    assert str(local.seen[0].url) == "http://local.invalid/chat"
    assert EVENTS[-1].route.provider == "local" and EVENTS[-1].usage["total_tokens"] == 5


async def test_async_answer_in_process(local: LocalModel) -> None:
    r = await modelyard.acompletion(model="local/m", messages=HI)
    assert r.choices[0].message.content == "echo: hi there"


def test_streams_in_process_sync_and_async(local: LocalModel) -> None:
    chunks = list(modelyard.completion(model="local/m", messages=HI, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "echo: hi there"
    assert chunks[-1].choices[0].finish_reason == "stop"

    async def read() -> str:
        stream = await modelyard.acompletion(model="local/m", messages=HI, stream=True)
        return "".join([c.choices[0].delta.content or "" async for c in stream])

    import asyncio

    assert asyncio.run(read()) == "echo: hi there"


def test_retries_and_error_mapping_stay_in_the_core(local: LocalModel) -> None:
    local.script[:] = [503, 429]
    r = modelyard.completion(model="local/m", messages=HI, num_retries=2)
    assert r.choices[0].message.content == "echo: hi there"
    assert len(local.seen) == 3 and EVENTS[-1].retries == 2
    local.script[:] = [400]
    with pytest.raises(BadRequestError, match="the local model refused it"):
        modelyard.completion(model="local/m", messages=HI, num_retries=2)
    local.script[:] = [503, 503]
    with pytest.raises(modelyard.ServiceUnavailableError):
        modelyard.completion(model="local/m", messages=HI, num_retries=1)
