"""The emulator's Foundry Claude endpoint is as strict as the real one, in Anthropic's error shape."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from modelyard.testing import KEY, Emulator
from modelyard.testing.emulator import Deployment

HEADERS = {"x-api-key": KEY, "anthropic-version": "2023-06-01"}
BODY: dict[str, Any] = {"model": "claude-sonnet-4-5", "max_tokens": 100, "messages": [{"role": "user", "content": "Hi"}]}


@pytest.fixture
def url(api_base: str, claude_deployment: Deployment) -> str:
    return f"{api_base}/anthropic/v1/messages"


def _refused(response: httpx.Response, status: int, kind: str) -> str:
    assert response.status_code == status
    body = response.json()
    assert set(body) == {"type", "error"} and body["type"] == "error"
    assert body["error"]["type"] == kind
    message: str = body["error"]["message"]
    return message


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"max_tokens": None}, "max_tokens: Field required"),
        ({"messages": [{"role": "system", "content": "x"}, {"role": "user", "content": "Hi"}]}, 'Unexpected role "system"'),
        ({"temperature": 1.5}, "temperature"),
        ({"tools": [{"name": "t"}]}, "tools.0.input_schema"),
        ({"thinking": {"type": "enabled", "budget_tokens": 500}}, "budget_tokens"),
        ({"thinking": {"type": "enabled", "budget_tokens": 2000}}, "greater than `thinking.budget_tokens`"),
        ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}, "messages.0.content.0.type"),
    ],
)
def test_invalid_requests_are_400s(url: str, change: dict[str, Any], fragment: str) -> None:
    body = {k: v for k, v in {**BODY, **change}.items() if v is not None}
    message = _refused(httpx.post(url, json=body, headers=HEADERS), 400, "invalid_request_error")
    assert fragment in message


def test_anthropic_version_is_required(url: str) -> None:
    message = _refused(httpx.post(url, json=BODY, headers={"x-api-key": KEY}), 400, "invalid_request_error")
    assert "anthropic-version" in message


def test_credentials(url: str) -> None:
    _refused(httpx.post(url, json=BODY, headers={**HEADERS, "x-api-key": "nope"}), 401, "authentication_error")
    _refused(httpx.post(url, json=BODY, headers={"anthropic-version": "2023-06-01"}), 401, "authentication_error")
    assert httpx.post(url, json=BODY, headers={"api-key": KEY, "anthropic-version": "2023-06-01"}).status_code == 200


def test_unknown_or_non_claude_deployment_is_404(url: str) -> None:
    _refused(httpx.post(url, json={**BODY, "model": "gpt-4o"}, headers=HEADERS), 404, "not_found_error")
    _refused(httpx.post(url, json={**BODY, "model": "nope"}, headers=HEADERS), 404, "not_found_error")


def test_reply_and_tool_use(url: str, emulator: Emulator) -> None:
    r = httpx.post(url, json=BODY, headers=HEADERS).json()
    assert r["type"] == "message" and r["content"] == [{"type": "text", "text": "Claude heard: Hi"}]
    assert r["stop_reason"] == "end_turn" and r["usage"]["input_tokens"] > 0
    tool = {"name": "lookup", "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}}
    r = httpx.post(url, json={**BODY, "tools": [tool]}, headers=HEADERS).json()
    [block] = r["content"]
    assert block["type"] == "tool_use" and block["name"] == "lookup" and block["id"].startswith("toolu_")
    assert r["stop_reason"] == "tool_use"
    assert emulator.requests[-1].body == {**BODY, "tools": [tool]}


def test_the_full_sse_event_sequence(url: str) -> None:
    body = {**BODY, "max_tokens": 3000, "stream": True, "thinking": {"type": "enabled", "budget_tokens": 1024}}
    with httpx.stream("POST", url, json=body, headers=HEADERS) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        text = response.read().decode()
    events = [block.split("\n") for block in text.strip().split("\n\n")]
    names = [lines[0].removeprefix("event: ") for lines in events]
    datas = [json.loads(lines[1].removeprefix("data: ")) for lines in events]
    assert all(d["type"] == n for n, d in zip(names, datas, strict=True))
    assert names[:3] == ["message_start", "ping", "content_block_start"]
    assert datas[2]["content_block"]["type"] == "thinking"
    assert "thinking_delta" in [d["delta"]["type"] for d in datas if d["type"] == "content_block_delta"]
    assert "signature_delta" in [d["delta"]["type"] for d in datas if d["type"] == "content_block_delta"]
    assert names[-2:] == ["message_delta", "message_stop"]
    assert names.count("content_block_start") == names.count("content_block_stop") == 2
    assert datas[-2]["delta"]["stop_reason"] == "end_turn"
