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
