"""The dependency runs one way, pipeline -> contract: the contract modules import no pipeline module."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "modelyard"
CONTRACT = ["hookspecs.py", "files_router.py", "types.py", "operations.py", "file_types.py", "families.py", "errors.py"]
PIPELINE = {"api", "files", "router", "proxy", "transport", "_calls"}


def _imported(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level >= 1 and node.module:
            found.add(node.module.split(".")[0])
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("modelyard."):
            found.add(node.module.split(".")[1])
    return found


@pytest.mark.parametrize("module", CONTRACT)
def test_contract_module_imports_no_pipeline_module(module: str) -> None:
    assert _imported(SRC / module) & PIPELINE == set()


def test_files_pipeline_uses_no_private_of_the_chat_pipeline() -> None:
    assert "api" not in _imported(SRC / "files.py")
