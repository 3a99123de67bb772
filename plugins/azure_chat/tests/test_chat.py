"""The azure_chat plugin against the emulator: URLs, parameters, streaming, retries."""

from __future__ import annotations

import asyncio

import modelyard
import pytest
from modelyard import errors
from modelyard.testing import AD_TOKEN, FILTER_OUTPUT_TRIGGER, KEY, Emulator, Faults
from modelyard.transport import get_transport

MESSAGES = [{"role": "user", "content": "Say hello"}]


def _call(api_base: str, **kw):
    kw.setdefault("api_key", KEY)
    kw.setdefault("api_version", "2024-10-21")
    kw.setdefault("messages", MESSAGES)
    return modelyard.completion(model=kw.pop("model", "azure/gpt-4o"), api_base=api_base, **kw)


# ------------------------------------------------------------------------ URLs


@pytest.mark.parametrize("suffix", ["", "/", "/openai", "/openai/", "/openai/v1/"])
def test_api_base_forms_give_one_url(api_base: str, emulator: Emulator, suffix: str) -> None:
    _call(api_base + suffix)
    assert emulator.requests[-1].path == "/openai/deployments/gpt-4o/chat/completions"


def test_openai_sdk_environment_names(monkeypatch, api_base: str, emulator: Emulator) -> None:
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", KEY)
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", api_base)
    monkeypatch.setenv("OPENAI_API_VERSION", "2024-06-01")
    modelyard.completion(model="azure/gpt-4o", messages=MESSAGES)
    seen = emulator.requests[-1]
    assert seen.query == {"api-version": "2024-06-01"}
    assert seen.headers["api-key"] == KEY


def test_default_api_version_is_documented_one(api_base: str, emulator: Emulator) -> None:
    from modelyard_azure_common.urls import DEFAULT_API_VERSION

    modelyard.completion(model="azure/gpt-4o", api_base=api_base, api_key=KEY, messages=MESSAGES)
    assert emulator.requests[-1].query == {"api-version": DEFAULT_API_VERSION}
    assert DEFAULT_API_VERSION == "2025-04-01-preview"


@pytest.mark.parametrize(("version", "query"), [("v1", {}), ("latest", {}), ("preview", {"api-version": "preview"})])
def test_v1_api_puts_deployment_in_body(api_base: str, emulator: Emulator, version: str, query: dict) -> None:
    r = _call(api_base, api_version=version)
    seen = emulator.requests[-1]
    assert seen.path == "/openai/v1/chat/completions"
    assert seen.query == query
    assert seen.body == {"messages": MESSAGES, "model": "gpt-4o"}
    assert r.choices[0].message.content


def test_missing_endpoint_names_parameter_and_variables() -> None:
    with pytest.raises(errors.ConfigError) as info:
        modelyard.completion(model="azure/gpt-4o", api_key=KEY, messages=MESSAGES)
    assert info.value.key == "api_base"
    for name in ("api_base", "AZURE_API_BASE", "AZURE_OPENAI_ENDPOINT"):
        assert name in str(info.value)


def test_extra_headers_are_sent_and_caller_auth_wins(api_base: str, emulator: Emulator) -> None:
    _call(api_base, api_key=None, extra_headers={"api-key": KEY, "x-ms-client-request-id": "abc"})
    seen = emulator.requests[-1]
    assert seen.headers["api-key"] == KEY
    assert seen.headers["x-ms-client-request-id"] == "abc"


# ------------------------------------------------------------------------ parameters


def test_every_openai_parameter_passes_through(api_base: str, emulator: Emulator) -> None:
    params = {
        "temperature": 0.2,
        "top_p": 0.9,
        "n": 2,
        "stop": ["\n\n"],
        "max_tokens": 50,
        "presence_penalty": 0.1,
        "frequency_penalty": 0.2,
        "logit_bias": {"50256": -100.0},
        "logprobs": True,
        "top_logprobs": 2,
        "user": "user-1",
        "seed": 7,
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
        "tool_choice": "none",
        "parallel_tool_calls": False,
        "response_format": {"type": "json_object"},
        "metadata": {"team": "a"},
        "store": False,
    }
    r = _call(api_base, **params)
    assert emulator.requests[-1].body == {"messages": MESSAGES, **params}
    assert len(r.choices) == 2
    assert r.choices[0].message.content.startswith("{")


def test_extra_body_is_merged_and_none_values_dropped(api_base: str, emulator: Emulator) -> None:
    _call(api_base, temperature=None, extra_body={"data_sources": [{"type": "azure_search"}]})
    assert emulator.requests[-1].body == {"messages": MESSAGES, "data_sources": [{"type": "azure_search"}]}


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"temperature": "hot"}, "temperature"),
        ({"n": 0}, "n"),
        ({"tools": "not-a-list"}, "tools"),
        ({"messages": []}, "messages"),
        ({"messages": [{"content": "no role"}]}, "messages[0].role"),
        ({"messages": ["text"]}, "messages[0]"),
    ],
)
def test_bad_input_names_the_field_and_sends_nothing(api_base: str, emulator: Emulator, kwargs, field) -> None:
    with pytest.raises(errors.BadRequestError) as info:
        _call(api_base, **kwargs)
    assert info.value.param == field
    assert field in str(info.value)
    assert emulator.requests == []


def test_unknown_provider_prefix_is_clear(api_base: str) -> None:
    with pytest.raises(errors.BadRequestError) as info:
        _call(api_base, model="bedrock/claude")
    assert "azure/" in str(info.value) and info.value.param == "model"


def test_response_keeps_azure_fields(api_base: str, emulator: Emulator) -> None:
    r = _call(api_base)
    assert r.prompt_filter_results[0]["content_filter_results"]["jailbreak"] == {"filtered": False, "detected": False}
    assert r.choices[0].content_filter_results["hate"]["severity"] == "safe"
    assert r.usage.completion_tokens_details["reasoning_tokens"] == 0
    assert r["choices"][0].message.role == "assistant"


def test_output_filter_is_a_finish_reason_not_an_error(api_base: str, emulator: Emulator) -> None:
    r = _call(api_base, messages=[{"role": "user", "content": FILTER_OUTPUT_TRIGGER}])
    assert r.choices[0].finish_reason == "content_filter"
    assert r.choices[0].content_filter_results["violence"]["filtered"] is True


# ------------------------------------------------------------------------ streaming


def test_stream_skips_empty_first_chunk_and_keeps_annotations(api_base: str, emulator: Emulator) -> None:
    stream = _call(api_base, stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    assert emulator.requests[-1].body["stream"] is True
    content_chunks = [c for c in chunks if c.choices]
    assert all(c.id for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in content_chunks)
    assert text == "This is gpt-4o on the modelyard emulator. You said: Say hello"
    assert content_chunks[0].prompt_filter_results[0]["prompt_index"] == 0
    assert stream.prompt_filter_results == content_chunks[0].prompt_filter_results
    assert content_chunks[1].choices[0].content_filter_results["hate"]["filtered"] is False
    assert content_chunks[-1].choices[0].finish_reason == "stop"
    usage = chunks[-1]
    assert usage.choices == [] and usage.usage.total_tokens > 0


async def test_async_stream_matches_sync(api_base: str, emulator: Emulator) -> None:
    stream = await modelyard.acompletion(
        model="azure/gpt-4o", api_base=api_base, api_key=KEY, messages=MESSAGES, stream=True
    )
    text = ""
    async for chunk in stream:
        text += chunk.choices[0].delta.content or ""
    assert text.endswith("You said: Say hello")
    assert emulator.requests[-1].body["stream"] is True


def test_stream_tool_call_deltas(api_base: str, emulator: Emulator) -> None:
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}}}]
    chunks = [c for c in _call(api_base, stream=True, tools=tools)]
    calls = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert calls[0]["function"]["name"] == "lookup"
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_dropped_stream_raises_connection_error(api_base: str, emulator: Emulator) -> None:
    emulator.deployments["gpt-4o"].faults = Faults(drop_stream_after=2)
    stream = _call(api_base, stream=True)
    with pytest.raises(errors.APIConnectionError):
        list(stream)


# ------------------------------------------------------------------------ async, auth


async def test_acompletion_with_async_token_provider(api_base: str, emulator: Emulator) -> None:
    calls = 0

    async def provider() -> str:
        nonlocal calls
        calls += 1
        return AD_TOKEN

    r = await modelyard.acompletion(
        model="azure/gpt-4o", api_base=api_base, azure_ad_token_provider=provider, messages=MESSAGES
    )
    assert r.choices[0].message.content
    assert emulator.requests[-1].headers["authorization"] == f"Bearer {AD_TOKEN}"
    assert calls == 1


def test_sync_token_provider(api_base: str, emulator: Emulator) -> None:
    _call(api_base, api_key=None, azure_ad_token_provider=lambda: AD_TOKEN)
    assert emulator.requests[-1].headers["authorization"] == f"Bearer {AD_TOKEN}"


def test_two_credentials_are_refused(api_base: str, emulator: Emulator) -> None:
    with pytest.raises(errors.AuthenticationError, match="only one of"):
        _call(api_base, azure_ad_token=AD_TOKEN)
    assert emulator.requests == []


# ------------------------------------------------------------------------ retries and pooling


def test_429_is_retried_after_retry_after(api_base: str, emulator: Emulator) -> None:
    emulator.deployments["gpt-4o"].faults = Faults(script=[429], retry_after=0.05)
    r = _call(api_base, num_retries=1)
    assert r.choices[0].message.content
    assert len(emulator.requests) == 2


def test_5xx_retried_then_given_up(api_base: str, emulator: Emulator) -> None:
    emulator.deployments["gpt-4o"].faults = Faults(script=[503, 500, 503])
    with pytest.raises(errors.ServiceUnavailableError):
        _call(api_base, num_retries=2)
    assert len(emulator.requests) == 3


def test_other_4xx_not_retried(api_base: str, emulator: Emulator) -> None:
    emulator.deployments["gpt-4o"].faults = Faults(script=[400])
    with pytest.raises(errors.BadRequestError):
        _call(api_base, num_retries=3)
    assert len(emulator.requests) == 1


def test_retry_delay_honours_server_then_backs_off() -> None:
    import httpx
    from modelyard.transport import retry_delay

    assert retry_delay(0, httpx.Headers({"retry-after-ms": "250", "retry-after": "9"})) == 0.25
    assert retry_delay(0, httpx.Headers({"retry-after": "3"})) == 3.0
    assert retry_delay(0, httpx.Headers({"retry-after": "3600"})) == 60.0  # clamped to MAX_RETRY_AFTER (issue 22)
    assert 0.375 <= retry_delay(0, httpx.Headers({"retry-after": "soon"})) <= 0.5  # unusable: backoff
    assert 6.0 <= retry_delay(10, None) <= 8.0


def test_one_pooled_client_per_origin(api_base: str, emulator: Emulator) -> None:
    transport = get_transport()
    first = transport.client(api_base + "/openai/deployments/a")
    _call(api_base)
    _call(api_base, model="azure/gpt-4o-mini")
    assert transport.client(api_base + "/x") is first


async def test_concurrent_async_calls_share_a_client(api_base: str, emulator: Emulator) -> None:
    results = await asyncio.gather(
        *(modelyard.acompletion(model="azure/gpt-4o", api_base=api_base, api_key=KEY, messages=MESSAGES) for _ in range(20))
    )
    assert len(results) == 20 and len(emulator.requests) == 20
    assert get_transport().aclient(api_base) is get_transport().aclient(api_base + "/y")
