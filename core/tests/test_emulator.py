"""The emulator on its own, driven with raw httpx: it must behave like Azure where clients can tell."""

from __future__ import annotations

import json

import httpx
import pytest
from modelyard.testing import KEY, Deployment, Emulator, EmulatorServer, Faults

CHAT = {"messages": [{"role": "user", "content": "hello"}]}


@pytest.fixture
def client(api_base: str, emulator: Emulator):
    with httpx.Client(base_url=api_base) as c:
        yield c


def post(client: httpx.Client, path: str = "/openai/deployments/gpt-4o/chat/completions", *, version: str | None = "2024-10-21", headers=None, **kw):
    params = {"api-version": version} if version else {}
    return client.post(path, params=params, headers={"api-key": KEY} if headers is None else headers, **kw)


def test_reply_shape_and_headers(client: httpx.Client) -> None:
    r = post(client, json=CHAT)
    assert r.status_code == 200
    body = r.json()
    assert body["object"] == "chat.completion" and body["model"] == "gpt-4o-2024-08-06"
    assert body["choices"][0]["message"]["content"] == "This is gpt-4o on the modelyard emulator. You said: hello"
    assert body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"] + body["usage"]["completion_tokens"]
    assert r.headers["apim-request-id"] and r.headers["x-ratelimit-remaining-requests"]


@pytest.mark.parametrize(("version", "status"), [(None, 404), ("2099-01-01", 404), ("v1", 404), ("2024-10-21", 200), ("2025-04-01-preview", 200)])
def test_classic_path_checks_api_version(client: httpx.Client, version, status) -> None:
    assert post(client, version=version, json=CHAT).status_code == status


@pytest.mark.parametrize(("version", "status"), [(None, 200), ("v1", 200), ("preview", 200), ("2024-10-21", 400)])
def test_v1_path_versions(client: httpx.Client, version, status) -> None:
    r = post(client, "/openai/v1/chat/completions", version=version, json={**CHAT, "model": "gpt-4o"})
    assert r.status_code == status


def test_v1_accepts_key_as_bearer_classic_does_not(client: httpx.Client) -> None:
    bearer = {"authorization": f"Bearer {KEY}"}
    assert post(client, "/openai/v1/chat/completions", version=None, headers=bearer, json={**CHAT, "model": "gpt-4o"}).status_code == 200
    r = post(client, headers=bearer, json=CHAT)
    assert r.status_code == 401 and r.json()["statusCode"] == 401


def test_bad_key_and_no_key(client: httpx.Client) -> None:
    for headers in ({"api-key": "wrong"}, {}):
        r = post(client, headers=headers, json=CHAT)
        assert r.status_code == 401 and r.json()["error"]["code"] == "401"


def test_api_key_preferred_when_both_sent(client: httpx.Client) -> None:
    assert post(client, headers={"api-key": KEY, "authorization": "Bearer junk"}, json=CHAT).status_code == 200


def test_deployment_not_found(client: httpx.Client) -> None:
    r = post(client, "/openai/deployments/nope/chat/completions", json=CHAT)
    assert r.status_code == 404 and r.json()["error"]["code"] == "DeploymentNotFound"


def test_unknown_path(client: httpx.Client) -> None:
    assert post(client, "/openai/deployments/gpt-4o/teleport").status_code == 404


def test_malformed_json_and_missing_messages(client: httpx.Client) -> None:
    assert post(client, content=b"{not json", headers={"api-key": KEY, "content-type": "application/json"}).status_code == 400
    r = post(client, json={"temperature": 1})
    assert r.status_code == 400 and r.json()["error"]["param"] == "messages"


def test_stream_opens_with_azure_annotation_chunk(client: httpx.Client) -> None:
    r = post(client, json={**CHAT, "stream": True, "stream_options": {"include_usage": True}})
    assert r.headers["content-type"].startswith("text/event-stream")
    events = [line[6:] for line in r.text.split("\n") if line.startswith("data: ")]
    first = json.loads(events[0])
    assert first["choices"] == [] and first["id"] == "" and first["prompt_filter_results"]
    assert events[-1] == "[DONE]"
    usage = json.loads(events[-2])
    assert usage["choices"] == [] and usage["usage"]["total_tokens"] > 0


def test_quota_gives_429_with_retry_after_and_remaining_headers() -> None:
    emulator = Emulator([Deployment("tiny", rpm=2, window=30)], api_keys=[KEY])
    with EmulatorServer(emulator) as server, httpx.Client(base_url=server.url) as c:
        r1 = post(c, "/openai/deployments/tiny/chat/completions", json=CHAT)
        r2 = post(c, "/openai/deployments/tiny/chat/completions", json=CHAT)
        r3 = post(c, "/openai/deployments/tiny/chat/completions", json=CHAT)
    assert (r1.status_code, r2.status_code, r3.status_code) == (200, 200, 429)
    assert r1.headers["x-ratelimit-remaining-requests"] == "1"
    assert r2.headers["x-ratelimit-remaining-requests"] == "0"
    assert 1 <= int(r3.headers["retry-after"]) <= 30
    assert "call rate limit" in r3.json()["error"]["message"]


def test_scripted_faults_then_service(client: httpx.Client, emulator: Emulator) -> None:
    emulator.deployments["gpt-4o"].faults = Faults(script=[429, 500], retry_after=3)
    r = post(client, json=CHAT)
    assert r.status_code == 429 and r.headers["retry-after"] == "3" and r.headers["retry-after-ms"] == "3000"
    assert post(client, json=CHAT).status_code == 500
    assert post(client, json=CHAT).status_code == 200


def test_error_rate_is_seeded_and_roughly_right() -> None:
    def run() -> list[int]:
        emulator = Emulator([Deployment("d", faults=Faults(error_rate=0.5, error_status=503))], api_keys=[KEY], seed=42)
        with EmulatorServer(emulator) as server, httpx.Client(base_url=server.url) as c:
            return [post(c, "/openai/deployments/d/chat/completions", json=CHAT).status_code for _ in range(40)]

    first = run()
    assert first == run()  # deterministic for a seed
    assert 8 <= first.count(503) <= 32


def test_requests_are_recorded(client: httpx.Client, emulator: Emulator) -> None:
    post(client, json=CHAT, headers={"api-key": KEY, "x-custom": "1"})
    [seen] = emulator.requests
    assert seen.path == "/openai/deployments/gpt-4o/chat/completions"
    assert seen.query == {"api-version": "2024-10-21"} and seen.headers["x-custom"] == "1" and seen.body == CHAT


def test_cli_serves_the_emulator() -> None:
    import socket
    import subprocess
    import sys
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "modelyard.cli", "emulator", "--port", str(port), "--api-key", "k1", "--deployment", "dep-a"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                r = httpx.post(
                    f"http://127.0.0.1:{port}/openai/deployments/dep-a/chat/completions",
                    params={"api-version": "2024-10-21"}, headers={"api-key": "k1"}, json=CHAT,
                )  # fmt: skip
                break
            except httpx.ConnectError:
                assert time.monotonic() < deadline, "emulator did not start"
                time.sleep(0.1)
        assert r.status_code == 200 and "dep-a" in r.json()["choices"][0]["message"]["content"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
