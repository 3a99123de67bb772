"""``ParamRules.needs_plugin``: a family names the plugin a parameter needs; the core enforces it."""

from __future__ import annotations

import pytest
from modelyard import BadRequestError, completion, hookimpl
from modelyard.families import Family, ParamRules, check_needed_plugins
from modelyard.plugins import get_plugins, reset_plugins
from modelyard.testing import Emulator


class NeedyFamily:
    """``needy/<deployment>``: Azure chat, whose ``widgets`` parameter needs one plugin or another."""

    HOOK_API = (1, 0)

    @hookimpl
    def register_families(self, register):  # type: ignore[no-untyped-def]
        register(Family(name="needy", provider="azure", prefix="needy/", rules=ParamRules(
            needs_plugin={"widgets": "modelyard-widgets", "auth_extra": "modelyard-azure-auth"})))  # fmt: skip


def test_parameter_whose_plugin_is_not_installed_fails_before_sending(azure_env: Emulator) -> None:
    reset_plugins(extra=[NeedyFamily()])
    with pytest.raises(BadRequestError) as caught:
        completion(model="needy/gpt-4o", messages=[{"role": "user", "content": "hi"}], widgets={"n": 1})
    assert caught.value.param == "widgets"
    assert caught.value.code == "plugin_not_loaded"
    assert caught.value.message.startswith(
        "'widgets' needs the plugin 'modelyard-widgets', which is not loaded (not installed). "
        "Install it (pip install modelyard-widgets), or leave out 'widgets'."
    )
    assert "BLOCK_PLUGINS" not in caught.value.message  # nothing to unblock: it is not installed
    assert azure_env.requests == []


@pytest.mark.parametrize(
    ("settings", "reason", "fix"),
    [
        ({"block": ["modelyard-azure-auth"]}, "blocked: named in the block list",
         "Remove it from MODELYARD_BLOCK_PLUGINS / modelyard_settings.block_plugins, or leave out 'auth_extra'."),
        ({"load": ["modelyard-azure-chat"]}, "not enabled: not in the load list",
         "Add it to MODELYARD_LOAD_PLUGINS / modelyard_settings.load_plugins, or leave out 'auth_extra'."),
    ],
)  # fmt: skip
def test_the_fix_named_matches_why_the_plugin_is_not_loaded(
    azure_env: Emulator, settings: dict[str, list[str]], reason: str, fix: str
) -> None:
    reset_plugins(extra=[NeedyFamily()], **settings)  # type: ignore[arg-type]
    with pytest.raises(BadRequestError) as caught:
        completion(model="needy/gpt-4o", messages=[{"role": "user", "content": "hi"}], auth_extra=1, api_key="k")
    assert f"'modelyard-azure-auth', which is not loaded ({reason}). {fix}" in caught.value.message
    assert azure_env.requests == []


def test_without_the_parameter_the_call_goes_through(azure_env: Emulator) -> None:
    reset_plugins(extra=[NeedyFamily()])
    completion(model="needy/gpt-4o", messages=[{"role": "user", "content": "hi"}], widgets=None)
    assert azure_env.requests[0].path == "/openai/deployments/gpt-4o/chat/completions"


def test_parameter_whose_plugin_is_loaded_is_sent(azure_env: Emulator) -> None:
    reset_plugins(extra=[NeedyFamily()])
    completion(model="needy/gpt-4o", messages=[{"role": "user", "content": "hi"}], auth_extra=1)
    assert azure_env.requests[0].body["auth_extra"] == 1


def test_missing_reports_why() -> None:
    plugins = get_plugins()
    assert plugins.missing("modelyard-azure-chat") is None
    assert plugins.missing("azure_chat") is None  # entry-point names work too
    assert plugins.missing("modelyard-nope") == "not installed"
    reset_plugins(block=["modelyard-azure-auth"])
    assert get_plugins().missing("Modelyard_Azure_Auth") == "blocked: named in the block list"


def test_check_needed_plugins_ignores_unset_parameters() -> None:
    family = Family(name="f", provider="p", prefix="f/", rules=ParamRules(needs_plugin={"x": "plug"}))
    check_needed_plugins(family, {"x": None, "y": 1}, missing=lambda name: "not installed", model="f/d")
    with pytest.raises(BadRequestError, match="'x' needs the plugin 'plug'"):
        check_needed_plugins(family, {"x": 0}, missing=lambda name: "not installed", model="f/d")


def test_a_module_registered_directly_counts_as_its_package() -> None:
    import modelyard_azure_auth.plugin

    reset_plugins(load="", extra=[modelyard_azure_auth.plugin])
    assert get_plugins().missing("modelyard-azure-auth") is None
    assert get_plugins().missing("modelyard-azure-chat") == "not enabled: not in the load list"
