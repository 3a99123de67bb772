"""Vision through the proxy: image parts, ``enhancements`` and ``dataSources`` in the request body
and in ``config.yaml``; their keys redacted everywhere; bad images refused before the upstream;
the plugin blocked."""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from modelyard.proxy import load_config
from modelyard.proxy.serve import build
from modelyard.testing import KEY, Deployment, Emulator
from modelyard.testing.server import serve_in_thread
from modelyard.testing.vision import OCR_TEXT

from .conftest import MASTER_KEY, azure, logged_text, running_proxy

VISION_KEY = "cv-7a11e7a11e7a11e7a11e7a11e7a11e7a"
BODY_KEY = "cv-b0d7b0d7b0d7b0d7b0d7b0d7b0d7b0d7"
SEARCH_KEY = "search-5ea2c45ea2c45ea2c45ea2c4"
AUTH = {"Authorization": f"Bearer {MASTER_KEY}"}
IMAGE = {"type": "image_url", "image_url": {"url": "https://avatars.githubusercontent.com/u/29436595?v=4"}}
MESSAGES = [{"role": "user", "content": [{"type": "text", "text": "Whats in this image?"}, IMAGE]}]
ENHANCEMENTS = {"ocr": {"enabled": True}, "grounding": {"enabled": True}}
CV_ENDPOINT = "https://gpt-4-vision-enhancement.cognitiveservices.azure.com/"

# The Azure page's enhancements example as a proxy deployment: base_url ending in /extensions,
# enhancements and dataSources in litellm_params, the keys read from the environment.
CONFIG = """
model_list:
  - model_name: gpt-4-vision
    litellm_params:
      model: azure/gpt-4-vision
      base_url: {api_base}/openai/deployments/gpt-4-vision/extensions
      api_key: os.environ/AZURE_VISION_API_KEY
      enhancements: {{ocr: {{enabled: true}}, grounding: {{enabled: true}}}}
      dataSources:
        - type: AzureComputerVision
          parameters:
            endpoint: {cv_endpoint}
            key: os.environ/AZURE_VISION_ENHANCE_KEY
  - model_name: gpt-4o
    litellm_params:
      model: azure/gpt-4o
      api_base: {api_base}
      api_key: os.environ/AZURE_VISION_API_KEY
      api_version: "2024-10-21"
general_settings:
  master_key: os.environ/PROXY_MASTER_KEY
"""


@pytest.fixture
def vision(emulator: Emulator) -> Emulator:
    if "gpt-4-vision" not in emulator.deployments:
        emulator.add_deployment(Deployment("gpt-4-vision", model="gpt-4-vision-preview"))
    return emulator


@pytest.fixture
def body_proxy(api_base: str, vision: Emulator) -> Iterator[Any]:
    """Deployments that know nothing of vision: everything comes in the request body."""
    config = {
        "model_list": [
            {"model_name": "gpt-4-vision", "litellm_params": {"model": "azure/gpt-4-vision", "api_base": api_base, "api_key": KEY}},
            {"model_name": "gpt-4o", "litellm_params": azure(api_base, "gpt-4o")},
        ],
        "router_settings": {"num_retries": 0},
    }
    with running_proxy(config) as server:
        yield server


@pytest.fixture
def config_path(tmp_path: Path, api_base: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("AZURE_VISION_API_KEY", KEY)
    monkeypatch.setenv("AZURE_VISION_ENHANCE_KEY", VISION_KEY)
    monkeypatch.setenv("PROXY_MASTER_KEY", MASTER_KEY)
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG.format(api_base=api_base, cv_endpoint=CV_ENDPOINT))
    return path


@pytest.fixture
def config_proxy(config_path: Path, vision: Emulator) -> Iterator[Any]:
    """``modelyard serve --config config.yaml``, served in a thread."""
    with serve_in_thread(build(str(config_path)).app, lifespan="on") as server:
        yield server


def _chat(url: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{url}/v1/chat/completions", json=body, headers=AUTH, timeout=30)


# ------------------------------------------------------------------ the request body


def test_enhancements_in_the_request_body(body_proxy: Any, vision: Emulator) -> None:
    sources = [{"type": "AzureComputerVision", "parameters": {"endpoint": CV_ENDPOINT, "key": BODY_KEY}}]
    reply = _chat(body_proxy.url, {"model": "gpt-4-vision", "messages": MESSAGES,
                                   "enhancements": ENHANCEMENTS, "dataSources": sources})  # fmt: skip
    assert reply.status_code == 200, reply.text
    data = reply.json()
    assert data["object"] == "chat.completion"
    choice = data["choices"][0]
    assert OCR_TEXT in choice["message"]["content"]
    assert choice["enhancements"]["grounding"]["lines"][0]["spans"][0]["polygon"]
    assert choice["finish_reason"] == "stop"  # from gpt-4-vision-preview's finish_details
    [seen] = vision.requests
    assert seen.path == "/openai/deployments/gpt-4-vision/extensions/chat/completions"
    assert seen.query == {"api-version": "2023-12-01-preview"}
    assert seen.body == {"messages": MESSAGES, "enhancements": ENHANCEMENTS, "dataSources": sources}


def test_openai_client_extra_body(body_proxy: Any, vision: Emulator) -> None:
    from openai import OpenAI

    sources = [{"type": "AzureComputerVision", "parameters": {"endpoint": CV_ENDPOINT, "key": BODY_KEY}}]
    client = OpenAI(base_url=f"{body_proxy.url}/v1", api_key=MASTER_KEY)
    response = client.chat.completions.create(
        model="gpt-4-vision", messages=MESSAGES,  # type: ignore[arg-type]
        extra_body={"enhancements": {"ocr": {"enabled": True}}, "dataSources": sources},
    )
    assert OCR_TEXT in (response.choices[0].message.content or "")
    [seen] = vision.requests
    assert seen.path.endswith("/extensions/chat/completions")
    assert seen.body["dataSources"] == sources


def test_snake_case_data_sources_with_enhancements_become_dataSources(body_proxy: Any, vision: Emulator) -> None:
    sources = [{"type": "AzureComputerVision", "parameters": {"endpoint": CV_ENDPOINT, "key": BODY_KEY}}]
    reply = _chat(body_proxy.url, {"model": "gpt-4-vision", "messages": MESSAGES,
                                   "enhancements": {"ocr": {"enabled": True}}, "data_sources": sources})  # fmt: skip
    assert reply.status_code == 200, reply.text
    [seen] = vision.requests
    assert seen.path.endswith("/extensions/chat/completions")
    assert seen.body["dataSources"] == sources and "data_sources" not in seen.body


def test_on_your_data_data_sources_alone_stay_on_chat_completions(body_proxy: Any, vision: Emulator) -> None:
    sources = [{"type": "azure_search", "parameters": {"endpoint": "https://search.example", "index_name": "docs",
                                                        "authentication": {"type": "api_key", "key": SEARCH_KEY}}}]  # fmt: skip
    reply = _chat(body_proxy.url, {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}],
                                   "data_sources": sources})  # fmt: skip
    assert reply.status_code == 200, reply.text
    [seen] = vision.requests
    assert seen.path == "/openai/deployments/gpt-4o/chat/completions"
    assert seen.body["data_sources"] == sources


def test_image_parts_through_the_proxy(body_proxy: Any, vision: Emulator) -> None:
    png = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 32).decode()
    messages = [{"role": "user", "content": [
        {"type": "text", "text": "compare"}, {"type": "image_url", "image_url": {"url": png, "detail": "low"}},
        {"type": "image_url", "image_url": "https://example.com/cat.jpg"}]}]  # fmt: skip
    reply = _chat(body_proxy.url, {"model": "gpt-4o", "messages": messages})
    assert reply.status_code == 200, reply.text
    [seen] = vision.requests
    assert seen.path == "/openai/deployments/gpt-4o/chat/completions"
    parts = seen.body["messages"][0]["content"]
    assert parts[1] == {"type": "image_url", "image_url": {"url": png, "detail": "low"}}
    assert parts[2] == {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}  # shorthand expanded


def test_streaming_enhancements(body_proxy: Any, vision: Emulator) -> None:
    sources = [{"type": "AzureComputerVision", "parameters": {"endpoint": CV_ENDPOINT, "key": BODY_KEY}}]
    body = {"model": "gpt-4-vision", "messages": MESSAGES, "stream": True,
            "enhancements": {"ocr": {"enabled": True}}, "dataSources": sources}  # fmt: skip
    with httpx.stream("POST", f"{body_proxy.url}/v1/chat/completions", json=body, headers=AUTH, timeout=30) as r:
        assert r.status_code == 200
        text = r.read().decode()
    assert text.rstrip().endswith("data: [DONE]")
    assert '"object":"chat.completion.chunk"' in text
    assert vision.requests[0].path.endswith("/extensions/chat/completions")


# ------------------------------------------------------------------ bad image parts


BAD_PARTS = [
    ({"type": "image_url", "image_url": {"url": "data:image/bmp;base64,Qk0="}}, "messages[0].content[1].image_url.url"),
    ({"type": "image_url", "image_url": {}}, "messages[0].content[1].image_url.url"),
    ({"type": "image_url", "image_url": {"url": "data:image/png;base64,%%%notbase64"}}, "messages[0].content[1].image_url.url"),
    ({"type": "image_url", "image_url": {"url": "ftp://example.com/a.png"}}, "messages[0].content[1].image_url.url"),
    ({"type": "image_url", "image_url": {"url": "https://example.com/a.png", "detail": "huge"}}, "messages[0].content[1].image_url.detail"),
]


@pytest.mark.parametrize(("part", "param"), BAD_PARTS)
def test_malformed_image_part_is_a_400_naming_it_and_nothing_reaches_azure(
    body_proxy: Any, vision: Emulator, part: dict[str, Any], param: str
) -> None:
    messages = [{"role": "user", "content": [{"type": "text", "text": "what is it?"}, part]}]
    reply = _chat(body_proxy.url, {"model": "gpt-4o", "messages": messages})
    assert reply.status_code == 400
    error = reply.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert param in error["message"]
    assert vision.requests == []


def test_bad_enhancements_are_refused_naming_the_field_without_the_key(body_proxy: Any, vision: Emulator) -> None:
    sources = [{"type": "AzureComputerVision", "parameters": {"key": BODY_KEY}}]  # no endpoint
    reply = _chat(body_proxy.url, {"model": "gpt-4-vision", "messages": MESSAGES,
                                   "enhancements": ENHANCEMENTS, "dataSources": sources})  # fmt: skip
    assert reply.status_code == 400
    error = reply.json()["error"]
    assert "dataSources[0].parameters.endpoint" in (error["param"] or "") + error["message"]
    assert BODY_KEY not in reply.text
    assert vision.requests == []


# ------------------------------------------------------------------ config.yaml


def test_config_extensions_deployment_sends_the_pages_call(config_proxy: Any, vision: Emulator) -> None:
    # The client sends a plain vision chat; the deployment adds the enhancements.
    reply = _chat(config_proxy.url, {"model": "gpt-4-vision", "messages": MESSAGES})
    assert reply.status_code == 200, reply.text
    choice = reply.json()["choices"][0]
    assert OCR_TEXT in choice["message"]["content"]
    assert "grounding" in choice["enhancements"]
    [seen] = vision.requests
    assert seen.path == "/openai/deployments/gpt-4-vision/extensions/chat/completions"
    assert seen.query == {"api-version": "2023-12-01-preview"}
    assert seen.headers["api-key"] == KEY
    assert seen.body == {
        "messages": MESSAGES,
        "enhancements": ENHANCEMENTS,
        "dataSources": [{"type": "AzureComputerVision", "parameters": {"endpoint": CV_ENDPOINT, "key": VISION_KEY}}],
    }


def test_client_enhancements_override_the_configs(config_proxy: Any, vision: Emulator) -> None:
    reply = _chat(config_proxy.url, {"model": "gpt-4-vision", "messages": MESSAGES, "enhancements": {"ocr": {"enabled": True}}})
    assert reply.status_code == 200, reply.text
    [seen] = vision.requests
    assert seen.body["enhancements"] == {"ocr": {"enabled": True}}
    assert seen.body["dataSources"][0]["parameters"]["key"] == VISION_KEY  # still the config's
    assert "enhancements" not in reply.json()["choices"][0]  # no grounding asked for


def test_os_environ_inside_dataSources_is_resolved_and_a_missing_one_named(config_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from modelyard.errors import ConfigError

    config = load_config(config_path)
    params = config.model_list[0].litellm_params
    assert params.model_extra is not None
    assert params.model_extra["dataSources"][0]["parameters"]["key"] == VISION_KEY
    monkeypatch.delenv("AZURE_VISION_ENHANCE_KEY")
    with pytest.raises(ConfigError) as caught:
        load_config(config_path)
    assert caught.value.key == "model_list[0].litellm_params.dataSources[0].parameters.key"
    assert "AZURE_VISION_ENHANCE_KEY" in str(caught.value)


def test_config_reprs_mask_the_keys(config_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    config = load_config(config_path)
    shown = repr(config) + str(config) + repr(config.model_list[0]) + str(config.model_list[0].litellm_params)
    assert VISION_KEY not in shown and KEY not in shown
    assert CV_ENDPOINT in shown  # the rest stays readable
    assert "unknown key" not in caplog.text  # enhancements / dataSources are known keys
    built = build(str(config_path))
    deployment = built.app.deployments.get("gpt-4-vision")[0]
    assert VISION_KEY not in repr(deployment) + repr(built.app.config)


def test_keys_redacted_in_logs_health_and_errors(config_proxy: Any, body_proxy: Any, vision: Emulator,
                                                 everything_logged: pytest.LogCaptureFixture) -> None:  # fmt: skip
    bodies: list[str] = []
    sources = [{"type": "AzureComputerVision", "parameters": {"endpoint": CV_ENDPOINT, "key": BODY_KEY}}]
    for url, extra in ((config_proxy.url, {}), (body_proxy.url, {"enhancements": ENHANCEMENTS, "dataSources": sources})):
        ok = _chat(url, {"model": "gpt-4-vision", "messages": MESSAGES, **extra})
        assert ok.status_code == 200
        bodies.append(ok.text)
        vision.deployments["gpt-4-vision"].faults.script = [500, 500, 500]  # upstream errors
        failed = _chat(url, {"model": "gpt-4-vision", "messages": MESSAGES, **extra})
        assert failed.status_code == 500
        bodies.append(failed.text)
        vision.deployments["gpt-4-vision"].faults.script = []
        bad = _chat(url, {"model": "gpt-4-vision", "messages": MESSAGES, "temperature": "hot", **extra})
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "temperature"
        bodies.append(bad.text)
        both = _chat(url, {"model": "gpt-4-vision", "messages": MESSAGES, "data_sources": sources,
                           "dataSources": sources, "enhancements": ENHANCEMENTS})  # fmt: skip
        assert both.status_code == 400
        bodies.append(both.text)
        health = httpx.get(f"{url}/health", headers=AUTH, timeout=30)
        assert health.status_code == 200
        bodies.append(health.text)
    vision.deployments["gpt-4-vision"].faults.script = [500]
    unhealthy = httpx.get(f"{config_proxy.url}/health", headers=AUTH, timeout=30)
    assert unhealthy.json()["unhealthy_count"] == 1
    bodies.append(unhealthy.text)

    logged = logged_text(everything_logged)
    assert '"path":"/v1/chat/completions"' in logged  # the access log was captured
    for secret in (VISION_KEY, BODY_KEY, KEY, MASTER_KEY):
        assert secret not in logged
        for body in bodies:
            assert secret not in body


# ------------------------------------------------------------------ the plugin blocked


@pytest.mark.parametrize("how", ["config", "environment"])
def test_blocked_plugin_enhancements_fail_naming_it_plain_chat_works(
    how: str, api_base: str, vision: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    config: dict[str, Any] = {"model_list": [
        {"model_name": "gpt-4-vision", "litellm_params": {"model": "azure/gpt-4-vision", "api_base": api_base, "api_key": KEY}},
        {"model_name": "gpt-4o", "litellm_params": azure(api_base, "gpt-4o")}]}  # fmt: skip
    if how == "config":
        config["modelyard_settings"] = {"block_plugins": ["modelyard-azure-vision"]}
    else:
        monkeypatch.setenv("MODELYARD_BLOCK_PLUGINS", "modelyard-azure-vision")
    sources = [{"type": "AzureComputerVision", "parameters": {"endpoint": CV_ENDPOINT, "key": BODY_KEY}}]
    with running_proxy(config) as proxy:
        refused = _chat(proxy.url, {"model": "gpt-4-vision", "messages": MESSAGES,
                                    "enhancements": ENHANCEMENTS, "dataSources": sources})  # fmt: skip
        assert vision.requests == []
        plain = _chat(proxy.url, {"model": "gpt-4o", "messages": [{"role": "user", "content": "hello"}]})
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert error["code"] == "plugin_not_loaded"
    assert error["param"] == "enhancements"
    assert "'modelyard-azure-vision'" in error["message"] and "blocked" in error["message"]
    assert BODY_KEY not in refused.text
    assert plain.status_code == 200
    assert plain.json()["choices"][0]["message"]["content"].endswith("You said: hello")
    [seen] = vision.requests
    assert seen.path == "/openai/deployments/gpt-4o/chat/completions"
