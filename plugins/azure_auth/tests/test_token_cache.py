"""The token cache's bookkeeping, without a network: identity keys and bounds."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from modelyard_azure_auth import entra as cache
from modelyard_azure_auth.entra import CredentialSpec, clear_token_cache, token_source

SCOPE = "https://cognitiveservices.azure.com/.default"


@pytest.fixture(autouse=True)
def empty_cache() -> Iterator[None]:
    clear_token_cache()
    yield
    clear_token_cache()


def test_key_depends_on_every_input_and_hides_the_secret() -> None:
    base = CredentialSpec("client_secret", tenant_id="t", client_id="c", secret="s3cr3t-value")
    variants = [
        CredentialSpec("client_secret", tenant_id="t", client_id="c", secret="other-secret"),
        CredentialSpec("client_secret", tenant_id="t2", client_id="c", secret="s3cr3t-value"),
        CredentialSpec("client_secret", tenant_id="t", client_id="c2", secret="s3cr3t-value"),
        CredentialSpec("client_secret", tenant_id="t", client_id="c", secret="s3cr3t-value", authority="login.microsoftonline.us"),
        CredentialSpec("certificate", tenant_id="t", client_id="c", secret="s3cr3t-value", certificate_path="/a.pem"),
    ]
    keys = {base.key, *(v.key for v in variants)}
    assert len(keys) == 6
    assert base.key == CredentialSpec("client_secret", tenant_id="t", client_id="c", secret="s3cr3t-value").key
    assert "s3cr3t" not in base.key and "s3cr3t" not in repr(base)


def test_one_source_per_credential_and_scope() -> None:
    spec = CredentialSpec("client_secret", tenant_id="t", client_id="c", secret="s")
    assert token_source(spec, SCOPE) is token_source(CredentialSpec("client_secret", tenant_id="t", client_id="c", secret="s"), SCOPE)
    assert token_source(spec, SCOPE) is not token_source(spec, "https://cognitiveservices.azure.us/.default")


def test_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cache, "MAX_SOURCES", 8)
    first = token_source(CredentialSpec("client_secret", tenant_id="t", client_id="c", secret="0"), SCOPE)
    for i in range(1, 20):
        token_source(CredentialSpec("client_secret", tenant_id="t", client_id="c", secret=str(i)), SCOPE)
    assert len(cache._SOURCES) == 8
    again = token_source(CredentialSpec("client_secret", tenant_id="t", client_id="c", secret="0"), SCOPE)
    assert again is not first  # the oldest was dropped
