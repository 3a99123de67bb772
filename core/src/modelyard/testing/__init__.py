"""Test helpers for modelyard and for your own application: the Azure OpenAI and Entra ID emulators.

```python
from modelyard.testing import Emulator, EmulatorServer

with EmulatorServer(Emulator(["gpt-4o"])) as server:
    completion(model="azure/gpt-4o", api_base=server.url, api_key="emulator-key", messages=[...])
```

With pytest, installing modelyard also installs a plugin
(:mod:`modelyard.testing.pytest_plugin`) whose fixtures serve these emulators, a real Redis, a
real PostgreSQL and the proxy: ``def test_app(emulator, api_base): ...`` (docs/testing.md).
The credentials those fixtures accept (``KEY``, ``AD_TOKEN``) and builders that go with them
(``batch_jsonl``, ``ManualClock``, ``add_family_deployments``) are exported here.

Entra ID (``EntraEmulator``, ``EntraServer``: tokens for the real azure-identity classes over
HTTPS) is described in :mod:`modelyard.testing.entra`; ``EntraServer`` also needs ``trustme``
(the ``entra`` extra).

The emulators need the ``emulator`` extra (``pip install modelyard[emulator]``). Names load on
first use, so the pytest plugin can import this package in every pytest run cheaply.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .emulator import (
        API_VERSIONS,
        FILTER_OUTPUT_TRIGGER,
        FILTER_PROMPT_TRIGGER,
        Deployment,
        Emulator,
        Faults,
        RecordedRequest,
    )
    from .entra import EntraEmulator
    from .entra_server import EntraServer
    from .helpers import (
        AD_TOKEN,
        KEY,
        MASTER_KEY,
        ManualClock,
        add_family_deployments,
        batch_jsonl,
        default_deployments,
        litellm_params,
    )
    from .pytest_plugin import running_proxy
    from .server import EmulatorServer
    from .services import REDIS_PASSWORD, RedisServer

__all__ = [
    "AD_TOKEN",
    "API_VERSIONS",
    "FILTER_OUTPUT_TRIGGER",
    "FILTER_PROMPT_TRIGGER",
    "KEY",
    "MASTER_KEY",
    "REDIS_PASSWORD",
    "Deployment",
    "Emulator",
    "EmulatorServer",
    "EntraEmulator",
    "EntraServer",
    "Faults",
    "ManualClock",
    "RecordedRequest",
    "RedisServer",
    "add_family_deployments",
    "batch_jsonl",
    "default_deployments",
    "litellm_params",
    "running_proxy",
]

_LAZY = {
    **dict.fromkeys(
        ["API_VERSIONS", "FILTER_OUTPUT_TRIGGER", "FILTER_PROMPT_TRIGGER", "Deployment", "Emulator", "Faults",
         "RecordedRequest"], "emulator"),
    "EntraEmulator": "entra",
    "EntraServer": "entra_server",
    "EmulatorServer": "server",
    **dict.fromkeys(
        ["AD_TOKEN", "KEY", "MASTER_KEY", "ManualClock", "add_family_deployments", "batch_jsonl",
         "default_deployments", "litellm_params"], "helpers"),
    "running_proxy": "pytest_plugin",
    "REDIS_PASSWORD": "services",
    "RedisServer": "services",
}  # fmt: skip


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
