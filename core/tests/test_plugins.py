"""Plugin discovery, subsets, blocking and the HOOK_API check, with real distributions on disk."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import modelyard
import pytest
from modelyard import errors
from modelyard.plugins import get_plugins, load_plugins, reset_plugins


def make_dist(root: Path, dist: str, module: str, source: str, *, ep_name: str | None = None) -> None:
    """Write a minimal installed distribution (dist-info + module) under ``root``."""
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{dist.replace('-', '_')}-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2.3\n")
    (info / "entry_points.txt").write_text(f"[modelyard]\n{ep_name or module} = {module}\n")


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


GOOD = """
from modelyard import hookimpl
from modelyard.families import Family
HOOK_API = (1, 0)
@hookimpl
def register_families(register):
    register(Family(name="fake", provider="azure", prefix="fake/"))
"""


def _info(plugins, name):
    return next(i for i in plugins.infos if i.name == name)


def test_installed_plugins_are_discovered() -> None:
    plugins = load_plugins()
    names = {i.name: i for i in plugins.infos}
    assert names["azure_chat"].status == "loaded"
    assert names["azure_chat"].distribution == "modelyard-azure-chat"
    assert names["azure_auth"].hook_api == (1, 7)  # declares its connection settings since 1.7
    assert "transform_request" in names["azure_chat"].hooks
    assert plugins.families.get("azure") is not None


def test_fake_distribution_is_discovered_and_its_family_used(site: Path) -> None:
    make_dist(site, "fake-plugin", "fake_plugin_mod", GOOD)
    plugins = load_plugins()
    info = _info(plugins, "fake_plugin_mod")
    assert (info.distribution, info.version, info.status) == ("fake-plugin", "1.2.3", "loaded")
    route, family = plugins.families.resolve("fake/dep")
    assert (route.provider, route.deployment, family.name) == ("azure", "dep", "fake")
    assert info.families == ["fake"]


def test_blocked_plugin_is_never_imported(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_dist(site, "boom-plugin", "boom_plugin_mod", "raise RuntimeError('imported!')\n")
    monkeypatch.setenv("MODELYARD_BLOCK_PLUGINS", "Boom_Plugin")  # normalised name
    plugins = load_plugins()
    assert _info(plugins, "boom_plugin_mod").status == "blocked"
    assert "boom_plugin_mod" not in sys.modules


def test_auto_discovered_import_failure_is_skipped_with_warning(site: Path, caplog) -> None:
    make_dist(site, "boom-plugin", "boom_plugin_mod2", "raise RuntimeError('broken plugin')\n")
    with caplog.at_level(logging.WARNING, logger="modelyard.plugins"):
        plugins = load_plugins()
    info = _info(plugins, "boom_plugin_mod2")
    assert info.status == "skipped" and "broken plugin" in info.reason
    assert "boom_plugin_mod2" in caplog.text
    assert _info(plugins, "azure_chat").status == "loaded"


def test_explicitly_named_broken_plugin_raises(site: Path) -> None:
    make_dist(site, "boom-plugin", "boom_plugin_mod3", "raise RuntimeError('broken plugin')\n")
    with pytest.raises(errors.PluginError) as info:
        load_plugins(load="boom-plugin,modelyard-azure-chat")
    assert info.value.plugin == "boom_plugin_mod3"


def test_incompatible_hook_api_names_plugin_and_versions(site: Path) -> None:
    make_dist(site, "future-plugin", "future_plugin_mod", GOOD.replace("HOOK_API = (1, 0)", "HOOK_API = (2, 0)"))
    plugins = load_plugins()
    info = _info(plugins, "future_plugin_mod")
    assert info.status == "skipped"
    for text in ("future-plugin", "1.2.3", "(2, 0)", str(modelyard.HOOK_API)):
        assert text in info.reason
    with pytest.raises(errors.PluginError) as exc:
        load_plugins(load=["future-plugin"])
    core_api = str(modelyard.HOOK_API)
    assert "(2, 0)" in str(exc.value) and core_api in str(exc.value) and "future-plugin" in str(exc.value)


def test_newer_minor_hook_api_is_refused(site: Path) -> None:
    make_dist(site, "minor-plugin", "minor_plugin_mod", GOOD.replace("HOOK_API = (1, 0)", "HOOK_API = (1, 99)"))
    assert _info(load_plugins(), "minor_plugin_mod").status == "skipped"


def test_missing_hook_api_is_refused(site: Path) -> None:
    make_dist(site, "nover-plugin", "nover_plugin_mod", GOOD.replace("HOOK_API = (1, 0)", ""))
    info = _info(load_plugins(), "nover_plugin_mod")
    assert info.status == "skipped" and "None" in info.reason


def test_misspelt_hook_fails_loudly(site: Path) -> None:
    make_dist(site, "typo-plugin", "typo_plugin_mod", GOOD + "\n@hookimpl\ndef transfrom_request(route):\n    return None\n")
    with pytest.raises(errors.PluginError, match="transfrom_request"):
        load_plugins()


def test_load_list_subset_and_empty(monkeypatch: pytest.MonkeyPatch) -> None:
    plugins = load_plugins(load="modelyard-azure-chat")
    assert _info(plugins, "azure_chat").status == "loaded"
    assert _info(plugins, "azure_auth").status == "not enabled"
    monkeypatch.setenv("MODELYARD_LOAD_PLUGINS", "")
    none = load_plugins(load="modelyard-azure-chat")  # the variable overrides the setting
    assert all(i.status == "not enabled" for i in none.infos)


def test_unknown_name_in_the_load_list_lists_installed() -> None:
    with pytest.raises(errors.ConfigError) as info:
        load_plugins(load="modelyard-nope")
    assert "modelyard-azure-chat" in str(info.value) and info.value.key == "load_plugins"


def test_blocking_an_absent_plugin_is_a_warning(caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """One block list serves every subset: what is not installed is already blocked."""
    monkeypatch.setenv("MODELYARD_BLOCK_PLUGINS", "modelyard-azure-realtime,modelyard-azure-vision")
    with caplog.at_level(logging.WARNING, logger="modelyard.plugins"):
        plugins = load_plugins()
    assert _info(plugins, "azure_vision").status == "blocked"
    assert _info(plugins, "azure_chat").status == "loaded"
    [warning] = [r.getMessage() for r in caplog.records]
    assert warning.startswith(
        "Plugin 'modelyard-azure-realtime' in MODELYARD_BLOCK_PLUGINS is not installed; nothing to block. "
        "Installed: modelyard-acme-family, modelyard-azure-anthropic, modelyard-azure-audio, modelyard-azure-auth,"
    )


def test_misspelt_name_suggests_the_closest_installed_one(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="modelyard.plugins"):
        plugins = load_plugins(block=["azure_o_serie"])
    assert _info(plugins, "azure_o_series").status == "loaded"
    [warning] = [r.getMessage() for r in caplog.records]
    assert warning.startswith(
        "Plugin 'azure_o_serie' in the block list (block_plugins) is not installed (did you mean 'azure_o_series'?); "
        "nothing to block."
    )
    with pytest.raises(errors.ConfigError) as info:
        load_plugins(load=["modelyard-azure-caht"])
    assert str(info.value).startswith(
        "Plugin 'modelyard-azure-caht' in the load list (load_plugins) is not installed "
        "(did you mean 'modelyard-azure-chat'?); installed: "
    )


def test_suggestions_compare_what_differs_after_shared_words() -> None:
    from modelyard.plugins import _suggest

    installed = ["modelyard-azure-chat", "modelyard-azure-auth", "azure_chat", "azure_auth", "azure_o_series"]
    assert _suggest("modelyard-azure-batch", installed) is None  # a plugin of its own, not a typo of -auth
    assert _suggest("modelyard-azure-vision", installed) is None
    assert _suggest("azure-gtp5", ["azure_gpt5", "azure_chat"]) == "azure_gpt5"
    assert _suggest("Azure.Auht", installed) == "azure_auth"


def test_load_list_leaving_out_sibling_entry_points_warns_which_families(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELYARD_LOAD_PLUGINS", "azure_chat,azure_auth")
    with caplog.at_level(logging.WARNING, logger="modelyard.plugins"):
        plugins = load_plugins()
    assert _info(plugins, "azure_o_series").status == "not enabled"
    [warning] = [r.getMessage() for r in caplog.records]
    assert warning == (
        "MODELYARD_LOAD_PLUGINS names azure_chat of modelyard-azure-chat but not its entry points azure_gpt5, "
        "azure_instruct, azure_o_series, so the model families they register (gpt5, gpt5_chat, azure_text, "
        "o_series, o_series_legacy) are disabled. Name the distribution (modelyard-azure-chat) to load all of it, "
        "or block the entry points you mean to leave out."
    )


def test_no_sibling_warning_for_a_distribution_or_blocked_siblings(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="modelyard.plugins"):
        load_plugins(load="modelyard-azure-chat,azure_auth")
        load_plugins(load="azure_chat,azure_auth", block="azure_o_series,azure_gpt5,azure_instruct")
    assert caplog.records == []


def test_no_plugins_means_clear_errors_at_call_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELYARD_LOAD_PLUGINS", "")
    with pytest.raises(errors.BadRequestError, match="no model-family plugin is loaded"):
        modelyard.completion(model="azure/x", messages=[{"role": "user", "content": "hi"}])


def test_blocked_auth_plugin_is_named_not_sent_without_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELYARD_BLOCK_PLUGINS", "modelyard-azure-auth")
    with pytest.raises(errors.PluginNotLoadedError) as info:
        modelyard.completion(model="azure/x", api_key="k", api_base="http://127.0.0.1:1", messages=[{"role": "user", "content": "hi"}])
    assert str(info.value) == (
        "chat on provider 'azure' needs the plugin modelyard-azure-auth (it answers resolve_auth), which is blocked "
        "(named in the block list). Remove it from MODELYARD_BLOCK_PLUGINS / modelyard_settings.block_plugins."
    )
    assert (info.value.status_code, info.value.code, info.value.plugin) == (501, "plugin_not_loaded", "modelyard-azure-auth")
    assert isinstance(info.value, errors.PluginError)  # what this call raised before HOOK_API 1.3


class WrongAnswer:
    """A plugin that answers transform_request with the wrong type."""

    HOOK_API = (1, 0)

    @modelyard.hookimpl(tryfirst=True)
    def transform_request(self, route, request, connection):  # type: ignore[no-untyped-def]
        return {"url": "http://127.0.0.1:1"}


def test_wrong_answer_type_names_the_plugin() -> None:
    reset_plugins(extra=[WrongAnswer()])
    with pytest.raises(errors.PluginError) as info:
        modelyard.completion(model="azure/x", api_key="k", api_base="http://127.0.0.1:1", messages=[{"role": "user", "content": "hi"}])
    assert "WrongAnswer" in str(info.value) and "ProviderRequest" in str(info.value)


class SeesTimeout:
    """An auth plugin that records the ``timeout`` resolve_auth gets (HOOK_API 1.3) and refuses."""

    HOOK_API = (1, 3)

    def __init__(self) -> None:
        self.seen: list[float | None] = []

    @modelyard.hookimpl(tryfirst=True)
    def resolve_auth(self, route, connection, timeout):  # type: ignore[no-untyped-def]
        self.seen.append(timeout)
        raise errors.AuthenticationError("stop here")


def test_resolve_auth_gets_the_call_timeout_in_seconds() -> None:
    import httpx

    plugin = SeesTimeout()
    reset_plugins(extra=[plugin])
    kw = {"model": "azure/x", "api_key": "k", "api_base": "http://127.0.0.1:1", "messages": [{"role": "user", "content": "hi"}]}
    for timeout in (None, 1.5, "2", httpx.Timeout(7.0, connect=1.0)):
        with pytest.raises(errors.AuthenticationError):
            modelyard.completion(**kw, timeout=timeout)
    with pytest.raises(errors.AuthenticationError):
        modelyard.completion(**kw, request_timeout=3)
    assert plugin.seen == [None, 1.5, 2.0, 7.0, 3.0]
    with pytest.raises(errors.BadRequestError, match="'timeout' must be a number") as info:
        modelyard.completion(**kw, timeout="soon")
    assert info.value.param == "timeout"


def test_plugins_load_lazily_once() -> None:
    reset_plugins()
    first = get_plugins()
    assert get_plugins() is first


def test_import_modelyard_loads_no_plugin_and_no_http_client() -> None:
    code = (
        "import sys, modelyard\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "('httpx', 'httpcore', 'pluggy', 'pydantic', 'starlette', 'modelyard_azure_chat', 'modelyard_azure_auth')"
        " or m in ('modelyard.plugins', 'modelyard.api')]\n"
        "print(bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_cli_lists_plugins_with_families_and_status(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    from modelyard.cli import main

    monkeypatch.setenv("MODELYARD_BLOCK_PLUGINS", "modelyard-acme-family")
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    chat = next(line for line in out.splitlines() if line.startswith("azure_chat"))
    assert "modelyard-azure-chat" in chat and "loaded" in chat and "azure" in chat and "1.11" in chat  # its HOOK_API (answers_for)
    acme = next(line for line in out.splitlines() if line.startswith("acme_family"))
    assert "blocked" in acme
