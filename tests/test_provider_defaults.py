"""What the core took from the Azure plugins by name until issue 13 part 1 moved it out, still working.

* ``AzureHeaders`` lives in ``modelyard-azure-common`` and reaches results and ``modelyard`` through
  ``register_header_views`` (registered by ``modelyard-azure-chat``); blocked, it fails naming that.
* ``modelyard serve`` without a config builds its deployments from ``AZURE_*`` through the chat
  plugin's ``default_config``; blocked, the start fails naming the plugin.
* Prices: ``gpt-35`` and the ``azure/`` fallback come from the plugin's ``register_price_names``
  (every cost test is unchanged; these pin the lookups that needed the old constants).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import modelyard
import modelyard.types
import pytest
from modelyard import pricing
from modelyard.plugins import reset_plugins
from modelyard.testing import KEY, Deployment, Emulator
from modelyard_azure_common.headers import AzureHeaders

HI = [{"role": "user", "content": "hi"}]
CHAT = "modelyard-azure-chat"


@pytest.fixture
def chat_blocked() -> Iterator[None]:
    reset_plugins(block=[CHAT])
    pricing.reset_prices()
    yield
    reset_plugins()
    pricing.reset_prices()


def test_azure_headers_is_the_azure_plugins_class(api_base: str, emulator: Emulator) -> None:
    assert modelyard.AzureHeaders is AzureHeaders
    assert modelyard.types.AzureHeaders is AzureHeaders  # type: ignore[attr-defined]
    from modelyard import AzureHeaders as imported  # type: ignore[attr-defined]

    assert imported is AzureHeaders and "AzureHeaders" in modelyard.__all__
    r = modelyard.completion(model="azure/gpt-4o", messages=HI, api_base=api_base, api_key=KEY)
    assert isinstance(r.azure_headers, AzureHeaders) and r.azure_headers.request_id  # type: ignore[union-attr]
    emulator.add_deployment(Deployment("tts-headers", model="tts-1"))
    try:
        speech = modelyard.speech(model="azure/tts-headers", input="hi", voice="alloy", api_base=api_base,
                                  api_key=KEY, api_version="2025-04-01-preview")  # fmt: skip
    finally:
        emulator.deployments.pop("tts-headers", None)
    assert speech.azure_headers.request_id  # type: ignore[attr-defined]  # binary responses too


def test_blocking_the_chat_plugin_takes_azure_headers_away_naming_it(chat_blocked: None) -> None:
    with pytest.raises(AttributeError, match=r"has no attribute 'AzureHeaders'.*azure_chat of modelyard-azure-chat is blocked"):
        _ = modelyard.AzureHeaders
    with pytest.raises(AttributeError, match=r"has no attribute 'AzureHeaders'.*modelyard-azure-chat is blocked"):
        _ = modelyard.types.AzureHeaders  # type: ignore[attr-defined]
    with pytest.raises(AttributeError, match=r"'ChatCompletion' object has no attribute 'azure_headers'.*modelyard-azure-chat is blocked"):
        _ = modelyard.types.ChatCompletion().azure_headers  # type: ignore[attr-defined]
    assert "AzureHeaders" not in modelyard.__all__


def test_price_lookups_the_plugin_declares() -> None:
    pricing.reset_prices()
    # A bare name Azure reported is priced at Azure's entry, and its dotless spelling at OpenAI's.
    assert pricing.get_model_prices("gpt-4o") is pricing.get_model_prices("azure/gpt-4o")
    assert pricing.get_model_prices("azure/gpt-35-turbo-1106") is pricing.get_model_prices("gpt-3.5-turbo-1106") is not None
    # "azure_text/<model>" and "text-completion-openai/<model>" are the bare model, of those providers.
    assert pricing.get_model_prices("azure_text/gpt-4o") is pricing.get_model_prices("azure/gpt-4o")
    assert pricing.get_model_prices("text-completion-openai/gpt-4o", provider="openai") is not None


def test_without_the_chat_plugin_those_lookups_are_gone(chat_blocked: None) -> None:
    assert pricing.get_model_prices("azure/gpt-35-turbo-1106") is None
    assert pricing.get_model_prices("azure_text/gpt-4o") is None
    assert pricing.get_model_prices("azure/gpt-4o") is not None  # a key of the table as it stands


def test_serve_builds_the_azure_deployments_from_the_environment(
    azure_env: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modelyard.proxy.serve import _banner, build
    from modelyard.testing.server import serve_in_thread

    built = build(dev=True)
    assert built.mode == "environment" and built.emulator is None
    entries = [(d.model_name, d.model) for d in built.app.deployments]
    assert entries == [("gpt-4o", "azure/gpt-4o"), ("gpt-4o-mini", "azure/gpt-4o-mini")]
    assert "upstream: AZURE_API_BASE (from the environment, by plugin azure_chat)" in _banner(built, "127.0.0.1", 4000, 1)
    with serve_in_thread(built.app, lifespan="on") as server:
        r = httpx.post(f"{server.url}/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": HI},
                       headers={"Authorization": f"Bearer {built.master_key}"})  # fmt: skip
    assert r.status_code == 200, r.text
    assert azure_env.requests[-1].path == "/openai/deployments/gpt-4o-mini/chat/completions"
    assert azure_env.requests[-1].query["api-version"] == "2024-10-21"

    monkeypatch.setenv("MODELYARD_DEPLOYMENTS", "chatgpt-v-2, gpt-4o")
    assert [d.model for d in build(dev=True).app.deployments] == ["azure/chatgpt-v-2", "azure/gpt-4o"]


def test_serve_with_the_chat_plugin_blocked_says_so(
    azure_env: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MODELYARD_BLOCK_PLUGINS", CHAT)
    out = subprocess.run([sys.executable, "-m", "modelyard.cli", "serve", "--dev", "--port", "0"],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode != 0
    assert "no loaded plugin builds a config from the environment" in out.stderr
    assert "azure_chat of modelyard-azure-chat is blocked" in out.stderr
