"""The core speaks no provider's language (issue 13, part 1).

Outside ``modelyard/testing/`` (the emulators) and docstrings, ``core/src`` names no provider:
no identifier, string or comment says azure, openai, anthropic, claude, entra ... A provider's
names, settings, paths and defaults belong to its plugin (``register_connection_settings``,
``register_families`` ...).

Every mention is reported with its module and count, so a failure says where to look.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from collections import Counter
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "modelyard"
PROVIDERS = re.compile(r"azure|openai|anthropic|claude|\bentra\b|bedrock|vertex|gemini|mistral|cohere", re.I)

def _docstring_lines(tree: ast.AST) -> set[int]:
    """Lines of docstrings: any statement that is only a string (module, class, function, attribute)."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            lines.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
    return lines


def mentions(path: Path) -> Counter[str]:
    """Every token of ``path`` (names, strings, comments; not docstrings) that names a provider."""
    source = path.read_text()
    docstrings = _docstring_lines(ast.parse(source))
    found: Counter[str] = Counter()
    kinds = {tokenize.NAME, tokenize.STRING, tokenize.COMMENT}
    kinds.add(getattr(tokenize, "FSTRING_MIDDLE", tokenize.STRING))
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.STRING and tok.start[0] in docstrings:
            continue
        if tok.type in kinds and PROVIDERS.search(tok.string):
            found[tok.string] += 1
    return found


def test_core_names_no_provider_outside_testing_and_docstrings() -> None:
    found: dict[str, dict[str, int]] = {}
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        if not rel.startswith("testing/") and (names := mentions(path)):
            found[rel] = dict(names)
    assert not found, f"provider names in core/src (move them to the provider's plugin): {found}"


def test_the_scan_finds_what_it_looks_for(tmp_path: Path) -> None:
    sample = tmp_path / "m.py"
    sample.write_text('"""Azure in a docstring is fine."""\nx = "azure/dep"  # OpenAI here\ndef anthropic(): ...\n')
    assert mentions(sample) == Counter({'"azure/dep"': 1, "# OpenAI here": 1, "anthropic": 1})
