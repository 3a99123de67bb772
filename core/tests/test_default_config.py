"""``modelyard serve`` without a config asks the provider plugins for one (``default_config``, HOOK_API 1.9).

A test provider written against :mod:`modelyard.plugin` answers from its own environment
variables; the core builds the proxy from its answer and the banner names the plugin. A wrong
answer is a ``PluginError`` naming the plugin.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from modelyard.plugin import EnvironmentConfig, Family, PluginError, hookimpl
from modelyard.plugins import reset_plugins


class EnvProvider:
    """Provider ``envp``: serves ``ENVP_MODELS`` when ``ENVP_URL`` is set."""

    HOOK_API = (1, 9)

    @staticmethod
    @hookimpl
    def register_families(register: Any) -> None:
        register(Family(name="envp", provider="envp", prefix="envp/"))

    @staticmethod
    @hookimpl
    def default_config(environ: Mapping[str, str]) -> EnvironmentConfig | None:
        if not environ.get("ENVP_URL"):
            return None
        models = [{"model_name": m, "litellm_params": {"model": f"envp/{m}", "api_base": "os.environ/ENVP_URL"}}
                  for m in environ.get("ENVP_MODELS", "one").split(",")]  # fmt: skip
        return EnvironmentConfig(config={"model_list": models}, source="ENVP_URL")


class Broken:
    HOOK_API = (1, 9)

    @staticmethod
    @hookimpl
    def default_config(environ: Mapping[str, str]) -> Any:
        return {"model_list": []} if environ.get("ENVP_URL") else None


@pytest.fixture
def no_azure_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("AZURE_API_KEY", "AZURE_API_BASE", "AZURE_API_VERSION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ENVP_URL", "http://127.0.0.1:9")
    yield
    reset_plugins()


def test_serve_builds_the_plugins_config_from_the_environment(no_azure_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    from modelyard.proxy.serve import _banner, build

    monkeypatch.setenv("ENVP_MODELS", "one,two")
    reset_plugins(extra=[EnvProvider])
    built = build(dev=True)
    assert built.mode == "environment" and built.emulator is None and built.generated_key
    assert [(d.model_name, d.model) for d in built.app.deployments] == [("one", "envp/one"), ("two", "envp/two")]
    banner = _banner(built, "127.0.0.1", 4000, 1)
    assert "upstream: ENVP_URL (from the environment, by plugin EnvProvider)" in banner
    assert "models:   one, two" in banner


def test_a_wrong_answer_names_the_plugin(no_azure_env: None) -> None:
    from modelyard.proxy.serve import build

    reset_plugins(extra=[Broken])
    with pytest.raises(PluginError, match="default_config of 'Broken' returned dict") as info:
        build(dev=True)
    assert info.value.plugin == "Broken"
