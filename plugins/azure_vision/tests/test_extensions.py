"""Vision enhancements and dataSources: the /extensions call, its api-version, its checks, its response."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from modelyard import BadRequestError, acompletion, completion
from modelyard.testing import KEY, Deployment, Emulator
from modelyard.testing.vision import OCR_TEXT

VISION_KEY = "cv-0123456789abcdef0123456789abcdef"
ENHANCEMENTS = {"ocr": {"enabled": True}, "grounding": {"enabled": True}}
SOURCES = [
    {
        "type": "AzureComputerVision",
        "parameters": {"endpoint": "https://cv.cognitiveservices.azure.com/", "key": VISION_KEY},
    }
]
PNG = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(32)).decode()
EXT_PATH = "/openai/deployments/gpt-4-vision/extensions/chat/completions"


@pytest.fixture
def vision(emulator: Emulator) -> Emulator:
    if "gpt-4-vision" not in emulator.deployments:
        emulator.add_deployment(Deployment("gpt-4-vision", model="gpt-4-vision-preview"))
    return emulator


def messages(*urls: str) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = [{"type": "text", "text": "Describe this picture:"}]
    parts += [{"type": "image_url", "image_url": {"url": u}} for u in urls]
    return [{"role": "user", "content": parts}]


def call(api_base: str, **kw: Any) -> Any:
    kw.setdefault("messages", messages("https://example.com/cat.png"))
    return completion(model="azure/gpt-4-vision", api_base=api_base, api_key=KEY, **kw)


def test_enhancements_with_api_base_go_to_the_extensions_path(api_base: str, vision: Emulator) -> None:
    response = call(api_base, enhancements=ENHANCEMENTS, dataSources=SOURCES, max_tokens=100)

    [seen] = vision.requests
    assert seen.path == EXT_PATH
    assert seen.query == {"api-version": "2023-12-01-preview"}
    assert seen.headers["api-key"] == KEY
    assert seen.body == {
        "messages": messages("https://example.com/cat.png"),
        "enhancements": ENHANCEMENTS,
        "dataSources": SOURCES,
        "max_tokens": 100,
    }
    # OpenAI-shaped, with what the enhancements returned kept.
    assert response.object == "chat.completion"
    choice = response.choices[0]
    assert OCR_TEXT in choice.message.content
    grounding = choice.enhancements["grounding"]
    assert grounding["status"] == "Success"
    [span] = grounding["lines"][0]["spans"]
    assert choice.message.content[span["offset"] : span["offset"] + span["length"]] == span["text"]
    assert len(span["polygon"]) == 4
    # gpt-4-vision-preview answers finish_details; finish_reason is filled from it.
    assert choice.finish_reason == "stop"
    assert choice.finish_details == {"type": "stop", "stop": "<|fim_suffix|>"}
    assert response["choices"][0]["enhancements"] == choice.enhancements


@pytest.mark.parametrize(
    "base_url",
    [
        "{api_base}/openai/deployments/gpt-4-vision/extensions",
        "{api_base}/openai/deployments/gpt-4-vision/extensions/",
        "{api_base}/openai/deployments/gpt-4-vision",
    ],
)
def test_base_url_with_or_without_extensions(api_base: str, vision: Emulator, base_url: str) -> None:
    call(api_base, base_url=base_url.format(api_base=api_base), enhancements=ENHANCEMENTS, dataSources=SOURCES)
    [seen] = vision.requests
    assert seen.path == EXT_PATH
    assert seen.query == {"api-version": "2023-12-01-preview"}


def test_base_url_ending_in_extensions_alone_makes_an_extension_call(api_base: str, vision: Emulator) -> None:
    response = completion(
        model="azure/gpt-4-vision",
        base_url=f"{api_base}/openai/deployments/gpt-4-vision/extensions",
        api_key=KEY,
        messages=messages(PNG),
    )
    [seen] = vision.requests
    assert seen.path == EXT_PATH
    assert seen.query == {"api-version": "2023-12-01-preview"}
    assert seen.body == {"messages": messages(PNG)}
    assert response.object == "chat.completion"
    assert not hasattr(response.choices[0], "enhancements")


def test_data_sources_with_enhancements_is_sent_as_dataSources(api_base: str, vision: Emulator) -> None:
    call(api_base, enhancements=ENHANCEMENTS, data_sources=SOURCES)
    [seen] = vision.requests
    assert seen.path == EXT_PATH
    assert seen.body["dataSources"] == SOURCES
    assert "data_sources" not in seen.body


def test_data_sources_alone_stays_on_chat_completions(api_base: str, emulator: Emulator) -> None:
    """``data_sources`` (On Your Data, GA since 2024-02-01) belongs to the ordinary chat path."""
    search = [{"type": "azure_search", "parameters": {"endpoint": "https://s.search.windows.net", "index_name": "i",
                                                     "authentication": {"type": "api_key", "key": "search-key"}}}]  # fmt: skip
    completion(model="azure/gpt-4o", api_base=api_base, api_key=KEY, api_version="2024-10-21",
               messages=[{"role": "user", "content": "hi"}], data_sources=search)  # fmt: skip
    [seen] = emulator.requests
    assert seen.path == "/openai/deployments/gpt-4o/chat/completions"
    assert seen.query == {"api-version": "2024-10-21"}
    assert seen.body["data_sources"] == search


def test_legacy_search_data_source_returns_context(api_base: str, vision: Emulator) -> None:
    search = [{"type": "AzureCognitiveSearch", "parameters": {"endpoint": "https://s.search.windows.net",
                                                             "key": "search-key", "indexName": "docs"}}]  # fmt: skip
    response = call(api_base, dataSources=search, api_version="2023-08-01-preview",
                    messages=[{"role": "user", "content": "What do the docs say?"}])  # fmt: skip
    [seen] = vision.requests
    assert seen.path == EXT_PATH
    assert seen.query == {"api-version": "2023-08-01-preview"}
    message = response.choices[0].message
    assert message.end_turn is True
    assert message.context["messages"][0]["role"] == "tool"
    assert "citations" in message.context["messages"][0]["content"]


def test_explicit_supported_api_version_is_kept(api_base: str, vision: Emulator) -> None:
    call(api_base, api_version="2023-12-01-preview", enhancements=ENHANCEMENTS, dataSources=SOURCES)
    assert vision.requests[0].query == {"api-version": "2023-12-01-preview"}


def test_environment_api_version_for_ordinary_chat_does_not_break_enhancements(
    api_base: str, vision: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AZURE_API_VERSION", "2024-10-21")
    call(api_base, enhancements=ENHANCEMENTS, dataSources=SOURCES)
    assert vision.requests[0].query == {"api-version": "2023-12-01-preview"}


def test_environment_api_version_that_serves_extensions_is_used(
    api_base: str, vision: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AZURE_API_VERSION", "2023-07-01-preview")
    call(api_base, dataSources=[{"type": "AzureCognitiveSearch", "parameters": {"endpoint": "https://s", "key": "k"}}])
    assert vision.requests[0].query == {"api-version": "2023-07-01-preview"}


async def test_async_and_streaming_extension_calls(api_base: str, vision: Emulator) -> None:
    stream = await acompletion(
        model="azure/gpt-4-vision", api_base=api_base, api_key=KEY, messages=messages(PNG),
        enhancements={"ocr": {"enabled": True}}, dataSources=SOURCES, stream=True,
    )  # fmt: skip
    chunks = [chunk async for chunk in stream]
    assert {c.object for c in chunks} == {"chat.completion.chunk"}
    assert OCR_TEXT in "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    [seen] = vision.requests
    assert seen.path == EXT_PATH
    assert seen.body["stream"] is True


# --------------------------------------------------------------------------- refused before sending


@pytest.mark.parametrize(
    ("kw", "param", "fragment"),
    [
        ({"enhancements": ENHANCEMENTS}, "dataSources", "AzureComputerVision"),
        ({"enhancements": ENHANCEMENTS, "dataSources": [{"type": "AzureCognitiveSearch"}]}, "dataSources", "AzureComputerVision"),
        ({"enhancements": ENHANCEMENTS, "data_sources": []}, "data_sources", "AzureComputerVision"),
        ({"enhancements": ["ocr"], "dataSources": SOURCES}, "enhancements", "must be an object"),
        ({"enhancements": {"ocr": True}, "dataSources": SOURCES}, "enhancements.ocr", '{"enabled": true|false}'),
        ({"enhancements": ENHANCEMENTS, "dataSources": {"type": "AzureComputerVision"}}, "dataSources", "must be a list"),
        ({"dataSources": [{"parameters": {}}]}, "dataSources[0].type", "is required"),
        ({"dataSources": ["AzureComputerVision"]}, "dataSources[0]", "must be an object"),
        ({"dataSources": [{"type": "AzureComputerVision", "parameters": {"key": VISION_KEY}}]},
         "dataSources[0].parameters.endpoint", "Azure AI Vision endpoint"),
        ({"dataSources": [{"type": "AzureComputerVision", "parameters": {"endpoint": "https://cv.x/", "key": 12345}}]},
         "dataSources[0].parameters.key", "must be a string, got int"),
        ({"dataSources": SOURCES, "data_sources": SOURCES}, "data_sources", "not both"),
        ({"enhancements": ENHANCEMENTS, "dataSources": SOURCES, "api_version": "2024-10-21"}, "api_version", "2023-12-01-preview"),
        ({"enhancements": ENHANCEMENTS, "dataSources": SOURCES, "api_version": "2023-08-01-preview"}, "api_version", "vision enhancements"),
        ({"dataSources": SOURCES, "api_version": "2024-02-01"}, "api_version", "extensions endpoint"),
        ({"enhancements": ENHANCEMENTS, "dataSources": SOURCES, "api_version": "v1"}, "api_version", "2023-12-01-preview"),
    ],
)  # fmt: skip
def test_bad_extension_parameters_are_refused_before_sending(
    api_base: str, vision: Emulator, kw: dict[str, Any], param: str, fragment: str
) -> None:
    with pytest.raises(BadRequestError) as caught:
        call(api_base, **kw)
    assert caught.value.param == param
    assert fragment in caught.value.message
    assert VISION_KEY not in caught.value.message
    assert VISION_KEY not in repr(caught.value)
    assert vision.requests == []


def test_v1_api_from_the_environment_is_refused(api_base: str, vision: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_API_VERSION", "v1")
    with pytest.raises(BadRequestError) as caught:
        call(api_base, enhancements=ENHANCEMENTS, dataSources=SOURCES)
    assert caught.value.param == "api_version"
    assert "v1 API" in caught.value.message
    assert vision.requests == []


def test_enhancements_on_two_images_are_refused(api_base: str, vision: Emulator) -> None:
    with pytest.raises(BadRequestError) as caught:
        call(api_base, messages=messages(PNG, "https://example.com/b.png"), enhancements=ENHANCEMENTS, dataSources=SOURCES)
    assert caught.value.param == "messages[0].content[2]"
    assert "one image per chat call" in caught.value.message
    assert vision.requests == []


def test_bad_image_in_an_extension_call_is_refused(api_base: str, vision: Emulator) -> None:
    with pytest.raises(BadRequestError) as caught:
        call(api_base, messages=messages("data:image/png;base64,@@@@"), enhancements=ENHANCEMENTS, dataSources=SOURCES)
    assert caught.value.param == "messages[0].content[1].image_url.url"
    assert vision.requests == []


def test_disabled_enhancements_need_no_vision_source(api_base: str, vision: Emulator) -> None:
    call(api_base, enhancements={"ocr": {"enabled": False}}, dataSources=[
        {"type": "AzureCognitiveSearch", "parameters": {"endpoint": "https://s", "key": "k"}}])  # fmt: skip
    [seen] = vision.requests
    assert seen.path == EXT_PATH
