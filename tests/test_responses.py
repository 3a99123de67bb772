"""The Responses API through the proxy, driven by the official openai SDK; and the chat <-> Responses bridge.

Each test asserts the method, path, query and body the emulator received.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import modelyard
import openai
import pytest
from modelyard import errors
from modelyard.testing import KEY, MASTER_KEY, Emulator, litellm_params, running_proxy
from modelyard.testing.emulator import Deployment

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
CHAT_WEATHER = {"type": "function", "function": {k: v for k, v in WEATHER.items() if k != "type"}}


@pytest.fixture
def codex(emulator: Emulator) -> Iterator[Emulator]:
    emulator.add_deployment(Deployment("codex-mini", model="codex-mini-2025-05-16"))
    emulator.add_deployment(Deployment("emb", model="text-embedding-3-small"))
    yield emulator
    emulator.deployments.pop("codex-mini", None)
    emulator.deployments.pop("emb", None)


def config(api_base: str, **extra: Any) -> dict[str, Any]:
    return {
        "model_list": [
            {"model_name": "gpt-4o", "litellm_params": litellm_params(api_base, "gpt-4o")},
            {"model_name": "dated", "litellm_params": litellm_params(api_base, "gpt-4o", api_version="2025-04-01-preview")},
            {"model_name": "codex", "litellm_params": litellm_params(api_base, "codex-mini"), "model_info": {"mode": "responses"}},
            {"model_name": "chat-only", "litellm_params": litellm_params(api_base, "gpt-4o-mini"), "model_info": {"mode": "chat"}},
            {"model_name": "emb", "litellm_params": litellm_params(api_base, "emb"), "model_info": {"mode": "embedding"}},
        ],
        "router_settings": {"num_retries": 0},
        **extra,
    }


@pytest.fixture
def proxy(api_base: str, codex: Emulator, tmp_path: Any) -> Iterator[Any]:
    with running_proxy(config(api_base, modelyard_settings={"store_path": str(tmp_path / "store.db")})) as server:
        yield server


@pytest.fixture
def client(proxy: Any) -> Iterator[openai.OpenAI]:
    c = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key=MASTER_KEY, max_retries=0)
    yield c
    c.close()


def _sent(emulator: Emulator) -> list[tuple[str, str, dict[str, str], Any]]:
    return [(r.method, r.path, r.query, r.body) for r in emulator.requests]


# --------------------------------------------------------------------------- the openai SDK


def test_create_plain_on_the_v1_route_and_the_dated_route(client: openai.OpenAI, proxy: Any, codex: Emulator) -> None:
    r = client.responses.create(model="gpt-4o", input="Hello", instructions="Be brief", max_output_tokens=50,
                                metadata={"run": "7"})  # fmt: skip
    assert r.output_text == "This is gpt-4o on the modelyard emulator. You said: Hello"
    assert r.metadata == {"run": "7"}  # the response's own, not the Router's
    plain = openai.OpenAI(base_url=proxy.url, api_key=MASTER_KEY, max_retries=0)  # no /v1
    d = plain.responses.create(model="dated", input="Hi")
    plain.close()
    assert d.status == "completed"
    assert _sent(codex) == [
        ("POST", "/openai/v1/responses", {}, {"model": "gpt-4o", "input": "Hello", "instructions": "Be brief",
                                              "max_output_tokens": 50, "metadata": {"run": "7"}}),
        ("POST", "/openai/responses", {"api-version": "2025-04-01-preview"}, {"model": "gpt-4o", "input": "Hi"}),
    ]  # fmt: skip


def test_create_streamed(client: openai.OpenAI, codex: Emulator) -> None:
    with client.responses.create(model="gpt-4o", input="Stream please", stream=True) as stream:
        events = list(stream)
    kinds = [e.type for e in events]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == "This is gpt-4o on the modelyard emulator. You said: Stream please"
    assert events[-1].response.usage.total_tokens > 0
    assert _sent(codex) == [("POST", "/openai/v1/responses", {}, {"model": "gpt-4o", "input": "Stream please", "stream": True})]


def test_sse_wire_format_is_openais(proxy: Any, codex: Emulator) -> None:
    body = {"model": "gpt-4o", "input": "wire", "stream": True}
    with httpx.stream("POST", f"{proxy.url}/responses", json=body, headers={"Authorization": f"Bearer {MASTER_KEY}"}) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        raw = r.read().decode()
    blocks = [b for b in raw.split("\n\n") if b]
    first = blocks[0].split("\n")
    assert first[0] == "event: response.created" and json.loads(first[1].removeprefix("data: "))["type"] == "response.created"
    assert blocks[-1].startswith("event: response.completed")


def test_function_tool_then_previous_response_id(client: openai.OpenAI, codex: Emulator) -> None:
    first = client.responses.create(model="gpt-4o", input="Weather in Rome?", tools=[WEATHER])  # type: ignore[list-item]
    call = first.output[0]
    assert call.type == "function_call" and call.name == "get_weather"
    follow = [{"type": "function_call_output", "call_id": call.call_id, "output": "31C"}]
    second = client.responses.create(model="gpt-4o", input=follow, previous_response_id=first.id, tools=[WEATHER])  # type: ignore[arg-type, list-item]
    assert second.output_text == "Based on the tool result: 31C"
    assert _sent(codex) == [
        ("POST", "/openai/v1/responses", {}, {"model": "gpt-4o", "input": "Weather in Rome?", "tools": [WEATHER]}),
        ("POST", "/openai/v1/responses", {}, {"model": "gpt-4o", "input": follow, "previous_response_id": first.id,
                                              "tools": [WEATHER]}),
    ]  # fmt: skip


def test_retrieve_input_items_delete(client: openai.OpenAI, codex: Emulator) -> None:
    r = client.responses.create(model="dated", input=[{"role": "user", "content": "a"}, {"role": "user", "content": "b"}])
    got = client.responses.retrieve(r.id)
    assert got.id == r.id and got.output_text == r.output_text
    items = client.responses.input_items.list(r.id, limit=1, order="asc")
    assert [i.content[0].text for i in items.data] == ["a"]  # type: ignore[union-attr]
    client.responses.delete(r.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(r.id)
    dated = {"api-version": "2025-04-01-preview"}
    assert [(m, p, q) for m, p, q, _ in _sent(codex)[1:]] == [
        ("GET", f"/openai/responses/{r.id}", dated),
        ("GET", f"/openai/responses/{r.id}/input_items", {**dated, "limit": "1", "order": "asc"}),
        ("DELETE", f"/openai/responses/{r.id}", dated),
    ]  # a deleted id is forgotten: the last retrieve never reaches the resource


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({}, "input"),
        ({"input": [{"type": "banana"}]}, "input[0].type"),
        ({"input": "x", "tools": [{"type": "teleport"}]}, "tools[0].type"),
        ({"input": "x", "previous_response_id": "resp_unknown"}, "previous_response_id"),
    ],
)
def test_bad_input_gives_the_upstream_400_and_the_next_request_is_served(
    client: openai.OpenAI, codex: Emulator, body: dict[str, Any], param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        client.responses.create(model="gpt-4o", **body)
    assert err.value.status_code == 400
    assert isinstance(err.value.body, dict) and err.value.body["param"] == param
    assert codex.requests[0].body == {"model": "gpt-4o", **body}  # the upstream's own answer
    assert client.responses.create(model="gpt-4o", input="next").status == "completed"


def test_a_mode_that_serves_no_responses_is_refused(client: openai.OpenAI, codex: Emulator) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        client.responses.create(model="emb", input="x")
    assert isinstance(err.value.body, dict) and err.value.body["code"] == "invalid_model_mode"
    assert codex.requests == []


def test_unknown_id_is_a_404_naming_it(client: openai.OpenAI, codex: Emulator) -> None:
    with pytest.raises(openai.NotFoundError, match="resp_never"):
        client.responses.retrieve("resp_never")


# --------------------------------------------------------------------------- the bridge (docs/responses.md)


def test_bridge_chat_to_a_responses_deployment_plain(client: openai.OpenAI, codex: Emulator) -> None:
    c = client.chat.completions.create(
        model="codex",
        messages=[{"role": "system", "content": "Be terse"}, {"role": "user", "content": "Hi"}],
        max_tokens=40, temperature=0.5, response_format={"type": "json_object"}, user="u1",
    )  # fmt: skip
    assert c.object == "chat.completion" and c.choices[0].finish_reason == "stop"
    assert json.loads(c.choices[0].message.content or "") == {"reply": "This is codex-mini on the modelyard emulator. You said: Hi"}
    assert c.usage is not None and c.usage.prompt_tokens > 0
    assert _sent(codex) == [("POST", "/openai/v1/responses", {}, {
        "model": "codex-mini",
        "input": [{"type": "message", "role": "system", "content": "Be terse"}, {"type": "message", "role": "user", "content": "Hi"}],
        "max_output_tokens": 40, "temperature": 0.5, "text": {"format": {"type": "json_object"}}, "user": "u1",
    })]  # fmt: skip


def test_bridge_chat_tools_round_trip_to_a_responses_deployment(client: openai.OpenAI, codex: Emulator) -> None:
    messages: list[Any] = [{"role": "user", "content": "Weather in Lima?"}]
    c = client.chat.completions.create(model="codex", messages=messages, tools=[CHAT_WEATHER],
                                       tool_choice={"type": "function", "function": {"name": "get_weather"}})  # fmt: skip
    [call] = c.choices[0].message.tool_calls or []
    assert c.choices[0].finish_reason == "tool_calls" and call.function.name == "get_weather"
    messages += [c.choices[0].message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": call.id, "content": "19C"}]  # fmt: skip
    again = client.chat.completions.create(model="codex", messages=messages, tools=[CHAT_WEATHER])
    assert again.choices[0].message.content == "Based on the tool result: 19C"
    assert codex.requests[0].body["tools"] == [WEATHER]
    assert codex.requests[0].body["tool_choice"] == {"type": "function", "name": "get_weather"}
    assert codex.requests[1].body["input"] == [
        {"type": "message", "role": "user", "content": "Weather in Lima?"},
        {"type": "function_call", "call_id": call.id, "name": "get_weather", "arguments": call.function.arguments},
        {"type": "function_call_output", "call_id": call.id, "output": "19C"},
    ]


def test_bridge_chat_stream_with_usage_to_a_responses_deployment(client: openai.OpenAI, codex: Emulator) -> None:
    chunks = list(client.chat.completions.create(model="codex", messages=[{"role": "user", "content": "go on"}],
                                                 stream=True, stream_options={"include_usage": True}))  # fmt: skip
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == "This is codex-mini on the modelyard emulator. You said: go on"
    assert [ch.choices[0].finish_reason for ch in chunks if ch.choices][-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    assert codex.requests[0].body == {"model": "codex-mini", "input": [{"type": "message", "role": "user", "content": "go on"}],
                                      "stream": True}  # fmt: skip


def test_bridge_chat_stream_with_a_tool_call_to_a_responses_deployment(client: openai.OpenAI, codex: Emulator) -> None:
    chunks = list(client.chat.completions.create(model="codex", messages=[{"role": "user", "content": "Weather in Bern?"}],
                                                 tools=[CHAT_WEATHER], stream=True))  # fmt: skip
    deltas = [tc for ch in chunks if ch.choices for tc in ch.choices[0].delta.tool_calls or ()]
    assert deltas[0].id and deltas[0].function is not None and deltas[0].function.name == "get_weather"
    args = "".join(d.function.arguments or "" for d in deltas if d.function is not None)
    assert json.loads(args)["city"] and chunks[-1].choices[0].finish_reason == "tool_calls"


def test_bridge_chat_parameter_without_counterpart_is_refused_naming_it(client: openai.OpenAI, codex: Emulator) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="codex", messages=[{"role": "user", "content": "x"}], stop=["\n"])
    assert isinstance(err.value.body, dict) and err.value.body["param"] == "stop"
    assert codex.requests == []


def test_bridge_responses_to_a_chat_deployment_plain_and_tools(client: openai.OpenAI, codex: Emulator) -> None:
    r = client.responses.create(model="chat-only", input="Hi chat", instructions="Be kind", max_output_tokens=30)
    assert r.object == "response" and r.output_text == "This is gpt-4o-mini on the modelyard emulator. You said: Hi chat"
    t = client.responses.create(model="chat-only", input="Weather in Quito?", tools=[WEATHER])  # type: ignore[list-item]
    assert t.output[0].type == "function_call" and t.output[0].name == "get_weather"
    assert [(m, p) for m, p, _, _ in _sent(codex)] == [("POST", "/openai/deployments/gpt-4o-mini/chat/completions")] * 2
    assert codex.requests[0].body == {"messages": [{"role": "system", "content": "Be kind"}, {"role": "user", "content": "Hi chat"}],
                                      "max_completion_tokens": 30}  # fmt: skip
    assert codex.requests[1].body["tools"] == [CHAT_WEATHER]
    with pytest.raises(openai.NotFoundError, match=r.id):  # not stored upstream, so not recorded either
        client.responses.retrieve(r.id)
    assert len(codex.requests) == 2


def test_bridge_responses_stream_to_a_chat_deployment(client: openai.OpenAI, codex: Emulator) -> None:
    with client.responses.create(model="chat-only", input="stream me", stream=True) as stream:
        events = list(stream)
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == events[-1].response.output_text == "This is gpt-4o-mini on the modelyard emulator. You said: stream me"
    assert events[-1].response.usage is not None
    assert codex.requests[0].body["stream"] is True and codex.requests[0].path.endswith("/chat/completions")


def test_bridge_responses_only_parameter_is_refused_naming_it(client: openai.OpenAI, codex: Emulator) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        client.responses.create(model="chat-only", input="x", background=True)
    assert isinstance(err.value.body, dict) and err.value.body["param"] == "background"
    assert codex.requests == []


def test_bridge_input_items_that_are_not_objects_are_refused_naming_them(client: openai.OpenAI, codex: Emulator) -> None:
    # The fuzz test found a list item that is a string answered 500 (the bridge read it as a dict).
    for bad, param in ((["hi", {"role": "user", "content": "x"}], "input[0]"), ([{"role": "user", "content": "x"}, 3], "input[1]")):
        with pytest.raises(openai.BadRequestError) as err:
            client.responses.create(model="chat-only", input=bad)  # type: ignore[arg-type]
        assert isinstance(err.value.body, dict) and err.value.body["param"] == param
    assert codex.requests == []


def test_bridge_in_the_sdk_both_ways(api_base: str, codex: Emulator) -> None:
    conn = {"api_base": api_base, "api_key": KEY}
    chat = modelyard.completion(model="azure/codex-mini", messages=[{"role": "user", "content": "sdk"}],
                                model_info={"mode": "responses"}, **conn)  # fmt: skip
    assert chat.choices[0].message.content == "This is codex-mini on the modelyard emulator. You said: sdk"
    resp = modelyard.responses(model="azure/gpt-4o-mini", input="sdk", model_info={"mode": "chat"}, **conn)
    assert resp.output_text == "This is gpt-4o-mini on the modelyard emulator. You said: sdk"
    assert [r.path for r in codex.requests] == ["/openai/v1/responses", "/openai/deployments/gpt-4o-mini/chat/completions"]
    with pytest.raises(errors.BadRequestError):
        modelyard.responses(model="azure/gpt-4o-mini", input="x", previous_response_id="resp_1", model_info={"mode": "chat"}, **conn)


def test_background_response_polled_and_another_cancelled_through_the_proxy(client: openai.OpenAI, codex: Emulator) -> None:
    r = client.responses.create(model="gpt-4o", input="later", background=True)
    assert r.status == "queued"
    assert client.responses.retrieve(r.id).status == "in_progress"
    assert client.responses.retrieve(r.id).output_text.endswith("You said: later")
    other = client.responses.create(model="gpt-4o", input="never", background=True)
    assert client.responses.cancel(other.id).status == "cancelled"
    assert _sent(codex)[-1][:3] == ("POST", f"/openai/v1/responses/{other.id}/cancel", {})


def test_a_stream_broken_upstream_ends_with_an_error_event_and_the_next_request_is_served(
    client: openai.OpenAI, proxy: Any, codex: Emulator
) -> None:
    from modelyard.testing.emulator import Faults

    codex.deployments["gpt-4o"].faults = Faults(drop_stream_after=4)
    body = {"model": "gpt-4o", "input": "a b c d e f", "stream": True}
    with httpx.stream("POST", f"{proxy.url}/v1/responses", json=body, headers={"Authorization": f"Bearer {MASTER_KEY}"}) as r:
        raw = r.read().decode()
    last = [b for b in raw.split("\n\n") if b][-1].split("\n")
    assert last[0] == "event: error"
    assert json.loads(last[1].removeprefix("data: "))["message"].startswith("The upstream stream broke off")
    codex.deployments["gpt-4o"].faults = Faults()
    assert client.responses.create(model="gpt-4o", input="fine").status == "completed"


def test_azure_openai_client_on_the_proxy(proxy: Any, codex: Emulator) -> None:
    az = openai.AzureOpenAI(azure_endpoint=proxy.url, api_key=MASTER_KEY, api_version="2025-04-01-preview", max_retries=0)
    r = az.responses.create(model="gpt-4o", input="from AzureOpenAI")
    assert az.responses.retrieve(r.id).output_text == r.output_text
    az.close()
    # the deployment's own api-version (2024-10-21: no Responses route) decides the upstream route
    assert [(m, p, q) for m, p, q, _ in _sent(codex)] == [
        ("POST", "/openai/v1/responses", {}),
        ("GET", f"/openai/v1/responses/{r.id}", {}),
    ]


def test_health_probes_a_responses_deployment_with_the_smallest_response(proxy: Any, codex: Emulator) -> None:
    health = httpx.get(f"{proxy.url}/health", headers={"Authorization": f"Bearer {MASTER_KEY}"}).json()
    codex_probe = [r for r in codex.requests if r.body and r.body.get("model") == "codex-mini"]
    assert [(r.path, r.body) for r in codex_probe] == [
        ("/openai/v1/responses", {"model": "codex-mini", "input": "ping", "max_output_tokens": 16, "store": False}),
    ]
    assert "codex" in {e["model_name"] for e in health["healthy_endpoints"]}
