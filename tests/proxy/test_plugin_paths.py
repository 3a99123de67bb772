"""The routes a provider plugin contributes exist only while it is loaded (``register_operations``).

Anthropic's native ``messages`` operation is modelyard-azure-anthropic's row; the
``AzureOpenAI`` clients' deployment paths are the Azure plugins' (each its own operations').
Blocking a plugin removes its routes: the proxy answers them as any unknown path (a 404 in
OpenAI's error JSON), ``/openapi.json`` no longer lists them, and the SDK's functions of a
blocked row fail naming the plugin.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import modelyard
import pytest
from modelyard.plugins import reset_plugins
from modelyard.testing import Emulator

from .conftest import MASTER_KEY, azure, running_proxy

HI = [{"role": "user", "content": "hi"}]
AUTH = {"Authorization": f"Bearer {MASTER_KEY}"}
CLAUDE = "azure/claude-sonnet-4-5"


@pytest.fixture(autouse=True)
def fresh_plugins() -> Iterator[None]:
    yield
    reset_plugins()


def _not_found(path: str) -> dict[str, Any]:
    return {"error": {"message": f"Unknown path {path}.", "type": "invalid_request_error", "param": None, "code": "not_found"}}


def test_blocking_the_claude_plugin_removes_the_messages_operation(azure_env: Emulator, api_base: str) -> None:
    config = {
        "model_list": [{"model_name": "gpt-4o", "litellm_params": azure(api_base, "gpt-4o")}],
        "modelyard_settings": {"block_plugins": ["modelyard-azure-anthropic"]},
        "router_settings": {"num_retries": 0},
    }
    body = {"model": "gpt-4o", "messages": HI, "max_tokens": 5}
    with running_proxy(config) as proxy, httpx.Client(base_url=proxy.url, headers=AUTH) as client:
        for path in ("/v1/messages", "/messages", "/anthropic/v1/messages"):
            r = client.post(path, json=body)
            assert (r.status_code, r.json()) == (404, _not_found(path))
        paths = client.get("/openapi.json").json()["paths"]
        assert not {"/v1/messages", "/messages", "/anthropic/v1/messages"} & set(paths)
        assert client.post("/v1/chat/completions", json={"model": "gpt-4o", "messages": HI}).status_code == 200
    reset_plugins(block=["modelyard-azure-anthropic"])
    why = "is an operation of the plugin modelyard-azure-anthropic, which is blocked"
    with pytest.raises(AttributeError, match=f"^anthropic_messages {why}"):
        modelyard.anthropic_messages  # noqa: B018
    with pytest.raises(AttributeError, match=f"^aanthropic_messages {why}"):
        getattr(modelyard, "aanthropic_messages")  # noqa: B009
    assert "anthropic_messages" not in dir(modelyard)
    router = modelyard.Router(model_list=[{"model_name": "gpt-4o", "litellm_params": azure(api_base, "gpt-4o")}])
    with pytest.raises(AttributeError, match=f"^anthropic_messages {why}"):
        router.anthropic_messages  # noqa: B018
    assert router.embedding  # the core's rows stay


def test_with_the_claude_plugin_its_paths_are_served(azure_env: Emulator, api_base: str) -> None:
    config = {"model_list": [{"model_name": "gpt-4o", "litellm_params": azure(api_base, "gpt-4o")}]}
    with running_proxy(config) as proxy, httpx.Client(base_url=proxy.url, headers=AUTH) as client:
        r = client.post("/anthropic/v1/messages", json={"model": "nope", "messages": HI, "max_tokens": 5})
        assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"  # routed: the model is unknown
        assert {"/v1/messages", "/anthropic/v1/messages"} <= set(client.get("/openapi.json").json()["paths"])
    assert "anthropic_messages" in dir(modelyard)


def test_blocking_the_azure_chat_plugin_removes_its_deployment_paths(azure_env: Emulator, api_base: str) -> None:
    # A config that needs no azure_chat family: Claude on Foundry (modelyard-azure-anthropic's).
    config = {
        "model_list": [{"model_name": "claude", "litellm_params": {"model": CLAUDE, "api_key": "k", "api_base": api_base}}],
        "modelyard_settings": {"block_plugins": ["modelyard-azure-chat"]},
    }
    with running_proxy(config) as proxy, httpx.Client(base_url=proxy.url, headers=AUTH) as client:
        for path in ("/openai/deployments/claude/chat/completions", "/openai/deployments/claude/completions"):
            r = client.post(path, params={"api-version": "2024-10-21"}, json={"messages": HI, "prompt": "x"})
            assert (r.status_code, r.json()) == (404, _not_found(path))
        # The embeddings plugin is loaded: its deployment path is routed (to the mode check).
        r = client.post("/openai/deployments/nope/embeddings", json={"input": "x"})
        assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
        paths = set(client.get("/openapi.json").json()["paths"])
    assert "/openai/deployments/{model}/chat/completions" not in paths
    assert "/openai/deployments/{model}/completions" not in paths
    assert "/openai/deployments/{model}/embeddings" in paths
