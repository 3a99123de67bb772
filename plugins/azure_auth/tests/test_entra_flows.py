"""Every Entra ID flow, end to end: real azure-identity credentials against the HTTPS Entra
emulator, tokens checked by the data-plane emulator (which accepts only tokens Entra issued,
for its audience, unexpired)."""

from __future__ import annotations

import asyncio
import datetime
import logging
import threading
import time
from pathlib import Path

import modelyard
import pytest
from modelyard import acompletion, completion
from modelyard.errors import AuthenticationError
from modelyard.testing import KEY, Emulator
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

MESSAGES = [{"role": "user", "content": "hello"}]


def _call(api_base: str, **kwargs: object) -> object:
    return completion(model="azure/gpt-4o", api_base=api_base, api_version="2024-10-21", messages=MESSAGES, **kwargs)


def _bearer(emulator: Emulator, index: int = -1) -> str:
    header = emulator.requests[index].headers["authorization"]
    assert header.startswith("Bearer ")
    return header[7:]


# --------------------------------------------------------------------------- the flows


def test_client_secret_params(entra: EntraEmulator, emulator: Emulator, api_base: str) -> None:
    r = _call(api_base, tenant_id=TENANT, client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
    assert r.choices[0].message.content.endswith("You said: hello")
    token = _bearer(emulator)
    assert entra.validate(token) and "api-key" not in emulator.requests[-1].headers
    [req] = entra.token_requests
    assert (req.host, req.tenant, req.grant_type, req.client_id, req.scope, req.client_auth) == (
        "login.microsoftonline.com", TENANT, "client_credentials", CLIENT_ID, COGNITIVE_SCOPE, "secret",
    )  # fmt: skip
    _call(api_base, tenant_id=TENANT, client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
    assert entra.token_request_count == 1  # cached
    assert _bearer(emulator) == token


def test_client_secret_from_environment(entra: EntraEmulator, emulator: Emulator, api_base: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_TENANT_ID", TENANT)
    monkeypatch.setenv("AZURE_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("AZURE_CLIENT_SECRET", CLIENT_SECRET)
    _call(api_base)
    assert entra.validate(_bearer(emulator))
    assert entra.token_requests[0].client_auth == "secret"


def test_username_password(entra: EntraEmulator, emulator: Emulator, api_base: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "modelyard.azure_auth"):
        _call(api_base, client_id=USER_CLIENT_ID, azure_username=USERNAME, azure_password=PASSWORD)
    assert entra.validate(_bearer(emulator))
    [req] = entra.token_requests
    assert (req.grant_type, req.client_id, req.tenant) == ("password", USER_CLIENT_ID, "organizations")
    assert "deprecated" in caplog.text and "multifactor" in caplog.text


def test_username_password_from_environment_with_tenant(entra: EntraEmulator, emulator: Emulator, api_base: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_CLIENT_ID", USER_CLIENT_ID)
    monkeypatch.setenv("AZURE_TENANT_ID", TENANT)
    monkeypatch.setenv("AZURE_USERNAME", USERNAME)
    monkeypatch.setenv("AZURE_PASSWORD", PASSWORD)
    _call(api_base)
    assert entra.validate(_bearer(emulator))
    assert entra.token_requests[0].tenant == TENANT


def _certificate(tmp_path: Path, password: bytes | None = None) -> tuple[Path, bytes]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "modelyard-test-app")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256())
    )  # fmt: skip
    encryption = serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    path = tmp_path / "app.pem"
    path.write_bytes(key_pem + cert_pem)
    return path, cert_pem


def test_certificate(entra: EntraEmulator, emulator: Emulator, api_base: str, tmp_path: Path) -> None:
    path, cert_pem = _certificate(tmp_path, password=b"cert-pass-9")
    entra.add_app("cert-app-1", certificate_pem=cert_pem)
    _call(api_base, tenant_id=TENANT, client_id="cert-app-1", client_certificate_path=str(path),
          client_certificate_password="cert-pass-9")  # fmt: skip
    assert entra.validate(_bearer(emulator))
    [req] = entra.token_requests
    assert (req.client_id, req.client_auth, req.status) == ("cert-app-1", "certificate", 200)


def test_certificate_not_registered_is_refused(entra: EntraEmulator, api_base: str, tmp_path: Path) -> None:
    path, _ = _certificate(tmp_path)
    _, other_pem = _certificate(tmp_path / "..")
    entra.add_app("cert-app-2", certificate_pem=other_pem)
    with pytest.raises(AuthenticationError, match="AADSTS700027"):
        _call(api_base, tenant_id=TENANT, client_id="cert-app-2", client_certificate_path=str(path))


def test_certificate_from_environment(entra: EntraEmulator, emulator: Emulator, api_base: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path, cert_pem = _certificate(tmp_path)
    entra.add_app("cert-app-3", certificate_pem=cert_pem)
    monkeypatch.setenv("AZURE_TENANT_ID", TENANT)
    monkeypatch.setenv("AZURE_CLIENT_ID", "cert-app-3")
    monkeypatch.setenv("AZURE_CERTIFICATE_PATH", str(path))  # LiteLLM's name; azure-identity's also works
    _call(api_base)
    assert entra.validate(_bearer(emulator))
    assert entra.token_requests[0].client_auth == "certificate"


def test_refresh_setting_uses_default_credential_with_workload_identity(
    entra: EntraEmulator, emulator: Emulator, api_base: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token_file = tmp_path / "azure-identity-token"
    token_file.write_text(entra.federated_token(WORKLOAD_SUBJECT))
    monkeypatch.setenv("AZURE_TENANT_ID", TENANT)
    monkeypatch.setenv("AZURE_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("AZURE_FEDERATED_TOKEN_FILE", str(token_file))
    with pytest.raises(AuthenticationError, match="enable_azure_ad_token_refresh"):
        _call(api_base)  # nothing says to use DefaultAzureCredential yet
    monkeypatch.setattr(modelyard, "enable_azure_ad_token_refresh", True)
    _call(api_base)
    assert entra.validate(_bearer(emulator))
    [req] = entra.token_requests
    assert (req.client_id, req.client_auth, req.grant_type) == (CLIENT_ID, "federated", "client_credentials")


def test_refresh_parameter_uses_default_credential(
    entra: EntraEmulator, emulator: Emulator, api_base: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(entra.federated_token("system:serviceaccount:other:unknown"))
    monkeypatch.setenv("AZURE_TENANT_ID", TENANT)
    monkeypatch.setenv("AZURE_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("AZURE_FEDERATED_TOKEN_FILE", str(token_file))
    with pytest.raises(AuthenticationError, match="AADSTS700211") as info:
        _call(api_base, enable_azure_ad_token_refresh=True)
    assert "DefaultAzureCredential" in str(info.value)
    token_file.write_text(entra.federated_token(WORKLOAD_SUBJECT))  # fixed: the next call signs in
    _call(api_base, enable_azure_ad_token_refresh=True)
    assert entra.validate(_bearer(emulator))


def test_sovereign_cloud_authority_and_scope(entra: EntraEmulator, emulator: Emulator, api_base: str) -> None:
    entra.audiences.add("https://cognitiveservices.azure.us")
    _call(api_base, tenant_id=TENANT, client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
          azure_authority_host="https://login.microsoftonline.us",
          azure_scope="https://cognitiveservices.azure.us/.default")  # fmt: skip
    [req] = entra.token_requests
    assert (req.host, req.scope) == ("login.microsoftonline.us", "https://cognitiveservices.azure.us/.default")
    assert entra.validate(_bearer(emulator), audience="https://cognitiveservices.azure.us")


def test_authority_and_scope_from_environment(entra: EntraEmulator, emulator: Emulator, api_base: str, monkeypatch: pytest.MonkeyPatch) -> None:
    entra.audiences.add("https://cognitiveservices.azure.cn")
    monkeypatch.setenv("AZURE_AUTHORITY_HOST", "login.chinacloudapi.cn")
    monkeypatch.setenv("AZURE_SCOPE", "https://cognitiveservices.azure.cn/.default")
    _call(api_base, tenant_id=TENANT, client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
    [req] = entra.token_requests
    assert (req.host, req.scope) == ("login.chinacloudapi.cn", "https://cognitiveservices.azure.cn/.default")


def test_custom_authority_host_runs_instance_discovery(entra: EntraEmulator, emulator: Emulator, api_base: str, entra_server) -> None:  # type: ignore[no-untyped-def]
    before = len(entra_server.tunnelled)
    _call(api_base, tenant_id=TENANT, client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
          azure_authority_host="https://login.modelyard.test")  # fmt: skip
    assert entra.token_requests[0].host == "login.modelyard.test"
    # MSAL asked the public cloud whether the unknown host is a valid authority
    assert "login.microsoftonline.com" in entra_server.tunnelled[before:]


def test_wrong_scope_is_refused_by_the_data_plane(entra: EntraEmulator, emulator: Emulator, api_base: str) -> None:
    with pytest.raises(AuthenticationError, match="audience"):
        _call(api_base, tenant_id=TENANT, client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
              azure_scope="https://management.azure.com/.default")  # fmt: skip
    # one retry with a fresh token after the 401, then the error: no loop
    assert len(emulator.requests) == 2
    assert entra.token_request_count == 2


# --------------------------------------------------------------------------- token cache


def test_100_concurrent_async_calls_share_one_token_request(entra: EntraEmulator, emulator: Emulator, api_base: str) -> None:
    async def main() -> list[object]:
        return await asyncio.gather(*(
            acompletion(model="azure/gpt-4o", api_base=api_base, api_version="2024-10-21", messages=MESSAGES,
                        tenant_id=TENANT, client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
            for _ in range(100)
        ))  # fmt: skip

    results = asyncio.run(main())
    assert len(results) == 100
    assert entra.token_request_count == 1
    assert len(entra.token_requests) == 1
    assert len({r.headers["authorization"] for r in emulator.requests}) == 1


def test_concurrent_threads_share_one_token_request(entra: EntraEmulator, emulator: Emulator, api_base: str) -> None:
    start = threading.Barrier(16)
    errors: list[BaseException] = []

    def worker() -> None:
        start.wait()
        try:
            _call(api_base, tenant_id=TENANT, client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert entra.token_request_count == 1
    assert len(emulator.requests) == 16


def test_token_expiring_mid_run_is_refreshed_without_a_failed_call(entra: EntraEmulator, emulator: Emulator, api_base: str) -> None:
    entra.token_lifetime = 4
    calls = 0
    deadline = time.monotonic() + 7
    while time.monotonic() < deadline:
        _call(api_base, tenant_id=TENANT, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, num_retries=0)
        calls += 1
        time.sleep(0.25)
    # every call succeeded on its first attempt: refreshed ahead of expiry, never a 401
    assert len(emulator.requests) == calls
    assert entra.token_request_count >= 3
    assert len({r.headers["authorization"] for r in emulator.requests}) == entra.token_request_count


async def test_token_expiring_mid_run_async(entra: EntraEmulator, emulator: Emulator, api_base: str) -> None:
    entra.token_lifetime = 4
    calls = 0
    deadline = time.monotonic() + 7
    while time.monotonic() < deadline:
        await asyncio.gather(*(
            acompletion(model="azure/gpt-4o", api_base=api_base, api_version="2024-10-21", messages=MESSAGES,
                        tenant_id=TENANT, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, num_retries=0)
            for _ in range(5)
        ))  # fmt: skip
        calls += 5
        await asyncio.sleep(0.25)
    assert len(emulator.requests) == calls
    assert entra.token_request_count >= 3


def test_401_with_cached_token_refreshes_once_and_retries_once(entra: EntraEmulator, emulator: Emulator, api_base: str) -> None:
    _call(api_base, tenant_id=TENANT, client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
    first = _bearer(emulator)
    entra.revoke_all()  # the cached token is now refused (a key rotation, a revoked session)
    r = _call(api_base, tenant_id=TENANT, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, num_retries=0)
    assert r.choices[0].finish_reason == "stop"
    assert [_bearer(emulator, i) == first for i in range(3)] == [True, True, False]
    assert entra.token_request_count == 2
    assert entra.validate(_bearer(emulator))


async def test_401_refresh_async_many_callers_one_new_token(entra: EntraEmulator, emulator: Emulator, api_base: str) -> None:
    kw = dict(model="azure/gpt-4o", api_base=api_base, api_version="2024-10-21", messages=MESSAGES,
              tenant_id=TENANT, client_id=CLIENT_ID, client_secret=CLIENT_SECRET)  # fmt: skip
    await acompletion(**kw)
    entra.revoke_all()
    results = await asyncio.gather(*(acompletion(**kw) for _ in range(20)))
    assert len(results) == 20
    assert entra.token_request_count == 2


def test_api_key_and_static_token_do_not_fetch(entra: EntraEmulator, emulator: Emulator, api_base: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_TENANT_ID", TENANT)
    monkeypatch.setenv("AZURE_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("AZURE_CLIENT_SECRET", CLIENT_SECRET)
    monkeypatch.setenv("AZURE_API_KEY", KEY)  # the key wins over an Entra credential in the environment
    _call(api_base)
    assert emulator.requests[-1].headers["api-key"] == KEY
    assert entra.token_requests == []


# --------------------------------------------------------------------------- errors


def test_bad_client_secret_is_a_clear_error_without_the_secret(entra: EntraEmulator, emulator: Emulator, api_base: str) -> None:
    wrong = "Wr0ng-secret-value-123"
    with pytest.raises(AuthenticationError) as info:
        _call(api_base, tenant_id=TENANT, client_id=CLIENT_ID, client_secret=wrong)
    message = str(info.value)
    assert "AADSTS7000215" in message and "ClientSecretCredential" in message
    assert wrong not in message and wrong not in repr(info.value)
    assert info.value.status_code == 401
    assert emulator.requests == []  # nothing sent upstream without a token


def test_unknown_tenant_and_bad_password(entra: EntraEmulator, api_base: str) -> None:
    # MSAL reads the tenant's discovery document first; Entra answers AADSTS90002 there
    with pytest.raises(AuthenticationError, match=r"authority configuration .*/no-such-tenant"):
        _call(api_base, tenant_id="no-such-tenant", client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
    with pytest.raises(AuthenticationError, match="AADSTS50126") as info:
        _call(api_base, client_id=USER_CLIENT_ID, azure_username=USERNAME, azure_password="not-the-password")
    assert "not-the-password" not in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}, "tenant_id"),
        ({"tenant_id": TENANT, "client_secret": CLIENT_SECRET}, "client_id"),
        ({"client_id": USER_CLIENT_ID, "azure_password": PASSWORD}, "azure_username"),
        ({"azure_username": USERNAME, "azure_password": PASSWORD}, "client_id"),
    ],
)
def test_missing_field_is_named(entra: EntraEmulator, api_base: str, kwargs: dict[str, str], field: str) -> None:
    with pytest.raises(AuthenticationError, match=rf"needs {field} \(or the AZURE_"):
        _call(api_base, **kwargs)
    assert entra.token_requests == []


def test_two_kinds_of_credential_are_an_error(entra: EntraEmulator, api_base: str) -> None:
    with pytest.raises(AuthenticationError, match="Pass only one of") as info:
        _call(api_base, api_key=KEY, tenant_id=TENANT, client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
    assert "api_key" in str(info.value) and "client_secret" in str(info.value)
    assert KEY not in str(info.value) and CLIENT_SECRET not in str(info.value)


def test_default_credential_with_nothing_to_find_names_what_it_tried(entra: EntraEmulator, api_base: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # No environment credential, no workload identity; managed identity (IMDS) is unreachable
    # and no Azure CLI is installed here, so every member of the chain reports unavailable.
    monkeypatch.setattr(modelyard, "enable_azure_ad_token_refresh", True)
    monkeypatch.setenv("PATH", "/nonexistent")  # no `az`, `azd` or `pwsh` to run
    with pytest.raises(AuthenticationError) as info:
        _call(api_base)
    message = str(info.value)
    assert "DefaultAzureCredential" in message
    assert "EnvironmentCredential" in message and "ManagedIdentityCredential" in message
    assert entra.token_requests == []


def test_plugin_module_imports_no_azure_sdk() -> None:
    import subprocess
    import sys

    code = "import sys, modelyard_azure_auth.plugin; print(sorted(m for m in sys.modules if m.startswith(('azure', 'msal'))))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_entra_outage_during_refresh_keeps_the_valid_token(
    entra: EntraEmulator, emulator: Emulator, api_base: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from modelyard_azure_auth.entra import CredentialSpec, token_source

    _call(api_base, tenant_id=TENANT, client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
    first = _bearer(emulator)
    spec = CredentialSpec("client_secret", tenant_id=TENANT, client_id=CLIENT_ID, secret=CLIENT_SECRET)
    source = token_source(spec, COGNITIVE_SCOPE)
    source._refresh_at = 0.0  # the token is now due for refresh (it is still valid for an hour)
    for name in ("HTTPS_PROXY", "https_proxy"):  # Entra ID becomes unreachable
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    with caplog.at_level(logging.WARNING, "modelyard.azure_auth"):
        _call(api_base, tenant_id=TENANT, client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
        assert _bearer(emulator) == first
        assert source.wait_idle(60)  # the refresh runs in the background, not in the call
    assert "refresh failed" in caplog.text and "could not be reached" in caplog.text
    assert entra.token_request_count == 1


def test_default_credential_with_identity_from_parameters(
    entra: EntraEmulator, emulator: Emulator, api_base: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # AKS sets only the token file here; the proxy config names the workload identity to use
    token_file = tmp_path / "token"
    token_file.write_text(entra.federated_token(WORKLOAD_SUBJECT))
    monkeypatch.setenv("AZURE_FEDERATED_TOKEN_FILE", str(token_file))
    _call(api_base, tenant_id=TENANT, client_id=CLIENT_ID, enable_azure_ad_token_refresh=True)
    assert entra.validate(_bearer(emulator))
    [req] = entra.token_requests
    assert (req.tenant, req.client_id, req.client_auth) == (TENANT, CLIENT_ID, "federated")


def test_empty_secret_is_named_not_sent(entra: EntraEmulator, api_base: str) -> None:
    with pytest.raises(AuthenticationError, match="needs client_secret") as info:
        _call(api_base, tenant_id=TENANT, client_id=CLIENT_ID, client_secret="")
    assert info.value.param == "client_secret"
    with pytest.raises(AuthenticationError, match="needs client_certificate_path"):
        _call(api_base, tenant_id=TENANT, client_id=CLIENT_ID, client_certificate_path="")
    assert entra.token_requests == []


def test_stream_after_revocation_gets_a_fresh_token(entra: EntraEmulator, emulator: Emulator, api_base: str) -> None:
    kw = {"tenant_id": TENANT, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
    _call(api_base, **kw)
    entra.revoke_all()
    stream = _call(api_base, stream=True, **kw)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)  # type: ignore[attr-defined]
    assert text.endswith("You said: hello")
    assert entra.token_request_count == 2 and len(emulator.requests) == 3
