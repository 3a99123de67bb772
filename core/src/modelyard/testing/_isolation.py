"""Autouse fixtures the ini option ``modelyard_clean_env = true`` registers (see pytest_plugin).

Not a plugin of its own: ``pytest_plugin.pytest_configure`` registers this module only when the
option is on, so a user's pytest run is unchanged by default; ``_isolation_async`` too when
pytest-asyncio is active.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _modelyard_clean_env(clean_environment: None) -> None:
    """Every test gets ``clean_environment``."""


@pytest.fixture(autouse=True, scope="session")
def close_sync_clients() -> Iterator[None]:
    """Close the SDK's pooled sync clients at the end of the session."""
    yield
    if "modelyard.transport" in sys.modules:
        sys.modules["modelyard.transport"].get_transport().close()
