"""The core speaks no provider's language (issue 13, part 1).

Outside ``modelyard/testing/`` (the emulators) and docstrings, ``core/src`` names no provider:
no identifier, string or comment says azure, openai, anthropic, claude, entra ... A provider's
names, settings, paths and defaults belong to its plugin (``register_connection_settings``,
``register_families`` ...).

``DEBT`` lists, per module, the mentions not yet moved out, each with the reason; it may only
shrink: a mention not listed fails, and a listed one that is gone fails too (remove it here).
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

# module -> {token: count}. Each entry is work left, not a licence (see the note in
# /work/notes/providers.md and the module docstring above).
DEBT: dict[str, dict[str, int]] = {
    # The native Messages API of Claude's plugin is a row of the core's operation table (its SDK
    # names, paths, description and forwarded header); the SDK, Router and proxy take them from
    # the row. To move: a hook through which a plugin contributes operation rows.
    "__init__.py": {"aanthropic_messages": 1, "anthropic_messages": 1, '"aanthropic_messages"': 2, '"anthropic_messages"': 2},
    "api.py": {"anthropic_messages": 1, "aanthropic_messages": 1},
    "router/router.py": {"anthropic_messages": 1, "aanthropic_messages": 1},
    # The operation table's deployment-scoped path per operation, and the proxy routes and
    # OpenAPI paths built from it (/openai/deployments/{model}/...). To move: a route hook.
    "operations.py": {
        "azure_path": 9, "# Azure's limit per image for gpt-image-1 (a mask: 4 MB, Azure's to judge)": 1,
        '"anthropic_messages"': 1, '"/anthropic/v1/messages"': 1,
        '"Anthropic Messages API, native (for Anthropic\'s SDKs and Claude Code)"': 1, '"anthropic-beta"': 1,
    },
    # The Responses API's resource-scoped routes for the provider's own clients (/openai/v1/responses).
    "proxy/responses.py": {'"/openai"': 1, '"/openai/v1"': 1},
    "proxy/app.py": {"_AZURE_PATH": 2, 'r"^/openai/deployments/([^/]+)/("': 1, "_AZURE_OPERATIONS": 2, "azure": 4, "azure_path": 4},
    "proxy/openapi.py": {
        "azure": 4, '" (the Azure shape, for AzureOpenAI clients)"': 1, "azure_path": 1,
        'f"/openai/deployments/{{model}}/{op.azure_path}"': 1,
        '"An OpenAI-compatible proxy for Azure OpenAI. Errors are OpenAI\'s error JSON."': 1,
    },
    "proxy/metrics.py": {'"/openai/deployments/"': 1},
}


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
    unexpected: dict[str, dict[str, int]] = {}
    paid: dict[str, dict[str, int]] = {}
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        if rel.startswith("testing/"):
            continue
        found = mentions(path)
        allowed = DEBT.get(rel, {})
        extra = {t: n - allowed.get(t, 0) for t, n in found.items() if n > allowed.get(t, 0)}
        gone = {t: n - found.get(t, 0) for t, n in allowed.items() if found.get(t, 0) < n}
        if extra:
            unexpected[rel] = extra
        if gone:
            paid[rel] = gone
    assert not unexpected, f"provider names in core/src (move them to the provider's plugin): {unexpected}"
    assert not paid, f"these mentions are gone: remove them from DEBT: {paid}"


def test_the_scan_finds_what_it_looks_for(tmp_path: Path) -> None:
    sample = tmp_path / "m.py"
    sample.write_text('"""Azure in a docstring is fine."""\nx = "azure/dep"  # OpenAI here\ndef anthropic(): ...\n')
    assert mentions(sample) == Counter({'"azure/dep"': 1, "# OpenAI here": 1, "anthropic": 1})
