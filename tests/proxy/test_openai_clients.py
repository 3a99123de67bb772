"""The proxy driven by the official openai SDK: chat, streaming, tools, models, AzureOpenAI."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest
from modelyard.testing import Emulator

from .conftest import MASTER_KEY


def client(proxy: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{proxy.url}/v1", api_key=MASTER_KEY, max_retries=0)


def test_chat_completion(proxy: Any, emulator: Emulator) -> None:
    r = client(proxy).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "good morning"}])
    assert r.object == "chat.completion"
    assert r.choices[0].message.content == "This is gpt-4o on the modelyard emulator. You said: good morning"
    assert r.usage is not None and r.usage.total_tokens > 0
    # The upstream got the deployment's own key and api-version, not the proxy's master key.
    sent = emulator.requests[-1]
    assert sent.path == "/openai/deployments/gpt-4o/chat/completions"
    assert sent.query["api-version"] == "2024-10-21"
    assert MASTER_KEY not in json.dumps(sent.headers)


def test_without_v1_prefix(proxy: Any) -> None:
    c = openai.OpenAI(base_url=proxy.url, api_key=MASTER_KEY, max_retries=0)
    r = c.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert "gpt-4o-mini" in (r.choices[0].message.content or "")
    assert [m.id for m in c.models.list()] == ["gpt-4o", "gpt-4o-mini", "tools-model", "tiny"]


def test_streaming(proxy: Any) -> None:
    stream = client(proxy).chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "stream please"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "This is gpt-4o on the modelyard emulator. You said: stream please"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0


def test_tools(proxy: Any) -> None:
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]  # fmt: skip
    r = client(proxy).chat.completions.create(
        model="tools-model", messages=[{"role": "user", "content": "weather in Paris?"}], tools=tools  # type: ignore[arg-type]
    )
    call = r.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert r.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    assert set(json.loads(call.function.arguments)) == {"city"}  # type: ignore[union-attr]


def test_models(proxy: Any) -> None:
    c = client(proxy)
    assert [m.id for m in c.models.list()] == ["gpt-4o", "gpt-4o-mini", "tools-model", "tiny"]
    assert c.models.retrieve("tiny").id == "tiny"
    with pytest.raises(openai.NotFoundError):
        c.models.retrieve("nope")


def test_azure_openai_client(proxy: Any, emulator: Emulator) -> None:
    az = openai.AzureOpenAI(azure_endpoint=proxy.url, api_key=MASTER_KEY, api_version="2024-10-21", max_retries=0)
    r = az.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "from azure"}])
    assert r.choices[0].message.content == "This is gpt-4o-mini on the modelyard emulator. You said: from azure"
    stream = az.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "s"}], stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices).endswith("You said: s")
    dep = openai.AzureOpenAI(
        azure_endpoint=proxy.url, azure_deployment="gpt-4o", api_key=MASTER_KEY, api_version="2024-10-21", max_retries=0
    )
    r = dep.chat.completions.create(model="ignored-by-azure", messages=[{"role": "user", "content": "d"}])
    assert "This is gpt-4o " in (r.choices[0].message.content or "")


def test_upstream_errors_keep_their_status(proxy: Any, emulator: Emulator) -> None:
    c = client(proxy)
    with pytest.raises(openai.BadRequestError) as filtered:
        c.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "emulator:filter-prompt"}])
    assert filtered.value.code == "content_filter"
    with pytest.raises(openai.BadRequestError) as long:
        c.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "word " * 50}])
    assert long.value.code == "context_length_exceeded"
    emulator.deployments["gpt-4o"].faults.script = [429]
    with pytest.raises(openai.RateLimitError):
        c.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    emulator.deployments["gpt-4o-mini"].faults.script = [503]
    with pytest.raises(openai.InternalServerError) as unavailable:
        c.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    assert unavailable.value.status_code == 503
    # and the next request is served
    assert c.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "ok"}]).choices


def test_simulated_stream_of_a_model_that_cannot_stream(api_base: str, emulator: Emulator) -> None:
    # o1-mini cannot stream: the pipeline asks for the whole answer and replays it as chunks;
    # on the wire those chunks still carry OpenAI's envelope (object, id, created, model).
    from modelyard.testing import Deployment

    from .conftest import azure, running_proxy

    emulator.add_deployment(Deployment("o1-mini", model="o1-mini"))
    config = {"model_list": [{"model_name": "reasoner", "litellm_params": azure(api_base, "o1-mini")}]}
    with running_proxy(config) as proxy:
        stream = client(proxy).chat.completions.create(
            model="reasoner", messages=[{"role": "user", "content": "think"}], stream=True
        )
        chunks = list(stream)
    assert "stream" not in emulator.requests[-1].body
    assert all(c.object == "chat.completion.chunk" and c.id for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).endswith("You said: think")
