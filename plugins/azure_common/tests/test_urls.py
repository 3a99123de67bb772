"""Azure URLs, written once for every Azure plugin: deployment-scoped and resource-scoped, classic and v1."""

from __future__ import annotations

import pytest
from modelyard.errors import ConfigError
from modelyard.types import Connection
from modelyard_azure_common.urls import DEFAULT_API_VERSION, deployment_url, resource_url

BASE = "https://res.openai.azure.com"


@pytest.mark.parametrize("suffix", ["", "/", "/openai", "/openai/v1/"])
def test_classic_deployment_url(suffix: str) -> None:
    url, query, in_body = deployment_url(Connection(api_base=BASE + suffix, api_version="2024-10-21"), "my dep", "/embeddings")
    assert (url, query, in_body) == (f"{BASE}/openai/deployments/my%20dep/embeddings", {"api-version": "2024-10-21"}, False)


@pytest.mark.parametrize(("version", "query"), [("v1", {}), ("latest", {}), ("preview", {"api-version": "preview"})])
def test_v1_puts_the_deployment_in_the_body(version: str, query: dict[str, str]) -> None:
    url, q, in_body = deployment_url(Connection(api_base=BASE, api_version=version), "d", "/embeddings")
    assert (url, q, in_body) == (f"{BASE}/openai/v1/embeddings", query, True)


def test_base_url_is_used_verbatim() -> None:
    conn = Connection(base_url=f"{BASE}/openai/deployments/d/extensions", api_version="2024-10-21")
    assert deployment_url(conn, "d", "/chat/completions")[0] == f"{BASE}/openai/deployments/d/extensions/chat/completions"
    assert resource_url(conn, "/files") == (f"{BASE}/openai/files", {"api-version": "2024-10-21"})


def test_resource_url_and_default_version(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AZURE_API_VERSION", raising=False)
    monkeypatch.delenv("OPENAI_API_VERSION", raising=False)
    assert resource_url(Connection(api_base=BASE), "/batches/b1") == (f"{BASE}/openai/batches/b1", {"api-version": DEFAULT_API_VERSION})
    assert resource_url(Connection(api_base=BASE, api_version="v1"), "/files") == (f"{BASE}/openai/v1/files", {})


def test_no_endpoint_names_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AZURE_API_BASE", "AZURE_OPENAI_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConfigError) as info:
        deployment_url(Connection(), "d", "/embeddings")
    assert info.value.key == "api_base"


def test_a_url_worked_out_once_follows_the_environment_and_hands_out_its_own_query(monkeypatch: pytest.MonkeyPatch) -> None:
    # deployment_url keeps what it worked out per call settings (issue 17): the endpoint and
    # version the environment gives are part of that, and each caller gets a query it may change.
    conn = Connection(api_version="2024-10-21")
    monkeypatch.delenv("AZURE_OPENAI_ENDPOINT", raising=False)
    monkeypatch.setenv("AZURE_API_BASE", "https://one.openai.azure.com")
    first = deployment_url(conn, "d", "/chat/completions")
    assert first[0] == "https://one.openai.azure.com/openai/deployments/d/chat/completions"
    first[1]["api-version"] = "changed by a caller"
    monkeypatch.setenv("AZURE_API_BASE", "https://two.openai.azure.com/openai")
    assert deployment_url(conn, "d", "/chat/completions") == (
        "https://two.openai.azure.com/openai/deployments/d/chat/completions", {"api-version": "2024-10-21"}, False,
    )  # fmt: skip
    monkeypatch.setenv("AZURE_API_VERSION", "v1")
    assert deployment_url(Connection(), "d", "/chat/completions") == ("https://two.openai.azure.com/openai/v1/chat/completions", {}, True)
    monkeypatch.delenv("AZURE_API_BASE")
    with pytest.raises(ConfigError):
        deployment_url(Connection(api_version="2024-10-21"), "d", "/chat/completions")
