"""docs/families.md: every test its rule table names exists (so the table cannot rot)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "families.md"


def _named_tests() -> set[tuple[str, str]]:
    return set(re.findall(r"`((?:core/)?tests/[\w/]+\.py)::(\w+)`", DOC.read_text()))


def _defined(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}


def test_every_test_named_in_the_families_table_exists() -> None:
    named = _named_tests()
    assert len(named) >= 40
    missing = [f"{path}::{name}" for path, name in sorted(named) if name not in _defined(ROOT / path)]
    assert missing == []


def test_every_rule_row_names_a_test() -> None:
    table = DOC.read_text().split("## Every rule, and the test that proves it", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| family")]
    assert len(rows) >= 40
    assert [r for r in rows if "::test_" not in r] == []
