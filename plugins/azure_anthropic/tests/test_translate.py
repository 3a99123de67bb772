"""Each translation rule of docs/anthropic.md, through the pipeline to the emulated Foundry endpoint.

Every test asserts the exact Messages API body the emulator received, or what came back.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from modelyard import UnsupportedParamsError, acompletion, completion
from modelyard.testing import KEY, Emulator
from modelyard.testing.emulator import Deployment
from modelyard_azure_anthropic.prices import PRICES

MODEL = "azure/claude-sonnet-4-5"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
ANTHROPIC_WEATHER = {
    "name": "get_weather",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    "description": "The weather in a city.",
}
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="


@pytest.fixture
def claude(claude_deployment: Deployment, emulator: Emulator, api_base: str) -> dict[str, Any]:
    """The call's connection to the emulated Foundry resource."""
    return {"api_base": api_base, "api_key": KEY}


def sent(emulator: Emulator) -> dict[str, Any]:
    [request] = [r for r in emulator.requests if r.path == "/anthropic/v1/messages"][-1:]
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert request.headers["x-api-key"] == KEY
    body: dict[str, Any] = request.body
    return body


def test_system_and_developer_messages_become_the_top_level_system(claude: dict[str, Any], emulator: Emulator) -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "developer", "content": [{"type": "text", "text": "Answer in English."}]},
        {"role": "user", "content": "Hello"},
    ]
    r = completion(model=MODEL, messages=messages, **claude)
    assert sent(emulator) == {
        "model": "claude-sonnet-4-5",
        "system": "Be brief.\n\nAnswer in English.",
        "messages": [{"role": "user", "content": "Hello"}],
        "max_tokens": 64000,
    }
    assert r.choices[0].message.content == "Claude heard: Hello"
    assert r.model == "claude-sonnet-4-5"


def test_max_tokens_default_per_model_and_the_callers_value(claude: dict[str, Any], emulator: Emulator, api_base: str) -> None:
    emulator.add_deployment(Deployment("claude-3-5-haiku", model="claude-3-5-haiku"))
    emulator.add_deployment(Deployment("claude-next", model="claude-next"))
    try:
        for model, expected in (("azure/claude-3-5-haiku", 8192), ("azure/claude-next", 4096)):
            completion(model=model, messages=[{"role": "user", "content": "Hi"}], **claude)
            assert sent(emulator)["max_tokens"] == expected
    finally:
        emulator.deployments.pop("claude-3-5-haiku")
        emulator.deployments.pop("claude-next")
    completion(model=MODEL, messages=[{"role": "user", "content": "Hi"}], max_tokens=50, **claude)
    assert sent(emulator)["max_tokens"] == 50
    completion(model=MODEL, messages=[{"role": "user", "content": "Hi"}], max_completion_tokens=60, **claude)
    assert sent(emulator)["max_tokens"] == 60


def test_tools_and_tool_choice_become_anthropic_tools_and_tool_use_comes_back_as_tool_calls(
    claude: dict[str, Any], emulator: Emulator
) -> None:
    r = completion(model=MODEL, messages=[{"role": "user", "content": "Weather in Paris?"}], tools=[WEATHER],
                   tool_choice={"type": "function", "function": {"name": "get_weather"}}, parallel_tool_calls=False, **claude)  # fmt: skip
    assert sent(emulator) == {
        "model": "claude-sonnet-4-5",
        "messages": [{"role": "user", "content": "Weather in Paris?"}],
        "max_tokens": 64000,
        "tools": [ANTHROPIC_WEATHER],
        "tool_choice": {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
    }
    [call] = r.choices[0].message.tool_calls
    assert call.id.startswith("toolu_emu_")
    assert call.type == "function"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    assert r.choices[0].finish_reason == "tool_calls"
    assert r.choices[0].message.content is None
    for choice, expected in (("auto", {"type": "auto"}), ("required", {"type": "any"}), ("none", {"type": "none"})):
        completion(model=MODEL, messages=[{"role": "user", "content": "Hi"}], tools=[WEATHER], tool_choice=choice, **claude)
        assert sent(emulator)["tool_choice"] == expected


def test_tool_results_become_tool_result_blocks_after_tool_use(claude: dict[str, Any], emulator: Emulator) -> None:
    messages = [
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "toolu_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
            {"id": "toolu_2", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'}},
        ]},
        {"role": "tool", "tool_call_id": "toolu_1", "content": "Sunny"},
        {"role": "tool", "tool_call_id": "toolu_2", "content": "Rain"},
    ]  # fmt: skip
    r = completion(model=MODEL, messages=messages, tools=[WEATHER], **claude)
    assert sent(emulator)["messages"] == [
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {"city": "Rome"}},
        ]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": "Sunny"},
            {"type": "tool_result", "tool_use_id": "toolu_2", "content": "Rain"},
        ]},
    ]  # fmt: skip
    assert r.choices[0].message.content == "The tool said: Sunny Rain"
    assert r.choices[0].finish_reason == "stop"


def test_images_as_data_uris_and_https_urls(claude: dict[str, Any], emulator: Emulator) -> None:
    content = [
        {"type": "text", "text": "What are these?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg", "detail": "low"}},
    ]
    completion(model=MODEL, messages=[{"role": "user", "content": content}], **claude)
    assert sent(emulator)["messages"] == [{"role": "user", "content": [
        {"type": "text", "text": "What are these?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
    ]}]  # fmt: skip


def test_stop_becomes_stop_sequences_and_temperature_top_p_pass(claude: dict[str, Any], emulator: Emulator) -> None:
    r = completion(model=MODEL, messages=[{"role": "user", "content": "one two three"}], stop="two",
                   temperature=0.2, top_p=0.9, **claude)  # fmt: skip
    body = sent(emulator)
    assert body["stop_sequences"] == ["two"]
    assert (body["temperature"], body["top_p"]) == (0.2, 0.9)
    assert r.choices[0].message.content == "Claude heard: one "
    assert r.choices[0].finish_reason == "stop"
    completion(model=MODEL, messages=[{"role": "user", "content": "x"}], stop=["a", "b"], **claude)
    assert sent(emulator)["stop_sequences"] == ["a", "b"]


def test_reasoning_effort_becomes_a_thinking_budget_and_thinking_comes_back(claude: dict[str, Any], emulator: Emulator) -> None:
    r = completion(model=MODEL, messages=[{"role": "user", "content": "Think"}], reasoning_effort="medium", **claude)
    assert sent(emulator)["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    message = r.choices[0].message
    assert message.reasoning_content == "Let me think about this step by step."
    assert message.content == "Claude heard: Think"
    # The thinking blocks go back on the next turn as they came (Anthropic checks their signature).
    messages = [{"role": "user", "content": "Think"}, message.model_dump(exclude_none=True), {"role": "user", "content": "More"}]
    completion(model=MODEL, messages=messages, reasoning_effort="low", **claude)
    assistant = sent(emulator)["messages"][1]
    assert assistant["content"][0]["type"] == "thinking"
    assert assistant["content"][0]["signature"].startswith("emulator-signature-")
    assert assistant["content"][1] == {"type": "text", "text": "Claude heard: Think"}


def test_reasoning_effort_needs_max_tokens_above_its_budget(claude: dict[str, Any], emulator: Emulator) -> None:
    from modelyard import BadRequestError

    with pytest.raises(BadRequestError) as caught:
        completion(model=MODEL, messages=[{"role": "user", "content": "x"}], reasoning_effort="high", max_tokens=1000, **claude)
    assert caught.value.param == "max_tokens"
    assert not emulator.requests


def test_cache_control_passes_through_and_usage_maps_cache_reads_and_writes(claude: dict[str, Any], emulator: Emulator) -> None:
    messages = [
        {"role": "system", "content": [{"type": "text", "text": "A long policy.", "cache_control": {"type": "ephemeral"}}]},
        {"role": "user", "content": [{"type": "text", "text": "Question", "cache_control": {"type": "ephemeral"}}]},
    ]
    first = completion(model=MODEL, messages=messages, **claude)
    body = sent(emulator)
    assert body["system"] == [{"type": "text", "text": "A long policy.", "cache_control": {"type": "ephemeral"}}]
    assert body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "Question", "cache_control": {"type": "ephemeral"}}]}]
    written = first.usage.cache_creation_input_tokens
    assert written > 0
    assert first.usage.prompt_tokens == written
    assert first.usage.prompt_tokens_details.cached_tokens == 0
    prices = PRICES["claude-sonnet-4-5"]
    assert first.cost == pytest.approx(written * prices["cache_creation_input_token_cost"]
                                       + first.usage.completion_tokens * prices["output_cost_per_token"])  # fmt: skip
    second = completion(model=MODEL, messages=messages, **claude)
    assert second.cost == pytest.approx(written * prices["cache_read_input_token_cost"]
                                        + second.usage.completion_tokens * prices["output_cost_per_token"])  # fmt: skip
    assert second.usage.cache_read_input_tokens == written
    assert second.usage.prompt_tokens_details.cached_tokens == written
    assert second.usage.prompt_tokens == written
    assert second.usage.total_tokens == written + second.usage.completion_tokens


def test_stop_reason_becomes_finish_reason(claude: dict[str, Any], emulator: Emulator) -> None:
    cut = completion(model=MODEL, messages=[{"role": "user", "content": "a b c d e f"}], max_tokens=2, **claude)
    assert cut.choices[0].finish_reason == "length"
    assert cut.choices[0].message.content == "Claude heard:"
    done = completion(model=MODEL, messages=[{"role": "user", "content": "a"}], **claude)
    assert done.choices[0].finish_reason == "stop"


def test_prices_come_from_register_prices(claude: dict[str, Any], emulator: Emulator) -> None:
    r = completion(model=MODEL, messages=[{"role": "user", "content": "Hello"}], **claude)
    prices = PRICES["claude-sonnet-4-5"]
    expected = r.usage.prompt_tokens * prices["input_cost_per_token"] + r.usage.completion_tokens * prices["output_cost_per_token"]
    assert r.cost == pytest.approx(expected)


def test_openai_only_parameters_are_refused_or_dropped(claude: dict[str, Any], emulator: Emulator) -> None:
    with pytest.raises(UnsupportedParamsError) as caught:
        completion(model=MODEL, messages=[{"role": "user", "content": "x"}], presence_penalty=0.5, **claude)
    assert caught.value.param == "presence_penalty"
    assert not emulator.requests
    completion(model=MODEL, messages=[{"role": "user", "content": "x"}], presence_penalty=0.5, seed=1, drop_params=True, **claude)
    assert "presence_penalty" not in sent(emulator)
    assert "seed" not in sent(emulator)


def test_azure_ai_prefix_and_an_openai_host_of_the_same_resource(claude: dict[str, Any], emulator: Emulator) -> None:
    completion(model="azure_ai/claude-sonnet-4-5", messages=[{"role": "user", "content": "x"}], **claude)
    assert sent(emulator)["model"] == "claude-sonnet-4-5"
    from modelyard.types import Connection
    from modelyard_azure_anthropic.plugin import messages_url

    assert messages_url(Connection(api_base="https://res.openai.azure.com/")) == "https://res.services.ai.azure.com/anthropic/v1/messages"
    assert messages_url(Connection(api_base="https://res.services.ai.azure.com/anthropic")) == "https://res.services.ai.azure.com/anthropic/v1/messages"


# ---------------------------------------------------------------------------- streams


def _expected_stream_body() -> dict[str, Any]:
    return {
        "model": "claude-sonnet-4-5",
        "messages": [{"role": "user", "content": "Weather in Paris?"}],
        "max_tokens": 64000,
        "tools": [ANTHROPIC_WEATHER],
        "stream": True,
    }


def _check_stream(chunks: list[Any], stream: Any) -> None:
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(c.id == chunks[0].id and c.id.startswith("msg_emu_") for c in chunks)
    calls = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert calls[0].id.startswith("toolu_emu_") and calls[0].function.name == "get_weather"
    assert all(tc.index == 0 for tc in calls)
    assert json.loads("".join(tc.function.arguments for tc in calls)) == {"city": "Paris"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    assert stream.usage.prompt_tokens > 0 and stream.usage.completion_tokens > 0
    assert stream.cost is not None and stream.cost > 0


def test_stream_sync(claude: dict[str, Any], emulator: Emulator) -> None:
    stream = completion(model=MODEL, messages=[{"role": "user", "content": "Weather in Paris?"}], tools=[WEATHER], stream=True, **claude)
    chunks = list(stream)
    assert sent(emulator) == _expected_stream_body()
    _check_stream(chunks, stream)


async def test_stream_async_with_usage_chunk(claude: dict[str, Any], emulator: Emulator) -> None:
    stream = await acompletion(model=MODEL, messages=[{"role": "user", "content": "Weather in Paris?"}], tools=[WEATHER],
                               stream=True, stream_options={"include_usage": True}, **claude)  # fmt: skip
    chunks = [c async for c in stream]
    assert sent(emulator) == _expected_stream_body()
    assert chunks[-1].choices == [] and chunks[-1].usage == stream.usage
    _check_stream(chunks[:-1], stream)


def test_stream_of_text_and_thinking(claude: dict[str, Any], emulator: Emulator) -> None:
    stream = completion(model=MODEL, messages=[{"role": "user", "content": "Hello there"}], reasoning_effort="low", stream=True, **claude)
    chunks = list(stream)
    assert "".join(c.choices[0].delta.reasoning_content or "" for c in chunks) == "Let me think about this step by step."
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Claude heard: Hello there"
    assert chunks[-1].choices[0].finish_reason == "stop"
