"""The proxy's wire format: every kind of bad input gets its status and OpenAI's error JSON."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from modelyard.testing import KEY, Emulator

from .conftest import MASTER_KEY, azure, running_proxy

AUTH = {"Authorization": f"Bearer {MASTER_KEY}"}
GOOD = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hello"}]}


def assert_error(r: httpx.Response, status: int, *, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"]
    if param is not None:
        assert error["param"] == param
    if code is not None:
        assert error["code"] == code
    assert KEY not in r.text and MASTER_KEY not in r.text
    return error  # type: ignore[no-any-return]


@pytest.fixture
def http(proxy: Any) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=proxy.url, timeout=30) as c:
        yield c


def test_each_bad_input_then_a_good_request(http: httpx.Client) -> None:
    url = "/v1/chat/completions"
    assert_error(http.post(url, content=b'{"model": "gpt-4o", "messages": [', headers=AUTH), 400, code="invalid_json")
    assert_error(http.post(url, content=b"[1, 2]", headers=AUTH), 400, code="invalid_json")
    err = assert_error(http.post(url, json={**GOOD, "temperature": "hot"}, headers=AUTH), 400, param="temperature")
    assert "temperature" in err["message"]
    assert_error(http.post(url, json={**GOOD, "max_tokens": "ten"}, headers=AUTH), 400, param="max_tokens")
    assert_error(http.post(url, json={**GOOD, "messages": "hello"}, headers=AUTH), 400, param="messages")
    assert_error(http.post(url, json={**GOOD, "messages": [{"content": "no role"}]}, headers=AUTH), 400, param="messages[0].role")
    assert_error(http.post(url, json={**GOOD, "stream": "yes"}, headers=AUTH), 400, param="stream")
    assert_error(http.post(url, json={**GOOD, "model": 4}, headers=AUTH), 400, param="model")
    assert_error(http.post(url, json={"model": "gpt-4o"}, headers=AUTH), 400, param="messages")
    assert_error(http.post(url, json={"messages": GOOD["messages"]}, headers=AUTH), 400, param="model")
    # a client cannot redirect the call or swap the credential
    assert_error(http.post(url, json={**GOOD, "api_base": "http://127.0.0.1:1"}, headers=AUTH), 400, param="api_base")
    assert_error(http.post(url, json={**GOOD, "api_key": "mine"}, headers=AUTH), 400, param="api_key")
    # unknown model: 404 naming it, listing the public names, and no secret
    err = assert_error(http.post(url, json={**GOOD, "model": "gpt-9"}, headers=AUTH), 404, param="model", code="model_not_found")
    assert "gpt-9" in err["message"] and "gpt-4o-mini" in err["message"]
    # body over the limit (0.05 MB in this config): with a content-length, and chunked without one
    huge = {**GOOD, "messages": [{"role": "user", "content": "x" * 200_000}]}
    assert_error(http.post(url, json=huge, headers=AUTH), 413, code="request_too_large")
    chunks = (b"x" * 8192 for _ in range(40))
    assert_error(http.post(url, content=chunks, headers=AUTH), 413, code="request_too_large")
    # keys
    assert_error(http.post(url, json=GOOD), 401, code="invalid_api_key")
    assert_error(http.post(url, json=GOOD, headers={"Authorization": "Bearer sk-wrong"}), 401)
    assert_error(http.post(url, json=GOOD, headers={"api-key": MASTER_KEY[:-1]}), 401)
    assert_error(http.post(url, json=GOOD, headers={"Authorization": MASTER_KEY}), 401)
    # unknown path and wrong method
    assert_error(http.get("/v1/nothing", headers=AUTH), 404)
    assert_error(http.get(url, headers=AUTH), 405)
    # ... and the proxy still serves
    for headers in (AUTH, {"api-key": MASTER_KEY}, {"x-api-key": MASTER_KEY}):
        r = http.post(url, json=GOOD, headers=headers)
        assert r.status_code == 200, r.text
        assert r.json()["choices"][0]["message"]["content"].endswith("You said: hello")


def test_health_endpoints(http: httpx.Client, emulator: Emulator) -> None:
    assert http.get("/health/liveliness").json() == "I'm alive!"
    assert http.get("/health/readiness").json()["status"] == "healthy"
    assert_error(http.get("/health"), 401)
    emulator.deployments["gpt-4o-mini"].faults.script = [500]
    r = http.get("/health", headers=AUTH)
    assert r.status_code == 200
    body = r.json()
    assert body["healthy_count"] == 3 and body["unhealthy_count"] == 1
    (bad,) = body["unhealthy_endpoints"]
    assert bad["model_name"] == "gpt-4o-mini" and "500" in bad["error"]
    assert {e["model_name"] for e in body["healthy_endpoints"]} == {"gpt-4o", "tools-model", "tiny"}
    assert KEY not in r.text and MASTER_KEY not in r.text and "api_key" not in r.text


def test_access_log_is_json_without_secrets(http: httpx.Client, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="modelyard.proxy.access"):
        assert http.post("/chat/completions", json=GOOD, headers={**AUTH, "x-request-id": "req-42"}).status_code == 200
        assert http.post("/chat/completions", json={**GOOD, "model": "nope"}, headers=AUTH).status_code == 404
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "modelyard.proxy.access"]
    ok, missing = lines[-2], lines[-1]
    assert ok["request_id"] == "req-42" and ok["status"] == 200 and ok["model"] == "gpt-4o"
    assert ok["deployment"] == "gpt-4o-a" and ok["latency_ms"] > 0
    assert missing["status"] == 404 and missing["error"] == "model_not_found"
    assert all(KEY not in r.getMessage() and MASTER_KEY not in r.getMessage() for r in caplog.records)


def test_failover_to_another_deployment(api_base: str, emulator: Emulator) -> None:
    config = {
        "model_list": [
            # `order`: a is tried first, so the failover happens (random picks could all land on b)
            {"model_name": "pool", "litellm_params": {**azure(api_base, "gpt-4o"), "order": 1}, "model_info": {"id": "a"}},
            {"model_name": "pool", "litellm_params": {**azure(api_base, "gpt-4o-mini"), "order": 2}, "model_info": {"id": "b"}},
        ],
        "router_settings": {"num_retries": 1},
    }
    emulator.deployments["gpt-4o"].faults.error_rate = 1.0  # deployment a always answers 503
    with running_proxy(config) as proxy, httpx.Client(base_url=proxy.url, headers=AUTH) as http:
        for _ in range(6):
            r = http.post("/v1/chat/completions", json={**GOOD, "model": "pool"})
            assert r.status_code == 200, r.text
            assert "This is gpt-4o-mini" in r.json()["choices"][0]["message"]["content"]
    tried = {req.path.split("/")[3] for req in emulator.requests}
    assert tried == {"gpt-4o", "gpt-4o-mini"}


def test_no_failover_without_retries(api_base: str, emulator: Emulator) -> None:
    config = {"model_list": [{"model_name": "one", "litellm_params": azure(api_base, "gpt-4o")}],
              "litellm_settings": {"num_retries": 0}}  # fmt: skip
    emulator.deployments["gpt-4o"].faults.script = [503, 503]
    with running_proxy(config) as proxy, httpx.Client(base_url=proxy.url, headers=AUTH) as http:
        assert_error(http.post("/v1/chat/completions", json={**GOOD, "model": "one"}), 503)
    assert len(emulator.requests) == 1


def test_load_is_shared(api_base: str, emulator: Emulator) -> None:
    config = {"model_list": [
        {"model_name": "pool", "litellm_params": azure(api_base, "gpt-4o", rpm=100)},
        {"model_name": "pool", "litellm_params": azure(api_base, "gpt-4o-mini", rpm=100)},
        {"model_name": "pool", "litellm_params": azure(api_base, "chatgpt-v-2", weight=0)},
    ]}  # fmt: skip
    with running_proxy(config) as proxy, httpx.Client(base_url=proxy.url, headers=AUTH) as http:
        for _ in range(40):
            assert http.post("/v1/chat/completions", json={**GOOD, "model": "pool"}).status_code == 200
    used = [req.path.split("/")[3] for req in emulator.requests]
    assert set(used) == {"gpt-4o", "gpt-4o-mini"}  # weight 0 never picked while others are healthy


def test_defaults_from_litellm_params_and_client_override(api_base: str, emulator: Emulator) -> None:
    config = {"model_list": [{"model_name": "m", "litellm_params": azure(api_base, "gpt-4o", temperature=0.1, max_tokens=7)}]}
    with running_proxy(config) as proxy, httpx.Client(base_url=proxy.url, headers=AUTH) as http:
        assert http.post("/v1/chat/completions", json={**GOOD, "model": "m", "temperature": 0.9}).status_code == 200
    body = emulator.requests[-1].body
    assert body["temperature"] == 0.9 and body["max_tokens"] == 7


def test_text_completions_route(api_base: str, emulator: Emulator) -> None:
    from modelyard.testing import Deployment

    emulator.add_deployment(Deployment("instruct", model="gpt-35-turbo-instruct"))
    config = {"model_list": [{"model_name": "instruct", "litellm_params": azure(api_base, "instruct", model="azure_text/instruct")}]}
    with running_proxy(config) as proxy, httpx.Client(base_url=proxy.url, headers=AUTH) as http:
        r = http.post("/v1/completions", json={"model": "instruct", "prompt": "Say hi", "max_tokens": 5})
        assert r.status_code == 200, r.text
        assert r.json()["object"] == "text_completion" and r.json()["choices"][0]["text"]
        assert emulator.requests[-1].path == "/openai/deployments/instruct/completions"
        stream = http.post("/completions", json={"model": "instruct", "prompt": "Say hi", "stream": True})
        events = [line[6:] for line in stream.text.splitlines() if line.startswith("data: ")]
        assert events[-1] == "[DONE]" and json.loads(events[0])["object"] == "text_completion"
        az = http.post("/openai/deployments/instruct/completions?api-version=2024-10-21", json={"prompt": "x"})
        assert az.status_code == 200, az.text
        assert_error(http.post("/v1/completions", json={"model": "instruct"}), 400, param="prompt")


def test_dev_mode_without_key_needs_no_auth(api_base: str, emulator: Emulator) -> None:
    config = {"model_list": [{"model_name": "m", "litellm_params": azure(api_base, "gpt-4o")}]}
    with running_proxy(config, master_key=None, dev=True) as proxy:
        assert httpx.post(f"{proxy.url}/chat/completions", json={**GOOD, "model": "m"}).status_code == 200


def test_misconfigured_deployment_is_a_500_naming_the_setting(emulator: Emulator) -> None:
    config = {"model_list": [{"model_name": "m", "litellm_params": {"model": "azure/gpt-4o", "api_key": KEY}}]}
    with running_proxy(config) as proxy:
        r = httpx.post(f"{proxy.url}/v1/chat/completions", json={**GOOD, "model": "m"}, headers=AUTH)
    error = assert_error(r, 500)
    assert "api_base" in error["message"] and "AZURE_API_BASE" in error["message"]
    with running_proxy(config) as proxy:
        r2 = httpx.get(f"{proxy.url}/health", headers=AUTH)
    assert r2.json()["unhealthy_count"] == 1 and KEY not in r2.text
