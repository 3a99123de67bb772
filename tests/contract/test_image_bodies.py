"""Every images body the SDK sends validates, strictly, against Microsoft's spec.

Generations: classic bodies against the dated inference specs (``imageGenerationsRequest``:
dall-e-3's fields on 2024-10-21, gpt-image-1's too on 2025-04-01-preview), v1 bodies (``model``
in the body) against the v1 preview spec (the v1 GA file has no ``/images`` paths). Edits: the
multipart form the emulator received, as the spec's form schema (``imageEditsRequest`` of
2025-04-01-preview, which files under ``application/json`` what the service takes as
``multipart/form-data``; ``OpenAI.CreateImageEditRequest`` on v1, whose field names are checked).
Keys the spec does not declare fail (see ``test_request_bodies._strict``).
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from functools import cache
from typing import Any

import modelyard
import pytest
from modelyard.testing import KEY, Emulator
from modelyard.testing.emulator import Deployment
from modelyard.testing.images import png

from .test_request_bodies import SPECS, assert_conforms

DALLE, GPT_IMAGE = "dall-e-3", "gpt-image-1"
PREVIEW = "2025-04-01-preview"
V1_SPEC = "azure-v1-preview-generated.json"
# Control and connection settings that must never reach a body.
LEAKS = {"drop_params": True, "base_model": "azure/dall-e-3", "num_retries": 0, "timeout": 30}


@pytest.fixture
def img(emulator: Emulator) -> Iterator[Emulator]:
    emulator.add_deployment(Deployment(DALLE, model="dall-e-3"))
    emulator.add_deployment(Deployment(GPT_IMAGE, model="gpt-image-1"))
    yield emulator
    emulator.deployments.pop(DALLE, None)
    emulator.deployments.pop(GPT_IMAGE, None)


DALLE_CASES = {
    "prompt": {"prompt": "a corgi"},
    "all": {"prompt": "a corgi", "n": 1, "size": "1792x1024", "quality": "hd", "style": "natural",
            "response_format": "b64_json", "user": "u-1"},
    "url": {"prompt": "x", "response_format": "url", "size": "1024x1792", "quality": "standard", "style": "vivid"},
}
GPT_IMAGE_CASES = {
    "all": {"prompt": "two dogs", "n": 3, "size": "1536x1024", "quality": "low", "background": "opaque",
            "output_format": "jpeg", "output_compression": 50, "user": "u-2"},
    "auto": {"prompt": "x", "size": "auto", "quality": "auto"},
}


@pytest.mark.parametrize("api_version", ["2024-10-21", PREVIEW])
@pytest.mark.parametrize("case", sorted(DALLE_CASES))
def test_classic_dall_e_3_body_conforms(api_base: str, img: Emulator, api_version: str, case: str) -> None:
    modelyard.image_generation(model=f"azure/{DALLE}", api_base=api_base, api_key=KEY, api_version=api_version,
                               **DALLE_CASES[case], **LEAKS)  # fmt: skip
    [seen] = img.requests
    assert seen.path == f"/openai/deployments/{DALLE}/images/generations"
    assert seen.body == DALLE_CASES[case]
    assert_conforms(api_version, seen.body, "imageGenerationsRequest")


@pytest.mark.parametrize("case", sorted(GPT_IMAGE_CASES))
def test_classic_gpt_image_1_body_conforms(api_base: str, img: Emulator, case: str) -> None:
    modelyard.image_generation(model=f"azure/{GPT_IMAGE}", api_base=api_base, api_key=KEY, api_version=PREVIEW,
                               **GPT_IMAGE_CASES[case], **LEAKS)  # fmt: skip
    [seen] = img.requests
    assert seen.body == GPT_IMAGE_CASES[case]
    assert_conforms(PREVIEW, seen.body, "imageGenerationsRequest")


@pytest.mark.parametrize(("model", "case"), [(DALLE, c) for c in sorted(DALLE_CASES)] + [(GPT_IMAGE, c) for c in sorted(GPT_IMAGE_CASES)])
def test_v1_image_body_conforms(api_base: str, img: Emulator, model: str, case: str) -> None:
    params = (DALLE_CASES if model == DALLE else GPT_IMAGE_CASES)[case]
    modelyard.image_generation(model=f"azure/{model}", api_base=api_base, api_key=KEY, api_version="v1", **params, **LEAKS)
    [seen] = img.requests
    assert seen.path == "/openai/v1/images/generations"
    assert seen.body == {**params, "model": model}
    assert_conforms("v1", seen.body, "OpenAI.CreateImageRequest", spec_file=V1_SPEC)


@pytest.mark.parametrize(
    "body",
    [
        {"n": 1},
        {"prompt": "x", "api_key": "sk-leaked"},
        {"prompt": "x", "base_model": "azure/x"},
        {"prompt": "x", "drop_params": True},
        {"prompt": "x", "n": "1"},
        {"prompt": "x", "response_format": "png"},
    ],
)
def test_strict_generation_validators_refuse_what_the_spec_does_not_declare(body: dict[str, Any]) -> None:
    with pytest.raises(AssertionError):
        assert_conforms("2024-10-21", body, "imageGenerationsRequest")
    with pytest.raises(AssertionError):
        assert_conforms("v1", {**body, "model": DALLE}, "OpenAI.CreateImageRequest", spec_file=V1_SPEC)


# ------------------------------------------------------------------ edits: the multipart form


@cache
def _edit_schema(spec_file: str, name: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((SPECS / spec_file).read_text())["components"]["schemas"][name]
    return schema


def _as_body(form: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """The received form as the spec's object: files as ``"<binary>"``, ``image[]`` as ``image``,
    and text fields typed as the schema declares them (a form only carries strings)."""
    body: dict[str, Any] = {}
    for key, value in form.items():
        if key == "image[]":
            body["image"] = ["<binary>" for _ in value]
        elif isinstance(value, dict):
            body[key] = "<binary>"
        elif schema["properties"].get(key, {}).get("type") == "integer":
            body[key] = int(value)
        else:
            body[key] = value
    return body


def assert_classic_form(form: dict[str, Any]) -> None:
    """Against 2025-04-01-preview's ``imageEditsRequest``: names, types, enums, required."""
    schema = _edit_schema(f"inference-{PREVIEW}.json", "imageEditsRequest")
    assert_conforms(PREVIEW, _as_body(form, schema), "imageEditsRequest")


def assert_v1_form(form: dict[str, Any]) -> None:
    """Against v1's ``OpenAI.CreateImageEditRequest`` (its generated value types are all
    ``object``, so the field names and the required ones are what it can say)."""
    schema = _edit_schema(V1_SPEC, "OpenAI.CreateImageEditRequest")
    names = {"image" if k == "image[]" else k for k in form}
    assert names <= set(schema["properties"]), names - set(schema["properties"])
    assert set(schema["required"]) <= names


EDIT_CASES: dict[str, dict[str, Any]] = {
    "one": {"image": png("a"), "prompt": "add a hat"},
    "several_and_mask": {"image": [png("a"), io.BytesIO(png("b"))], "mask": png("m"), "prompt": "merge",
                         "n": 2, "size": "1024x1536", "quality": "high", "response_format": "b64_json", "user": "u"},
}


@pytest.mark.parametrize("case", sorted(EDIT_CASES))
def test_classic_edit_form_conforms(api_base: str, img: Emulator, case: str) -> None:
    params = dict(EDIT_CASES[case])
    if isinstance(params["image"], list):  # file objects are read once per test
        params["image"] = [io.BytesIO(png("b")) if isinstance(v, io.BytesIO) else v for v in params["image"]]
    modelyard.image_edit(model=f"azure/{GPT_IMAGE}", api_base=api_base, api_key=KEY, api_version=PREVIEW, **params, **LEAKS)
    [seen] = img.requests
    assert seen.path == f"/openai/deployments/{GPT_IMAGE}/images/edits"
    assert not set(seen.body) & {*LEAKS, "api_key", "model"}
    assert_classic_form(seen.body)


@pytest.mark.parametrize("case", sorted(EDIT_CASES))
def test_v1_edit_form_conforms(api_base: str, img: Emulator, case: str) -> None:
    params = dict(EDIT_CASES[case])
    if isinstance(params["image"], list):
        params["image"] = [io.BytesIO(png("b")) if isinstance(v, io.BytesIO) else v for v in params["image"]]
    modelyard.image_edit(model=f"azure/{GPT_IMAGE}", api_base=api_base, api_key=KEY, api_version="v1", **params, **LEAKS)
    [seen] = img.requests
    assert seen.path == "/openai/v1/images/edits" and seen.body["model"] == GPT_IMAGE
    assert_v1_form(seen.body)


@pytest.mark.parametrize(
    "form",
    [
        {"prompt": "x"},
        {"image": {"filename": "a.png"}, "prompt": "x", "api_key": "sk-leaked"},
        {"image": {"filename": "a.png"}, "prompt": "x", "drop_params": "true"},
        {"image": {"filename": "a.png"}, "prompt": "x", "response_format": "png"},
    ],
)
def test_strict_edit_validators_refuse_what_the_spec_does_not_declare(form: dict[str, Any]) -> None:
    with pytest.raises(AssertionError):
        assert_classic_form(form)
    if "response_format" not in form:
        with pytest.raises(AssertionError):
            assert_v1_form(form)
