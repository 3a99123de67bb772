"""Issue 22, bug 11: upstream credentials never reach clients or logs.

Every kind of secret is configured the way a Kubernetes secret mounted from a file arrives (with
a trailing newline), every upstream URL carries a ``user:password@`` part, and every endpoint
is driven, on both HTTP backends; then every response (body and headers) and every log line is
scanned for the secrets.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import modelyard
import pytest
from modelyard.errors import ConfigError
from modelyard.proxy import parse_config
from modelyard.testing import (
    AD_TOKEN,
    KEY,
    REDIS_PASSWORD,
    Deployment,
    Emulator,
    RedisServer,
    batch_jsonl,
)
from modelyard.testing.entra import EntraEmulator
from modelyard.testing.pytest_plugin import CLIENT_ID, CLIENT_SECRET, TENANT

from .conftest import logged_text, running_proxy

MASTER = "sk-master-for-the-secrets-test-8c41d2"
USERINFO_PASSWORD = "basic-pass-7f3e19a2"
USERINFO = f"gateway-user:{USERINFO_PASSWORD}"


def _with_userinfo(url: str, userinfo: str = USERINFO) -> str:
    scheme, rest = url.split("://", 1)
    return f"{scheme}://{userinfo}@{rest}"


@pytest.fixture
def instruct(emulator: Emulator) -> Iterator[None]:
    emulator.add_deployment(Deployment("secrets-instruct", model="gpt-35-turbo-instruct"))
    yield
    emulator.deployments.pop("secrets-instruct", None)


def _config(api_base: str, backend: str, redis: RedisServer) -> dict[str, Any]:
    base = _with_userinfo(api_base)
    dead = _with_userinfo("http://127.0.0.1:1")  # nothing listens: a connection error names this URL
    common = {"api_base": base, "api_version": "2024-10-21"}
    return {
        "model_list": [
            {"model_name": "key", "litellm_params": {"model": "azure/gpt-4o", "api_key": KEY + "\n", **common}},
            {"model_name": "token", "litellm_params": {"model": "azure/gpt-4o-mini", "azure_ad_token": AD_TOKEN + "\n", **common}},
            {"model_name": "entra", "litellm_params": {"model": "azure/gpt-4o", "tenant_id": TENANT, "client_id": CLIENT_ID,
                                                        "client_secret": CLIENT_SECRET + "\n", **common}},
            {"model_name": "text", "litellm_params": {"model": "azure_text/secrets-instruct", "api_key": KEY + "\n", **common}},
            {"model_name": "dead", "litellm_params": {"model": "azure/gpt-4o", "api_key": KEY + "\n", "api_base": dead,
                                                       "api_version": "2024-10-21"}},
            {"model_name": "batch", "litellm_params": {"model": "azure/gpt-4o-mini", "api_key": KEY + "\n", **common},
             "model_info": {"mode": "batch"}},
        ],
        "router_settings": {"num_retries": 0, "redis_host": "127.0.0.1", "redis_port": redis.port,
                            "redis_password": REDIS_PASSWORD + "\n"},
        "general_settings": {"master_key": MASTER + "\n", "http_backend": backend},
    }  # fmt: skip


@pytest.mark.parametrize("backend", ["native", "aiohttp", "httpx"])
def test_secrets_never_reach_clients_or_logs(
    backend: str, api_base: str, emulator: Emulator, entra: EntraEmulator, instruct: None, redis_server: RedisServer,
    everything_logged: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    # Files and batches without balancing go to the provider named by the environment, as LiteLLM's proxy does.
    monkeypatch.setenv("AZURE_API_KEY", KEY + "\n")
    monkeypatch.setenv("AZURE_API_BASE", _with_userinfo(api_base))
    monkeypatch.setenv("AZURE_API_VERSION", "2024-10-21")
    config = parse_config(_config(api_base, backend, redis_server))
    master = config.general_settings.master_key
    assert master is not None and master.get_secret_value() == MASTER  # the trailing newline is dropped at load
    seen: list[str] = []

    with running_proxy(_config(api_base, backend, redis_server), master_key=MASTER) as proxy:
        client = httpx.Client(base_url=proxy.url, headers={"Authorization": f"Bearer {MASTER}"}, timeout=60)

        def call(method: str, path: str, status: int = 200, **kwargs: Any) -> httpx.Response:
            r = client.request(method, path, **kwargs)
            seen.append(f"{r.status_code} {r.text} {json.dumps(dict(r.headers))}")
            assert r.status_code == status, (path, r.text)
            return r

        chat = {"messages": [{"role": "user", "content": "hello"}]}
        for model in ("key", "token", "entra"):
            call("POST", "/v1/chat/completions", json={"model": model, **chat})
            stream = call("POST", "/v1/chat/completions", json={"model": model, "stream": True, **chat})
            assert stream.text.rstrip().endswith("data: [DONE]")
        call("POST", "/v1/completions", json={"model": "text", "prompt": "hello"})
        dead = call("POST", "/v1/chat/completions", json={"model": "dead", **chat}, status=502)
        assert "127.0.0.1:1" in dead.json()["error"]["message"]  # the URL is named, without its userinfo
        emulator.deployments["gpt-4o"].faults.script = [500]
        call("POST", "/v1/chat/completions", json={"model": "key", **chat}, status=500)
        call("GET", "/v1/models")
        call("GET", "/v1/models/key")

        uploaded = call("POST", "/v1/files", files={"file": ("in.jsonl", batch_jsonl(2), "application/jsonl")},
                        data={"purpose": "batch"}).json()  # fmt: skip
        call("GET", "/v1/files")
        call("GET", f"/v1/files/{uploaded['id']}")
        call("GET", f"/v1/files/{uploaded['id']}/content")
        batch = call("POST", "/v1/batches", json={"input_file_id": uploaded["id"], "endpoint": "/chat/completions",
                                                  "completion_window": "24h"}).json()  # fmt: skip
        call("GET", f"/v1/batches/{batch['id']}")
        call("GET", "/v1/batches")
        call("POST", f"/v1/batches/{batch['id']}/cancel")
        call("GET", "/v1/files/file-does-not-exist", status=404)
        call("DELETE", f"/v1/files/{uploaded['id']}")

        health = call("GET", "/health").json()
        assert {e["model_name"] for e in health["healthy_endpoints"]} == {"key", "token", "entra", "text", "batch"}
        [sick] = health["unhealthy_endpoints"]
        assert sick["model_name"] == "dead" and "APIConnectionError" in sick["error"]
        assert all(e["api_base"].startswith("http://127.0.0.1:") for e in health["healthy_endpoints"])
        call("GET", "/health/liveliness")
        call("GET", "/health/readiness")
        call("GET", "/v1/models", status=401, headers={"Authorization": "Bearer wrong"})
        client.close()

    # The upstream got the credentials, without the newline.
    keys = {r.headers.get("api-key") for r in emulator.requests if "api-key" in r.headers}
    assert keys == {KEY}
    assert f"Bearer {AD_TOKEN}" in {r.headers.get("authorization") for r in emulator.requests}
    assert entra.issued  # the Entra deployment signed in with its secret

    logged = logged_text(everything_logged)
    assert '"path":"/health"' in logged  # the access log is in the scan
    secrets = [KEY, AD_TOKEN, CLIENT_SECRET, MASTER, REDIS_PASSWORD, USERINFO, USERINFO_PASSWORD, *entra.issued]
    for secret in secrets:
        assert secret not in logged, secret
        for shown in seen:
            assert secret not in shown, (secret, shown)


def test_inner_line_breaks_in_secrets_are_refused_without_the_value(
    api_base: str, emulator: Emulator, monkeypatch: pytest.MonkeyPatch, everything_logged: pytest.LogCaptureFixture
) -> None:
    injected = "k3y-part-one\r\nX-Injected: yes"
    for field in ("api_key", "azure_ad_token", "client_secret"):
        with pytest.raises(ConfigError) as caught:
            parse_config({"model_list": [{"model_name": "m", "litellm_params": {"model": "azure/m", field: injected}}]})
        assert caught.value.key == f"model_list[0].litellm_params.{field}"
        assert "k3y-part-one" not in str(caught.value) and "X-Injected" not in str(caught.value)
    with pytest.raises(ConfigError) as caught:
        parse_config({"general_settings": {"master_key": injected}})
    assert caught.value.key == "general_settings.master_key" and "k3y" not in str(caught.value)

    # At call time: a key read from the environment (files and batches without balancing).
    monkeypatch.setenv("AZURE_API_KEY", injected)
    monkeypatch.setenv("AZURE_API_BASE", api_base)
    config = {"model_list": [{"model_name": "m", "litellm_params": {"model": "azure/gpt-4o", "api_base": api_base,
                                                                     "api_key": KEY}}],
              "general_settings": {"max_request_size_mb": 1}}  # fmt: skip
    with running_proxy(config, master_key=MASTER) as proxy:
        r = httpx.get(f"{proxy.url}/v1/files", headers={"Authorization": f"Bearer {MASTER}"}, timeout=30)
    assert r.status_code >= 400 and "AZURE_API_KEY" in r.text, r.text
    assert "k3y-part-one" not in r.text and "X-Injected" not in r.text
    assert not emulator.requests  # nothing was sent
    logged = logged_text(everything_logged)
    assert "k3y-part-one" not in logged and "X-Injected" not in logged


def test_upstream_error_echo_is_scrubbed(api_base: str, emulator: Emulator) -> None:
    emulator.deployments["gpt-4o"].faults.echo_headers = True
    emulator.deployments["gpt-4o"].faults.script = [500, 500]
    config = {"model_list": [
        {"model_name": "key", "litellm_params": {"model": "azure/gpt-4o", "api_base": api_base, "api_key": KEY}},
        {"model_name": "token", "litellm_params": {"model": "azure/gpt-4o", "api_base": api_base,
                                                    "azure_ad_token": AD_TOKEN}},
    ], "router_settings": {"num_retries": 0}}  # fmt: skip
    with running_proxy(config, master_key=MASTER) as proxy:
        for model in ("key", "token"):
            r = httpx.post(f"{proxy.url}/v1/chat/completions", headers={"Authorization": f"Bearer {MASTER}"},
                           json={"model": model, "messages": [{"role": "user", "content": "hi"}]}, timeout=30)  # fmt: skip
            assert r.status_code == 500
            message = r.json()["error"]["message"]
            assert "Request headers" in message and "**********" in message  # the echo arrived, masked
            assert KEY not in r.text and AD_TOKEN not in r.text


@pytest.mark.parametrize("backend", ["httpx", "native", "aiohttp"])
async def test_header_with_a_line_break_is_refused_before_sending(backend: str, api_base: str, emulator: Emulator) -> None:
    """The last line of defence: the HTTP library would quote the value in its error (h11's
    "Illegal header value b'...'"); the transport refuses it first, naming only the header."""
    from modelyard.transport import Transport, set_transport

    transport = Transport(async_backend=backend)
    previous = set_transport(transport)
    try:
        with pytest.raises(ConfigError) as caught:
            await modelyard.acompletion(model="azure/gpt-4o", messages=[{"role": "user", "content": "hi"}],
                                        api_base=api_base, api_key=KEY, api_version="2024-10-21",
                                        extra_headers={"x-gateway-key": "gw-secret-2f9a\nX-Injected: 1"})  # fmt: skip
    finally:
        await transport.aclose()
        transport.close()
        set_transport(previous)
    assert caught.value.key == "x-gateway-key"
    assert "gw-secret" not in str(caught.value) and "X-Injected" not in str(caught.value)
    assert emulator.requests == []
