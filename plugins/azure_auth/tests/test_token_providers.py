"""Static Entra tokens and caller-supplied token providers (azure-identity's
``get_bearer_token_provider``, sync and async), against the Entra emulator."""

from __future__ import annotations

import pytest
from modelyard import acompletion, completion
from modelyard.errors import AuthenticationError
from modelyard.testing import Emulator
from modelyard.testing.entra import EntraEmulator
from modelyard.testing.pytest_plugin import CLIENT_ID, CLIENT_SECRET, COGNITIVE_SCOPE, TENANT

MESSAGES = [{"role": "user", "content": "hello"}]


def _entra_token() -> str:
    from azure.identity import ClientSecretCredential

    with ClientSecretCredential(TENANT, CLIENT_ID, CLIENT_SECRET) as credential:
        return credential.get_token(COGNITIVE_SCOPE).token


def test_static_token_parameter(entra: EntraEmulator, emulator: Emulator, api_base: str) -> None:
    token = _entra_token()
    completion(model="azure/gpt-4o", api_base=api_base, api_version="2024-10-21", messages=MESSAGES, azure_ad_token=token)
    assert emulator.requests[-1].headers["authorization"] == f"Bearer {token}"


def test_static_token_environment(entra: EntraEmulator, emulator: Emulator, api_base: str, monkeypatch: pytest.MonkeyPatch) -> None:
    token = _entra_token()
    monkeypatch.setenv("AZURE_AD_TOKEN", token)
    monkeypatch.setenv("AZURE_CLIENT_SECRET", "ignored: the static token comes first")
    completion(model="azure/gpt-4o", api_base=api_base, api_version="2024-10-21", messages=MESSAGES)
    assert emulator.requests[-1].headers["authorization"] == f"Bearer {token}"
    assert entra.token_request_count == 1  # only the one _entra_token made


def test_expired_static_token_fails_once_without_retry(entra: EntraEmulator, emulator: Emulator, api_base: str) -> None:
    token = _entra_token()
    entra.revoke_all()
    with pytest.raises(AuthenticationError, match="expired"):
        completion(model="azure/gpt-4o", api_base=api_base, api_version="2024-10-21", messages=MESSAGES, azure_ad_token=token)
    assert len(emulator.requests) == 1  # a static token cannot be refreshed: no pointless retry


def test_sync_bearer_token_provider(entra: EntraEmulator, emulator: Emulator, api_base: str) -> None:
    from azure.identity import ClientSecretCredential, get_bearer_token_provider

    provider = get_bearer_token_provider(ClientSecretCredential(TENANT, CLIENT_ID, CLIENT_SECRET), COGNITIVE_SCOPE)
    for _ in range(3):
        completion(model="azure/gpt-4o", api_base=api_base, api_version="2024-10-21", messages=MESSAGES,
                   azure_ad_token_provider=provider)  # fmt: skip
    assert entra.token_request_count == 1  # the provider caches
    assert all(entra.validate(r.headers["authorization"][7:]) for r in emulator.requests)


async def test_async_bearer_token_provider(entra: EntraEmulator, emulator: Emulator, api_base: str) -> None:
    # azure-identity's async credentials default to aiohttp; azure-core's requests-based asyncio
    # transport needs nothing more (and honours REQUESTS_CA_BUNDLE / HTTPS_PROXY the same way).
    from azure.core.pipeline.transport import AsyncioRequestsTransport
    from azure.identity.aio import ClientSecretCredential, get_bearer_token_provider

    async with ClientSecretCredential(TENANT, CLIENT_ID, CLIENT_SECRET, transport=AsyncioRequestsTransport()) as cred:
        provider = get_bearer_token_provider(cred, COGNITIVE_SCOPE)
        for _ in range(3):
            await acompletion(model="azure/gpt-4o", api_base=api_base, api_version="2024-10-21", messages=MESSAGES,
                              azure_ad_token_provider=provider)  # fmt: skip
    assert entra.token_request_count == 1
    assert all(entra.validate(r.headers["authorization"][7:]) for r in emulator.requests)


def test_async_provider_in_sync_call_is_a_clear_error(entra: EntraEmulator, api_base: str) -> None:
    async def provider() -> str:
        return "never used"

    with pytest.raises(AuthenticationError, match="async; use acompletion"):
        completion(model="azure/gpt-4o", api_base=api_base, api_version="2024-10-21", messages=MESSAGES,
                   azure_ad_token_provider=provider)  # fmt: skip


async def test_async_provider_100_concurrent_calls_one_token_request(entra: EntraEmulator, emulator: Emulator, api_base: str) -> None:
    import asyncio

    from azure.core.pipeline.transport import AsyncioRequestsTransport
    from azure.identity.aio import ClientSecretCredential, get_bearer_token_provider

    async with ClientSecretCredential(TENANT, CLIENT_ID, CLIENT_SECRET, transport=AsyncioRequestsTransport()) as cred:
        provider = get_bearer_token_provider(cred, COGNITIVE_SCOPE)
        await asyncio.gather(*(
            acompletion(model="azure/gpt-4o", api_base=api_base, api_version="2024-10-21", messages=MESSAGES,
                        azure_ad_token_provider=provider)
            for _ in range(100)
        ))  # fmt: skip
    assert entra.token_request_count == 1
    assert len(emulator.requests) == 100
