"""The emulator's vision surface, probed over HTTP as Azure would be: image checks and /extensions."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from modelyard.testing import KEY, Deployment, Emulator
from modelyard.testing.vision import OCR_TEXT

PNG = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(16)).decode()
ENHANCE = {"enhancements": {"ocr": {"enabled": True}, "grounding": {"enabled": True}},
           "dataSources": [{"type": "AzureComputerVision", "parameters": {"endpoint": "https://cv.x/", "key": "cv-key-99"}}]}  # fmt: skip


@pytest.fixture
def http(api_base: str, emulator: Emulator) -> Iterator[httpx.Client]:
    if "gpt-4-vision" not in emulator.deployments:
        emulator.add_deployment(Deployment("gpt-4-vision", model="gpt-4-vision-preview"))
    with httpx.Client(base_url=api_base, headers={"api-key": KEY}) as client:
        yield client


def chat(http: httpx.Client, *parts: dict[str, Any], deployment: str = "gpt-4o", role: str = "user",
         extensions: bool = False, version: str = "2024-10-21", **body: Any) -> httpx.Response:  # fmt: skip
    path = f"/openai/deployments/{deployment}/{'extensions/' if extensions else ''}chat/completions"
    content = [{"type": "text", "text": "look"}, *parts]
    return http.post(path, params={"api-version": version}, json={"messages": [{"role": role, "content": content}], **body})


def img(url: Any, **extra: Any) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url, **extra}}


def error(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 400, response.text
    return response.json()["error"]  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("part", "code", "fragment"),
    [
        (img("data:image/bmp;base64,Qk0AAAA="), "invalid_image_format", "unsupported MIME type 'image/bmp'"),
        (img("data:image/png;base64,%%%"), "invalid_image_format", "cannot be decoded"),
        (img("data:image/png," + "A" * 8), "invalid_image_url", "base64-encoded data URL"),
        (img("ftp://example.com/a.png"), "invalid_image_url", "http(s) URL"),
        (img(None), "invalid_image_url", "required string"),
        (img("data:image/png;base64," + base64.b64encode(b"plain text").decode()), "invalid_image_format", "not a JPEG"),
        (img("https://example.com/a.png", detail="max"), "invalid_value", "'auto', 'low' or 'high'"),
    ],
)
def test_bad_image_parts_get_400_naming_the_part(http: httpx.Client, part: dict[str, Any], code: str, fragment: str) -> None:
    err = error(chat(http, part))
    assert err["code"] == code
    assert err["type"] == "invalid_request_error"
    assert err["param"].startswith("messages[0].content[1]")
    assert fragment in err["message"]


def test_images_only_in_user_messages(http: httpx.Client) -> None:
    err = error(chat(http, img("https://example.com/a.png"), role="system"))
    assert err["param"] == "messages[0].content[1]"
    assert "role 'user' only" in err["message"]


def test_at_most_ten_images(http: httpx.Client) -> None:
    assert chat(http, *[img(f"https://example.com/{i}.png") for i in range(10)]).status_code == 200
    err = error(chat(http, *[img(f"https://example.com/{i}.png") for i in range(11)]))
    assert err["code"] == "too_many_images"
    assert err["param"] == "messages[0].content[11]"


def test_image_over_20_mb(http: httpx.Client) -> None:
    raw = b"\x89PNG\r\n\x1a\n" + bytes(20 * 1024 * 1024)
    err = error(chat(http, img("data:image/png;base64," + base64.b64encode(raw).decode())))
    assert err["code"] == "image_too_large"


def test_models_without_vision_refuse_images(http: httpx.Client) -> None:
    err = error(chat(http, img(PNG), deployment="chatgpt-v-2"))
    assert err["message"] == "Invalid content type. image_url is only supported by certain models."
    assert chat(http, deployment="chatgpt-v-2").status_code == 200  # text alone is fine


@pytest.mark.parametrize("name", ["enhancements", "dataSources"])
def test_chat_completions_path_does_not_know_extension_fields(http: httpx.Client, name: str) -> None:
    err = error(chat(http, img(PNG), **{name: ENHANCE[name]}))
    assert err["message"] == f"Unrecognized request argument supplied: {name}"


@pytest.mark.parametrize("version", ["2024-02-01", "2024-10-21", "2025-04-01-preview"])
def test_extensions_path_is_not_served_on_later_versions(http: httpx.Client, version: str) -> None:
    response = chat(http, img(PNG), deployment="gpt-4-vision", extensions=True, version=version, **ENHANCE)
    assert response.status_code == 404
    assert response.json() == {"error": {"code": "404", "message": "Resource not found"}}


def test_extensions_need_auth_and_a_version(http: httpx.Client) -> None:
    response = http.post("/openai/deployments/gpt-4-vision/extensions/chat/completions",
                         params={"api-version": "2023-12-01-preview"}, headers={"api-key": "wrong"},
                         json={"messages": [{"role": "user", "content": "hi"}]})  # fmt: skip
    assert response.status_code == 401
    response = http.post("/openai/deployments/gpt-4-vision/extensions/chat/completions",
                         json={"messages": [{"role": "user", "content": "hi"}]})  # fmt: skip
    assert response.status_code == 404


def test_enhancements_only_on_2023_12_01_preview(http: httpx.Client) -> None:
    err = error(chat(http, img(PNG), deployment="gpt-4-vision", extensions=True, version="2023-08-01-preview", **ENHANCE))
    assert err["message"] == "Unrecognized request argument supplied: enhancements"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"enhancements": ENHANCE["enhancements"]}, "dataSources"),
        ({**ENHANCE, "dataSources": [{"type": "AzureComputerVision", "parameters": {"endpoint": "https://cv.x/"}}]},
         "dataSources[0].parameters"),
    ],
)  # fmt: skip
def test_enhancements_need_a_computer_vision_source(http: httpx.Client, body: dict[str, Any], param: str) -> None:
    err = error(chat(http, img(PNG), deployment="gpt-4-vision", extensions=True, version="2023-12-01-preview", **body))
    assert err["param"] == param


def test_enhancements_on_one_image_only(http: httpx.Client) -> None:
    err = error(chat(http, img(PNG), img(PNG), deployment="gpt-4-vision", extensions=True, version="2023-12-01-preview", **ENHANCE))
    assert err["param"] == "messages[0].content[2]"


def test_extensions_refuse_snake_case_data_sources(http: httpx.Client) -> None:
    err = error(chat(http, deployment="gpt-4-vision", extensions=True, version="2023-12-01-preview",
                     data_sources=ENHANCE["dataSources"]))  # fmt: skip
    assert err["message"] == "Unrecognized request argument supplied: data_sources"


def test_extension_reply_with_ocr_and_grounding(http: httpx.Client, emulator: Emulator) -> None:
    response = chat(http, img(PNG), deployment="gpt-4-vision", extensions=True, version="2023-12-01-preview", **ENHANCE)
    assert response.status_code == 200, response.text
    body = response.json()
    assert "cv-key-99" not in response.text
    assert body["object"] == "extensions.chat.completion"
    assert body["model"] == "gpt-4-vision-preview"
    [choice] = body["choices"]
    assert "finish_reason" not in choice
    assert choice["finish_details"] == {"type": "stop", "stop": "<|fim_suffix|>"}
    content = choice["message"]["content"]
    assert f'"{OCR_TEXT}"' in content
    [line] = choice["enhancements"]["grounding"]["lines"]
    [span] = line["spans"]
    assert content[span["offset"] : span["offset"] + span["length"]] == span["text"]
    assert {"x", "y"} == set(span["polygon"][0])
    assert emulator.requests[-1].path == "/openai/deployments/gpt-4-vision/extensions/chat/completions"


def test_extension_stream_chunks(http: httpx.Client) -> None:
    response = chat(http, img(PNG), deployment="gpt-4o", extensions=True, version="2023-12-01-preview", stream=True, **ENHANCE)
    events = [json.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: {")]
    assert {e["object"] for e in events[1:]} == {"extensions.chat.completion.chunk"}
    assert events[-1]["choices"][0]["finish_reason"] == "stop"
