"""Keys inside dataSources reach Azure and nothing else: no repr, log line or error shows them."""

from __future__ import annotations

import logging

import pytest
from modelyard import APIError, completion
from modelyard.testing import KEY, Deployment, Emulator
from modelyard.types import ChatRequest, ProviderRequest

VISION_KEY = "cv-f00dfeedf00dfeedf00dfeedf00dfeed"
SEARCH_KEY = "search-0badc0de0badc0de0badc0de"
SOURCES = [{"type": "AzureComputerVision", "parameters": {"endpoint": "https://cv.x/", "key": VISION_KEY}}]


@pytest.fixture
def vision(emulator: Emulator) -> Emulator:
    if "gpt-4-vision" not in emulator.deployments:
        emulator.add_deployment(Deployment("gpt-4-vision", model="gpt-4-vision-preview"))
    return emulator


def test_chat_request_repr_masks_keys_at_any_depth() -> None:
    request = ChatRequest(
        messages=[{"role": "user", "content": "hi"}],
        params={
            "dataSources": SOURCES,
            "data_sources": [{"type": "azure_search", "parameters": {
                "authentication": {"type": "api_key", "key": SEARCH_KEY},
                "embedding_dependency": {"type": "endpoint", "authentication": {"type": "access_token", "access_token": "tok-123456"}},
                "connection_string": "AccountKey=abc123secret"}}],
            "max_tokens": 50,
        },
    )  # fmt: skip
    shown = repr(request) + str(request)
    for secret in (VISION_KEY, SEARCH_KEY, "tok-123456", "abc123secret"):
        assert secret not in shown
    assert "'max_tokens': 50" in shown  # a key named like a limit is not a secret
    assert "https://cv.x/" in shown
    assert request.params["dataSources"][0]["parameters"]["key"] == VISION_KEY  # only the repr masks


def test_key_reaches_azure_but_no_log_line(
    api_base: str, vision: Emulator, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELYARD_TRACE_PLUGINS", "1")
    caplog.set_level(logging.DEBUG)
    completion(model="azure/gpt-4-vision", api_base=api_base, api_key=KEY,
               messages=[{"role": "user", "content": "hi"}],
               enhancements={"ocr": {"enabled": True}}, dataSources=SOURCES)  # fmt: skip
    assert vision.requests[0].body["dataSources"][0]["parameters"]["key"] == VISION_KEY
    assert any("transform_request" in r.getMessage() for r in caplog.records)
    assert all(VISION_KEY not in r.getMessage() for r in caplog.records)


def test_upstream_error_on_an_extension_call_carries_no_key(api_base: str, vision: Emulator) -> None:
    vision.deployments["gpt-4-vision"].faults.script = [500, 500, 500]
    with pytest.raises(APIError) as caught:
        completion(model="azure/gpt-4-vision", api_base=api_base, api_key=KEY, num_retries=0,
                   messages=[{"role": "user", "content": "hi"}],
                   enhancements={"ocr": {"enabled": True}}, dataSources=SOURCES)  # fmt: skip
    err = caught.value
    assert err.status_code == 500
    assert VISION_KEY not in f"{err} {err!r} {err.body} {err.to_response_body()}"


def test_provider_request_repr_shows_no_body() -> None:
    request = ProviderRequest(url="https://r.openai.azure.com/x", json_body={"dataSources": SOURCES})
    assert VISION_KEY not in repr(request)
