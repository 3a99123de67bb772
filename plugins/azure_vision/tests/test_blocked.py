"""With the plugin blocked: text chat and plain images still work; enhancements fail, naming it."""

from __future__ import annotations

from typing import Any

import pytest
from modelyard import BadRequestError, completion
from modelyard.plugins import get_plugins
from modelyard.testing import KEY, Emulator

SOURCES = [{"type": "AzureComputerVision", "parameters": {"endpoint": "https://cv.x/", "key": "cv-secret-key-1234"}}]
IMAGE = {"type": "image_url", "image_url": {"url": "https://example.com/cat.png", "detail": "low"}}


@pytest.fixture(params=["modelyard-azure-vision", "azure_vision", "Modelyard_Azure.Vision"])
def blocked(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, azure_env: Emulator) -> Emulator:
    monkeypatch.setenv("MODELYARD_BLOCK_PLUGINS", request.param)
    assert get_plugins().missing("modelyard-azure-vision") == "blocked: named in the block list"
    return azure_env


def test_text_chat_still_works(blocked: Emulator) -> None:
    response = completion(model="azure/gpt-4o", messages=[{"role": "user", "content": "hello"}])
    assert response.choices[0].message.content.endswith("You said: hello")
    [seen] = blocked.requests
    assert seen.path == "/openai/deployments/gpt-4o/chat/completions"


def test_plain_images_pass_through(blocked: Emulator) -> None:
    messages = [{"role": "user", "content": [{"type": "text", "text": "what is it?"}, IMAGE]}]
    completion(model="azure/gpt-4o", messages=messages)
    [seen] = blocked.requests
    assert seen.body == {"messages": messages}


def test_bad_images_are_then_refused_by_azure_not_before_sending(blocked: Emulator) -> None:
    bad = {"type": "image_url", "image_url": {"url": "data:image/bmp;base64,Qk0="}}
    with pytest.raises(BadRequestError) as caught:
        completion(model="azure/gpt-4o", messages=[{"role": "user", "content": [bad]}])
    assert caught.value.param == "messages[0].content[0].image_url.url"
    assert len(blocked.requests) == 1  # the emulator (as Azure) refused it


@pytest.mark.parametrize(
    ("kw", "param"),
    [
        ({"enhancements": {"ocr": {"enabled": True}}, "dataSources": SOURCES}, "enhancements"),
        ({"dataSources": SOURCES}, "dataSources"),
        ({"enhancements": {"grounding": {"enabled": True}}, "data_sources": SOURCES}, "enhancements"),
    ],
)
def test_enhancements_fail_naming_the_missing_plugin(blocked: Emulator, kw: dict[str, Any], param: str) -> None:
    with pytest.raises(BadRequestError) as caught:
        completion(model="azure/gpt-4o", messages=[{"role": "user", "content": [IMAGE]}], **kw)
    err = caught.value
    assert err.param == param
    assert err.code == "plugin_not_loaded"
    assert err.status_code == 400
    assert "'modelyard-azure-vision'" in err.message
    assert "blocked" in err.message
    assert "cv-secret-key-1234" not in err.message
    assert blocked.requests == []


def test_drop_params_does_not_silently_drop_enhancements(blocked: Emulator) -> None:
    with pytest.raises(BadRequestError, match="modelyard-azure-vision"):
        completion(model="azure/gpt-4o", messages=[{"role": "user", "content": "hi"}],
                   enhancements={"ocr": {"enabled": True}}, dataSources=SOURCES, drop_params=True)  # fmt: skip
    assert blocked.requests == []


def test_not_loaded_because_not_in_the_load_list(monkeypatch: pytest.MonkeyPatch, api_base: str, emulator: Emulator) -> None:
    monkeypatch.setenv("MODELYARD_LOAD_PLUGINS", "modelyard-azure-chat,modelyard-azure-auth")
    with pytest.raises(BadRequestError, match=r"not loaded \(not enabled: not in the load list\)"):
        completion(model="azure/gpt-4o", api_base=api_base, api_key=KEY,
                   messages=[{"role": "user", "content": "hi"}], dataSources=SOURCES)  # fmt: skip
    assert emulator.requests == []
