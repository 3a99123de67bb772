"""How the proxy takes a request apart: body keys, the files provider, a client that leaves (issue 22 bugs 13-15)."""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

import httpx
import pytest
from modelyard.testing import Emulator
from modelyard.testing.server import serve_in_thread
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from .conftest import MASTER_KEY, azure, running_proxy

AUTH = {"Authorization": f"Bearer {MASTER_KEY}"}


class StrictUpstream:
    """Azure's answer to a body key it does not know (a 400 naming it); it records every body."""

    KNOWN = frozenset({"messages", "prompt", "max_tokens", "stream", "temperature"})

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.app = Starlette(routes=[Route("/openai/deployments/{d}/{op:path}", self.call, methods=["POST"])])

    async def call(self, request: Request) -> JSONResponse:
        body = await request.json()
        self.bodies.append(body)
        unknown = sorted(set(body) - self.KNOWN)
        return JSONResponse({"error": {"code": None, "param": None, "type": "invalid_request_error",
                                       "message": f"Unrecognized request argument supplied: {unknown[0]}"}},
                            status_code=400)  # fmt: skip


@pytest.mark.parametrize(
    ("path", "model", "body"),
    [("/v1/chat/completions", "azure/d", {"messages": [{"role": "user", "content": "hi"}], "self": 1}),
     ("/v1/completions", "azure_text/d", {"prompt": "hi", "self": 1})],
)  # fmt: skip
def test_body_key_self_is_client_error(
    path: str, model: str, body: dict[str, Any], everything_logged: pytest.LogCaptureFixture
) -> None:
    """A body key named like a parameter of the methods the call passes through (``self`` of
    ``Router.acompletion``) is an unknown parameter like any other: it is forwarded, and the
    upstream's 400 naming it reaches the client. Never a 500 from a keyword clash."""
    upstream = StrictUpstream()
    with serve_in_thread(upstream.app) as up:
        config = {"model_list": [{"model_name": "m", "litellm_params": azure(up.url, "d", model=model)}],
                  "router_settings": {"num_retries": 0}}  # fmt: skip
        with running_proxy(config) as proxy:
            r = httpx.post(f"{proxy.url}{path}", json={"model": "m", **body}, headers=AUTH, timeout=30)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["message"].endswith("Unrecognized request argument supplied: self"), r.json()
    assert upstream.bodies[0]["self"] == 1
    assert not [rec.getMessage() for rec in everything_logged.records if rec.levelno >= logging.ERROR]


@pytest.mark.parametrize("provider", ["openai", "AZURE", "no such provider"])
def test_unknown_custom_llm_provider_is_400(
    provider: str, azure_env: Emulator, api_base: str, everything_logged: pytest.LogCaptureFixture
) -> None:
    """The provider a client names for files and batches is its input: an unknown one is a 400 naming
    ``custom_llm_provider``, not a 500 "configuration is broken" with an ERROR line per request."""
    config = {"model_list": [{"model_name": "gpt-4o", "litellm_params": azure(api_base, "gpt-4o")}]}
    with running_proxy(config) as proxy, httpx.Client(base_url=proxy.url, headers=AUTH, timeout=30) as http:
        calls = [
            http.get("/v1/files", headers={"custom-llm-provider": provider}),
            http.get("/v1/files", params={"custom_llm_provider": provider}),
            http.get("/v1/files/file-abc", headers={"custom-llm-provider": provider}),
            http.post("/v1/batches", json={"input_file_id": "file-abc", "endpoint": "/v1/chat/completions",
                                           "completion_window": "24h", "custom_llm_provider": provider}),
            http.post("/v1/files", files={"file": ("in.jsonl", b"{}\n")},
                      data={"purpose": "batch", "custom_llm_provider": provider}),
        ]  # fmt: skip
        for r in calls:
            assert r.status_code == 400, (r.request.url, r.text)
            error = r.json()["error"]
            assert error["param"] == "custom_llm_provider" and error["type"] == "invalid_request_error", error
            assert repr(provider) in error["message"] and "'azure'" in error["message"], error
        assert http.get("/v1/files", headers={"custom-llm-provider": "azure"}).status_code == 200
    assert not [rec.getMessage() for rec in everything_logged.records if rec.levelno >= logging.ERROR]
    assert len(azure_env.requests) == 1  # only the call naming a known provider went upstream


def test_client_disconnect_cancels_upstream_call(
    proxy: Any, emulator: Emulator, everything_logged: pytest.LogCaptureFixture
) -> None:
    """Clients that give up on a slow non-streaming call release its upstream call at once, as streams do."""
    latency = 10.0
    emulator.deployments["gpt-4o"].faults.latency = latency
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "slow"}]}
    clients = 5

    def impatient() -> None:
        with pytest.raises(httpx.ReadTimeout):  # the client leaves after 2 s, closing its connection
            httpx.post(f"{proxy.url}/v1/chat/completions", json=body, headers=AUTH, timeout=2.0)

    started = time.monotonic()
    threads = [threading.Thread(target=impatient) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(emulator.requests) == clients  # every call reached the upstream before its client left
    state = proxy.app.router.state
    while state.snapshot(["gpt-4o-a"])["gpt-4o-a"].in_flight and time.monotonic() - started < latency - 1:
        time.sleep(0.02)
    # the calls were cancelled, well before the upstream would have answered them
    assert state.snapshot(["gpt-4o-a"])["gpt-4o-a"].in_flight == 0
    assert time.monotonic() - started < latency - 1
    access = [json.loads(r.getMessage()) for r in everything_logged.records if r.name == "modelyard.proxy.access"]
    assert [(a["status"], a.get("error")) for a in access] == [(499, "client_disconnected")] * clients
