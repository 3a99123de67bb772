"""A call nothing serves names the distribution that would, and why it is not loaded.

The distributions are real ones on disk (dist-info + modules), as in ``test_plugins.py``; the
core names no plugin: every name in these messages comes from a ``register_providers``
declaration or from the installed metadata.
"""

from __future__ import annotations

import io
import textwrap
from pathlib import Path

import modelyard
import pytest
from modelyard import errors
from modelyard.plugins import reset_plugins

HI = [{"role": "user", "content": "hi"}]
CORE_API = str(modelyard.HOOK_API)


def make_dist(root: Path, dist: str, modules: dict[str, str]) -> None:
    """An installed distribution ``dist`` with one ``modelyard`` entry point per module."""
    for module, source in modules.items():
        (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{dist.replace('-', '_')}-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2.3\n")
    (info / "entry_points.txt").write_text("[modelyard]\n" + "".join(f"{m} = {m}\n" for m in modules))


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.syspath_prepend(str(tmp_path))
    reset_plugins()
    return tmp_path


def family_plugin(name: str, prefix: str, *, api: str = "(1, 0)", pattern: str | None = None, provider: str = "") -> str:
    return f"""
from modelyard import hookimpl
from modelyard.families import Family
HOOK_API = {api}
@hookimpl
def register_families(register):
    register(Family(name={name!r}, provider={provider or prefix.rstrip('/')!r}, prefix={prefix!r}, pattern={pattern!r}))
"""


def test_create_file_with_the_batch_plugin_blocked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELYARD_BLOCK_PLUGINS", "modelyard-azure-batch")
    with pytest.raises(errors.PluginNotLoadedError) as info:
        modelyard.create_file(file=io.BytesIO(b"{}\n"), purpose="batch", custom_llm_provider="azure",
                              api_key="k", api_base="http://127.0.0.1:1")  # fmt: skip
    assert str(info.value) == (
        "create_file on provider 'azure' needs the plugin modelyard-azure-batch (it answers "
        "transform_files_request), which is blocked (named in the block list). Remove it from "
        "MODELYARD_BLOCK_PLUGINS / modelyard_settings.block_plugins."
    )
    assert (info.value.status_code, info.value.plugin, info.value.provider) == (501, "modelyard-azure-batch", "azure")
    assert info.value.to_response_body()["error"]["code"] == "plugin_not_loaded"


def test_batch_plugin_left_out_of_the_load_list() -> None:
    reset_plugins(load=["modelyard-azure-chat", "modelyard-azure-auth"])
    with pytest.raises(errors.PluginNotLoadedError) as info:
        modelyard.retrieve_batch(batch_id="batch_1", custom_llm_provider="azure", api_key="k", api_base="http://127.0.0.1:1")
    assert str(info.value) == (
        "retrieve_batch on provider 'azure' needs the plugin modelyard-azure-batch (it answers "
        "transform_files_request), which is not enabled (not in the load list). Add it to "
        "MODELYARD_LOAD_PLUGINS / modelyard_settings.load_plugins."
    )


PROVIDER_DECLARING = """
from modelyard import hookimpl
from modelyard.families import Family, Provider
HOOK_API = (1, 3)
@hookimpl
def register_families(register):
    register(Family(name="declared", provider="declared", prefix="declared/"))
@hookimpl
def register_providers(register):
    register(Provider(name="declared", served_by={
        "transform_request": "declared-transport",
        "resolve_auth": "declared-auth[entra]",
        "transform_request:embeddings": "declared-embeddings",
    }))
"""


def test_a_declared_plugin_that_is_not_installed_gets_its_install_line(site: Path) -> None:
    make_dist(site, "declared-base", {"declared_base_a": PROVIDER_DECLARING})
    with pytest.raises(errors.PluginNotLoadedError) as info:
        modelyard.completion(model="declared/dep", messages=HI)
    assert str(info.value) == (
        "chat on provider 'declared' needs the plugin declared-transport (it answers transform_request), "
        "which is not installed. Install it: pip install declared-transport"
    )


def test_a_declared_plugin_skipped_for_its_hook_api_says_so_and_why(site: Path) -> None:
    make_dist(site, "declared-base", {"declared_base_b": PROVIDER_DECLARING})
    transport = """
from modelyard import hookimpl
HOOK_API = (9, 0)
@hookimpl
def transform_request(route, request, connection):
    return None
"""
    make_dist(site, "declared-transport", {"declared_transport_b": transport})
    with pytest.raises(errors.PluginNotLoadedError) as info:
        modelyard.completion(model="declared/dep", messages=HI)
    assert str(info.value) == (
        "chat on provider 'declared' needs the plugin declared-transport (it answers transform_request), "
        "which was skipped: plugin declared-transport 1.2.3 was written for HOOK_API (9, 0), "
        f"this modelyard provides HOOK_API {CORE_API}; upgrade whichever is older."
    )


def test_an_extra_in_the_declaration_is_in_the_install_line(site: Path) -> None:
    answering = """
from modelyard import hookimpl
from modelyard.types import ProviderRequest
HOOK_API = (1, 0)
@hookimpl
def transform_request(route, request, connection):
    return ProviderRequest(url="http://127.0.0.1:1/x") if route.provider == "declared" else None
"""
    make_dist(site, "declared-base", {"declared_base_c": PROVIDER_DECLARING, "declared_transport_c": answering})
    with pytest.raises(errors.PluginNotLoadedError) as info:
        modelyard.completion(model="declared/dep", messages=HI)
    assert str(info.value) == (
        "chat on provider 'declared' needs the plugin declared-auth (it answers resolve_auth), "
        "which is not installed. Install it: pip install 'declared-auth[entra]'"
    )
    assert info.value.plugin == "declared-auth"


def test_without_a_declaration_the_skipped_plugins_are_listed(site: Path) -> None:
    make_dist(site, "bare-family", {"bare_family_d": family_plugin("bare", "bare/")})
    make_dist(site, "bare-transport", {"bare_transport_d": "raise ImportError('needs libfoo')\n"})
    with pytest.raises(errors.PluginNotLoadedError) as info:
        modelyard.completion(model="bare/dep", messages=HI)
    assert str(info.value) == (
        "chat on provider 'bare' needs a plugin that answers transform_request; none is loaded, and no loaded "
        "plugin declares which distribution does. Installed but not loaded: bare_transport_d of bare-transport "
        "was skipped: import failed: ImportError: needs libfoo. See `modelyard plugins`."
    )
    assert info.value.plugin is None


def test_no_family_matches_because_a_sibling_was_skipped(site: Path) -> None:
    """The base family's entry point was written for a newer core: the error points at the skip."""
    make_dist(site, "skip-prov", {
        "skipprov_base_e": family_plugin("skipprov", "skipprov/", api="(9, 0)"),
        "skipprov_special_e": family_plugin("skipprov_special", "skipprov/", pattern="special"),
    })  # fmt: skip
    with pytest.raises(errors.BadRequestError) as info:
        modelyard.completion(model="skipprov/plain-dep", messages=HI)
    assert str(info.value) == (
        "No model family of 'skipprov/' matches 'skipprov/plain-dep'. Installed but not loaded: skipprov_base_e "
        "of skip-prov was skipped: plugin skip-prov 1.2.3 was written for HOOK_API (9, 0), this modelyard "
        f"provides HOOK_API {CORE_API}; upgrade whichever is older."
    )


def test_unknown_prefix_when_the_only_family_plugin_was_skipped(site: Path) -> None:
    make_dist(site, "gone-prov", {"goneprov_f": family_plugin("goneprov", "goneprov/", api="(9, 0)")})
    with pytest.raises(errors.BadRequestError) as info:
        modelyard.completion(model="goneprov/dep", messages=HI)
    message = str(info.value)
    assert message.startswith("Unknown model 'goneprov/dep': it must start with a registered provider prefix (")
    assert message.endswith(
        "e.g. 'azure/<deployment>'. Installed but not loaded: goneprov_f of gone-prov was skipped: plugin "
        f"gone-prov 1.2.3 was written for HOOK_API (9, 0), this modelyard provides HOOK_API {CORE_API}; "
        "upgrade whichever is older."
    )


def test_a_blocked_family_plugin_is_named_when_its_prefix_is_unknown() -> None:
    reset_plugins(block=["modelyard-acme-family"])
    with pytest.raises(errors.BadRequestError) as info:
        modelyard.completion(model="acme/dep", messages=HI)
    assert str(info.value).endswith(
        "Installed but not loaded: acme_family of modelyard-acme-family is blocked: named in the block list."
    )


def test_a_provider_declaration_of_the_wrong_type_names_the_plugin() -> None:
    class Wrong:
        HOOK_API = (1, 3)

        @modelyard.hookimpl
        def register_providers(self, register):  # type: ignore[no-untyped-def]
            register({"name": "azure"})

    reset_plugins(extra=[Wrong()], block=["modelyard-azure-auth"])
    with pytest.raises(errors.PluginError, match=r"registered dict, not a modelyard\.families\.Provider"):
        modelyard.completion(model="azure/x", api_key="k", api_base="http://127.0.0.1:1", messages=HI)
