"""Fixtures for the proxy tests: a proxy on loopback in front of the session's emulator."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from modelyard.proxy import ProxyApp, parse_config
from modelyard.testing import Emulator
from modelyard.testing.server import serve_in_thread

from testsupport import KEY

MASTER_KEY = "sk-proxy-test-6f1d0c2b9a8e7d6c5b4a"


def azure(api_base: str, deployment: str, **extra: Any) -> dict[str, Any]:
    """``litellm_params`` for a deployment of the test emulator."""
    return {"model": f"azure/{deployment}", "api_base": api_base, "api_key": KEY, "api_version": "2024-10-21", **extra}


@contextmanager
def running_proxy(config: dict[str, Any], *, master_key: str | None = MASTER_KEY, dev: bool = False) -> Iterator[Any]:
    """Serve a ProxyApp built from ``config`` on a free loopback port, lifespan on."""
    app = ProxyApp(parse_config(config), master_key=master_key, insecure_ok=dev)
    with serve_in_thread(app, lifespan="on") as server:
        server.app = app
        yield server


@pytest.fixture
def proxy_config(api_base: str) -> dict[str, Any]:
    return {
        "model_list": [
            {"model_name": "gpt-4o", "litellm_params": azure(api_base, "gpt-4o"), "model_info": {"id": "gpt-4o-a"}},
            {"model_name": "gpt-4o-mini", "litellm_params": azure(api_base, "gpt-4o-mini")},
            {"model_name": "tools-model", "litellm_params": azure(api_base, "chatgpt-functioncalling")},
            {"model_name": "tiny", "litellm_params": azure(api_base, "small-context")},
        ],
        "router_settings": {"num_retries": 0},
        "general_settings": {"max_request_size_mb": 0.05},
    }


@pytest.fixture
def proxy(proxy_config: dict[str, Any], emulator: Emulator) -> Iterator[Any]:
    with running_proxy(proxy_config) as server:
        yield server


@pytest.fixture
def everything_logged(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Every log record at DEBUG, the proxy's access log included (even when it does not propagate)."""
    caplog.set_level(logging.DEBUG)
    for name in ("modelyard", "modelyard.proxy.access", "uvicorn", "httpx", "httpcore", "aiohttp", "azure", "msal", "urllib3"):
        caplog.set_level(logging.DEBUG, logger=name)
    access = logging.getLogger("modelyard.proxy.access")
    added = not access.propagate
    if added:
        access.addHandler(caplog.handler)
    try:
        yield caplog
    finally:
        if added:
            access.removeHandler(caplog.handler)


def logged_text(caplog: pytest.LogCaptureFixture) -> str:
    """All captured log output: formatted lines, messages, arguments and exceptions."""
    parts = [caplog.text]
    for record in caplog.records:
        parts += [record.getMessage(), repr(record.args)]
        if record.exc_info and record.exc_info[1] is not None:
            parts.append(repr(record.exc_info[1]))
    return "\n".join(parts)
