"""Fixtures for the proxy tests: the plugin's ``proxy`` (modelyard.testing) with this suite's config.

``MASTER_KEY``, ``running_proxy`` and ``azure`` (``litellm_params``) come from the pytest plugin
and are re-exported here for the tests' ``from .conftest import ...``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from modelyard.plugins import reset_plugins
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


class Everything(logging.Handler):
    """Every record from the loggers ``everything_logged`` opens up, whatever pytest's ``log_level``.

    A handler of its own rather than ``caplog``'s: caplog's handler is replaced for each test
    phase, so a level set from a fixture (the setup phase) would not hold for the test's body.
    """

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    @property
    def text(self) -> str:
        return "\n".join(self.format(r) for r in self.records)


@pytest.fixture
def everything_logged() -> Iterator[Everything]:
    """Every log record at DEBUG, the proxy's access log included (even when it does not propagate)."""
    names = ("modelyard", "modelyard.proxy.access", "uvicorn", "httpx", "httpcore", "aiohttp", "azure", "msal", "urllib3")
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    handler = Everything()
    for logger in loggers:
        logger.setLevel(logging.DEBUG)
    root = logging.getLogger()
    root.addHandler(handler)
    access = logging.getLogger("modelyard.proxy.access")
    added = not access.propagate
    if added:
        access.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        if added:
            access.removeHandler(handler)
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def logged_text(caplog: pytest.LogCaptureFixture | Everything) -> str:
    """All captured log output: formatted lines, messages, arguments and exceptions."""
    parts = [caplog.text]
    for record in caplog.records:
        parts += [record.getMessage(), repr(record.args)]
        if record.exc_info and record.exc_info[1] is not None:
            parts.append(repr(record.exc_info[1]))
    return "\n".join(parts)


@pytest.fixture
def plugin_set() -> Iterator[Callable[..., None]]:
    def use(*extra: object) -> None:
        reset_plugins(extra=list(extra))

    yield use
    reset_plugins()
