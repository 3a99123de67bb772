"""Streaming through the proxy: chunks go out as they arrive; a client that leaves cancels the upstream."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
from modelyard.testing import Emulator
from modelyard.testing.server import serve_in_thread
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from .conftest import MASTER_KEY, azure, running_proxy

AUTH = {"Authorization": f"Bearer {MASTER_KEY}"}


class EndlessUpstream:
    """An Azure-shaped upstream whose stream never ends; it records when its stream is torn down."""

    def __init__(self) -> None:
        self.sent = 0
        self.started = threading.Event()
        self.closed = threading.Event()
        self.app = Starlette(routes=[Route("/openai/deployments/{d}/chat/completions", self.chat, methods=["POST"])])

    async def chat(self, request: Request) -> StreamingResponse:
        await request.body()

        async def events() -> AsyncIterator[bytes]:
            self.started.set()
            try:
                while True:
                    chunk = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
                             "choices": [{"index": 0, "delta": {"content": f"w{self.sent} "}, "finish_reason": None}]}  # fmt: skip
                    yield b"data: " + json.dumps(chunk).encode() + b"\n\n"
                    self.sent += 1
                    await asyncio.sleep(0.02)
            finally:
                self.closed.set()

        return StreamingResponse(events(), media_type="text/event-stream")


def test_chunks_are_forwarded_as_they_arrive_and_disconnect_cancels_upstream(emulator: Emulator) -> None:
    upstream = EndlessUpstream()
    with serve_in_thread(upstream.app) as up:
        config = {"model_list": [{"model_name": "endless", "litellm_params": azure(up.url, "d")}]}
        with running_proxy(config) as proxy, httpx.Client(base_url=proxy.url, headers=AUTH, timeout=30) as http:
            body = {"model": "endless", "messages": [{"role": "user", "content": "go"}], "stream": True}
            with http.stream("POST", "/v1/chat/completions", json=body) as r:
                assert r.status_code == 200
                assert r.headers["content-type"].startswith("text/event-stream")
                lines = r.iter_lines()
                events = []
                for line in lines:
                    if line.startswith("data: "):
                        events.append(json.loads(line[6:]))
                    if len(events) == 3:
                        break
                # the upstream never finished, so these were forwarded one by one
                assert [e["choices"][0]["delta"]["content"] for e in events] == ["w0 ", "w1 ", "w2 "]
                assert not upstream.closed.is_set()
                router = proxy.app.router
                ids = [d.id for d in router.deployments]
                assert router.state.snapshot(ids)[ids[0]].in_flight == 1  # the Router counts the open stream
            # leaving the block closed our connection: the proxy must stop reading the upstream
            assert upstream.closed.wait(timeout=10), "the upstream stream was not cancelled"
            sent_at_close = upstream.sent
            # ... and the Router got its in-flight slot back (the cancel reached the routed stream)
            for _ in range(500):
                if router.state.snapshot(ids)[ids[0]].in_flight == 0:
                    break
                time.sleep(0.01)
            assert router.state.snapshot(ids)[ids[0]].in_flight == 0
            # ... and the proxy still serves
            assert http.get("/v1/models").json()["data"][0]["id"] == "endless"
        assert upstream.sent <= sent_at_close + 1


def test_stream_error_before_first_byte_is_json(proxy: Any, emulator: Emulator) -> None:
    emulator.deployments["gpt-4o"].faults.script = [429]
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}], "stream": True}
    r = httpx.post(f"{proxy.url}/v1/chat/completions", json=body, headers=AUTH)
    assert r.status_code == 429
    assert r.json()["error"]["type"] == "rate_limit_error"


def test_stream_broken_midway_ends_with_an_error_event(proxy: Any, emulator: Emulator) -> None:
    emulator.deployments["gpt-4o"].faults.drop_stream_after = 3
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "a b c d e f"}], "stream": True}
    r = httpx.post(f"{proxy.url}/v1/chat/completions", json=body, headers=AUTH)
    assert r.status_code == 200
    events = [line[6:] for line in r.text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    assert json.loads(events[-2])["error"]["type"] == "api_connection_error"
