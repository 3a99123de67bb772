"""The Entra ID emulator on its own: Entra's wire shapes, and which tokens it vouches for.

These drive the ASGI app in process (``httpx.ASGITransport``); the end-to-end tests with the
real azure-identity classes over HTTPS live in ``plugins/azure_auth/tests``.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import httpx
import pytest
from modelyard.testing import Emulator
from modelyard.testing.entra import COGNITIVE_SERVICES_AUDIENCE, EntraEmulator

TENANT = "11111111-2222-4333-8444-555555555555"
SCOPE = "https://cognitiveservices.azure.com/.default"


@pytest.fixture
def entra() -> EntraEmulator:
    e = EntraEmulator(tenants=[TENANT], token_lifetime=600)
    e.add_app("app", client_secret="app-secret", federated_subjects={"sa:ai:runner"})
    e.add_app("public-app")
    e.add_user("bo@contoso.example", "bo-password")
    e.add_user("mfa@contoso.example", "mfa-password", mfa_required=True)
    return e


async def _post(entra: EntraEmulator, path: str, form: dict[str, str], host: str = "login.microsoftonline.com") -> httpx.Response:
    transport = httpx.ASGITransport(app=entra.app)
    async with httpx.AsyncClient(transport=transport, base_url=f"https://{host}") as client:
        return await client.post(path, data=form)


async def _get(entra: EntraEmulator, path: str, host: str = "login.microsoftonline.com") -> httpx.Response:
    transport = httpx.ASGITransport(app=entra.app)
    async with httpx.AsyncClient(transport=transport, base_url=f"https://{host}") as client:
        return await client.get(path)


def _claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))  # type: ignore[no-any-return]


CLIENT_CREDENTIALS = {"grant_type": "client_credentials", "client_id": "app", "client_secret": "app-secret", "scope": SCOPE}


async def test_client_credentials_token_shape(entra: EntraEmulator) -> None:
    r = await _post(entra, f"/{TENANT}/oauth2/v2.0/token", CLIENT_CREDENTIALS)
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"token_type", "expires_in", "ext_expires_in", "access_token"}
    assert body["token_type"] == "Bearer" and body["expires_in"] == 600 and "refresh_token" not in body
    claims = _claims(body["access_token"])
    assert claims["aud"] == COGNITIVE_SERVICES_AUDIENCE
    assert claims["iss"] == f"https://sts.windows.net/{TENANT}/"
    assert claims["tid"] == TENANT and claims["appid"] == "app" and claims["roles"]
    assert claims["exp"] - claims["iat"] == pytest.approx(600, abs=1)
    assert entra.validate(body["access_token"])
    [req] = entra.token_requests
    assert (req.grant_type, req.client_id, req.client_auth, req.status) == ("client_credentials", "app", "secret", 200)
    assert "app-secret" not in repr(entra.token_requests)


async def test_password_grant_returns_user_token_and_id_token(entra: EntraEmulator) -> None:
    form = {"grant_type": "password", "client_id": "public-app", "username": "bo@contoso.example",
            "password": "bo-password", "scope": f"{SCOPE} openid profile offline_access"}  # fmt: skip
    r = await _post(entra, "/organizations/oauth2/v2.0/token", form)
    assert r.status_code == 200
    body = r.json()
    assert {"access_token", "refresh_token", "id_token", "scope", "client_info"} <= set(body)
    assert _claims(body["access_token"])["scp"] == "user_impersonation"
    id_claims = _claims(body["id_token"])
    assert id_claims["aud"] == "public-app" and id_claims["preferred_username"] == "bo@contoso.example"


@pytest.mark.parametrize(
    ("path", "form", "status", "error", "code"),
    [
        (f"/{TENANT}/oauth2/v2.0/token", {**CLIENT_CREDENTIALS, "client_secret": "nope"}, 401, "invalid_client", 7000215),
        (f"/{TENANT}/oauth2/v2.0/token", {**CLIENT_CREDENTIALS, "client_id": "ghost"}, 400, "unauthorized_client", 700016),
        ("/other-tenant/oauth2/v2.0/token", CLIENT_CREDENTIALS, 400, "invalid_request", 90002),
        (f"/{TENANT}/oauth2/v2.0/token", {**CLIENT_CREDENTIALS, "scope": "https://cognitiveservices.azure.com/read"}, 400, "invalid_scope", 70011),
        (f"/{TENANT}/oauth2/v2.0/token", {**CLIENT_CREDENTIALS, "grant_type": "implicit"}, 400, "unsupported_grant_type", 70003),
        (f"/{TENANT}/oauth2/v2.0/token", {"grant_type": "client_credentials", "client_id": "app", "scope": SCOPE}, 401, "invalid_client", 7000218),
        (f"/{TENANT}/oauth2/v2.0/token", {"grant_type": "password", "client_id": "public-app", "username": "bo@contoso.example",
                                         "password": "wrong", "scope": SCOPE}, 400, "invalid_grant", 50126),
        (f"/{TENANT}/oauth2/v2.0/token", {"grant_type": "password", "client_id": "public-app", "username": "mfa@contoso.example",
                                         "password": "mfa-password", "scope": SCOPE}, 400, "invalid_grant", 50076),
    ],
)  # fmt: skip
async def test_errors_are_aadsts_shaped(entra: EntraEmulator, path: str, form: dict[str, str], status: int, error: str, code: int) -> None:
    r = await _post(entra, path, form)
    assert r.status_code == status
    body = r.json()
    assert body["error"] == error
    assert body["error_codes"] == [code]
    assert body["error_description"].startswith(f"AADSTS{code}: ")
    assert "Trace ID: " in body["error_description"] and "Correlation ID: " in body["error_description"]
    assert {"timestamp", "trace_id", "correlation_id", "error_uri"} <= set(body)
    assert "nope" not in r.text and "wrong" not in body["error_description"]
    assert entra.token_request_count == 0


async def test_discovery_documents_follow_the_host_asked(entra: EntraEmulator) -> None:
    r = await _get(entra, f"/{TENANT}/v2.0/.well-known/openid-configuration", host="login.microsoftonline.us")
    doc = r.json()
    assert doc["token_endpoint"] == f"https://login.microsoftonline.us/{TENANT}/oauth2/v2.0/token"
    assert doc["issuer"] == f"https://login.microsoftonline.us/{TENANT}/v2.0"
    missing = await _get(entra, "/not-a-tenant/v2.0/.well-known/openid-configuration")
    assert missing.status_code == 400 and missing.json()["error_codes"] == [90002]
    inst = await _get(entra, "/common/discovery/instance?api-version=1.1&authorization_endpoint="
                             f"https://login.example.test/{TENANT}/oauth2/v2.0/authorize")  # fmt: skip
    assert inst.json()["tenant_discovery_endpoint"] == f"https://login.example.test/{TENANT}/v2.0/.well-known/openid-configuration"
    realm = await _get(entra, "/common/userrealm/bo@contoso.example?api-version=1.0")
    assert realm.json()["account_type"] == "Managed"


async def test_validate_accepts_only_its_own_unexpired_tokens_for_the_audience(entra: EntraEmulator) -> None:
    token = (await _post(entra, f"/{TENANT}/oauth2/v2.0/token", CLIENT_CREDENTIALS)).json()["access_token"]
    assert entra.validate(token)
    assert not entra.validate(token, audience="https://management.azure.com")
    header, _payload, signature = token.split(".")
    claims = _claims(token)
    forged = base64.urlsafe_b64encode(json.dumps({**claims, "exp": time.time() + 10**6}).encode()).rstrip(b"=").decode()
    assert not entra.validate(f"{header}.{forged}.{signature}")  # the signature no longer matches
    assert not entra.validate("not-a-jwt") and not entra.validate("a.b.c")
    other = EntraEmulator(tenants=[TENANT])
    assert not other.validate(token)  # another emulator's key
    entra.revoke_all()
    assert not entra.validate(token)


async def test_expired_token_is_refused(entra: EntraEmulator) -> None:
    entra.token_lifetime = 0
    token = (await _post(entra, f"/{TENANT}/oauth2/v2.0/token", CLIENT_CREDENTIALS)).json()["access_token"]
    assert not entra.validate(token)


async def test_workload_identity_assertion(entra: EntraEmulator) -> None:
    form = {"grant_type": "client_credentials", "client_id": "app", "scope": SCOPE,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": entra.federated_token("sa:ai:runner")}  # fmt: skip
    assert (await _post(entra, f"/{TENANT}/oauth2/v2.0/token", form)).status_code == 200
    form["client_assertion"] = entra.federated_token("sa:other:intruder")
    r = await _post(entra, f"/{TENANT}/oauth2/v2.0/token", form)
    assert r.status_code == 401 and r.json()["error_codes"] == [700211]
    form["client_assertion"] = EntraEmulator().federated_token("sa:ai:runner")  # signed by someone else
    assert (await _post(entra, f"/{TENANT}/oauth2/v2.0/token", form)).status_code == 401
    assert [r.client_auth for r in entra.token_requests] == ["federated"] * 3
    assert not entra.validate(entra.federated_token("sa:ai:runner"))  # not an access token


async def test_install_makes_the_data_plane_check_entra_tokens(entra: EntraEmulator) -> None:
    data_plane = Emulator(["gpt-4o"])
    entra.install(data_plane)
    token = (await _post(entra, f"/{TENANT}/oauth2/v2.0/token", CLIENT_CREDENTIALS)).json()["access_token"]
    transport = httpx.ASGITransport(app=data_plane.app)
    async with httpx.AsyncClient(transport=transport, base_url="https://res.openai.azure.com") as client:
        url = "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21"
        body = {"messages": [{"role": "user", "content": "hi"}]}
        ok = await client.post(url, json=body, headers={"Authorization": f"Bearer {token}"})
        assert ok.status_code == 200
        entra.revoke_all()
        refused = await client.post(url, json=body, headers={"Authorization": f"Bearer {token}"})
    assert refused.status_code == 401
    assert refused.json() == {"statusCode": 401, "message": refused.json()["message"]}
    assert "audience is incorrect" in refused.json()["message"]


async def test_client_secret_basic_auth(entra: EntraEmulator) -> None:
    transport = httpx.ASGITransport(app=entra.app)
    async with httpx.AsyncClient(transport=transport, base_url="https://login.microsoftonline.com") as client:
        form = {"grant_type": "client_credentials", "scope": SCOPE}
        ok = await client.post(f"/{TENANT}/oauth2/v2.0/token", data=form, auth=("app", "app-secret"))
        bad = await client.post(f"/{TENANT}/oauth2/v2.0/token", data={**form, "client_id": "app"},
                                headers={"Authorization": "Basic !!not-base64!!"})  # fmt: skip
    assert ok.status_code == 200 and entra.validate(ok.json()["access_token"])
    assert bad.status_code == 401 and bad.json()["error"] == "invalid_client"


async def test_token_faults_hold_and_fail_until_reset(entra: EntraEmulator) -> None:
    import asyncio
    import math

    entra.token_failure = 90033
    r = await _post(entra, f"/{TENANT}/oauth2/v2.0/token", CLIENT_CREDENTIALS)
    assert r.status_code == 503 and r.json()["error"] == "temporarily_unavailable"
    assert "AADSTS90033" in r.json()["error_description"]
    assert [t.status for t in entra.token_requests] == [503] and entra.token_request_count == 0

    entra.token_latency = math.inf  # accepted and held: no answer until reset()
    held = asyncio.ensure_future(_post(entra, f"/{TENANT}/oauth2/v2.0/token", CLIENT_CREDENTIALS))
    await asyncio.sleep(0.3)
    assert not held.done()
    entra.reset()  # clears both faults and lets the held request go
    r = await asyncio.wait_for(held, 10)
    assert r.status_code == 200 and entra.validate(r.json()["access_token"])
    assert entra.token_request_count == 1
