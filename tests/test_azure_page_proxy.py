"""The Azure page's proxy examples, run as written: only the hosts change (the emulator, the proxy).

The page's configs have no ``master_key``; LiteLLM then serves without authentication.
modelyard refuses that unless local development is declared, so these run as
``modelyard serve --config config.yaml --dev`` would.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from modelyard.proxy import ProxyApp, load_config
from modelyard.testing import KEY, Emulator
from modelyard.testing.server import serve_in_thread

PAGE_HOST = "https://openai-gpt-4-test-v-1.openai.azure.com/"

QUICKSTART = f"""
model_list:
  - model_name: gpt-3.5-turbo
    litellm_params:
      model: azure/chatgpt-v-2
      api_base: {PAGE_HOST}
      api_version: "2023-05-15"
      api_key: os.environ/AZURE_API_KEY # The `os.environ/` prefix tells litellm to read this from the env.
"""

PER_MODEL_VERSION = """
model_list:
  - model_name: gpt-4
    litellm_params:
      model: azure/my-gpt4-deployment
      api_base: https://your-resource.openai.azure.com/
      api_version: "2024-08-01-preview" # Set version per model
      api_key: os.environ/AZURE_API_KEY
"""

BASE_MODEL = """
model_list:
  - model_name: azure-gpt-3.5
    litellm_params:
      model: azure/chatgpt-v-2
      api_base: os.environ/AZURE_API_BASE
      api_key: os.environ/AZURE_API_KEY
      api_version: "2023-07-01-preview"
    model_info:
      base_model: azure/gpt-4-1106-preview
"""

ENTRA = f"""
model_list:
  - model_name: gpt-3.5-turbo
    litellm_params:
      model: azure/chatgpt-v-2
      api_base: {PAGE_HOST}
      api_version: "2023-05-15"
      tenant_id: os.environ/AZURE_TENANT_ID
      client_id: os.environ/AZURE_CLIENT_ID
      client_secret: os.environ/AZURE_CLIENT_SECRET
      azure_scope: os.environ/AZURE_SCOPE  # defaults to "https://cognitiveservices.azure.com/.default"
"""

CURL_BODY = """ {
      "model": "%s",
      "messages": [
        {
          "role": "user",
          "content": "what llm are you"
        }
      ]
    }
"""


@contextmanager
def proxy_for(tmp_path: Path, yaml_text: str, api_base: str) -> Iterator[Any]:
    path = tmp_path / "config.yaml"
    path.write_text(
        yaml_text.replace(PAGE_HOST, api_base + "/").replace("https://your-resource.openai.azure.com/", api_base + "/")
    )
    with serve_in_thread(ProxyApp(load_config(path), insecure_ok=True), lifespan="on") as server:
        yield server


def curl_chat(proxy_url: str, model: str) -> dict[str, Any]:
    """The page's curl request, with the proxy's host."""
    url = f"{proxy_url}/chat/completions"
    body = CURL_BODY % model
    curl = shutil.which("curl")
    if curl:
        out = subprocess.run(
            [curl, "--silent", "--location", url, "--header", "Content-Type: application/json", "--data", body],
            check=True, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        return json.loads(out.stdout)  # type: ignore[no-any-return]
    return httpx.post(url, content=body, headers={"Content-Type": "application/json"}).json()  # type: ignore[no-any-return]


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, api_base: str, emulator: Emulator) -> Emulator:
    monkeypatch.setenv("AZURE_API_KEY", KEY)
    monkeypatch.setenv("AZURE_API_BASE", api_base)
    emulator.add_deployment("my-gpt4-deployment")
    return emulator


def test_quickstart_config_and_curl(tmp_path: Path, api_base: str, env: Emulator) -> None:
    with proxy_for(tmp_path, QUICKSTART, api_base) as proxy:
        reply = curl_chat(proxy.url, "gpt-3.5-turbo")
    assert reply["choices"][0]["message"]["content"].endswith("You said: what llm are you")
    sent = env.requests[-1]
    assert sent.path == "/openai/deployments/chatgpt-v-2/chat/completions"
    assert sent.query == {"api-version": "2023-05-15"}
    assert sent.headers["api-key"] == KEY


def test_api_version_per_model(tmp_path: Path, api_base: str, env: Emulator) -> None:
    with proxy_for(tmp_path, PER_MODEL_VERSION, api_base) as proxy:
        reply = curl_chat(proxy.url, "gpt-4")
    assert "my-gpt4-deployment" in reply["choices"][0]["message"]["content"]
    assert env.requests[-1].query == {"api-version": "2024-08-01-preview"}


def test_base_model_config(tmp_path: Path, api_base: str, env: Emulator) -> None:
    with proxy_for(tmp_path, BASE_MODEL, api_base) as proxy:
        reply = curl_chat(proxy.url, "azure-gpt-3.5")
    assert reply["object"] == "chat.completion"
    assert env.requests[-1].query == {"api-version": "2023-07-01-preview"}


def test_entra_config_loads_and_hides_the_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "entra-client-secret-value-123"
    for name, value in {"AZURE_TENANT_ID": "tenant", "AZURE_CLIENT_ID": "client", "AZURE_CLIENT_SECRET": secret,
                        "AZURE_SCOPE": "https://cognitiveservices.azure.com/.default"}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    path = tmp_path / "config.yaml"
    path.write_text(ENTRA)
    config = load_config(path)
    params = config.model_list[0].litellm_params
    assert params.tenant_id == "tenant" and params.client_secret is not None
    assert params.client_secret.get_secret_value() == secret
    assert secret not in repr(config)
