"""config.yaml: LiteLLM's format, os.environ/ values, errors that name their path, secrets kept secret."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from modelyard.errors import ConfigError
from modelyard.proxy import Deployments, ProxyApp, load_config, parse_config

SECRET = "super-secret-value-0123456789"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_litellm_format_with_env_values(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_API_KEY", SECRET)
    monkeypatch.setenv("AZURE_API_BASE", "https://r.openai.azure.com/")
    config = load_config(write(tmp_path, """
model_list:
  - model_name: gpt-4
    litellm_params:
      model: azure/my-gpt4
      api_base: os.environ/AZURE_API_BASE
      api_key: os.environ/AZURE_API_KEY
      api_version: 2024-10-21
      rpm: 60
    model_info: {id: east, mode: chat, base_model: azure/gpt-4-1106-preview}
  - model_name: gpt-4
    params:
      model: azure/my-gpt4-west
      api_key: os.environ/AZURE_API_KEY
      api_version: "2024-08-01-preview"
litellm_settings: {drop_params: true, num_retries: 3}
router_settings: {routing_strategy: simple-shuffle}
general_settings: {master_key: os.environ/AZURE_API_KEY, database_url: "postgresql://u:pw@db/x"}
modelyard_settings: {load_plugins: "modelyard-azure-chat, modelyard-azure-auth"}
"""))
    first, second = config.model_list
    assert first.litellm_params.api_version == "2024-10-21"  # YAML's date, read back as a string
    assert first.litellm_params.api_key is not None and first.litellm_params.api_key.get_secret_value() == SECRET
    assert second.litellm_params.model == "azure/my-gpt4-west"  # "params" is an alias of litellm_params
    assert config.modelyard_settings.load_plugins == ["modelyard-azure-chat", "modelyard-azure-auth"]
    fixed, _ = config.deployment_kwargs(first)
    assert fixed["drop_params"] is True and fixed["base_model"] == "azure/gpt-4-1106-preview"
    deployments = Deployments(config)
    assert deployments.get("gpt-4")[0].id == "east"
    assert SECRET not in repr(config) and "pw@" not in repr(config)
    assert SECRET not in repr(list(deployments))


def test_missing_env_variable_names_it_and_the_path() -> None:
    raw = {"model_list": [{"model_name": "m", "litellm_params": {"model": "azure/d", "api_key": "os.environ/NOPE_KEY"}}]}
    with pytest.raises(ConfigError) as exc:
        parse_config(raw, env={})
    assert "NOPE_KEY" in str(exc.value)
    assert exc.value.key == "model_list[0].litellm_params.api_key"


def test_invalid_value_names_its_path_and_not_its_value() -> None:
    entries = [{"model_name": f"m{i}", "litellm_params": {"model": "azure/d"}} for i in range(3)]
    entries[2]["litellm_params"]["api_version"] = ["2024-10-21", SECRET]  # type: ignore[index]
    with pytest.raises(ConfigError) as exc:
        parse_config({"model_list": entries})
    assert exc.value.key == "model_list[2].litellm_params.api_version"
    assert "model_list[2].litellm_params.api_version" in str(exc.value)
    assert SECRET not in str(exc.value)
    with pytest.raises(ConfigError) as exc:
        parse_config({"model_list": [{"model_name": "m", "litellm_params": {"model": "azure/d", "rpm": "lots"}}]})
    assert exc.value.key == "model_list[0].litellm_params.rpm"
    with pytest.raises(ConfigError) as exc:
        parse_config({"model_list": [{"model_name": "m"}]})
    assert exc.value.key == "model_list[0].litellm_params"
    with pytest.raises(ConfigError) as exc:
        parse_config({"general_settings": {"max_request_size_mb": -1}})
    assert exc.value.key == "general_settings.max_request_size_mb"


def test_unknown_keys_are_warnings_naming_them(caplog: pytest.LogCaptureFixture) -> None:
    raw = {
        "model_list": [{"model_name": "m", "litellm_params": {"model": "azure/d", "colour": "blue", "region_name": "eu",
                                                               "temperature": 0.2}}],
        "general_settings": {"mystery": 1},
        "surprise_section": {},
    }  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="modelyard.proxy"):
        config = parse_config(raw)
    text = caplog.text
    assert "model_list[0].litellm_params.colour" in text
    assert "general_settings.mystery" in text and "surprise_section" in text
    assert "region_name" not in text and "temperature" not in text  # known to LiteLLM / a default param
    assert config.deployment_kwargs(config.model_list[0])[1] == {"temperature": 0.2}


def test_bad_yaml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"not valid YAML \(line \d+, column \d+\)"):
        load_config(write(tmp_path, "model_list:\n  - [unclosed\n"))
    with pytest.raises(ConfigError, match="Cannot read"):
        load_config(tmp_path / "absent.yaml")


@pytest.mark.parametrize("key", [None, "", "sk-1234", "SK-1234", "short-key"])
def test_refuses_missing_or_known_master_key(key: str | None) -> None:
    config = parse_config({"model_list": [{"model_name": "m", "litellm_params": {"model": "azure/d"}}]})
    with pytest.raises(ConfigError) as exc:
        ProxyApp(config, master_key=key)
    assert exc.value.key == "general_settings.master_key"
    if key:
        assert key not in str(exc.value)
    ProxyApp(config, master_key=key, insecure_ok=True)  # --dev
    dev = parse_config({"general_settings": {"allow_insecure_master_key": True}})
    ProxyApp(dev, master_key=key)


def test_unknown_provider_prefix_is_a_startup_error() -> None:
    config = parse_config({"model_list": [{"model_name": "m", "litellm_params": {"model": "bedrock/claude"}}]})
    with pytest.raises(ConfigError) as exc:
        ProxyApp(config, master_key="sk-" + "a" * 30)
    assert "litellm_params.model" in str(exc.value) and "bedrock/claude" in str(exc.value)


def test_modelyard_settings_choose_plugins() -> None:
    config = parse_config({"modelyard_settings": {"block_plugins": ["modelyard-azure-auth"]}})
    ProxyApp(config, master_key="sk-" + "a" * 30)
    from modelyard.plugins import get_plugins

    status = {i.distribution: i.status for i in get_plugins().infos}
    assert status["modelyard-azure-auth"] == "blocked"


def test_import_modelyard_does_not_import_the_proxy() -> None:
    import subprocess
    import sys

    code = "import sys, modelyard; print(sorted(m for m in sys.modules if m.startswith(('modelyard.proxy', 'yaml', 'uvicorn', 'aiohttp'))))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
