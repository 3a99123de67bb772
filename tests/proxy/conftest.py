"""Fixtures for the proxy tests: the plugin's ``proxy`` (modelyard.testing) with this suite's config.

``MASTER_KEY``, ``running_proxy`` and ``azure`` (``litellm_params``) come from the pytest plugin
and are re-exported here for the tests' ``from .conftest import ...``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from modelyard.testing import MASTER_KEY, running_proxy
from modelyard.testing import litellm_params as azure

__all__ = ["MASTER_KEY", "azure", "logged_text", "running_proxy"]


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
