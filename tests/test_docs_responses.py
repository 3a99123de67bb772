"""docs/responses.md: its example runs as written against the emulator; its bridge table names real tests."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from modelyard.testing import Emulator

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "responses.md"


def test_responses_example_runs(azure_env: Emulator, capsys: pytest.CaptureFixture[str]) -> None:
    code = re.search(r"```python\n(.*?)```", DOC.read_text(), re.S)
    assert code is not None
    exec(compile(code.group(1), str(DOC), "exec"), {})
    out = capsys.readouterr().out
    assert "Based on the tool result: 22C, sunny" in out
    assert "This is gpt-4o on the modelyard emulator. You said: Stream it" in out
    assert {r.path for r in azure_env.requests} >= {"/openai/v1/responses"}


def test_every_bridge_row_names_a_test_that_exists() -> None:
    table = DOC.read_text().split("## The chat <-> Responses bridge", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert len(rows) >= 12
    sources = (ROOT / "tests" / "test_responses.py").read_text() + (ROOT / "tests" / "contract" / "test_responses_bodies.py").read_text()
    for row in rows:
        names = re.findall(r"`(test_[a-z_]+)`", row.rsplit("|", 2)[1])
        assert names, row
        for name in names:
            assert f"def {name}(" in sources, name
