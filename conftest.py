"""Fixtures shared by every test in the workspace.

* No network: any connection to a non-loopback address fails the test.
* A clean environment: no AZURE_*/OPENAI_*/MODELYARD_* variable leaks in from the machine.
* ``emulator``: one Azure OpenAI emulator on loopback for the session, reset before each test.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from modelyard.plugins import reset_plugins
from modelyard.testing import Deployment, Emulator, EmulatorServer
from modelyard.transport import get_transport

from pgtest import postgres_url  # noqa: F401  (a session fixture: a real PostgreSQL)
from redistest import fresh_redis, redis_server, redis_url  # noqa: F401  (a real redis-server)
from testsupport import AD_TOKEN, KEY


def _loopback(address: Any) -> bool:
    if isinstance(address, tuple):
        host = address[0]
    else:
        return True  # unix sockets
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _guarded_connect(self: socket.socket, address: Any) -> Any:
    if not _loopback(address):
        raise ConnectionRefusedError(f"tests may not reach the network: {address!r}")
    return _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: Any) -> Any:
    if not _loopback(address):
        raise ConnectionRefusedError(f"tests may not reach the network: {address!r}")
    return _real_connect_ex(self, address)


socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    import os

    for name in list(os.environ):
        if name.startswith(("AZURE_", "OPENAI_", "MODELYARD_")):
            monkeypatch.delenv(name)
    reset_plugins()
    yield
    reset_plugins()


@pytest.fixture(autouse=True)
async def close_async_clients() -> Any:
    """Close the pooled async clients on the test's own event loop before it goes away."""
    yield
    await get_transport().aclose()


@pytest.fixture(autouse=True, scope="session")
def close_sync_clients() -> Iterator[None]:
    yield
    get_transport().close()


@pytest.fixture(scope="session")
def emulator_server() -> Iterator[EmulatorServer]:
    emulator = Emulator(
        [
            Deployment("gpt-4o"),
            Deployment("gpt-4o-mini", model="gpt-4o-mini-2024-07-18"),
            Deployment("chatgpt-v-2", model="gpt-35-turbo-0613"),
            Deployment("chatgpt-functioncalling", model="gpt-4o-2024-08-06"),
            Deployment("small-context", context_window=20),
        ],
        api_keys=[KEY],
        ad_tokens=[AD_TOKEN],
    )
    with EmulatorServer(emulator) as server:
        yield server


@pytest.fixture
def emulator(emulator_server: EmulatorServer) -> Emulator:
    """The session's emulator, with requests, faults and quotas reset."""
    emulator_server.emulator.reset()
    return emulator_server.emulator  # type: ignore[no-any-return]


@pytest.fixture
def api_base(emulator_server: EmulatorServer) -> str:
    return emulator_server.url


@pytest.fixture
def azure_env(monkeypatch: pytest.MonkeyPatch, api_base: str, emulator: Emulator) -> Emulator:
    """AZURE_API_KEY / AZURE_API_BASE / AZURE_API_VERSION pointing at the emulator."""
    monkeypatch.setenv("AZURE_API_KEY", KEY)
    monkeypatch.setenv("AZURE_API_BASE", api_base)
    monkeypatch.setenv("AZURE_API_VERSION", "2024-10-21")
    return emulator
