"""Fixtures for the Router tests: an emulator of our own.

``emu`` is an emulator whose deployments each test declares itself
(``emu.add_deployment(Deployment(...))``). The Redis fixtures (``redis_server``, ``redis_url``,
``fresh_redis``) come from the pytest plugin (modelyard.testing).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from modelyard.testing import KEY, REDIS_PASSWORD, Emulator, EmulatorServer, RedisServer

__all__ = ["REDIS_PASSWORD", "RedisServer"]


@pytest.fixture(scope="session")
def router_emulator_server() -> Iterator[EmulatorServer]:
    with EmulatorServer(Emulator([], api_keys=[KEY])) as server:
        yield server


@pytest.fixture
def emu(router_emulator_server: EmulatorServer) -> Emulator:
    """The Router tests' emulator, with no deployments and no recorded requests."""
    emulator: Emulator = router_emulator_server.emulator
    emulator.reset()
    emulator.deployments.clear()
    return emulator


@pytest.fixture
def emu_url(router_emulator_server: EmulatorServer) -> str:
    return str(router_emulator_server.url)
