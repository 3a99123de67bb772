"""The emulator's vendored request schemas are Microsoft's, derived again here so they cannot drift.

Run this file as a script to rewrite ``core/src/modelyard/testing/request_schemas.json`` after
updating the spec in ``tests/contract/specs``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SPEC = Path(__file__).parent / "specs" / "inference-2025-04-01-preview.json"
# Files and batches are in the authoring spec (Swagger 2.0: ``definitions``, ``#/definitions/`` refs).
AUTHORING = Path(__file__).parent / "specs" / "authoring-2024-10-21.json"
VENDORED = Path(__file__).parents[2] / "core" / "src" / "modelyard" / "testing" / "request_schemas.json"
ROOTS = ("createChatCompletionRequest", "createCompletionRequest", "BatchCreateRequest")
# The validation keywords the emulator's validator implements (modelyard.testing._schema).
KEEP = {"type", "nullable", "enum", "properties", "required", "additionalProperties", "items", "minItems",
        "maxItems", "minLength", "maxLength", "minimum", "maximum", "allOf", "oneOf", "anyOf", "$ref",
        "discriminator"}  # fmt: skip


def _compact(node: Any) -> Any:
    if isinstance(node, list):
        return [_compact(n) for n in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "properties":
            out[key] = {name: _compact(v) for name, v in value.items()}
        elif key in KEEP:
            out[key] = value if key in ("enum", "required", "discriminator") else _compact(value)
    return out


def _components() -> dict[str, Any]:
    """The inference spec's schemas, and the authoring spec's with refs in the same form."""
    components: dict[str, Any] = json.loads(SPEC.read_text())["components"]["schemas"]
    authoring = AUTHORING.read_text().replace('"#/definitions/', '"#/components/schemas/')
    for name, schema in json.loads(authoring)["definitions"].items():
        components.setdefault(name, schema)
    return components


def derive() -> dict[str, Any]:
    """``ROOTS`` and every schema they reference, with the validation keywords only."""
    components = _components()
    # Erratum: the spec predates the gpt-5 models, whose reasoning_effort also takes "minimal"
    # and "none"; the emulator checks the value per model (modelyard.testing.families).
    del components["createChatCompletionRequest"]["allOf"][1]["properties"]["reasoning_effort"]["enum"]
    wanted: dict[str, Any] = {}
    todo = list(ROOTS)
    while todo:
        name = todo.pop()
        if name in wanted:
            continue
        wanted[name] = _compact(components[name])
        text = json.dumps(wanted[name])
        todo += [ref.split('"')[0] for ref in text.split('"#/components/schemas/')[1:]]
    return dict(sorted(wanted.items()))


def render() -> str:
    return json.dumps(derive(), indent=None, separators=(",", ":"), sort_keys=True) + "\n"


def test_vendored_schemas_match_the_spec() -> None:
    assert VENDORED.read_text() == render(), f"stale: run `python {Path(__file__).relative_to(Path.cwd())}`"


def test_keywords_outside_the_validator_are_only_annotations() -> None:
    """A validation keyword the emulator's validator ignores would silently accept bad input."""
    components = _components()
    seen: set[str] = set()

    def walk(node: Any) -> None:  # enum, required and discriminator hold data, not schemas
        if isinstance(node, list):
            for n in node:
                walk(n)
        elif isinstance(node, dict):
            seen.update(node)
            for key, value in node.items():
                if key == "properties":
                    for v in value.values():
                        walk(v)
                elif key in KEEP - {"enum", "required", "discriminator"}:  # annotations (x-ms-enum, example ...) are not walked into
                    walk(value)

    for name in derive():
        walk(components[name])
    annotations = {"description", "title", "default", "example", "deprecated", "format", "x-ms-enum",
                   "x-oaiExpandable", "x-oaiTypeLabel", "x-ms-discriminator-value"}  # fmt: skip
    assert seen - KEEP - annotations == set()


if __name__ == "__main__":
    VENDORED.write_text(render())
    print(f"wrote {VENDORED} ({VENDORED.stat().st_size} bytes)")
