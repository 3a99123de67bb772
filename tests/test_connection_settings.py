"""Providers declare their connection settings; the core uses the union (issue 13, part 1).

Each test drives the real pipeline or proxy: the settings a plugin declares (an inline provider
here, and modelyard-azure-auth / modelyard-openai) are call keywords, ``litellm_params`` keys,
module settings, masked secrets and fields a proxy client may not send; blocking the plugin
removes them, and a config still using one fails at start-up naming the field and the plugin.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx
import modelyard
import pytest
from modelyard import errors, hookimpl
from modelyard.connection import ConnectionSetting
from modelyard.plugins import get_plugins, reset_plugins
from modelyard.proxy import ProxyApp, parse_config
from modelyard.testing import KEY, MASTER_KEY, Emulator, litellm_params, running_proxy
from modelyard.types import Connection

HI = [{"role": "user", "content": "hi"}]


class VaultProvider:
    """An inline plugin that only declares settings: a secret, a flag, a text with an env fallback."""

    HOOK_API = (1, 7)

    @staticmethod
    @hookimpl
    def register_connection_settings(register: Any) -> None:
        register(ConnectionSetting(name="vault_token", provider="vault", kind="secret", credential=True))
        register(ConnectionSetting(name="vault_region", provider="vault", env=("VAULT_REGION",)))
        register(ConnectionSetting(name="vault_fast", provider="vault", kind="flag", default=False))


@pytest.fixture
def vault() -> Any:
    reset_plugins(extra=[VaultProvider])
    yield get_plugins().connection_settings
    reset_plugins()


def test_declared_settings_are_checked_masked_and_resolved(vault: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    conn = Connection(vault_token="s3cret\n", vault_region="eu", api_key="k")
    assert conn.get("vault_token").get_secret_value() == "s3cret"  # one line, a SecretStr
    assert "s3cret" not in repr(conn) and "eu" in repr(conn)
    with pytest.raises(ValueError, match="vault_fast must be true or false"):
        Connection(vault_fast="yes")
    with pytest.raises(ValueError, match="nope is not a connection setting of any loaded provider plugin"):
        Connection(nope=1)
    monkeypatch.setenv("VAULT_REGION", "us")
    assert vault.resolve("vault", "vault_region") == "us"
    assert vault.resolve("vault", "vault_region", "eu") == "eu"
    assert {"vault_token", "vault_region", "vault_fast"} <= set(modelyard.__all__)
    assert modelyard.vault_fast is False  # the declared default until set


def test_azure_settings_come_from_the_azure_plugin_and_go_when_it_is_blocked() -> None:
    schema = get_plugins().connection_settings
    assert schema.plugins_of("azure_ad_token") == ["azure_auth"]
    assert {"azure_ad_token", "client_secret", "azure_password"} <= schema.secrets
    assert schema.kind("enable_azure_ad_token_refresh") == "flag"
    reset_plugins(block=["modelyard-azure-auth"])
    try:
        assert "azure_ad_token" not in get_plugins().connection_settings.names
        assert "azure_ad_token" not in modelyard.__all__
    finally:
        reset_plugins()


def test_a_config_using_a_blocked_plugins_setting_fails_at_start_naming_both(api_base: str) -> None:
    config = parse_config({
        "model_list": [{"model_name": "m", "litellm_params": {**litellm_params(api_base, "gpt-4o"), "azure_ad_token": "t"}}],
        "modelyard_settings": {"block_plugins": ["modelyard-azure-auth"]},
    })  # fmt: skip
    try:
        with pytest.raises(errors.ConfigError) as info:
            ProxyApp(config, master_key=MASTER_KEY)
    finally:
        reset_plugins()
    message = str(info.value)
    assert "litellm_params.azure_ad_token is not a connection setting of any loaded provider plugin" in message
    assert "azure_auth of modelyard-azure-auth is blocked" in message
    assert info.value.key == "model_list (model_name 'm').litellm_params.azure_ad_token"


def test_declared_settings_in_litellm_params_reach_the_call_and_clients_may_not_send_them(
    azure_env: Emulator, api_base: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    params = {"model": "azure/gpt-4o", "api_base": api_base, "azure_ad_token": "ad-token-for-test"}
    monkeypatch.setattr(azure_env, "ad_tokens", {*azure_env.ad_tokens, "ad-token-for-test"})
    with caplog.at_level(logging.DEBUG), running_proxy({"model_list": [{"model_name": "m", "litellm_params": params}]}) as proxy:
        ok = httpx.post(f"{proxy.url}/v1/chat/completions", json={"model": "m", "messages": HI},
                        headers={"Authorization": f"Bearer {MASTER_KEY}"})  # fmt: skip
        refused = {
            name: httpx.post(f"{proxy.url}/v1/chat/completions", json={"model": "m", "messages": HI, name: "x"},
                             headers={"Authorization": f"Bearer {MASTER_KEY}"})
            for name in ("azure_ad_token", "tenant_id", "organization", "api_key")
        }
    assert ok.status_code == 200
    assert azure_env.requests[-1].headers["authorization"] == "Bearer ad-token-for-test"
    for name, response in refused.items():
        assert response.status_code == 400, name
        assert response.json()["error"]["param"] == name
    assert "ad-token-for-test" not in caplog.text
    assert KEY not in caplog.text


def test_module_settings_of_a_provider_fill_the_call(azure_env: Emulator, api_base: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.delenv("AZURE_API_KEY")
    monkeypatch.setattr(azure_env, "ad_tokens", {*azure_env.ad_tokens, "module-token"})
    monkeypatch.setattr(modelyard, "azure_ad_token", "module-token", raising=False)
    r = modelyard.completion(model="azure/gpt-4o", messages=HI, api_base=api_base)
    assert r.choices[0].message.content
    assert azure_env.requests[-1].headers["authorization"] == "Bearer module-token"


def test_blocking_openai_leaves_azure_chat_working(azure_env: Emulator, api_base: str) -> None:
    reset_plugins(block=["modelyard-openai"])
    try:
        r = modelyard.completion(model="azure/gpt-4o", messages=HI)
        assert r.choices[0].message.content
        with pytest.raises(errors.BadRequestError, match="openai of modelyard-openai is blocked"):
            modelyard.completion(model="gpt-3.5-turbo", messages=HI)
    finally:
        reset_plugins()
    assert [r.path for r in azure_env.requests] == ["/openai/deployments/gpt-4o/chat/completions"]


def test_modelyard_plugins_lists_the_declared_settings(capsys: pytest.CaptureFixture[str]) -> None:
    from modelyard.cli import main

    assert main(["plugins", "-v"]) == 0
    out = capsys.readouterr().out
    assert "azure_auth, azure: azure_ad_token secret [AZURE_AD_TOKEN]" in out
    assert "openai, openai: api_key secret [OPENAI_API_KEY]" in out


class SecondFilesProvider:
    HOOK_API = (1, 7)

    @staticmethod
    @hookimpl
    def register_providers(register: Any) -> None:
        from modelyard.families import Provider

        register(Provider(name="other", served_by={"transform_files_request": "modelyard-other-files"}))


def test_files_default_to_the_one_provider_serving_them(azure_env: Emulator) -> None:
    """The core names no default provider for files: the only one whose plugins declare files is it."""
    assert modelyard.file_list().object == "list"  # azure: the only provider declaring files
    assert azure_env.requests[-1].path == "/openai/files"
    reset_plugins(extra=[SecondFilesProvider])
    try:
        with pytest.raises(errors.BadRequestError, match=r"custom_llm_provider: several providers serve them \(azure, other\)"):
            modelyard.file_list()
        assert modelyard.file_list(custom_llm_provider="azure").object == "list"
    finally:
        reset_plugins()
