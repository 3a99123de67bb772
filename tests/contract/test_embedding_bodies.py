"""Every embeddings body the SDK and the proxy send validates, strictly, against Microsoft's spec.

Classic bodies against the dated inference specs (the request schema inline under
``/deployments/{deployment-id}/embeddings``), v1 bodies (token lists, ``model`` in the body)
against the v1 spec. Keys the spec does not declare fail (see ``test_request_bodies._strict``).
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

from .test_request_bodies import SPEC_FILES, SPECS, _nullable, _strict, assert_conforms

EMB = "text-embedding-3-large"


@cache
def classic_validator(api_version: str) -> jsonschema.Validator:
    spec = json.loads((SPECS / SPEC_FILES[api_version]).read_text())
    schemas = _nullable(spec["components"]["schemas"])
    body = spec["paths"]["/deployments/{deployment-id}/embeddings"]["post"]["requestBody"]
    schema = _strict(_nullable(body["content"]["application/json"]["schema"]), schemas)
    root = {**schema, "components": {"schemas": {k: _strict(v, schemas) for k, v in schemas.items()}}}
    return jsonschema.Draft202012Validator(root)


def assert_classic(api_version: str, body: dict[str, Any]) -> None:
    errors = [f"{list(e.path)}: {e.message}" for e in classic_validator(api_version).iter_errors(body)]
    assert not errors, errors


def assert_v1(body: dict[str, Any]) -> None:
    assert_conforms("v1", body, "OpenAI.CreateEmbeddingRequest", spec_file="azure-v1-v1-generated.json")


@pytest.fixture
def emb(emulator: Emulator) -> Iterator[Emulator]:
    emulator.add_deployment(Deployment(EMB, model="text-embedding-3-large"))
    yield emulator
    emulator.deployments.pop(EMB, None)


CLASSIC = {
    "string": {"input": "hello"},
    "strings": {"input": ["a", "b"]},
    "all": {"input": ["a"], "dimensions": 256, "encoding_format": "float", "user": "u-1"},
    "base64": {"input": "x", "encoding_format": "base64"},
}
V1 = {**CLASSIC, "tokens": {"input": [1, 2, 3]}, "token_lists": {"input": [[1, 2], [3]]}}
# Control and connection settings that must never reach a body.
LEAKS = {"drop_params": True, "base_model": "azure/text-embedding-3-large", "num_retries": 0, "timeout": 30}


@pytest.mark.parametrize("api_version", sorted(SPEC_FILES))
@pytest.mark.parametrize("case", sorted(CLASSIC))
def test_classic_embedding_body_conforms(api_base: str, emb: Emulator, api_version: str, case: str) -> None:
    modelyard.embedding(model=f"azure/{EMB}", api_base=api_base, api_key=KEY, api_version=api_version,
                        **CLASSIC[case], **LEAKS)  # fmt: skip
    [seen] = emb.requests
    assert seen.path == f"/openai/deployments/{EMB}/embeddings"
    assert seen.body == CLASSIC[case]
    assert_classic(api_version, seen.body)


@pytest.mark.parametrize("case", sorted(V1))
def test_v1_embedding_body_conforms(api_base: str, emb: Emulator, case: str) -> None:
    modelyard.embedding(model=f"azure/{EMB}", api_base=api_base, api_key=KEY, api_version="v1", **V1[case], **LEAKS)
    [seen] = emb.requests
    assert seen.path == "/openai/v1/embeddings"
    assert seen.body == {**V1[case], "model": EMB}
    assert_v1(seen.body)


@pytest.mark.parametrize(
    "body",
    [
        {"dimensions": 3},
        {"input": "x", "api_key": "sk-leaked"},
        {"input": "x", "base_model": "azure/x"},
        {"input": "x", "drop_params": True},
        {"input": "x", "dimensions": "3"},
    ],
)
def test_strict_validators_refuse_what_the_spec_does_not_declare(body: dict[str, Any]) -> None:
    with pytest.raises(AssertionError):
        assert_classic("2024-10-21", body)
    with pytest.raises(AssertionError):
        assert_v1({**body, "model": EMB})
