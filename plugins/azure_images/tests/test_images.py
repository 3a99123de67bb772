"""The azure_images plugin against the emulator: SDK sync and async, URLs, bodies, uploads, errors."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import modelyard
import pytest
from modelyard import errors
from modelyard.testing import KEY, Emulator
from modelyard.testing.emulator import Deployment, Faults
from modelyard.testing.images import png

DALLE = "dall-e-3"
GPT_IMAGE = "gpt-image-1"
PREVIEW = "2025-04-01-preview"


@pytest.fixture
def img(emulator: Emulator) -> Iterator[Emulator]:
    """The emulator with a dall-e-3 and a gpt-image-1 deployment (removed after)."""
    emulator.add_deployment(Deployment(DALLE, model="dall-e-3"))
    emulator.add_deployment(Deployment(GPT_IMAGE, model="gpt-image-1"))
    yield emulator
    emulator.deployments.pop(DALLE, None)
    emulator.deployments.pop(GPT_IMAGE, None)


def _kw(api_base: str, **kw):
    return {"api_key": KEY, "api_base": api_base, "api_version": "2024-10-21", **kw}


def test_generation_classic_path_query_exact_body_and_url_answer(api_base: str, img: Emulator) -> None:
    r = modelyard.image_generation(
        model=f"azure/{DALLE}", prompt="a lighthouse", n=1, size="1792x1024", quality="hd", style="natural",
        user="u1", **_kw(api_base),
    )  # fmt: skip
    seen = img.requests[-1]
    assert (seen.method, seen.path, seen.query) == (
        "POST", f"/openai/deployments/{DALLE}/images/generations", {"api-version": "2024-10-21"}
    )
    assert seen.body == {"prompt": "a lighthouse", "n": 1, "size": "1792x1024", "quality": "hd", "style": "natural", "user": "u1"}
    assert isinstance(r, modelyard.ImageResponse)
    assert r.created > 0 and r.data[0].revised_prompt == "A detailed picture of a lighthouse"
    assert r["data"][0]["revised_prompt"] == r.data[0].revised_prompt
    assert r.data[0].content_filter_results is not None  # Azure's extra fields kept
    # The URL is served by the emulator on loopback: a real PNG.
    got = httpx.get(r.data[0].url or "")
    assert got.status_code == 200 and got.content == png("0:a lighthouse")
    assert r.azure_headers.remaining_requests is not None


def test_generation_b64_positional_prompt_and_v1(api_base: str, img: Emulator) -> None:
    # LiteLLM's order: image_generation(prompt, model, ...).
    r = modelyard.image_generation("a cat", f"azure/{DALLE}", response_format="b64_json", **_kw(api_base, api_version="v1"))
    seen = img.requests[-1]
    assert (seen.method, seen.path, seen.query) == ("POST", "/openai/v1/images/generations", {})
    assert seen.body == {"prompt": "a cat", "response_format": "b64_json", "model": DALLE}
    assert base64.b64decode(r.data[0].b64_json or "") == png("0:a cat")


def test_gpt_image_parameters_and_usage(api_base: str, img: Emulator) -> None:
    r = modelyard.image_generation(
        model=f"azure/{GPT_IMAGE}", prompt="two dogs", n=2, size="1536x1024", quality="low", background="transparent",
        output_format="png", output_compression=80, **_kw(api_base, api_version=PREVIEW),
    )  # fmt: skip
    assert img.requests[-1].body == {"prompt": "two dogs", "n": 2, "size": "1536x1024", "quality": "low",
                                     "background": "transparent", "output_format": "png", "output_compression": 80}  # fmt: skip
    assert len(r.data) == 2 and r.data[1].b64_json and r.data[0].url is None
    assert r.usage is not None and r.usage.input_tokens == 2 and r.usage.total_tokens > 2


async def test_aimage_generation(api_base: str, img: Emulator) -> None:
    r = await modelyard.aimage_generation(prompt="async", model=f"azure/{DALLE}", **_kw(api_base))
    assert img.requests[-1].body == {"prompt": "async"}
    assert img.requests[-1].path == f"/openai/deployments/{DALLE}/images/generations"
    assert r.data[0].url


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({}, "prompt"),
        ({"prompt": 3}, "prompt"),
        ({"prompt": ""}, "prompt"),
        ({"prompt": "x", "n": "1"}, "n"),
        ({"prompt": "x", "response_format": "png"}, "response_format"),
        ({"prompt": "x", "size": 1024}, "size"),
        ({"prompt": "x", "user": 5}, "user"),
    ],
)
def test_bad_input_is_refused_before_sending_naming_the_field(
    api_base: str, img: Emulator, kwargs: dict, param: str
) -> None:
    with pytest.raises(errors.BadRequestError) as info:
        modelyard.image_generation(model=f"azure/{DALLE}", **kwargs, **_kw(api_base))
    assert info.value.param == param
    assert param in str(info.value)
    assert img.requests == []
    modelyard.image_generation(model=f"azure/{DALLE}", prompt="fine", **_kw(api_base))
    assert len(img.requests) == 1


@pytest.mark.parametrize(
    ("model", "kwargs", "param"),
    [
        (DALLE, {"n": 2}, "n"),
        (DALLE, {"size": "1536x1024"}, "size"),
        (DALLE, {"quality": "low"}, "quality"),
        (DALLE, {"style": "cartoon"}, "style"),
        (DALLE, {"output_format": "png"}, "output_format"),
        (GPT_IMAGE, {"size": "1792x1024"}, "size"),
        (GPT_IMAGE, {"style": "vivid"}, "style"),
        (GPT_IMAGE, {"response_format": "url"}, "response_format"),
    ],
)
def test_azure_refuses_per_model_values_naming_the_field(api_base: str, img: Emulator, model: str, kwargs: dict, param: str) -> None:
    with pytest.raises(errors.BadRequestError) as info:
        modelyard.image_generation(model=f"azure/{model}", prompt="x", **kwargs, **_kw(api_base, api_version=PREVIEW))
    assert info.value.status_code == 400 and info.value.param == param


def test_chat_deployment_refuses_images_and_image_deployment_refuses_chat(api_base: str, img: Emulator) -> None:
    with pytest.raises(errors.BadRequestError) as info:
        modelyard.image_generation(model="azure/gpt-4o", prompt="x", **_kw(api_base))
    assert info.value.code == "OperationNotSupported"
    with pytest.raises(errors.BadRequestError) as info:
        modelyard.completion(model=f"azure/{DALLE}", messages=[{"role": "user", "content": "hi"}], **_kw(api_base))
    assert info.value.code == "OperationNotSupported"


def test_prompt_refused_by_the_safety_system_is_a_content_filter_error(api_base: str, img: Emulator) -> None:
    with pytest.raises(errors.ContentFilterError) as info:
        modelyard.image_generation(model=f"azure/{DALLE}", prompt="draw emulator:filter-prompt", **_kw(api_base))
    err = info.value
    assert err.status_code == 400 and err.code == "content_policy_violation"
    assert err.content_filter_result["hate"] == {"filtered": True, "severity": "high"}


def test_rate_limit_is_retried_then_served_and_old_api_versions_are_404(api_base: str, img: Emulator) -> None:
    img.deployments[DALLE].faults = Faults(script=[429], retry_after=0)
    r = modelyard.image_generation(model=f"azure/{DALLE}", prompt="x", **_kw(api_base))
    assert len(r.data) == 1 and len(img.requests) == 2
    with pytest.raises(errors.NotFoundError):
        modelyard.image_generation(model=f"azure/{DALLE}", prompt="x", **_kw(api_base, api_version="2023-06-01-preview"))
    with pytest.raises(errors.NotFoundError):
        modelyard.image_edit(model=f"azure/{GPT_IMAGE}", image=png("a"), prompt="x", **_kw(api_base))


# ------------------------------------------------------------------ edits (multipart)


def _file(entry: dict, name: str, data: bytes, content_type: str = "image/png") -> None:
    assert entry == {"filename": name, "content_type": content_type, "size": len(data), "head": data[:8].hex()}


def test_edit_from_bytes_path_and_file_object_with_mask(api_base: str, img: Emulator, tmp_path: Path) -> None:
    one, two, three, mask = png("1"), png("2"), png("3"), png("mask")
    path = tmp_path / "room.png"
    path.write_bytes(two)
    r = modelyard.image_edit(
        model=f"azure/{GPT_IMAGE}", image=[one, path, io.BytesIO(three)], mask=mask, prompt="add a lamp", n=2,
        size="1024x1024", **_kw(api_base, api_version=PREVIEW),
    )  # fmt: skip
    seen = img.requests[-1]
    assert (seen.method, seen.path, seen.query) == (
        "POST", f"/openai/deployments/{GPT_IMAGE}/images/edits", {"api-version": PREVIEW}
    )
    assert seen.headers["content-type"].startswith("multipart/form-data; boundary=")
    assert set(seen.body) == {"image[]", "mask", "prompt", "n", "size"}
    assert (seen.body["prompt"], seen.body["n"], seen.body["size"]) == ("add a lamp", "2", "1024x1024")
    for entry, name, data in zip(seen.body["image[]"], ["image-0.png", "room.png", "image-2.png"], [one, two, three], strict=True):
        _file(entry, name, data)
    _file(seen.body["mask"], "mask.png", mask)
    assert len(r.data) == 2 and r.usage is not None


async def test_aimage_edit_single_file_v1_model_in_the_form(api_base: str, img: Emulator, tmp_path: Path) -> None:
    path = tmp_path / "photo.jpg"
    path.write_bytes(b"\xff\xd8\xff" + b"0" * 100)
    r = await modelyard.aimage_edit(model=f"azure/{GPT_IMAGE}", image=path, prompt="brighter", **_kw(api_base, api_version="v1"))
    seen = img.requests[-1]
    assert (seen.path, seen.query) == ("/openai/v1/images/edits", {})
    assert seen.body["model"] == GPT_IMAGE and seen.body["prompt"] == "brighter"
    _file(seen.body["image"], "photo.jpg", path.read_bytes(), "image/jpeg")
    assert r.data[0].b64_json


def test_edit_from_a_str_path_and_mask_as_a_file_part(api_base: str, img: Emulator, tmp_path: Path) -> None:
    """A ``str`` path is read from disk as LiteLLM takes it; parts come through as the pipeline made them."""
    path = tmp_path / "shot.png"
    path.write_bytes(png("str"))
    modelyard.image_edit(model=f"azure/{GPT_IMAGE}", image=str(path), mask=("m", png("m"), "application/octet-stream"),
                         prompt="x", **_kw(api_base, api_version=PREVIEW))  # fmt: skip
    seen = img.requests[-1]
    _file(seen.body["image"], "shot.png", png("str"))
    _file(seen.body["mask"], "mask.png", png("m"))  # unnamed and untyped: named and typed by its bytes


def test_edit_upload_is_sent_again_on_a_retry(api_base: str, img: Emulator, tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    path.write_bytes(png("retry"))
    img.deployments[GPT_IMAGE].faults = Faults(script=[429], retry_after=0)
    modelyard.image_edit(model=f"azure/{GPT_IMAGE}", image=path, prompt="x", **_kw(api_base, api_version=PREVIEW))
    first, second = img.requests
    assert first.body == second.body and second.body["image"]["size"] == len(png("retry"))


def test_positional_arguments_follow_litellm(api_base: str, img: Emulator) -> None:
    modelyard.image_edit(png("p"), "positional", f"azure/{GPT_IMAGE}", **_kw(api_base, api_version=PREVIEW))
    assert img.requests[-1].body["prompt"] == "positional"
    with pytest.raises(TypeError, match="model"):
        modelyard.image_generation("no model", **_kw(api_base))
    with pytest.raises(TypeError, match="multiple values for argument 'prompt'"):
        modelyard.image_generation("a", prompt="b", model=f"azure/{DALLE}", **_kw(api_base))
    assert len(img.requests) == 1


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"prompt": "x"}, "image"),
        ({"image": 5, "prompt": "x"}, "image"),
        ({"image": [], "prompt": "x"}, "image"),
        ({"image": b"\x89PNG"}, "prompt"),
        ({"image": "/no/such/file.png", "prompt": "x"}, "image"),
        ({"image": b"\x89PNG", "prompt": "x", "mask": 3}, "mask"),
    ],
)
def test_bad_edit_input_is_refused_before_sending(api_base: str, img: Emulator, kwargs: dict, param: str) -> None:
    with pytest.raises(errors.BadRequestError) as info:
        modelyard.image_edit(model=f"azure/{GPT_IMAGE}", **kwargs, **_kw(api_base, api_version=PREVIEW))
    assert info.value.param == param
    assert img.requests == []


def test_azure_refuses_a_file_that_is_not_an_image(api_base: str, img: Emulator) -> None:
    with pytest.raises(errors.BadRequestError) as info:
        modelyard.image_edit(model=f"azure/{GPT_IMAGE}", image=b"hello", prompt="x", **_kw(api_base, api_version=PREVIEW))
    assert info.value.param == "image" and info.value.status_code == 400


def test_a_large_edit_upload_streams_with_bounded_memory(api_base: str, img: Emulator, tmp_path: Path) -> None:
    """A 24 MiB image goes up in chunks from its path: the peak of Python allocations (client and
    the in-process emulator together) stays far below its size."""
    import tracemalloc

    size = 24 * 1024 * 1024
    path = tmp_path / "big.png"
    with path.open("wb") as f:
        f.write(png("big"))
        f.truncate(size)
    tracemalloc.start()
    try:
        modelyard.image_edit(model=f"azure/{GPT_IMAGE}", image=path, prompt="x", **_kw(api_base, api_version=PREVIEW))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    print(f"24 MiB edit upload: peak Python allocations {peak / 2**20:.1f} MiB")
    assert img.requests[-1].body["image"]["size"] == size
    assert peak < 8 * 1024 * 1024, peak
