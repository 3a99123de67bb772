"""Claude through the proxy: Anthropic's SDK on /v1/messages, the openai SDK on /v1/chat/completions.

Both send the same conversation (plain, streamed, with a tool) to the emulated Foundry deployment,
and both tests assert the exact Messages API body the emulator received: the native route passes
the client's body on (``model`` becomes the deployment), the chat route translates to it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest
from modelyard.testing import KEY, MASTER_KEY, Emulator, running_proxy
from modelyard.testing.emulator import Deployment, Faults

SYSTEM = "Be brief."
QUESTION = "Weather in Paris?"
TOOL_ANTHROPIC = {
    "name": "get_weather",
    "description": "The weather in a city.",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
TOOL_OPENAI = {
    "type": "function",
    "function": {"name": "get_weather", "description": "The weather in a city.", "parameters": TOOL_ANTHROPIC["input_schema"]},
}


@pytest.fixture
def claude_proxy(claude_deployment: Deployment, api_base: str) -> Iterator[Any]:
    entry = {"model": "azure/claude-sonnet-4-5", "api_base": api_base, "api_key": KEY}
    config = {"model_list": [{"model_name": "claude", "litellm_params": entry}], "router_settings": {"num_retries": 1}}
    with running_proxy(config) as server:
        yield server


def upstream(emulator: Emulator) -> list[dict[str, Any]]:
    bodies = [r.body for r in emulator.requests if r.path == "/anthropic/v1/messages"]
    for r in emulator.requests:
        assert r.headers["x-api-key"] == KEY  # the deployment's key, never the client's master key
        assert r.headers["anthropic-version"] == "2023-06-01"
    return bodies


def expected(*, stream: bool = False, tools: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "claude-sonnet-4-5", "system": SYSTEM,
                            "messages": [{"role": "user", "content": QUESTION}], "max_tokens": 1024}  # fmt: skip
    if tools:
        body["tools"] = [{"name": "get_weather", "input_schema": TOOL_ANTHROPIC["input_schema"], "description": "The weather in a city."}]
    if stream:
        body["stream"] = True
    return body


def _same(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert a == b  # dict equality ignores key order; the tool's keys are compared as dicts too


def test_anthropic_sdk_on_v1_messages(claude_proxy: Any, emulator: Emulator) -> None:
    client = anthropic.Anthropic(base_url=claude_proxy.url, api_key=MASTER_KEY, max_retries=0)

    plain = client.messages.create(model="claude", system=SYSTEM, max_tokens=1024, messages=[{"role": "user", "content": QUESTION}])
    assert plain.content[0].text == f"Claude heard: {QUESTION}"
    assert plain.stop_reason == "end_turn"

    with client.messages.stream(model="claude", system=SYSTEM, max_tokens=1024,
                                messages=[{"role": "user", "content": QUESTION}]) as stream:  # fmt: skip
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == f"Claude heard: {QUESTION}"
    assert final.usage.output_tokens > 0

    tooled = client.messages.create(model="claude", system=SYSTEM, max_tokens=1024, tools=[TOOL_ANTHROPIC],  # type: ignore[list-item]
                                    messages=[{"role": "user", "content": QUESTION}])  # fmt: skip
    [use] = tooled.content
    assert use.type == "tool_use" and use.name == "get_weather" and use.input == {"city": "Paris"}

    bodies = upstream(emulator)
    assert len(bodies) == 3
    _same(bodies[0], expected())
    _same(bodies[1], expected(stream=True))
    _same(bodies[2], {**expected(tools=True), "tools": [TOOL_ANTHROPIC]})


def test_anthropic_paths_and_overload_retry(claude_proxy: Any, emulator: Emulator, claude_deployment: Deployment) -> None:
    import httpx

    claude_deployment.faults = Faults(script=[529])
    body = {"model": "claude", "max_tokens": 1024, "messages": [{"role": "user", "content": "Hi"}]}
    r = httpx.post(f"{claude_proxy.url}/anthropic/v1/messages", json=body, headers={"x-api-key": MASTER_KEY})
    assert r.status_code == 200 and r.json()["content"][0]["text"] == "Claude heard: Hi"
    assert len(emulator.requests) == 2  # the 529 was retried
    beta = httpx.post(f"{claude_proxy.url}/v1/messages", json=body,
                      headers={"x-api-key": MASTER_KEY, "anthropic-beta": "interleaved-thinking-2025-05-14", "x-other": "dropped"})  # fmt: skip
    assert beta.status_code == 200
    assert emulator.requests[-1].headers["anthropic-beta"] == "interleaved-thinking-2025-05-14"
    assert "x-other" not in emulator.requests[-1].headers
    assert emulator.requests[-1].headers["x-api-key"] == KEY
    denied = httpx.post(f"{claude_proxy.url}/v1/messages", json=body, headers={"x-api-key": "not-the-master-key"})
    assert denied.status_code == 401
    assert len(emulator.requests) == 3


def test_openai_sdk_on_chat_completions_sends_the_same_body(claude_proxy: Any, emulator: Emulator) -> None:
    # Closed on leaving: a stream's client sits in a reference cycle, and the collector finalising
    # its socket first (during a later test) would warn of an unclosed socket there.
    with openai.OpenAI(base_url=f"{claude_proxy.url}/v1", api_key=MASTER_KEY, max_retries=0) as client:
        messages: Any = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION}]

        plain = client.chat.completions.create(model="claude", messages=messages, max_tokens=1024)
        assert plain.choices[0].message.content == f"Claude heard: {QUESTION}"
        assert plain.choices[0].finish_reason == "stop"

        chunks = list(client.chat.completions.create(model="claude", messages=messages, max_tokens=1024, stream=True))
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == f"Claude heard: {QUESTION}"
        assert chunks[-1].choices[0].finish_reason == "stop"

        tooled = client.chat.completions.create(model="claude", messages=messages, max_tokens=1024, tools=[TOOL_OPENAI])  # type: ignore[list-item]
        [call] = tooled.choices[0].message.tool_calls or []
        assert call.function.name == "get_weather" and call.function.arguments == '{"city": "Paris"}'
        assert call.id.startswith("toolu_emu_")

    bodies = upstream(emulator)
    assert len(bodies) == 3
    _same(bodies[0], expected())
    _same(bodies[1], expected(stream=True))
    _same(bodies[2], expected(tools=True))


def test_forwarded_headers_join_the_deployments_own(claude_deployment: Deployment, emulator: Emulator, api_base: str) -> None:
    import httpx

    entry = {"model": "azure/claude-sonnet-4-5", "api_base": api_base, "api_key": KEY,
             "extra_headers": {"anthropic-beta": "from-config", "x-team": "a"}}  # fmt: skip
    config = {"model_list": [{"model_name": "claude", "litellm_params": entry}]}
    body = {"model": "claude", "max_tokens": 10, "messages": [{"role": "user", "content": "Hi"}]}
    with running_proxy(config) as server:
        r = httpx.post(f"{server.url}/v1/messages", json=body, headers={"x-api-key": MASTER_KEY, "anthropic-beta": "from-client"})
    assert r.status_code == 200
    headers = emulator.requests[-1].headers
    assert (headers["anthropic-beta"], headers["x-team"], headers["x-api-key"]) == ("from-config", "a", KEY)


def test_the_native_route_is_priced_for_observers(claude_deployment: Deployment, emulator: Emulator, api_base: str) -> None:
    from modelyard import hookimpl
    from modelyard.plugins import reset_plugins

    seen: list[Any] = []

    class Recorder:
        HOOK_API = (1, 0)

        @hookimpl
        def on_success(self, event: Any) -> None:
            seen.append(event)

    reset_plugins(extra=[Recorder()])
    entry = {"model": "azure/claude-sonnet-4-5", "api_base": api_base, "api_key": KEY}
    with running_proxy({"model_list": [{"model_name": "claude", "litellm_params": entry}]}) as server:
        client = anthropic.Anthropic(base_url=server.url, api_key=MASTER_KEY, max_retries=0)
        with client.messages.stream(model="claude", max_tokens=64, messages=[{"role": "user", "content": "Hi"}]) as stream:
            final = stream.get_final_message()
    [event] = seen
    assert event.route.operation == "messages"
    assert event.usage["completion_tokens"] == final.usage.output_tokens
    assert event.cost is not None and event.cost > 0
