"""azure-identity is the ``entra`` extra: api keys work without it, Entra flows name the extra.

``sys.modules["azure.identity"] = None`` is what Python records for a module that is not there;
the wheel check (.ci/wheels.py) runs the same calls in an environment really without it.
"""

from __future__ import annotations

import sys

import pytest
from modelyard import completion
from modelyard.errors import PluginNotLoadedError
from modelyard.testing import KEY, Emulator

MESSAGES = [{"role": "user", "content": "hello"}]


@pytest.fixture
def no_azure_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "azure.identity", None)


@pytest.mark.usefixtures("no_azure_identity")
def test_api_key_needs_no_azure_identity(emulator: Emulator, api_base: str) -> None:
    r = completion(model="azure/gpt-4o", api_base=api_base, api_key=KEY, api_version="2024-10-21", messages=MESSAGES)
    assert r.choices[0].message.content.endswith("You said: hello")  # type: ignore[union-attr]
    assert emulator.requests[-1].headers["api-key"] == KEY


@pytest.mark.usefixtures("no_azure_identity")
def test_an_entra_flow_without_azure_identity_names_the_extra(emulator: Emulator, api_base: str) -> None:
    with pytest.raises(PluginNotLoadedError) as caught:
        completion(
            model="azure/gpt-4o", api_base=api_base, api_version="2024-10-21", messages=MESSAGES,
            tenant_id="t", client_id="c", client_secret="a-client-secret",
        )  # fmt: skip
    assert str(caught.value) == (
        "Entra ID sign-in with tenant_id/client_id/client_secret (ClientSecretCredential) needs azure-identity, "
        "from the "
        "'entra' extra of modelyard-azure-auth, which is not installed. Install it: pip install "
        "'modelyard-azure-auth[entra]'"
    )
    assert caught.value.status_code == 501 and caught.value.plugin == "modelyard-azure-auth"
    assert "a-client-secret" not in str(caught.value) + repr(caught.value)
    assert emulator.requests == []  # nothing sent
