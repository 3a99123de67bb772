"""Every request body the SDK sends validates against Microsoft's official spec for its api-version."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import jsonschema
import modelyard
import pytest
from modelyard.testing import API_VERSIONS, KEY, Emulator

SPECS = Path(__file__).parent / "specs"
SPEC_FILES = {"2024-10-21": "inference-2024-10-21.json", "2025-04-01-preview": "inference-2025-04-01-preview.json"}


def _nullable(node: object) -> object:
    """OpenAPI 3.0's ``nullable: true`` in JSON Schema terms (the validator knows no ``nullable``)."""
    if isinstance(node, list):
        return [_nullable(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _nullable(v) for k, v in node.items()}
    if out.pop("nullable", False):
        if isinstance(out.get("type"), str):
            out["type"] = [out["type"], "null"]
            if "enum" in out:
                out["enum"] = [*out["enum"], None]
        else:
            out = {"anyOf": [out, {"type": "null"}]}
    return out


# Fields the services take that the spec files above do not declare yet, per request schema.
# Each entry is a real, documented field newer than the spec, never a modelyard-only key: a
# leaked ``api_key``, ``base_model`` or ``drop_params`` in a body must fail these tests.
NEWER_THAN_SPEC: dict[str, frozenset[str]] = {
    # gpt-4o-mini-tts's voice instructions (OpenAI's and Azure's speech API, 2025; in the v1 preview spec).
    "createSpeechRequest": frozenset({"instructions"}),
}


def _strict(node: object, schemas: dict, in_all_of: bool = False) -> object:
    """Refuse undeclared keys: ``unevaluatedProperties: false`` on every object schema with
    ``properties``, recursively (an ``allOf`` gets it once, around its members, whose properties
    it sees; an explicit ``additionalProperties: true`` is overridden, a map schema is kept)."""
    if isinstance(node, list):
        return [_strict(n, schemas) for n in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key == "allOf":
            members = []
            for member in value:
                if isinstance(member, dict) and "$ref" in member and len(member) == 1:
                    member = schemas[member["$ref"].rsplit("/", 1)[1]]  # inlined: strict only around the allOf
                members.append(_strict(member, schemas, in_all_of=True))
            out[key] = members
        elif key == "properties" and isinstance(value, dict):
            out[key] = {name: _strict(v, schemas) for name, v in value.items()}
        else:
            out[key] = _strict(value, schemas)
    if not in_all_of and ("properties" in out or "allOf" in out) and not isinstance(out.get("additionalProperties"), dict):
        out.pop("additionalProperties", None)
        out["unevaluatedProperties"] = False
    elif in_all_of and out.get("additionalProperties") is True:
        out.pop("additionalProperties")
    return out


@cache
def validator(api_version: str, schema: str, spec_file: str | None = None) -> jsonschema.Validator:
    """The request schema ``schema`` of a spec, refusing every key the spec does not declare
    (except :data:`NEWER_THAN_SPEC`)."""
    spec = json.loads((SPECS / (spec_file or SPEC_FILES[api_version])).read_text())
    if api_version == "2024-10-21" and "ResponseFormatJsonSchema" in spec["components"]["schemas"]:
        # Erratum: the GA spec lists "type" as required inside json_schema (it belongs one level
        # up); OpenAI's and Azure's services accept, and their later specs require, no such key.
        spec["components"]["schemas"]["ResponseFormatJsonSchema"]["properties"]["json_schema"]["required"] = ["name"]
    schemas = _nullable(spec["components"]["schemas"])
    strict = {name: _strict(s, schemas) for name, s in schemas.items()}
    for name in NEWER_THAN_SPEC.get(schema, ()):
        strict[schema].setdefault("properties", {})[name] = {}
    root = {"$ref": f"#/components/schemas/{schema}", "components": {"schemas": strict}}
    return jsonschema.Draft202012Validator(root)


def assert_conforms(api_version: str, body: dict, schema: str = "createChatCompletionRequest", spec_file: str | None = None) -> None:
    errors = sorted(validator(api_version, schema, spec_file).iter_errors(body), key=lambda e: list(e.path))
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors[:5]]


TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_current_weather",
            "description": "Get the weather",
            "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]},
        },
    }
]

CASES = {
    "plain": {},
    "sampling": {"temperature": 0.3, "top_p": 0.8, "n": 2, "stop": ["END"], "max_tokens": 64, "seed": 1},
    "penalties": {"presence_penalty": 0.5, "frequency_penalty": 0.5, "logit_bias": {"1": 2.0}, "user": "u"},
    "logprobs": {"logprobs": True, "top_logprobs": 3},
    "tools": {"tools": TOOLS, "tool_choice": "auto", "parallel_tool_calls": True},
    "named_tool": {"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "get_current_weather"}}},
    "json_object": {"response_format": {"type": "json_object"}},
    "json_schema": {
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "answer", "schema": {"type": "object", "properties": {"a": {"type": "string"}}}},
        }
    },
    "stream": {"stream": True},
}
PREVIEW_ONLY = {
    "stream_usage": {"stream": True, "stream_options": {"include_usage": True}},
    "reasoning_effort": {"reasoning_effort": "low", "max_completion_tokens": 100},
    "store_metadata": {"store": True, "metadata": {"k": "v"}},
}
MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "What's the weather in Paris?"},
    {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_current_weather", "arguments": "{\"location\": \"Paris\"}"}}]},
    {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    {"role": "user", "content": [{"type": "text", "text": "and tomorrow?"}]},
]  # fmt: skip


@pytest.mark.parametrize("api_version", sorted(SPEC_FILES))
@pytest.mark.parametrize("case", sorted(CASES))
def test_chat_body_conforms(api_base: str, emulator: Emulator, api_version: str, case: str) -> None:
    params = dict(CASES[case])
    stream = params.pop("stream", False)
    result = modelyard.completion(
        model="azure/gpt-4o", api_base=api_base, api_key=KEY, api_version=api_version,
        messages=MESSAGES, stream=stream, **params,
    )  # fmt: skip
    if stream:
        list(result)
    [seen] = emulator.requests
    assert seen.query["api-version"] == api_version
    assert_conforms(api_version, seen.body)


@pytest.mark.parametrize("case", sorted(PREVIEW_ONLY))
def test_preview_body_conforms(api_base: str, emulator: Emulator, case: str) -> None:
    params = dict(PREVIEW_ONLY[case])
    stream = params.pop("stream", False)
    result = modelyard.completion(
        model="azure/gpt-4o", api_base=api_base, api_key=KEY, api_version="2025-04-01-preview",
        messages=MESSAGES, stream=stream, **params,
    )  # fmt: skip
    if stream:
        list(result)
    assert_conforms("2025-04-01-preview", emulator.requests[-1].body)


@pytest.mark.parametrize(
    "body",
    [
        {"temperature": 0.5},  # no messages
        {"messages": [{"role": "user", "content": "x"}], "temperature": "hot"},
        {"messages": [{"role": "wizard", "content": "x"}]},
        {"messages": [{"role": "user", "content": "x"}], "api_key": "sk-leaked"},
        {"messages": [{"role": "user", "content": "x"}], "base_model": "azure/gpt-4o"},
        {"messages": [{"role": "user", "content": "x"}], "drop_params": True},
        {"messages": [{"role": "user", "content": "x", "api_key": "sk-leaked"}]},
    ],
)
def test_validator_rejects_bad_bodies(body: dict) -> None:
    """The check above has teeth: bodies Azure would refuse fail it."""
    with pytest.raises(AssertionError):
        assert_conforms("2024-10-21", body)


def test_emulator_knows_every_spec_version() -> None:
    for name in SPEC_FILES.values():
        version = json.loads((SPECS / name).read_text())["info"]["version"]
        assert version in API_VERSIONS
