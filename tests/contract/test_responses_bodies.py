"""Every Responses body the SDK, the proxy and the chat bridge send validates, strictly, against Microsoft's spec.

v1 bodies (``/openai/v1/responses``) against the v1 spec's ``OpenAI.CreateResponse``; dated
bodies (``/openai/responses?api-version=2025-04-01-preview``) against that file's
``createResponse``. Keys the spec does not declare fail (see ``test_request_bodies._strict``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cache
from typing import Any

import jsonschema
import modelyard
import pytest
from modelyard.testing import KEY, Emulator
from modelyard.testing.emulator import Deployment

from .test_request_bodies import SPECS, _nullable, _strict

V1_SPEC = "azure-v1-v1-generated.json"
DATED_SPEC = "inference-2025-04-01-preview.json"


def _discriminated(schemas: dict[str, Any]) -> dict[str, Any]:
    """OpenAPI discriminators in JSON Schema terms (jsonschema ignores ``discriminator``).

    A base schema with a ``discriminator.mapping`` becomes ``anyOf`` its mapped members (each
    checked strictly) plus one open branch for a ``type`` the mapping does not list (the v1
    spec's ``InputItem`` maps only ``message`` and ``item_reference`` while its ``type`` is any
    string: ``function_call_output`` items are declared nowhere else, so their fields are
    checked by the service, not here). Members' ``allOf: [base]`` point at the base without
    its discriminator, so the union does not recurse.
    """
    out = dict(schemas)
    for name, node in schemas.items():
        disc = node.get("discriminator") if isinstance(node, dict) else None
        if isinstance(disc, dict) and not disc.get("mapping") and "oneOf" in node:
            # A discriminated oneOf without a mapping (the dated file's InputItem: a typed message
            # is both an EasyInputMessage and an Item): the discriminator picks one, so any one will do.
            out[name] = {**{k: v for k, v in node.items() if k not in ("oneOf", "discriminator")}, "anyOf": node["oneOf"]}
            continue
        if not isinstance(disc, dict) or not disc.get("mapping"):
            continue
        prop, mapping = disc["propertyName"], disc["mapping"]
        out[f"{name}__base"] = {k: v for k, v in node.items() if k != "discriminator"}
        open_branch = {"type": "object", "required": [prop], "properties": {prop: {"not": {"enum": sorted(mapping)}}},
                       "additionalProperties": {}}  # fmt: skip
        out[name] = {"anyOf": [*({"$ref": ref} for ref in mapping.values()), open_branch]}
    ref_to = {f"#/components/schemas/{n}": f"#/components/schemas/{n}__base" for n in schemas if f"{n}__base" in out}
    for name, node in list(out.items()):
        if isinstance(node, dict) and isinstance(node.get("allOf"), list):
            out[name] = {**node, "allOf": [{"$ref": ref_to.get(m.get("$ref"), m.get("$ref"))} if isinstance(m, dict) and "$ref" in m
                                           else m for m in node["allOf"]]}  # fmt: skip
    return out


@cache
def responses_validator(spec_file: str, schema: str) -> jsonschema.Validator:
    """``schema`` of ``spec_file``, discriminated unions resolved, refusing every undeclared key."""
    spec = json.loads((SPECS / spec_file).read_text())
    schemas = _discriminated(_nullable(spec["components"]["schemas"]))  # type: ignore[arg-type]
    strict = {name: _strict(s, schemas) for name, s in schemas.items()}
    if spec_file == DATED_SPEC:
        # Erratum: the 2025-04-01-preview file's Tool union refers to a WebSearchTool it never defines.
        strict["WebSearchTool"] = {"type": "object", "required": ["type"],
                                   "properties": {"type": {"enum": ["web_search_preview", "web_search_preview_2025_03_11"]}},
                                   "additionalProperties": {}}  # fmt: skip
    if spec_file == V1_SPEC:
        # Erratum: the v1 file's CreateResponse.tool_choice refers only to the object form; the
        # string modes it declares beside it (OpenAI.ToolChoiceOptions) are what the service takes most.
        strict[schema]["properties"]["tool_choice"] = {"anyOf": [{"$ref": "#/components/schemas/OpenAI.ToolChoiceOptions"},
                                                                 {"$ref": "#/components/schemas/OpenAI.ToolChoiceParam"}]}  # fmt: skip
    return jsonschema.Draft202012Validator({"$ref": f"#/components/schemas/{schema}", "components": {"schemas": strict}})


def assert_conforms(body: dict[str, Any], spec_file: str = V1_SPEC) -> None:
    schema = "OpenAI.CreateResponse" if spec_file == V1_SPEC else "createResponse"
    errors = sorted(responses_validator(spec_file, schema).iter_errors(body), key=lambda e: list(e.path))
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors[:5]]

FUNCTION = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    "strict": False,
}
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"], "additionalProperties": False}

CASES: dict[str, dict[str, Any]] = {
    "text": {"input": "Hello"},
    "items": {"input": [{"role": "developer", "content": "Be brief"},
                        {"role": "user", "content": [{"type": "input_text", "text": "What is this?"},
                                                     {"type": "input_image", "image_url": "https://example.com/a.png", "detail": "auto"}]}]},
    "everything": {"input": "x", "instructions": "Be brief", "tools": [FUNCTION], "tool_choice": "auto",
                   "store": True, "truncation": "auto", "max_output_tokens": 64, "metadata": {"run": "1"},
                   "parallel_tool_calls": True, "temperature": 0.2, "top_p": 0.9, "user": "u-1",
                   "include": ["message.input_image.image_url"]},
    "json_schema": {"input": "x", "text": {"format": {"type": "json_schema", "name": "city", "schema": SCHEMA, "strict": True}}},
    "background": {"input": "x", "background": True},
    "stream": {"input": "x", "stream": True},
}  # fmt: skip
# Messages written without "type" (as OpenAI takes them) are sent typed, as the v1 spec requires.
TYPED = {"items": {"input": [{"type": "message", **m} for m in CASES["items"]["input"]]}}
# Control and connection settings that must never reach a body.
LEAKS = {"drop_params": True, "base_model": "azure/gpt-4o", "num_retries": 0, "timeout": 30}


@pytest.fixture
def o3(emulator: Emulator) -> Iterator[Emulator]:
    emulator.add_deployment(Deployment("o3-mini", model="o3-mini-2025-01-31"))
    yield emulator
    emulator.deployments.pop("o3-mini", None)


def _create(api_base: str, case: dict[str, Any], **kw: Any) -> None:
    result = modelyard.responses(model=kw.pop("model", "azure/gpt-4o"), api_base=api_base, api_key=KEY, **case, **LEAKS, **kw)
    if case.get("stream"):
        list(result)  # type: ignore[call-overload]


@pytest.mark.parametrize("case", sorted(CASES))
def test_v1_body_conforms(api_base: str, emulator: Emulator, case: str) -> None:
    _create(api_base, CASES[case])
    [seen] = emulator.requests
    assert seen.path == "/openai/v1/responses"
    assert seen.body == {"model": "gpt-4o", **CASES[case], **TYPED.get(case, {})}
    assert_conforms(seen.body)


@pytest.mark.parametrize("case", sorted(set(CASES) - {"background"}))  # background is newer than that file
def test_dated_body_conforms(api_base: str, emulator: Emulator, case: str) -> None:
    _create(api_base, CASES[case], api_version="2025-04-01-preview")
    [seen] = emulator.requests
    assert (seen.path, seen.query) == ("/openai/responses", {"api-version": "2025-04-01-preview"})
    assert_conforms(seen.body, DATED_SPEC)


def test_reasoning_and_a_chained_function_output_conform(api_base: str, o3: Emulator) -> None:
    first = modelyard.responses(model="azure/o3-mini", input="Weather in Paris?", tools=[FUNCTION],
                                reasoning={"effort": "low", "summary": "auto"}, api_base=api_base, api_key=KEY)  # fmt: skip
    call = next(i for i in first.output if i["type"] == "function_call")  # type: ignore[union-attr]
    modelyard.responses(model="azure/o3-mini", previous_response_id=first.id, api_base=api_base, api_key=KEY,  # type: ignore[union-attr]
                        input=[{"type": "function_call_output", "call_id": call["call_id"], "output": "22C"}])  # fmt: skip
    for seen in o3.requests:
        assert_conforms(seen.body)


def test_bridged_chat_bodies_conform(api_base: str, emulator: Emulator) -> None:
    tools = [{"type": "function", "function": {k: v for k, v in FUNCTION.items() if k != "type"}}]
    first = modelyard.completion(
        model="azure/gpt-4o", messages=[{"role": "system", "content": "Be brief"}, {"role": "user", "content": "Weather?"}],
        tools=tools, max_tokens=50, response_format={"type": "json_schema", "json_schema": {"name": "c", "schema": SCHEMA}},
        model_info={"mode": "responses"}, api_base=api_base, api_key=KEY,
    )  # fmt: skip
    message = first.choices[0].message.model_dump(exclude_none=True)  # type: ignore[union-attr]
    call_id = message["tool_calls"][0]["id"]
    modelyard.completion(
        model="azure/gpt-4o", model_info={"mode": "responses"}, api_base=api_base, api_key=KEY, tools=tools,
        messages=[{"role": "user", "content": "Weather?"}, message, {"role": "tool", "tool_call_id": call_id, "content": "9C"}],
    )  # fmt: skip
    for seen in emulator.requests:
        assert seen.path == "/openai/v1/responses"
        assert_conforms(seen.body)


@pytest.mark.parametrize(
    "body",
    [
        {"model": "gpt-4o", "input": "x", "api_key": "sk-leaked"},
        {"model": "gpt-4o", "input": "x", "drop_params": True},
        {"model": "gpt-4o", "input": "x", "max_tokens": 5},
        {"model": "gpt-4o", "input": "x", "tools": [{"type": "function", "name": "f", "parameters": {}, "leak": 1}]},
    ],
)
def test_strict_validators_refuse_what_the_spec_does_not_declare(body: dict[str, Any]) -> None:
    with pytest.raises(AssertionError):
        assert_conforms(body)
    with pytest.raises(AssertionError):
        assert_conforms(body, DATED_SPEC)
