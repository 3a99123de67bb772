"""The Azure page's "Azure OpenAI Vision Models" snippets, run against the emulator.

Each test is the snippet with LiteLLM's import swapped for modelyard's; the only other changes
point it at the emulator (its URL instead of the resource's host, the emulator's key in the
environment variables the snippet reads). Then come assertions on exactly what the upstream
received.
"""

# ruff: noqa: RUF001  (the page's prompt has a typographic apostrophe; kept verbatim)
from __future__ import annotations

import os

import pytest
from modelyard.testing import KEY, Deployment, Emulator
from modelyard.testing.vision import OCR_TEXT

VISION_ENHANCE_KEY = "cv-5e11e5e11e5e11e5e11e5e11e5e11e5"


@pytest.fixture
def vision_deployment(emulator: Emulator) -> Emulator:
    if "gpt-4-vision" not in emulator.deployments:
        emulator.add_deployment(Deployment("gpt-4-vision", model="gpt-4-vision-preview"))
    return emulator


def test_vision_usage(api_base: str, emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_API_BASE", api_base)  # the page relies on it being set already
    monkeypatch.setenv("AZURE_API_KEY", "")  # so that the snippet's own setting is undone after the test
    import os

    from modelyard import completion

    os.environ["AZURE_API_KEY"] = KEY

    # azure call
    response = completion(
        model="azure/gpt-4o",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What’s in this image?"},
                    {
                        "type": "image_url",
                        "image_url": {
                            "url": "https://awsmp-logos.s3.amazonaws.com/seller-xw5kijmvmzasy/c233c9ade2ccb5491072ae232c814942.png"
                        },
                    },
                ],
            }
        ],
    )

    assert response.choices[0].message.content.endswith("You said: What’s in this image? ")
    [seen] = emulator.requests
    assert seen.method == "POST"
    assert seen.path == "/openai/deployments/gpt-4o/chat/completions"
    assert seen.query == {"api-version": "2025-04-01-preview"}
    assert seen.headers["api-key"] == KEY
    assert seen.body == {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What’s in this image?"},
                    {
                        "type": "image_url",
                        "image_url": {
                            "url": "https://awsmp-logos.s3.amazonaws.com/seller-xw5kijmvmzasy/c233c9ade2ccb5491072ae232c814942.png"
                        },
                    },
                ],
            }
        ]
    }


def _enhancements_snippet(api_base: str) -> object:
    import os

    from modelyard import completion

    os.environ["AZURE_API_KEY"] = "your-api-key"

    # azure call
    response = completion(
        model="azure/gpt-4-vision",
        timeout=5,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Whats in this image?"},
                    {
                        "type": "image_url",
                        "image_url": {"url": "https://avatars.githubusercontent.com/u/29436595?v=4"},
                    },
                ],
            }
        ],
        base_url=f"{api_base}/openai/deployments/gpt-4-vision/extensions",
        api_key=os.getenv("AZURE_VISION_API_KEY"),
        enhancements={"ocr": {"enabled": True}, "grounding": {"enabled": True}},
        dataSources=[
            {
                "type": "AzureComputerVision",
                "parameters": {
                    "endpoint": "https://gpt-4-vision-enhancement.cognitiveservices.azure.com/",
                    "key": os.environ["AZURE_VISION_ENHANCE_KEY"],
                },
            }
        ],
    )
    return response


EXPECTED_BODY = {
    "messages": [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Whats in this image?"},
                {"type": "image_url", "image_url": {"url": "https://avatars.githubusercontent.com/u/29436595?v=4"}},
            ],
        }
    ],
    "enhancements": {"ocr": {"enabled": True}, "grounding": {"enabled": True}},
    "dataSources": [
        {
            "type": "AzureComputerVision",
            "parameters": {
                "endpoint": "https://gpt-4-vision-enhancement.cognitiveservices.azure.com/",
                "key": VISION_ENHANCE_KEY,
            },
        }
    ],
}


def test_vision_enhancements(api_base: str, vision_deployment: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_API_KEY", "")  # so that the snippet's own setting is undone after the test
    monkeypatch.setenv("AZURE_VISION_API_KEY", KEY)
    monkeypatch.setenv("AZURE_VISION_ENHANCE_KEY", VISION_ENHANCE_KEY)

    response = _enhancements_snippet(api_base)

    [seen] = vision_deployment.requests
    assert seen.method == "POST"
    assert seen.path == "/openai/deployments/gpt-4-vision/extensions/chat/completions"
    assert seen.query == {"api-version": "2023-12-01-preview"}
    assert seen.headers["api-key"] == KEY  # the call's api_key wins over AZURE_API_KEY
    assert seen.body == EXPECTED_BODY
    # What the enhancements returned is kept on an OpenAI-shaped response.
    assert response.object == "chat.completion"  # type: ignore[attr-defined]
    choice = response.choices[0]  # type: ignore[attr-defined]
    assert OCR_TEXT in choice.message.content
    assert choice.enhancements["grounding"]["lines"][0]["spans"][0]["text"] == "the main object"
    assert choice.finish_reason == "stop"
    assert os.environ["AZURE_API_KEY"] == "your-api-key"


def test_vision_enhancements_with_api_base(api_base: str, vision_deployment: Emulator) -> None:
    """The same call, with ``api_base`` and the parameters instead of a ``/extensions`` base_url."""
    from modelyard import completion

    completion(
        model="azure/gpt-4-vision",
        api_base=api_base,
        api_key=KEY,
        messages=EXPECTED_BODY["messages"],
        enhancements=EXPECTED_BODY["enhancements"],
        dataSources=EXPECTED_BODY["dataSources"],
    )

    [seen] = vision_deployment.requests
    assert seen.path == "/openai/deployments/gpt-4-vision/extensions/chat/completions"
    assert seen.query == {"api-version": "2023-12-01-preview"}
    assert seen.body == EXPECTED_BODY


def test_vision_enhancements_with_the_plugin_blocked(
    api_base: str, vision_deployment: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modelyard import BadRequestError

    monkeypatch.setenv("MODELYARD_BLOCK_PLUGINS", "modelyard-azure-vision")
    monkeypatch.setenv("AZURE_API_KEY", "")
    monkeypatch.setenv("AZURE_VISION_API_KEY", KEY)
    monkeypatch.setenv("AZURE_VISION_ENHANCE_KEY", VISION_ENHANCE_KEY)
    with pytest.raises(BadRequestError, match="needs the plugin 'modelyard-azure-vision'"):
        _enhancements_snippet(api_base)
    assert vision_deployment.requests == []
