"""docs/auth.md's example runs as written."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "auth.md"


@pytest.fixture
def restore_environ() -> Iterator[None]:
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


def test_offline_entra_example_runs(restore_environ: None) -> None:
    from modelyard_azure_auth.entra import clear_token_cache

    section = DOC.read_text().split("## Testing your app against Entra ID offline", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None
    clear_token_cache()
    try:
        exec(compile(code.group(1), str(DOC), "exec"), {})
    finally:
        clear_token_cache()
