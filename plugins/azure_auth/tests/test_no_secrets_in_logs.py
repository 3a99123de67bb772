"""Secrets never reach logs, errors or reprs: capture every logger at DEBUG (modelyard,
azure.identity, azure.core, msal, urllib3 ...) through authenticated runs and scan it all."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from modelyard import acompletion, completion
from modelyard.errors import AuthenticationError
from modelyard.testing import Emulator
from modelyard.testing.entra import EntraEmulator
from modelyard.testing.pytest_plugin import (
    CLIENT_ID,
    CLIENT_SECRET,
    PASSWORD,
    TENANT,
    USER_CLIENT_ID,
    USERNAME,
    WORKLOAD_SUBJECT,
)
from modelyard.types import Connection

MESSAGES = [{"role": "user", "content": "hello"}]


def _everything_logged(caplog: pytest.LogCaptureFixture) -> str:
    parts = [caplog.text]
    for record in caplog.records:
        parts.append(record.getMessage())
        parts.append(repr(record.args))
        if record.exc_info and record.exc_info[1] is not None:
            parts.append(repr(record.exc_info[1]))
    return "\n".join(parts)


def test_no_secret_or_token_in_any_log(
    entra: EntraEmulator, emulator: Emulator, api_base: str, caplog: pytest.LogCaptureFixture,
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    import modelyard

    caplog.set_level(logging.DEBUG)  # the root: every logger that propagates
    for name in ("azure", "azure.identity", "azure.core", "msal", "urllib3", "httpx", "httpcore", "modelyard"):
        caplog.set_level(logging.DEBUG, logger=name)
    base = {"model": "azure/gpt-4o", "api_base": api_base, "api_version": "2024-10-21", "messages": MESSAGES}
    completion(**base, tenant_id=TENANT, client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
    completion(**base, client_id=USER_CLIENT_ID, azure_username=USERNAME, azure_password=PASSWORD)
    entra.revoke_all()  # a 401 and a refresh are logged too
    asyncio.run(acompletion(**base, tenant_id=TENANT, client_id=CLIENT_ID, client_secret=CLIENT_SECRET))
    federated = entra.federated_token(WORKLOAD_SUBJECT)
    (tmp_path / "token").write_text(federated)
    monkeypatch.setenv("AZURE_TENANT_ID", TENANT)
    monkeypatch.setenv("AZURE_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("AZURE_FEDERATED_TOKEN_FILE", str(tmp_path / "token"))
    monkeypatch.setattr(modelyard, "enable_azure_ad_token_refresh", True)
    completion(**base)
    wrong = "Wr0ng-but-still-secret-77"
    with pytest.raises(AuthenticationError) as failed:
        completion(**base, tenant_id=TENANT, client_id=CLIENT_ID, client_secret=wrong)

    logged = _everything_logged(caplog)
    assert "azure.identity" in logged or "msal" in logged  # the libraries did log: the scan means something
    assert len(entra.issued) >= 4
    secrets = [CLIENT_SECRET, PASSWORD, wrong, federated, *entra.issued]
    for secret in secrets:
        assert secret not in logged
        assert secret not in str(failed.value) and secret not in repr(failed.value)
    # the bearer tokens' signatures alone (a token split across a log line would still leak them)
    for token in entra.issued:
        assert token.rsplit(".", 1)[1] not in logged


def test_reprs_hide_secrets(entra: EntraEmulator) -> None:
    from modelyard_azure_auth.entra import CredentialSpec, EntraToken, token_source

    conn = Connection(tenant_id=TENANT, client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
                      azure_username=USERNAME, azure_password=PASSWORD)  # fmt: skip
    spec = CredentialSpec("client_secret", tenant_id=TENANT, client_id=CLIENT_ID, secret=CLIENT_SECRET)
    source = token_source(spec, "https://cognitiveservices.azure.com/.default")
    source.token()
    for text in (repr(conn), str(conn), repr(spec), repr(source), repr(EntraToken(source)), spec.key):
        assert CLIENT_SECRET not in text and PASSWORD not in text
        assert all(token not in text for token in entra.issued)
