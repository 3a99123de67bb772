"""Request validation for the emulator against Azure's published request schemas.

``request_schemas.json`` beside this module holds the schemas of the requests the emulator
validates (``createChatCompletionRequest`` and all it references), derived from Microsoft's
``inference-2025-04-01-preview.json``: only the validation keywords are kept (no descriptions or
examples), so the wheel carries about 15 KB rather than the 1 MB spec. The contract tests
(``tests/contract/test_emulator_schemas.py``) derive the file again from the spec and fail when
it drifts; ``python tests/contract/test_emulator_schemas.py`` rewrites it.

Why not ``jsonschema``: ``modelyard.testing`` ships in the ``modelyard`` wheel and runs with the
``server`` extra only, which does not depend on it. The schemas use a small subset of OpenAPI 3.0's
JSON Schema (``type``, ``nullable``, ``enum``, ``properties``, ``required``,
``additionalProperties``, ``items``, ``minItems``/``maxItems``, ``minLength``/``maxLength``,
``minimum``/``maximum``, ``allOf``, ``oneOf``/``anyOf`` with an optional ``discriminator``,
local ``$ref``), which :func:`first_error` implements in a page, with the error naming its
field as Azure's ``param`` does (``messages[0].role``).

``oneOf`` is checked as ``anyOf`` (a value matching one branch is valid): the spec's branches
overlap (a null ``stop`` matches two), and Azure accepts such values.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMAS_FILE = Path(__file__).with_name("request_schemas.json")

_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
    "number": (int, float),
    "integer": (int,),
}


@dataclass(frozen=True)
class SchemaError:
    """Why a request fails its schema: the field as Azure names it, and a sentence."""

    param: str
    message: str


@functools.cache
def _schemas() -> dict[str, Any]:
    schemas: dict[str, Any] = json.loads(SCHEMAS_FILE.read_text(encoding="utf-8"))
    return schemas


def first_error(schema_name: str, value: Any) -> SchemaError | None:
    """The first way ``value`` fails the named request schema, or None when it conforms.

    Args:
        schema_name: a schema in ``request_schemas.json`` (``createChatCompletionRequest``).
        value: the decoded JSON body.
    """
    return _check({"$ref": f"#/components/schemas/{schema_name}"}, value, "")


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = _schemas()[schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def _depth(param: str) -> int:
    return param.count(".") + param.count("[") + bool(param)


def _shown(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _check(schema: dict[str, Any], value: Any, path: str) -> SchemaError | None:
    schema = _resolve(schema)
    if value is None and schema.get("nullable"):
        return None
    for part in schema.get("allOf", ()):
        error = _check(part, value, path)
        if error is not None:
            return error
    branches = schema.get("oneOf") or schema.get("anyOf")
    if branches:
        error = _check_union(schema, branches, value, path)
        if error is not None:
            return error
    kind = schema.get("type")
    if kind is not None:
        ok = isinstance(value, _TYPES[kind]) and not (kind in ("number", "integer") and isinstance(value, bool))
        if kind == "integer" and isinstance(value, float) and value.is_integer():
            ok = True
        if kind == "number" and isinstance(value, float) and not math.isfinite(value):
            ok = False
        if not ok:
            article = "an" if kind[0] in "aeiou" else "a"
            return SchemaError(path, f"{_shown(value)} is not of type '{kind}' - '{path}' must be {article} {kind}.")
    if "enum" in schema and value not in schema["enum"]:
        allowed = ", ".join(repr(v) for v in schema["enum"])
        return SchemaError(path, f"Invalid value: {_shown(value)} for '{path}'. Supported values are: {allowed}.")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            return SchemaError(path, f"{_shown(value)} is less than the minimum of {schema['minimum']} - '{path}'.")
        if "maximum" in schema and value > schema["maximum"]:
            return SchemaError(path, f"{_shown(value)} is greater than the maximum of {schema['maximum']} - '{path}'.")
    if isinstance(value, str):
        if "minLength" in schema and len(value) < schema["minLength"]:
            return SchemaError(path, f"'{path}' is shorter than {schema['minLength']} characters.")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            return SchemaError(path, f"'{path}' is longer than {schema['maxLength']} characters.")
    if isinstance(value, list):
        if "minItems" in schema and len(value) < schema["minItems"]:
            return SchemaError(path, f"'{path}' should have at least {schema['minItems']} item(s), got {len(value)}.")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            return SchemaError(path, f"'{path}' should have at most {schema['maxItems']} item(s), got {len(value)}.")
        if "items" in schema:
            for i, item in enumerate(value):
                error = _check(schema["items"], item, _join(path, i))
                if error is not None:
                    return error
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        for name, item in value.items():
            if name in properties:
                error = _check(properties[name], item, _join(path, name))
            elif extra is False:
                error = SchemaError(_join(path, name), f"Unrecognized request argument supplied: {name}.")
            elif isinstance(extra, dict):
                error = _check(extra, item, _join(path, name))
            else:
                error = None
            if error is not None:
                return error
        # After the properties: a message with a wrong role says so before what that role lacks.
        for name in schema.get("required", ()):
            if name not in value:
                where = f" - '{path}'" if path else ""
                return SchemaError(_join(path, name), f"'{name}' is a required property{where}.")
    return None


def _check_union(schema: dict[str, Any], branches: list[Any], value: Any, path: str) -> SchemaError | None:
    discriminator = schema.get("discriminator") or {}
    mapping = discriminator.get("mapping")
    if mapping and isinstance(value, dict):
        tag = value.get(discriminator["propertyName"])
        if tag in mapping:
            return _check({"$ref": mapping[tag]}, value, path)
    errors = []
    for branch in branches:
        error = _check(branch, value, path)
        if error is None:
            return None
        errors.append(error)
    # No branch fits: report the one that got furthest into the value (the message whose role
    # matched but whose content did not); on a tie of enum errors, list every allowed value.
    # A branch of the value's own type ranks above one that refused the type (a list of five
    # stop words: "at most 4", not "not a string"), and a branch whose values all fit but that
    # lacks a property above one refusing a value (a tool message without ``tool_call_id``).
    def rank(e: SchemaError) -> tuple[int, bool, bool]:
        wrong_type = e.param == path and " is not of type " in e.message
        return _depth(e.param), not wrong_type, "Supported values are" not in e.message

    top = max(rank(e) for e in errors)
    best = [e for e in errors if rank(e) == top]
    enums = [e for e in best if "Supported values are: " in e.message and e.param == best[0].param]
    if len(enums) > 1:  # the message's role fits none: list every role the branches allow
        allowed = ", ".join(dict.fromkeys(v for e in enums for v in e.message.split("Supported values are: ")[1][:-1].split(", ")))
        return SchemaError(enums[0].param, enums[0].message.split(" Supported")[0] + f" Supported values are: {allowed}.")
    return best[0]
