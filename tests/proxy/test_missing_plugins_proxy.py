"""The proxy answers a call no loaded plugin serves with a 501 in OpenAI's error JSON, never a 500."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest
from modelyard.testing import Emulator

from .conftest import MASTER_KEY, azure, running_proxy

HI = [{"role": "user", "content": "hi"}]


def subset_config(api_base: str, block: list[str]) -> dict[str, Any]:
    return {
        "model_list": [{"model_name": "gpt-4o", "litellm_params": azure(api_base, "gpt-4o")}],
        "modelyard_settings": {"block_plugins": block},
        "router_settings": {"num_retries": 0},
    }


def test_files_without_the_batch_plugin_is_a_501_naming_it(azure_env: Emulator, api_base: str) -> None:
    with running_proxy(subset_config(api_base, ["modelyard-azure-batch"])) as proxy:
        response = httpx.post(
            f"{proxy.url}/v1/files", data={"purpose": "batch"}, files={"file": ("in.jsonl", b"{}\n")},
            headers={"Authorization": f"Bearer {MASTER_KEY}", "custom-llm-provider": "azure"},
        )  # fmt: skip
        chat = httpx.post(f"{proxy.url}/v1/chat/completions", json={"model": "gpt-4o", "messages": HI},
                          headers={"Authorization": f"Bearer {MASTER_KEY}"})  # fmt: skip
    assert response.status_code == 501
    assert response.headers["x-should-retry"] == "false"  # the openai SDKs would retry a 5xx
    assert response.json() == {"error": {
        "message": "create_file on provider 'azure' needs the plugin modelyard-azure-batch (it answers "
                   "transform_files_request), which is blocked (named in the block list). Remove it from "
                   "MODELYARD_BLOCK_PLUGINS / modelyard_settings.block_plugins.",
        "type": "api_error", "param": None, "code": "plugin_not_loaded",
    }}  # fmt: skip
    assert chat.status_code == 200
    assert [r.path for r in azure_env.requests] == ["/openai/deployments/gpt-4o/chat/completions"]


def test_chat_without_the_auth_plugin_is_a_501_naming_it(
    azure_env: Emulator, api_base: str, everything_logged: pytest.LogCaptureFixture
) -> None:
    with running_proxy(subset_config(api_base, ["modelyard-azure-auth"])) as proxy:
        # The SDK's default retries: x-should-retry: false keeps it from asking three times.
        client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key=MASTER_KEY, max_retries=2)
        with pytest.raises(openai.InternalServerError) as info:
            client.chat.completions.create(model="gpt-4o", messages=HI)  # type: ignore[arg-type]
        client.close()
    assert info.value.status_code == 501
    assert info.value.response.headers["x-should-retry"] == "false"
    access = [r for r in everything_logged.records if r.name == "modelyard.proxy.access"]
    assert len(access) == 1 and '"status":501' in access[0].getMessage()
    assert info.value.body == {
        "message": "chat on provider 'azure' needs the plugin modelyard-azure-auth (it answers resolve_auth), "
                   "which is blocked (named in the block list). Remove it from MODELYARD_BLOCK_PLUGINS / "
                   "modelyard_settings.block_plugins.",
        "type": "api_error", "param": None, "code": "plugin_not_loaded",
    }  # fmt: skip
    assert azure_env.requests == []


def test_batch_load_balancing_without_the_batch_plugin_names_it_at_start(api_base: str, tmp_path: Any) -> None:
    from modelyard.errors import ConfigError
    from modelyard.proxy import ProxyApp, parse_config

    config = {
        "model_list": [{"model_name": "batch", "litellm_params": azure(api_base, "batch-east"), "model_info": {"mode": "batch"}}],
        "litellm_settings": {"enable_loadbalancing_on_batch_endpoints": True},
        "modelyard_settings": {"block_plugins": ["modelyard-azure-batch"], "store_path": str(tmp_path / "store.db")},
    }
    with pytest.raises(ConfigError) as info:
        ProxyApp(parse_config(config), master_key=MASTER_KEY)
    assert str(info.value) == (
        "litellm_settings.enable_loadbalancing_on_batch_endpoints: batch load balancing on provider 'azure' needs "
        "the plugin modelyard-azure-batch (it answers files_router), which is blocked (named in the block list). "
        "Remove it from MODELYARD_BLOCK_PLUGINS / modelyard_settings.block_plugins."
    )


def test_a_config_blocking_absent_plugins_starts_and_serves(
    azure_env: Emulator, api_base: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Before: ConfigError "Plugin 'modelyard-azure-realtime' in the block list is not installed"."""
    with running_proxy(subset_config(api_base, ["modelyard-azure-realtime", "azure_o_serie"])) as proxy:
        chat = httpx.post(f"{proxy.url}/v1/chat/completions", json={"model": "gpt-4o", "messages": HI},
                          headers={"Authorization": f"Bearer {MASTER_KEY}"})  # fmt: skip
    assert chat.status_code == 200
    warnings = [r.getMessage().split(";")[0] for r in caplog.records if r.name == "modelyard.plugins"]
    assert warnings == [
        "Plugin 'modelyard-azure-realtime' in the block list (block_plugins) is not installed",
        "Plugin 'azure_o_serie' in the block list (block_plugins) is not installed (did you mean 'azure_o_series'?)",
    ]
