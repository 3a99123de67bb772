"""How the proxy takes a request apart: body keys, the files provider, a client that leaves (issue 22 bugs 13-15)."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import httpx
import pytest
from modelyard.testing import Deployment, Emulator, EmulatorServer
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
