"""The azure_embeddings plugin against the emulator: SDK sync and async, URLs, bodies, errors."""

from __future__ import annotations

import base64
import struct
from collections.abc import Iterator

import modelyard
import pytest
from modelyard import errors
from modelyard.testing import KEY, Emulator
from modelyard.testing.embeddings import vector
from modelyard.testing.emulator import Deployment, Faults

DEPLOYMENT = "text-embedding-3-small"


@pytest.fixture
def emb(emulator: Emulator) -> Iterator[Emulator]:
    """The emulator with an embeddings deployment (removed after, so other tests' model lists stay)."""
    emulator.add_deployment(Deployment(DEPLOYMENT, model="text-embedding-3-small"))
    emulator.add_deployment(Deployment("ada", model="text-embedding-ada-002"))
    yield emulator
    emulator.deployments.pop(DEPLOYMENT, None)
    emulator.deployments.pop("ada", None)


def _kw(api_base: str, **kw):
    return {"api_key": KEY, "api_base": api_base, "api_version": "2024-10-21", **kw}


def test_embedding_classic_path_query_and_exact_body(api_base: str, emb: Emulator) -> None:
    r = modelyard.embedding(
        model=f"azure/{DEPLOYMENT}", input=["hello", "world"], dimensions=8, user="u1", **_kw(api_base)
    )
    seen = emb.requests[-1]
    assert (seen.method, seen.path, seen.query) == (
        "POST", f"/openai/deployments/{DEPLOYMENT}/embeddings", {"api-version": "2024-10-21"}
    )
    assert seen.body == {"input": ["hello", "world"], "dimensions": 8, "user": "u1"}
    assert isinstance(r, modelyard.EmbeddingResponse)
    assert [d.index for d in r.data] == [0, 1]
    assert r.data[0].embedding == vector("hello", 8)
    assert r.usage is not None and r.usage.prompt_tokens == 2
    assert r.azure_headers.remaining_requests is not None


def test_embedding_positional_input_and_v1_path(api_base: str, emb: Emulator) -> None:
    modelyard.embedding(f"azure/{DEPLOYMENT}", "one text", **_kw(api_base, api_version="v1"))
    seen = emb.requests[-1]
    assert (seen.method, seen.path, seen.query) == ("POST", "/openai/v1/embeddings", {})
    assert seen.body == {"input": "one text", "model": DEPLOYMENT}


def test_embedding_token_lists_and_base64(api_base: str, emb: Emulator) -> None:
    r = modelyard.embedding(
        model=f"azure/{DEPLOYMENT}", input=[[1, 2, 3], [4]], encoding_format="base64", dimensions=4, **_kw(api_base)
    )
    assert emb.requests[-1].body == {"input": [[1, 2, 3], [4]], "encoding_format": "base64", "dimensions": 4}
    raw = r.data[0].embedding
    assert isinstance(raw, str)
    floats = struct.unpack("<4f", base64.b64decode(raw))
    assert floats == pytest.approx(vector("[1, 2, 3]", 4), abs=1e-6)


async def test_aembedding(api_base: str, emb: Emulator) -> None:
    r = await modelyard.aembedding(model=f"azure/{DEPLOYMENT}", input="async", **_kw(api_base))
    assert emb.requests[-1].body == {"input": "async"}
    assert emb.requests[-1].path == f"/openai/deployments/{DEPLOYMENT}/embeddings"
    assert len(r.data[0].embedding) == 1536


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({}, "input"),
        ({"input": 3}, "input"),
        ({"input": []}, "input"),
        ({"input": "x", "encoding_format": "hex"}, "encoding_format"),
        ({"input": "x", "dimensions": "8"}, "dimensions"),
        ({"input": "x", "user": 5}, "user"),
    ],
)
def test_bad_input_is_refused_before_sending_naming_the_field(
    api_base: str, emb: Emulator, kwargs: dict, param: str
) -> None:
    with pytest.raises(errors.BadRequestError) as info:
        modelyard.embedding(model=f"azure/{DEPLOYMENT}", **kwargs, **_kw(api_base))
    assert info.value.param == param
    assert param in str(info.value)
    assert emb.requests == []
    modelyard.embedding(model=f"azure/{DEPLOYMENT}", input="fine", **_kw(api_base))
    assert len(emb.requests) == 1


def test_azure_refusal_keeps_param(api_base: str, emb: Emulator) -> None:
    with pytest.raises(errors.BadRequestError) as info:
        modelyard.embedding(model="azure/ada", input="x", dimensions=8, **_kw(api_base))
    assert info.value.param == "dimensions" and info.value.status_code == 400
    with pytest.raises(errors.BadRequestError) as info:
        modelyard.embedding(model="azure/gpt-4o", input="x", **_kw(api_base))
    assert info.value.code == "OperationNotSupported"


def test_rate_limit_is_retried_then_served(api_base: str, emb: Emulator) -> None:
    emb.deployments[DEPLOYMENT].faults = Faults(script=[429], retry_after=0)
    r = modelyard.embedding(model=f"azure/{DEPLOYMENT}", input="x", **_kw(api_base))
    assert len(r.data) == 1
    assert len(emb.requests) == 2


def test_rate_limit_maps_to_rate_limit_error(api_base: str, emb: Emulator) -> None:
    emb.deployments[DEPLOYMENT].faults = Faults(script=[429], retry_after=0)
    with pytest.raises(errors.RateLimitError):
        modelyard.embedding(model=f"azure/{DEPLOYMENT}", input="x", num_retries=0, **_kw(api_base))


def test_old_api_version_without_embeddings_is_404(api_base: str, emb: Emulator) -> None:
    with pytest.raises(errors.NotFoundError):
        modelyard.embedding(model=f"azure/{DEPLOYMENT}", input="x", **_kw(api_base, api_version="2022-03-01-preview"))
