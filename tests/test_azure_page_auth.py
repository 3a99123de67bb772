"""The Azure page's Entra ID sections, run with only the import changed.

The snippets talk to the HTTPS Entra emulator through the variables a real deployment uses
(``REQUESTS_CA_BUNDLE`` to trust its CA, ``HTTPS_PROXY`` to reach ``login.microsoftonline.com``
on loopback), and the data-plane emulator accepts only the tokens that emulator issued.
Placeholders (``""``, ``<your deployment name>``) are filled with the emulator's values.
The proxy ``config.yaml`` forms are checked as the ``litellm_params`` the proxy passes on.
"""

from __future__ import annotations

import logging
import os

import pytest
from modelyard.testing import Emulator
from modelyard.testing.entra import EntraEmulator
from modelyard.testing.pytest_plugin import (
    CLIENT_ID,
    CLIENT_SECRET,
    COGNITIVE_SCOPE,
    PASSWORD,
    TENANT,
    USER_CLIENT_ID,
    USERNAME,
)


def _bearer(emulator: Emulator) -> str:
    return emulator.requests[-1].headers["authorization"].removeprefix("Bearer ")


def _access_token_from_step_3() -> str:
    # The page gets one with `az account get-access-token --resource https://cognitiveservices.azure.com`;
    # the Azure CLI cannot run here, so the same kind of token comes from the emulator.
    from azure.identity import ClientSecretCredential

    with ClientSecretCredential(TENANT, CLIENT_ID, CLIENT_SECRET) as credential:
        return credential.get_token(COGNITIVE_SCOPE).token


def test_entra_id_azure_ad_token(entra: EntraEmulator, emulator: Emulator, api_base: str) -> None:
    import modelyard as litellm

    access_token = _access_token_from_step_3()

    response = litellm.completion(
        model="azure/chatgpt-v-2",  # model = azure/<your deployment name>
        api_base=api_base,  # azure api base
        api_version="2023-05-15",  # azure api version
        azure_ad_token=access_token,  # your accessToken from step 3
        messages=[{"role": "user", "content": "good morning"}],
    )

    assert response.choices[0].message.content.endswith("You said: good morning")
    assert _bearer(emulator) == access_token and entra.validate(access_token)


def test_entra_id_azure_ad_token_from_environment(entra: EntraEmulator, emulator: Emulator, api_base: str) -> None:
    import modelyard as litellm

    os.environ["AZURE_AD_TOKEN"] = _access_token_from_step_3()
    try:
        response = litellm.completion(
            model="azure/chatgpt-v-2",
            api_base=api_base,
            api_version="2023-05-15",
            messages=[{"role": "user", "content": "good morning"}],
        )
    finally:
        token = os.environ.pop("AZURE_AD_TOKEN")
    assert response.choices[0].finish_reason == "stop"
    assert _bearer(emulator) == token


def test_entra_id_tenant_client_secret(entra: EntraEmulator, emulator: Emulator, api_base: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from modelyard import completion

    monkeypatch.setenv("AZURE_TENANT_ID", TENANT)
    monkeypatch.setenv("AZURE_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("AZURE_CLIENT_SECRET", CLIENT_SECRET)
    # model_list[0].litellm_params as the proxy hands them on, os.environ/ values resolved
    # (AZURE_SCOPE is unset: None, so the default scope applies).
    litellm_params = {
        "model": "azure/chatgpt-v-2",
        "api_base": api_base,
        "api_version": "2023-05-15",
        "tenant_id": os.environ["AZURE_TENANT_ID"],
        "client_id": os.environ["AZURE_CLIENT_ID"],
        "client_secret": os.environ["AZURE_CLIENT_SECRET"],
        "azure_scope": os.environ.get("AZURE_SCOPE"),
    }
    response = completion(**litellm_params, messages=[{"role": "user", "content": "what llm are you"}])

    assert response.model == "gpt-35-turbo-0613"
    [req] = entra.token_requests
    assert (req.tenant, req.client_id, req.client_auth, req.scope) == (TENANT, CLIENT_ID, "secret", COGNITIVE_SCOPE)
    assert entra.validate(_bearer(emulator))


def test_entra_id_client_username_password(entra: EntraEmulator, emulator: Emulator, api_base: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from modelyard import completion

    monkeypatch.setenv("AZURE_CLIENT_ID", USER_CLIENT_ID)
    monkeypatch.setenv("AZURE_USERNAME", USERNAME)
    monkeypatch.setenv("AZURE_PASSWORD", PASSWORD)
    monkeypatch.setenv("AZURE_SCOPE", COGNITIVE_SCOPE)
    litellm_params = {
        "model": "azure/chatgpt-v-2",
        "api_base": api_base,
        "api_version": "2023-05-15",
        "client_id": os.environ["AZURE_CLIENT_ID"],
        "azure_username": os.environ["AZURE_USERNAME"],
        "azure_password": os.environ["AZURE_PASSWORD"],
        "azure_scope": os.environ.get("AZURE_SCOPE"),
    }
    response = completion(**litellm_params, messages=[{"role": "user", "content": "what llm are you"}])

    assert response.choices[0].finish_reason == "stop"
    [req] = entra.token_requests
    assert (req.grant_type, req.client_id) == ("password", USER_CLIENT_ID)
    assert entra.validate(_bearer(emulator))


@pytest.fixture
def service_principal_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """What DefaultAzureCredential discovers first: a service principal in the environment."""
    monkeypatch.setenv("AZURE_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("AZURE_CLIENT_SECRET", CLIENT_SECRET)
    monkeypatch.setenv("AZURE_TENANT_ID", TENANT)


def test_default_azure_credential_option_1(entra: EntraEmulator, emulator: Emulator, api_base: str, service_principal_env: None) -> None:
    from azure.identity import DefaultAzureCredential, get_bearer_token_provider
    from modelyard import completion

    # DefaultAzureCredential automatically discovers credentials from:
    # - Environment variables (AZURE_CLIENT_ID, AZURE_CLIENT_SECRET, AZURE_TENANT_ID)
    # - Managed Identity (AKS, Azure VMs, etc.)
    # - Azure CLI credentials
    # - And other Azure identity sources
    token_provider = get_bearer_token_provider(DefaultAzureCredential(), "https://cognitiveservices.azure.com/.default")

    response = completion(
        model="azure/chatgpt-v-2",  # model = azure/<your deployment name>
        api_base=api_base,  # azure api base
        api_version="2023-05-15",  # azure api version
        azure_ad_token_provider=token_provider,
        messages=[{"role": "user", "content": "good morning"}],
    )

    assert response.choices[0].message.content.endswith("You said: good morning")
    assert entra.validate(_bearer(emulator))
    assert entra.token_requests[0].client_auth == "secret"


def test_default_azure_credential_option_2(
    entra: EntraEmulator, emulator: Emulator, api_base: str, service_principal_env: None,
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    import modelyard as litellm

    monkeypatch.setattr(litellm, "enable_azure_ad_token_refresh", litellm.enable_azure_ad_token_refresh)  # restored after
    caplog.set_level(logging.DEBUG, logger="modelyard.azure_auth")

    # Enable automatic fallback to DefaultAzureCredential
    litellm.enable_azure_ad_token_refresh = True

    response = litellm.completion(
        model="azure/chatgpt-v-2",
        api_base=api_base,
        api_version="2023-05-15",
        messages=[{"role": "user", "content": "good morning"}],
    )

    assert response.choices[0].finish_reason == "stop"
    assert entra.validate(_bearer(emulator))
    assert "token fetched: default" in caplog.text  # it went through DefaultAzureCredential
