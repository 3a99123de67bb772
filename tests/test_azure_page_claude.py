"""The Azure page's Claude note: ``completion(model="azure/claude-sonnet-4-5", ...)`` with Azure authentication.

"Use ``azure/claude-*`` model names (e.g., ``azure/claude-sonnet-4-5``) with Azure authentication":
the page's way of authenticating (``AZURE_API_KEY`` / ``AZURE_API_BASE``, an ``api_key``
argument, an Entra ID app through ``AZURE_CLIENT_ID`` ...), with only the import changed,
reaches the emulated Foundry resource's ``/anthropic/v1/messages``.
"""

from __future__ import annotations

import pytest
from modelyard import acompletion, completion
from modelyard.testing import KEY, Emulator
from modelyard.testing.emulator import Deployment
from modelyard.testing.entra import EntraEmulator
from modelyard.testing.pytest_plugin import CLIENT_ID, CLIENT_SECRET, TENANT

MESSAGES = [{"role": "user", "content": "Hello, how are you?"}]


def _only_request(emulator: Emulator) -> dict[str, str]:
    [request] = emulator.requests
    assert request.path == "/anthropic/v1/messages"
    assert request.body["model"] == "claude-sonnet-4-5"
    assert request.headers["anthropic-version"] == "2023-06-01"
    return request.headers


def test_with_the_azure_environment_variables(azure_env: Emulator, claude_deployment: Deployment) -> None:
    response = completion(model="azure/claude-sonnet-4-5", messages=MESSAGES)
    assert response.choices[0].message.content == "Claude heard: Hello, how are you?"
    assert _only_request(azure_env)["x-api-key"] == KEY


async def test_with_api_key_and_api_base(emulator: Emulator, api_base: str, claude_deployment: Deployment) -> None:
    response = await acompletion(model="azure/claude-sonnet-4-5", messages=MESSAGES, api_key=KEY, api_base=api_base)
    assert response.choices[0].finish_reason == "stop"
    assert _only_request(emulator)["x-api-key"] == KEY


def test_with_entra_id(
    entra: EntraEmulator, emulator: Emulator, api_base: str, claude_deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AZURE_TENANT_ID", TENANT)
    monkeypatch.setenv("AZURE_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("AZURE_CLIENT_SECRET", CLIENT_SECRET)
    monkeypatch.setenv("AZURE_API_BASE", api_base)
    response = completion(model="azure/claude-sonnet-4-5", messages=MESSAGES)
    assert response.choices[0].message.content == "Claude heard: Hello, how are you?"
    token = _only_request(emulator)["authorization"].removeprefix("Bearer ")
    assert entra.validate(token, audience="https://ai.azure.com")
    assert [r.scope for r in entra.token_requests] == ["https://ai.azure.com/.default"]
