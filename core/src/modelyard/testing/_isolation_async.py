"""The async half of ``modelyard_clean_env``, registered only when pytest-asyncio is active."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator

import pytest_asyncio


@pytest_asyncio.fixture(autouse=True)
async def close_async_clients() -> AsyncIterator[None]:
    """Close the SDK's pooled async clients on the test's own event loop before it goes away."""
    yield
    if "modelyard.transport" in sys.modules:
        await sys.modules["modelyard.transport"].get_transport().aclose()
