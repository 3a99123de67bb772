"""The emulator validates every chat request against Azure's published schema, as Azure does (issue 18).

Each kind of wrong value gets Azure's 400 ``invalid_request_error`` with the field in ``param``,
never a 200 (a client bug hidden by a lenient test double) or a 500.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from modelyard.testing import KEY, Emulator

USER = {"role": "user", "content": "hello"}
TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}


@pytest.fixture
def client(api_base: str, emulator: Emulator):
    with httpx.Client(base_url=api_base, timeout=30) as c:
        yield c


def chat(client: httpx.Client, body: dict[str, Any], version: str = "2024-10-21") -> httpx.Response:
    return client.post("/openai/deployments/gpt-4o/chat/completions", params={"api-version": version},
                       headers={"api-key": KEY}, json=body)  # fmt: skip


WRONG = [
    # (body over a valid one, param, words in the message)
    ({"temperature": "hot"}, "temperature", "'number'"),
    ({"temperature": 2.5}, "temperature", "maximum of 2"),
    ({"top_p": -0.1}, "top_p", "minimum of 0"),
    ({"presence_penalty": 3}, "presence_penalty", "maximum of 2"),
    ({"max_tokens": "ten"}, "max_tokens", "'integer'"),
    ({"n": 129}, "n", "maximum of 128"),
    ({"n": 100_000_000}, "n", "maximum of 128"),
    ({"n": 1.5}, "n", "'integer'"),
    ({"stream": "yes"}, "stream", "'boolean'"),
    ({"stop": ["a", "b", "c", "d", "e"]}, "stop", "at most 4"),
    ({"messages": []}, "messages", "at least 1"),
    ({"messages": "hello"}, "messages", "'array'"),
    ({"messages": [{"content": "no role"}]}, "messages[0].role", "required"),
    ({"messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role", "'user'"),
    ({"messages": [USER, {"role": "tool", "content": "42"}]}, "messages[1].tool_call_id", "required"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]},
     "messages[0].content[0].image_url.url", "required"),
    ({"tools": [{"type": "function"}]}, "tools[0].function", "required"),
    ({"tools": [{"type": "function", "function": {"description": "no name"}}]}, "tools[0].function.name", "required"),
    ({"tools": [{"type": "retrieval", "function": TOOL["function"]}]}, "tools[0].type", "'function'"),
    ({"tool_choice": {"type": "function"}}, "tool_choice.function", "required"),
    ({"response_format": {"type": "xml"}}, "response_format.type", ""),
    ({"logit_bias": {"50256": "high"}}, "logit_bias.50256", "'integer'"),
]  # fmt: skip


@pytest.mark.parametrize(("extra", "param", "words"), WRONG, ids=[w[1] + ":" + str(i) for i, w in enumerate(WRONG)])
def test_wrong_values_are_azures_400_naming_the_field(client: httpx.Client, emulator: Emulator,
                                                       extra: dict[str, Any], param: str, words: str) -> None:  # fmt: skip
    r = chat(client, {"messages": [USER], **extra})
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param, error
    assert words in error["message"], error
    # nothing was charged to the deployment's quota: a refused request is not served
    assert emulator.deployments["gpt-4o"]._requests == 0


def test_missing_messages_and_body_shapes(client: httpx.Client) -> None:
    r = chat(client, {"temperature": 1})
    assert r.status_code == 400 and r.json()["error"]["param"] == "messages"
    nested = client.post("/openai/deployments/gpt-4o/chat/completions", params={"api-version": "2024-10-21"},
                         headers={"api-key": KEY, "content-type": "application/json"},
                         content=b'{"messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")  # fmt: skip
    assert nested.status_code == 400 and "not valid JSON" in nested.json()["error"]["message"]


def test_valid_requests_still_served(client: httpx.Client) -> None:
    for extra in ({}, {"temperature": 0, "top_p": 1, "n": 128, "stop": None, "user": "u"},
                  {"tools": [TOOL], "tool_choice": "auto"}, {"stop": ["a", "b", "c", "d"]},
                  {"messages": [{"role": "developer", "content": "be brief"}, USER]},
                  {"unknown_future_field": {"x": 1}}):  # fmt: skip
        r = chat(client, {"messages": [USER], **extra}, version="2025-04-01-preview")
        assert r.status_code == 200, (extra, r.text)
