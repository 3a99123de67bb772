"""Entra ID through the proxy: the Azure page's proxy config forms, served as ``modelyard serve
--config config.yaml --dev`` would serve them, answering the page's curl request.

azure-identity reaches the HTTPS Entra emulator through ``REQUESTS_CA_BUNDLE`` / ``HTTPS_PROXY``
(the pytest plugin's ``entra`` fixture), and the data-plane emulator accepts only the tokens that emulator issued.
The configs are the page's, with only the host changed; their ``os.environ/`` values come from
the variables the page names.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from modelyard.proxy.serve import build
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
    WORKLOAD_SUBJECT,
)
from modelyard.testing.server import serve_in_thread

from .conftest import MASTER_KEY, logged_text

PAGE_HOST = "https://openai-gpt-4-test-v-1.openai.azure.com/"

TENANT_CLIENT_SECRET = """
model_list:
  - model_name: gpt-3.5-turbo
    litellm_params:
      model: azure/chatgpt-v-2
      api_base: https://openai-gpt-4-test-v-1.openai.azure.com/
      api_version: "2023-05-15"
      tenant_id: os.environ/AZURE_TENANT_ID
      client_id: os.environ/AZURE_CLIENT_ID
      client_secret: os.environ/AZURE_CLIENT_SECRET
      azure_scope: os.environ/AZURE_SCOPE  # defaults to "https://cognitiveservices.azure.com/.default"
"""

CLIENT_USERNAME_PASSWORD = """
model_list:
  - model_name: gpt-3.5-turbo
    litellm_params:
      model: azure/chatgpt-v-2
      api_base: https://openai-gpt-4-test-v-1.openai.azure.com/
      api_version: "2023-05-15"
      client_id: os.environ/AZURE_CLIENT_ID
      azure_username: os.environ/AZURE_USERNAME
      azure_password: os.environ/AZURE_PASSWORD
      azure_scope: os.environ/AZURE_SCOPE  # defaults to "https://cognitiveservices.azure.com/.default"
"""

# The "Entra ID - use azure_ad_token" section's config.yaml tab: the SDK call's parameters as
# litellm_params, the token from step 3 in AZURE_AD_TOKEN.
AZURE_AD_TOKEN = """
model_list:
  - model_name: gpt-3.5-turbo
    litellm_params:
      model: azure/chatgpt-v-2
      api_base: https://openai-gpt-4-test-v-1.openai.azure.com/
      api_version: "2023-05-15"
      azure_ad_token: os.environ/AZURE_AD_TOKEN
"""

# The DefaultAzureCredential section's config.yaml tab: no credential in litellm_params, the
# module switch in litellm_settings.
DEFAULT_AZURE_CREDENTIAL = """
model_list:
  - model_name: gpt-3.5-turbo
    litellm_params:
      model: azure/chatgpt-v-2
      api_base: https://openai-gpt-4-test-v-1.openai.azure.com/
      api_version: "2023-05-15"

litellm_settings:
  enable_azure_ad_token_refresh: true
"""

CURL_BODY = """ {
      "model": "gpt-3.5-turbo",
      "messages": [
        {
          "role": "user",
          "content": "what llm are you"
        }
      ]
    }
"""


@pytest.fixture(autouse=True)
def _module_switch_restored(monkeypatch: pytest.MonkeyPatch) -> None:
    import modelyard

    # A config with litellm_settings.enable_azure_ad_token_refresh sets the module switch.
    monkeypatch.setattr(modelyard, "enable_azure_ad_token_refresh", False)


@contextmanager
def serve(tmp_path: Path, yaml_text: str, api_base: str) -> Iterator[Any]:
    """``modelyard serve --config config.yaml --dev`` (the page's configs have no master_key)."""
    path = tmp_path / "config.yaml"
    path.write_text(yaml_text.replace(PAGE_HOST, api_base + "/"))
    with serve_in_thread(build(str(path), dev=True).app, lifespan="on") as server:
        yield server


def curl(proxy_url: str, body: str = CURL_BODY, headers: dict[str, str] | None = None) -> dict[str, Any]:
    """The page's ``Test it`` request, with the proxy's host."""
    url = f"{proxy_url}/chat/completions"
    exe = shutil.which("curl")
    extra = [f"{k}: {v}" for k, v in (headers or {}).items()]
    if exe:
        args = [exe, "--silent", "--location", url, "--header", "Content-Type: application/json"]
        for h in extra:
            args += ["--header", h]
        out = subprocess.run([*args, "--data", body], check=True, capture_output=True, text=True, timeout=60)
        return json.loads(out.stdout)  # type: ignore[no-any-return]
    return httpx.post(url, content=body, headers={"Content-Type": "application/json", **(headers or {})}).json()  # type: ignore[no-any-return]


def _bearer(emulator: Emulator) -> str:
    return emulator.requests[-1].headers["authorization"].removeprefix("Bearer ")


def test_tenant_client_secret(entra: EntraEmulator, emulator: Emulator, api_base: str, tmp_path: Path,
                              monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    for name, value in {"AZURE_TENANT_ID": TENANT, "AZURE_CLIENT_ID": CLIENT_ID, "AZURE_CLIENT_SECRET": CLIENT_SECRET,
                        "AZURE_SCOPE": COGNITIVE_SCOPE}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    with serve(tmp_path, TENANT_CLIENT_SECRET, api_base) as proxy:
        reply = curl(proxy.url)
        again = curl(proxy.url)
    assert reply["choices"][0]["message"]["content"].endswith("You said: what llm are you")
    assert again["object"] == "chat.completion"
    [req] = entra.token_requests  # the second call used the cached token
    assert (req.grant_type, req.tenant, req.client_id, req.client_auth, req.scope) == (
        "client_credentials", TENANT, CLIENT_ID, "secret", COGNITIVE_SCOPE)  # fmt: skip
    seen = emulator.requests[-1]
    assert seen.path == "/openai/deployments/chatgpt-v-2/chat/completions"
    assert seen.query == {"api-version": "2023-05-15"}
    assert "api-key" not in seen.headers
    assert entra.validate(_bearer(emulator))


def test_client_username_password(entra: EntraEmulator, emulator: Emulator, api_base: str, tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    for name, value in {"AZURE_CLIENT_ID": USER_CLIENT_ID, "AZURE_USERNAME": USERNAME, "AZURE_PASSWORD": PASSWORD,
                        "AZURE_SCOPE": COGNITIVE_SCOPE}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    with serve(tmp_path, CLIENT_USERNAME_PASSWORD, api_base) as proxy:
        reply = curl(proxy.url)
    assert reply["choices"][0]["finish_reason"] == "stop"
    [req] = entra.token_requests
    assert (req.grant_type, req.client_id) == ("password", USER_CLIENT_ID)
    assert COGNITIVE_SCOPE in req.scope.split()  # MSAL adds openid, profile and offline_access
    assert entra.validate(_bearer(emulator))


def test_azure_ad_token(entra: EntraEmulator, emulator: Emulator, api_base: str, tmp_path: Path,
                        monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    from azure.identity import ClientSecretCredential

    # Step 3 of the page (`az account get-access-token`): the same kind of token, from the emulator.
    with ClientSecretCredential(TENANT, CLIENT_ID, CLIENT_SECRET) as credential:
        token = credential.get_token(COGNITIVE_SCOPE).token
    monkeypatch.setenv("AZURE_AD_TOKEN", token)
    with serve(tmp_path, AZURE_AD_TOKEN, api_base) as proxy:
        reply = curl(proxy.url)
    assert reply["choices"][0]["message"]["content"].endswith("You said: what llm are you")
    assert _bearer(emulator) == token
    assert entra.token_request_count == 1  # only step 3's: the proxy fetched nothing


def test_default_azure_credential_environment(
    entra: EntraEmulator, emulator: Emulator, api_base: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    import modelyard

    caplog.set_level(logging.DEBUG, logger="modelyard.azure_auth")

    monkeypatch.setenv("AZURE_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("AZURE_CLIENT_SECRET", CLIENT_SECRET)
    monkeypatch.setenv("AZURE_TENANT_ID", TENANT)
    with serve(tmp_path, DEFAULT_AZURE_CREDENTIAL, api_base) as proxy:
        assert modelyard.enable_azure_ad_token_refresh is True  # litellm_settings set the module switch
        reply = curl(proxy.url)
    assert reply["choices"][0]["finish_reason"] == "stop"
    assert "token fetched: default" in caplog.text  # through DefaultAzureCredential (its environment member)
    [req] = entra.token_requests
    assert (req.client_id, req.client_auth) == (CLIENT_ID, "secret")
    assert entra.validate(_bearer(emulator))


def test_default_azure_credential_workload_identity(entra: EntraEmulator, emulator: Emulator, api_base: str,
                                                    tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    # As AKS sets it up: a federated token file, no secret anywhere.
    (tmp_path / "token").write_text(entra.federated_token(WORKLOAD_SUBJECT))
    monkeypatch.setenv("AZURE_TENANT_ID", TENANT)
    monkeypatch.setenv("AZURE_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("AZURE_FEDERATED_TOKEN_FILE", str(tmp_path / "token"))
    with serve(tmp_path, DEFAULT_AZURE_CREDENTIAL, api_base) as proxy:
        reply = curl(proxy.url)
    assert reply["object"] == "chat.completion"
    [req] = entra.token_requests
    assert req.client_id == CLIENT_ID and req.client_auth != "secret"
    assert entra.validate(_bearer(emulator))


def test_revoked_token_is_refreshed_without_a_failed_request(entra: EntraEmulator, emulator: Emulator, api_base: str,
                                                            tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    for name, value in {"AZURE_TENANT_ID": TENANT, "AZURE_CLIENT_ID": CLIENT_ID, "AZURE_CLIENT_SECRET": CLIENT_SECRET,
                        "AZURE_SCOPE": COGNITIVE_SCOPE}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    with serve(tmp_path, TENANT_CLIENT_SECRET, api_base) as proxy:
        assert curl(proxy.url)["object"] == "chat.completion"
        entra.revoke_all()  # a key rotation: the cached token is now refused with 401
        after = curl(proxy.url)
    assert after["object"] == "chat.completion", after
    assert entra.token_request_count == 2


# ------------------------------------------------------------------ secrets and concurrency


SECRETS_CONFIG = """
model_list:
  - model_name: sp
    litellm_params:
      model: azure/gpt-4o
      api_base: {api_base}
      api_version: "2024-10-21"
      tenant_id: os.environ/AZURE_TENANT_ID
      client_id: os.environ/AZURE_CLIENT_ID
      client_secret: os.environ/AZURE_CLIENT_SECRET
  - model_name: user
    litellm_params:
      model: azure/gpt-4o-mini
      api_base: {api_base}
      api_version: "2024-10-21"
      client_id: os.environ/USER_CLIENT_ID
      azure_username: os.environ/AZURE_USERNAME
      azure_password: os.environ/AZURE_PASSWORD
  - model_name: wrong-secret
    litellm_params:
      model: azure/gpt-4o
      api_base: {api_base}
      api_version: "2024-10-21"
      tenant_id: os.environ/AZURE_TENANT_ID
      client_id: os.environ/AZURE_CLIENT_ID
      client_secret: os.environ/WRONG_SECRET
router_settings: {{num_retries: 0}}
general_settings:
  master_key: os.environ/PROXY_MASTER_KEY
"""
WRONG_SECRET = "Wr0ng~but-still-a-secret-5150"


@pytest.fixture
def secrets_proxy(entra: EntraEmulator, api_base: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name, value in {"AZURE_TENANT_ID": TENANT, "AZURE_CLIENT_ID": CLIENT_ID, "AZURE_CLIENT_SECRET": CLIENT_SECRET,
                        "USER_CLIENT_ID": USER_CLIENT_ID, "AZURE_USERNAME": USERNAME, "AZURE_PASSWORD": PASSWORD,
                        "WRONG_SECRET": WRONG_SECRET, "PROXY_MASTER_KEY": MASTER_KEY}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    path = tmp_path / "config.yaml"
    path.write_text(SECRETS_CONFIG.format(api_base=api_base))
    with serve_in_thread(build(str(path)).app, lifespan="on") as server:
        yield server


def test_no_secret_or_token_in_logs_or_responses(
    secrets_proxy: Any, entra: EntraEmulator, emulator: Emulator, everything_logged: pytest.LogCaptureFixture
) -> None:
    url, auth = secrets_proxy.url, {"Authorization": f"Bearer {MASTER_KEY}"}
    chat = {"messages": [{"role": "user", "content": "hello"}]}
    bodies: list[str] = []

    def post(body: dict[str, Any], headers: dict[str, str] = auth, status: int = 200) -> None:
        r = httpx.post(f"{url}/v1/chat/completions", json=body, headers=headers, timeout=60)
        assert r.status_code == status, r.text
        bodies.append(r.text + json.dumps(dict(r.headers)))

    post({"model": "sp", **chat})
    post({"model": "user", **chat})
    post({"model": "sp", "stream": True, **chat})
    entra.revoke_all()  # a 401 upstream, a refresh, a retry: all logged
    post({"model": "sp", **chat})
    post({"model": "wrong-secret", **chat}, status=401)  # Entra refuses the sign-in: AADSTS7000215
    post({"model": "sp", **chat}, headers={"Authorization": "Bearer not-the-master-key"}, status=401)
    post({"model": "nope", **chat}, status=404)
    post({"model": "sp", "temperature": "hot", **chat}, status=400)
    post({"model": "sp", "client_secret": "x", **chat}, status=400)
    emulator.deployments["gpt-4o-mini"].faults.script = [500]
    post({"model": "user", **chat}, status=500)
    for path in ("/health", "/v1/models", "/health/readiness", "/health/liveliness"):
        r = httpx.get(f"{url}{path}", headers=auth, timeout=60)
        assert r.status_code == 200
        bodies.append(r.text)
    health = json.loads(bodies[-4])
    assert health["healthy_count"] == 2 and health["unhealthy_count"] == 1
    [sick] = health["unhealthy_endpoints"]
    assert sick["model_name"] == "wrong-secret" and "AADSTS" in sick["error"]

    logged = logged_text(everything_logged)
    assert '"path":"/health"' in logged  # the access log is in the scan
    assert "azure.identity" in logged or "msal" in logged  # the libraries did log: the scan means something
    assert len(entra.issued) >= 3
    for secret in (CLIENT_SECRET, PASSWORD, WRONG_SECRET, MASTER_KEY, *entra.issued):
        assert secret not in logged
        assert all(secret not in body for body in bodies)
    for token in entra.issued:  # a token split over two lines would still leak its signature
        signature = token.rsplit(".", 1)[1]
        assert signature not in logged and all(signature not in body for body in bodies)


def test_100_concurrent_requests_with_a_cold_cache_fetch_one_token(
    secrets_proxy: Any, entra: EntraEmulator, emulator: Emulator
) -> None:
    async def burst() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=100)
        async with httpx.AsyncClient(base_url=secrets_proxy.url, limits=limits, timeout=120) as client:
            body = {"model": "sp", "messages": [{"role": "user", "content": "hello"}]}
            headers = {"Authorization": f"Bearer {MASTER_KEY}"}
            return await asyncio.gather(*(client.post("/v1/chat/completions", json=body, headers=headers) for _ in range(100)))

    assert entra.token_requests == []
    replies = asyncio.run(burst())
    assert [r.status_code for r in replies] == [200] * 100
    assert entra.token_request_count == 1
    assert len(entra.token_requests) == 1
    tokens = {r.headers["authorization"] for r in emulator.requests}
    assert len(emulator.requests) == 100 and len(tokens) == 1
