"""The Responses API through the SDK against the emulator: routes, bodies, typed streams, ids, errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import modelyard
import pytest
from modelyard import errors
from modelyard.responses_types import (
    ResponseCompletedEvent,
    ResponseCreatedEvent,
    ResponseErrorEvent,
    ResponseFailedEvent,
    ResponseFunctionCallArgumentsDeltaEvent,
    ResponseOutputTextDeltaEvent,
    ResponsesAPIResponse,
)
from modelyard.testing import KEY, Emulator
from modelyard.testing.emulator import Deployment, Faults
from modelyard.testing.responses import ERROR_TRIGGER, FAIL_TRIGGER

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


@pytest.fixture
def conn(api_base: str) -> dict[str, Any]:
    return {"api_base": api_base, "api_key": KEY}


@pytest.fixture
def o3(emulator: Emulator) -> Iterator[Emulator]:
    emulator.add_deployment(Deployment("o3-mini", model="o3-mini-2025-01-31"))
    yield emulator
    emulator.deployments.pop("o3-mini", None)


def test_v1_route_by_default_with_the_deployment_as_model(conn: dict[str, Any], emulator: Emulator) -> None:
    r = modelyard.responses(model="azure/gpt-4o", input="Hello", instructions="Be brief", max_output_tokens=64, **conn)
    assert isinstance(r, ResponsesAPIResponse)
    assert r.output_text == "This is gpt-4o on the modelyard emulator. You said: Hello"
    assert r.status == "completed" and r.usage is not None and r.usage.output_tokens > 0
    assert r.cost is not None and r.cost > 0  # priced from input/output tokens, as chat is (docs/spend.md)
    [sent] = emulator.requests
    assert (sent.method, sent.path, sent.query) == ("POST", "/openai/v1/responses", {})
    assert sent.body == {"model": "gpt-4o", "input": "Hello", "instructions": "Be brief", "max_output_tokens": 64}


def test_dated_route_for_a_dated_api_version_and_v1_for_one_without_responses(conn: dict[str, Any], emulator: Emulator) -> None:
    modelyard.responses("Hi", "azure/gpt-4o", api_version="2025-04-01-preview", **conn)
    modelyard.responses("Hi", "azure/gpt-4o", api_version="2024-10-21", **conn)  # no Responses route there
    modelyard.responses("Hi", "azure/gpt-4o", api_version="preview", **conn)
    assert [(r.path, r.query) for r in emulator.requests] == [
        ("/openai/responses", {"api-version": "2025-04-01-preview"}),
        ("/openai/v1/responses", {}),
        ("/openai/v1/responses", {"api-version": "preview"}),
    ]
    assert all(r.body == {"model": "gpt-4o", "input": "Hi"} for r in emulator.requests)


def test_every_typed_parameter_passes_through(conn: dict[str, Any], emulator: Emulator) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"], "additionalProperties": False}
    params: dict[str, Any] = {
        "input": [{"role": "user", "content": [{"type": "input_text", "text": "Paris?"},
                                               {"type": "input_image", "image_url": "https://example.com/a.png"}]}],
        "instructions": "Answer in JSON",
        "text": {"format": {"type": "json_schema", "name": "city", "schema": schema, "strict": True}},
        "tools": [WEATHER, {"type": "web_search_preview"}],
        "tool_choice": "none",
        "store": False,
        "truncation": "auto",
        "metadata": {"run": "1"},
        "include": ["message.output_text.logprobs"],
        "parallel_tool_calls": False,
        "temperature": 0.2,
        "top_p": 0.9,
        "user": "u-1",
    }  # fmt: skip
    r = modelyard.responses(model="azure/gpt-4o", **params, **conn)
    assert json.loads(r.output_text) == {"city": "Paris?"[:40]}
    # a message written without "type" goes typed, as Azure's v1 spec requires
    assert emulator.requests[0].body == {"model": "gpt-4o", **params, "input": [{"type": "message", **params["input"][0]}]}
    with pytest.raises(errors.NotFoundError):  # store: false -> not kept
        modelyard.get_responses(r.id, **conn)


def test_function_tool_then_its_output_chained_by_previous_response_id(conn: dict[str, Any], emulator: Emulator) -> None:
    first = modelyard.responses(model="azure/gpt-4o", input="Weather in Paris?", tools=[WEATHER], **conn)
    [call] = [i for i in first.output if i["type"] == "function_call"]
    assert call["name"] == "get_weather" and "city" in json.loads(call["arguments"])
    second = modelyard.responses(
        model="azure/gpt-4o", previous_response_id=first.id, tools=[WEATHER],
        input=[{"type": "function_call_output", "call_id": call["call_id"], "output": "22C and sunny"}], **conn,
    )  # fmt: skip
    assert second.output_text == "Based on the tool result: 22C and sunny"
    assert second.previous_response_id == first.id
    assert emulator.requests[1].body["previous_response_id"] == first.id


def test_retrieve_list_input_items_delete_paths_and_queries(conn: dict[str, Any], emulator: Emulator) -> None:
    r = modelyard.responses(model="azure/gpt-4o", input=[{"role": "user", "content": "one"}, {"role": "user", "content": "two"}], **conn)
    got = modelyard.get_responses(r.id, **conn)
    assert got.id == r.id and got.output_text == r.output_text
    page = modelyard.list_input_items(r.id, limit=1, order="asc", **conn)
    assert [i["content"][0]["text"] for i in page.data] == ["one"] and page.has_more
    done = modelyard.delete_responses(r.id, **conn)
    assert done.deleted and done.id == r.id
    with pytest.raises(errors.NotFoundError):
        modelyard.get_responses(r.id, **conn)
    assert [(x.method, x.path, x.query) for x in emulator.requests[1:]] == [
        ("GET", f"/openai/v1/responses/{r.id}", {}),
        ("GET", f"/openai/v1/responses/{r.id}/input_items", {"limit": "1", "order": "asc"}),
        ("DELETE", f"/openai/v1/responses/{r.id}", {}),
        ("GET", f"/openai/v1/responses/{r.id}", {}),
    ]


async def test_async_twins_and_the_dated_route_for_ids(conn: dict[str, Any], emulator: Emulator) -> None:
    dated = {**conn, "api_version": "2025-04-01-preview"}
    r = await modelyard.aresponses(model="azure/gpt-4o", input="hi", **dated)
    assert isinstance(r, ResponsesAPIResponse)
    assert (await modelyard.aget_responses(r.id, **dated)).id == r.id
    assert len((await modelyard.alist_input_items(r.id, **dated)).data) == 1
    assert (await modelyard.adelete_responses(r.id, **dated)).deleted
    assert [(x.method, x.path, x.query) for x in emulator.requests] == [
        ("POST", "/openai/responses", {"api-version": "2025-04-01-preview"}),
        ("GET", f"/openai/responses/{r.id}", {"api-version": "2025-04-01-preview"}),
        ("GET", f"/openai/responses/{r.id}/input_items", {"api-version": "2025-04-01-preview"}),
        ("DELETE", f"/openai/responses/{r.id}", {"api-version": "2025-04-01-preview"}),
    ]


def test_background_response_completes_later_and_one_can_be_cancelled(conn: dict[str, Any], emulator: Emulator) -> None:
    r = modelyard.responses(model="azure/gpt-4o", input="slow", background=True, **conn)
    assert r.status == "queued" and r.output == []
    assert modelyard.get_responses(r.id, **conn).status == "in_progress"
    done = modelyard.get_responses(r.id, **conn)
    assert done.status == "completed" and done.output_text.endswith("You said: slow")
    other = modelyard.responses(model="azure/gpt-4o", input="stop me", background=True, **conn)
    cancelled = modelyard.cancel_responses(other.id, **conn)
    assert cancelled.status == "cancelled"
    assert emulator.requests[-1].path == f"/openai/v1/responses/{other.id}/cancel"
    with pytest.raises(errors.BadRequestError):  # a finished one cannot be
        modelyard.cancel_responses(r.id, **conn)


def test_stream_of_typed_events_sync(conn: dict[str, Any], emulator: Emulator) -> None:
    with modelyard.responses(model="azure/gpt-4o", input="Stream it", stream=True, **conn) as stream:
        events = list(stream)
    assert isinstance(events[0], ResponseCreatedEvent) and events[0].response.status == "in_progress"
    text = "".join(e.delta for e in events if isinstance(e, ResponseOutputTextDeltaEvent))
    assert text == "This is gpt-4o on the modelyard emulator. You said: Stream it"
    assert isinstance(events[-1], ResponseCompletedEvent) and events[-1].response.output_text == text
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert stream.response is not None and stream.response.usage is not None
    assert stream.cost is not None and stream.cost > 0
    assert emulator.requests[0].body == {"model": "gpt-4o", "input": "Stream it", "stream": True}


async def test_stream_of_typed_events_async_with_a_function_call(conn: dict[str, Any]) -> None:
    stream = await modelyard.aresponses(model="azure/gpt-4o", input="Weather in Oslo?", tools=[WEATHER], stream=True, **conn)
    events = [e async for e in stream]
    args = "".join(e.delta for e in events if isinstance(e, ResponseFunctionCallArgumentsDeltaEvent))
    final = events[-1]
    assert isinstance(final, ResponseCompletedEvent)
    [call] = [i for i in final.response.output if i["type"] == "function_call"]
    assert args == call["arguments"] and json.loads(args)["city"]


def test_failed_response_and_error_event_are_typed(conn: dict[str, Any]) -> None:
    events = list(modelyard.responses(model="azure/gpt-4o", input=FAIL_TRIGGER, stream=True, **conn))
    assert isinstance(events[-1], ResponseFailedEvent) and events[-1].response.error is not None
    events = list(modelyard.responses(model="azure/gpt-4o", input=ERROR_TRIGGER, stream=True, **conn))
    assert isinstance(events[-1], ResponseErrorEvent) and events[-1].code == "server_error"


@pytest.mark.parametrize("asynchronous", [False, True])
async def test_a_stream_broken_mid_way_raises_what_chat_raises(conn: dict[str, Any], emulator: Emulator, asynchronous: bool) -> None:
    emulator.deployments["gpt-4o"].faults = Faults(drop_stream_after=3)
    with pytest.raises(errors.APIConnectionError) as chat:
        list(modelyard.completion(model="azure/gpt-4o", messages=[{"role": "user", "content": "a b c d e"}], stream=True,
                                  num_retries=0, **conn))  # fmt: skip
    with pytest.raises(type(chat.value)):
        if asynchronous:
            stream = await modelyard.aresponses(model="azure/gpt-4o", input="a b c d e", stream=True, num_retries=0, **conn)
            [e async for e in stream]
        else:
            list(modelyard.responses(model="azure/gpt-4o", input="a b c d e", stream=True, num_retries=0, **conn))


def test_o_series_refuses_sampling_parameters_before_sending(conn: dict[str, Any], o3: Emulator) -> None:
    with pytest.raises(errors.UnsupportedParamsError) as err:
        modelyard.responses(model="azure/o_series/o3-mini", input="x", temperature=0.3, **conn)
    assert err.value.param == "temperature" and o3.requests == []
    r = modelyard.responses(model="azure/o_series/o3-mini", input="x", temperature=0.3, top_p=0.5, drop_params=True,
                            reasoning={"effort": "low", "summary": "auto"}, **conn)  # fmt: skip
    assert o3.requests[0].body == {"model": "o3-mini", "input": "x", "reasoning": {"effort": "low", "summary": "auto"}}
    assert [i["type"] for i in r.output] == ["reasoning", "message"]


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"input": "x", "max_output_tokens": "12"}, "max_output_tokens"),
        ({"input": 5}, "input"),
        ({"input": "x", "reasoning": {"effort": "huge"}}, "reasoning.effort"),
        ({"input": "x", "truncation": "sometimes"}, "truncation"),
    ],
)
def test_wrong_types_fail_before_sending_naming_the_field(conn: dict[str, Any], emulator: Emulator, kwargs: dict[str, Any], param: str) -> None:
    with pytest.raises(errors.BadRequestError) as err:
        modelyard.responses(model="azure/gpt-4o", **kwargs, **conn)
    assert err.value.param == param and emulator.requests == []


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({}, "input"),
        ({"input": [{"type": "banana"}]}, "input[0].type"),
        ({"input": [{"role": "user", "content": [{"type": "audio"}]}]}, "input[0].content[0].type"),
        ({"input": "x", "tools": [{"type": "teleport"}]}, "tools[0].type"),
        ({"input": "x", "previous_response_id": "resp_nope"}, "previous_response_id"),
        ({"input": "x", "reasoning": {"effort": "low"}}, "reasoning.effort"),
    ],
)
def test_bad_input_gives_the_upstream_400_and_the_next_call_is_served(
    conn: dict[str, Any], emulator: Emulator, kwargs: dict[str, Any], param: str
) -> None:
    with pytest.raises(errors.BadRequestError) as err:
        modelyard.responses(model="azure/gpt-4o", **kwargs, **conn)
    assert err.value.status_code == 400 and err.value.param == param
    assert len(emulator.requests) == 1  # it was the upstream's answer
    assert modelyard.responses(model="azure/gpt-4o", input="again", **conn).status == "completed"


def test_router_responses_and_blocked_plugin(conn: dict[str, Any], emulator: Emulator) -> None:
    router = modelyard.Router(model_list=[
        {"model_name": "g", "litellm_params": {"model": "azure/gpt-4o", **conn}},
    ])  # fmt: skip
    r = router.responses(model="g", input="via router", extra_body={"metadata": {"k": "v"}})
    assert r.output_text.endswith("via router")
    assert emulator.requests[-1].body == {"model": "gpt-4o", "input": "via router", "metadata": {"k": "v"}}
    router.close()
    from modelyard.plugins import reset_plugins

    reset_plugins(block=["modelyard-azure-responses"])
    try:
        with pytest.raises(errors.PluginNotLoadedError, match="modelyard-azure-responses"):
            modelyard.responses(model="azure/gpt-4o", input="x", **conn)
    finally:
        reset_plugins()
    assert len(emulator.requests) == 1


async def test_router_aresponses(conn: dict[str, Any], emulator: Emulator) -> None:
    router = modelyard.Router(model_list=[{"model_name": "g", "litellm_params": {"model": "azure/gpt-4o", **conn}}])
    r = await router.aresponses(model="g", input="async router")
    assert isinstance(r, ResponsesAPIResponse) and r.output_text.endswith("async router")
    await router.aclose()
