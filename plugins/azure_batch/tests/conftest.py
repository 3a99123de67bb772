"""Fixtures for the azure_batch tests: batches that finish fast, and a JSONL builder."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from modelyard.testing import Emulator


@pytest.fixture
def fast(emulator: Emulator) -> Iterator[Emulator]:
    """The session emulator with batches that finish in a fraction of a second."""
    service = emulator.batches
    saved = service.step_seconds, service.line_seconds, service.file_seconds
    service.step_seconds, service.line_seconds = 0.05, 0.005
    yield emulator
    service.step_seconds, service.line_seconds, service.file_seconds = saved

