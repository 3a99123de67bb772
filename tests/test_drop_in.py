"""Drop-in fidelity: code written for the openai SDK or LiteLLM reads modelyard's results unchanged.

* The openai SDK's own response types are the reference: for recorded Azure responses (tool
  calls, logprobs and content filters, audio, "On your data" ``context``, and streams of tool
  calls and audio), every attribute path ``openai.types.chat.ChatCompletion`` /
  ``ChatCompletionChunk`` exposes reaches the same value on modelyard's result, by attribute and
  by key. Azure's fields the openai SDK keeps as plain dicts (content filters, ``context``) must
  be typed objects on ours.
* The recorded responses are served, with their recorded headers, by a small HTTP server on
  loopback, so they go through the whole pipeline (transport, normalisation, stream assembly).
* Module settings (``modelyard.api_key`` ...) with their precedence, and the response headers.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import modelyard
import modelyard.types
import openai.types.chat as oai
import pydantic
import pytest
from modelyard.errors import AuthenticationError, BadRequestError
from modelyard.testing import KEY, Deployment, Emulator
from modelyard.testing.server import serve_in_thread

DATA = Path(__file__).parent / "data" / "azure_responses"
CHATS = ["chat_tool_calls", "chat_logprobs_filters", "chat_audio", "chat_context"]
STREAMS = ["stream_tool_calls", "stream_audio"]
HELLO = [{"role": "user", "content": "hello"}]


def _record(name: str) -> dict[str, Any]:
    return json.loads((DATA / f"{name}.json").read_text())  # type: ignore[no-any-return]


# --------------------------------------------------------------------------- the walker


def _reach(ref: Any, ours: Any, path: str, *, declared: bool = True) -> int:
    """Assert that ``ours`` has, at every attribute path of ``ref`` (an openai SDK object), the same value.

    Walks ``ref`` generically: its declared fields and the extra fields it kept, recursively.
    On ours each step is taken by attribute and checked by key as well. A dict in ``ref``
    that the openai SDK did not declare (Azure's content filters, ``context``) must be a
    typed object on ours, read by attribute. Returns the number of leaves compared.
    """
    if isinstance(ref, pydantic.BaseModel):
        assert isinstance(ours, pydantic.BaseModel), f"{path}: a {type(ours).__name__} where the SDK has an object"
        fields = type(ref).model_fields
        leaves = 0
        for name in [*fields, *(ref.model_extra or {})]:
            assert hasattr(ours, name), f"{path}.{name}: missing on modelyard's {type(ours).__name__}"
            value = getattr(ours, name)
            assert ours[name] == value, f"{path}[{name!r}] differs from {path}.{name}"
            leaves += _reach(getattr(ref, name), value, f"{path}.{name}", declared=name in fields)
        return leaves
    if isinstance(ref, dict):
        if declared and isinstance(ours, dict):  # the SDK itself types this field as a dict
            assert ours == ref, path
            return 1
        assert isinstance(ours, pydantic.BaseModel), f"{path}: Azure's object is a {type(ours).__name__}, not typed"
        leaves = 0
        for key, value in ref.items():
            assert hasattr(ours, key), f"{path}.{key}: missing on modelyard's {type(ours).__name__}"
            assert ours[key] == getattr(ours, key) and ours.get(key) == getattr(ours, key), f"{path}[{key!r}]"
            leaves += _reach(value, getattr(ours, key), f"{path}.{key}", declared=False)
        return leaves
    if isinstance(ref, list):
        assert isinstance(ours, list) and len(ours) == len(ref), f"{path}: {ours!r} vs {ref!r}"
        return sum(_reach(r, o, f"{path}[{i}]", declared=declared) for i, (r, o) in enumerate(zip(ref, ours, strict=True)))
    assert ours == ref and type(ours) is type(ref), f"{path}: {ours!r} ({type(ours).__name__}) != {ref!r}"
    return 1


def test_the_walker_fails_on_a_dict_where_azure_sent_an_object() -> None:
    # The walker itself can fail: an untyped nested dict (what modelyard returned before) is caught.
    ref = oai.ChatCompletion.model_validate(_record("chat_context")["body"])

    class Loose(pydantic.BaseModel):
        model_config = pydantic.ConfigDict(extra="allow")

        def __getitem__(self, key: str) -> Any:
            return getattr(self, key)

    message = ref.choices[0].message
    loose = Loose.model_validate(message.model_dump())
    with pytest.raises(AssertionError, match=r"message\.context: Azure's object is a dict"):
        _reach(message, loose, "message")


# --------------------------------------------------------------------------- a recorded upstream


class _Recorded:
    """An ASGI app answering ``/openai/deployments/<name>/chat/completions`` with ``<name>.json``."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        with self._lock:
            self.bodies.append(json.loads(body))
        record = _record(scope["path"].split("/")[3])
        if "events" in record:
            payload = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in record["events"])
            payload += b"data: [DONE]\n\n"
        else:
            payload = json.dumps(record["body"]).encode()
        headers = [(k.encode(), v.encode()) for k, v in record["headers"].items()]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": payload})


@pytest.fixture(scope="module")
def recorded() -> Iterator[str]:
    """The URL of a loopback server replaying the recorded Azure responses in tests/data."""
    with serve_in_thread(_Recorded()) as server:
        yield server.url


# --------------------------------------------------------------------------- 1. typed responses


@pytest.mark.parametrize("name", CHATS)
def test_every_openai_attribute_path_reaches_the_same_value(recorded: str, name: str) -> None:
    body = _record(name)["body"]
    reference = oai.ChatCompletion.model_validate(body)
    ours = modelyard.completion(model=f"azure/{name}", messages=HELLO, api_base=recorded, api_key=KEY)
    assert isinstance(ours, modelyard.ChatCompletion)
    assert _reach(reference, ours, "response") >= 25


@pytest.mark.parametrize("name", STREAMS)
def test_every_openai_attribute_path_of_every_stream_chunk_reaches_the_same_value(recorded: str, name: str) -> None:
    first, *events = _record(name)["events"]
    # The recordings were made asking for usage (stream_tool_calls ends with the usage chunk),
    # which a caller who did not ask no longer receives.
    stream = modelyard.completion(
        model=f"azure/{name}", messages=HELLO, api_base=recorded, api_key=KEY, stream=True,
        stream_options={"include_usage": True},
    )  # fmt: skip
    chunks = list(stream)
    assert len(chunks) == len(events)  # Azure's empty first event is folded into the next chunk
    for i, (event, chunk) in enumerate(zip(events, chunks, strict=True)):
        _reach(oai.ChatCompletionChunk.model_validate(event), chunk, f"chunk[{i}]")
    # the first event's prompt annotations, on the stream and on the first chunk, typed
    reference = oai.ChatCompletionChunk.model_validate({**first, "object": "chat.completion.chunk"})
    _reach(reference.prompt_filter_results, stream.prompt_filter_results, "stream.prompt_filter_results", declared=False)  # type: ignore[attr-defined]
    assert chunks[0].prompt_filter_results == stream.prompt_filter_results


def test_stream_tool_call_fragments_join_by_index(recorded: str) -> None:
    stream = modelyard.completion(
        model="azure/stream_tool_calls", messages=HELLO, api_base=recorded, api_key=KEY, stream=True
    )
    calls: dict[int, dict[str, str]] = {}
    for chunk in stream:
        for choice in chunk.choices:
            for part in choice.delta.tool_calls or ():
                call = calls.setdefault(part.index, {"id": "", "name": "", "arguments": ""})  # type: ignore[arg-type]
                call["id"] += part.id or ""
                call["name"] += part.function.name or "" if part.function else ""
                call["arguments"] += part.function.arguments or "" if part.function else ""
    assert calls == {
        0: {"id": "call_Vx3nQ8rTy2LmK5pW0aZc7HbD", "name": "get_current_weather",
            "arguments": '{"location": "Paris, France"}'},
        1: {"id": "call_Qw8eR2tY5uI1oP4aS7dF0gHj", "name": "get_current_weather",
            "arguments": '{"location": "Tokyo, Japan"}'},
    }  # fmt: skip


def test_nested_parts_read_both_ways_and_keep_unknown_fields(recorded: str) -> None:
    r = modelyard.completion(model="azure/chat_context", messages=HELLO, api_base=recorded, api_key=KEY)
    message = r.choices[0].message  # type: ignore[union-attr]
    assert message.context is not None
    citation = message.context.citations[0]  # type: ignore[index]
    assert citation.filepath == r["choices"][0]["message"]["context"]["citations"][0]["filepath"] == "travel.pdf"
    assert message.context.all_retrieved_documents[1].filter_reason == "rerank"  # type: ignore[index]
    assert message["end_turn"] is True and message.get("end_turn") is True  # a field Azure adds, kept
    assert message.get("audio", "absent") == "absent" and message["audio"] is None  # declared, not sent
    assert "context" in message and "nonsense" not in message
    with pytest.raises(KeyError):
        message["nonsense"]
    filters = r.choices[0].content_filter_results  # type: ignore[union-attr]
    assert filters is not None and filters.protected_material_text.detected is False  # type: ignore[union-attr]
    assert r.usage.prompt_tokens_details.cached_tokens == 0  # type: ignore[union-attr]

    r = modelyard.completion(model="azure/chat_logprobs_filters", messages=HELLO, api_base=recorded, api_key=KEY)
    choice = r.choices[0]  # type: ignore[union-attr]
    assert choice.content_filter_results.protected_material_code.citation.URL.endswith("Hello-World")  # type: ignore[union-attr]
    assert choice.logprobs.content[0].top_logprobs[1].token == "Hi"  # type: ignore[union-attr]
    blocklists = r.prompt_filter_results[0].content_filter_results.custom_blocklists  # type: ignore[union-attr,index]
    assert blocklists.details[0].id == "team-blocklist"  # type: ignore[union-attr]

    r = modelyard.completion(model="azure/chat_tool_calls", messages=HELLO, api_base=recorded, api_key=KEY)
    assert r.usage.completion_tokens_details.reasoning_tokens == 128  # type: ignore[union-attr]
    assert r.usage.prompt_tokens_details.cached_tokens == 1152  # type: ignore[union-attr]


@pytest.mark.parametrize("name", CHATS)
def test_the_proxy_sends_recorded_responses_on_unchanged(recorded: str, name: str) -> None:
    # Typed nested parts serialise back to what the upstream sent: no field lost, none invented.
    import openai
    from modelyard.proxy import ProxyApp, parse_config

    master = "sk-drop-in-proxy-0123456789abcdef"
    params = {"model": f"azure/{name}", "api_base": recorded, "api_key": KEY, "api_version": "2024-10-21"}
    config = parse_config({"model_list": [{"model_name": name, "litellm_params": params}]})
    with (
        serve_in_thread(ProxyApp(config, master_key=master), lifespan="on") as proxy,
        openai.OpenAI(base_url=f"{proxy.url}/v1", api_key=master, max_retries=0) as client,
    ):
        raw = client.chat.completions.with_raw_response.create(model=name, messages=HELLO)  # type: ignore[arg-type]
    assert json.loads(raw.content) == _record(name)["body"]


# --------------------------------------------------------------------------- 6. response headers


def test_response_headers_case_insensitive_and_typed(recorded: str) -> None:
    r = modelyard.completion(model="azure/chat_logprobs_filters", messages=HELLO, api_base=recorded, api_key=KEY)
    assert r._response_headers is not None
    assert r._response_headers["X-MS-Region"] == r._response_headers["x-ms-region"] == "Sweden Central"
    assert r.azure_headers == modelyard.types.AzureHeaders(  # type: ignore[union-attr]
        request_id="4b7a6d1e-2f0c-4a8e-9d3b-5c1e8f2a7b90", region="Sweden Central",
        remaining_requests=1, remaining_tokens=9980,
    )  # fmt: skip
    assert "_response_headers" not in r.model_dump_json()


def test_stream_headers_typed(recorded: str) -> None:
    with modelyard.completion(
        model="azure/stream_tool_calls", messages=HELLO, api_base=recorded, api_key=KEY, stream=True
    ) as stream:
        assert stream._response_headers["APIM-Request-Id"] == "4b7a6d1e-2f0c-4a8e-9d3b-5c1e8f2a7b90"  # type: ignore[union-attr]
        quota = stream.azure_headers  # type: ignore[union-attr]
        assert (quota.region, quota.remaining_requests, quota.remaining_tokens) == ("East US 2", 98, 149700)


async def test_async_results_carry_the_headers(api_base: str, emulator: Emulator) -> None:
    emulator.add_deployment(Deployment("quota-async", rpm=30, tpm=10_000))
    kw: dict[str, Any] = {"api_base": api_base, "api_key": KEY, "api_version": "2024-10-21"}
    r = await modelyard.acompletion(model="azure/quota-async", messages=HELLO, **kw)
    assert r.azure_headers.remaining_requests == 29 and r.azure_headers.region == "East US 2"  # type: ignore[union-attr]
    stream = await modelyard.acompletion(model="azure/quota-async", messages=HELLO, stream=True, **kw)
    async with stream:  # type: ignore[union-attr]
        _ = [c async for c in stream]  # type: ignore[union-attr]
    assert stream.azure_headers.remaining_requests == 28  # type: ignore[union-attr]
    assert stream.azure_headers.request_id  # type: ignore[union-attr]


# --------------------------------------------------------------------------- 2. module settings


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """``modelyard`` with every module setting put back after the test."""
    for name in ("api_key", "azure_key", "api_base", "base_url", "api_version", "azure_ad_token",
                 "drop_params", "num_retries", "request_timeout"):  # fmt: skip
        monkeypatch.setattr(modelyard, name, getattr(modelyard, name, None), raising=False)
    yield modelyard


def test_a_litellm_style_script_runs_unchanged_but_for_the_import(
    settings: Any, api_base: str, emulator: Emulator
) -> None:
    import modelyard as litellm  # the only line a LiteLLM user changes

    litellm.api_key = KEY
    litellm.api_base = api_base
    litellm.api_version = "2024-10-21"
    litellm.drop_params = True
    litellm.num_retries = 1

    tools = [{"type": "function", "function": {
        "name": "get_current_weather", "description": "Get the current weather in a given location",
        "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]},
    }}]  # fmt: skip
    messages = [{"role": "user", "content": "What's the weather like in Boston today?"}]
    response = litellm.completion(model="azure/chatgpt-functioncalling", messages=messages, tools=tools)
    tool_call = response.choices[0].message.tool_calls[0]
    arguments = json.loads(tool_call.function.arguments)
    messages.append(response.choices[0].message.model_dump())
    messages.append({"role": "tool", "tool_call_id": tool_call.id, "name": tool_call.function.name,
                     "content": json.dumps({"location": arguments["location"], "temperature": "72"})})  # fmt: skip
    second = litellm.completion(model="azure/chatgpt-functioncalling", messages=messages)
    text = second["choices"][0]["message"]["content"]

    assert tool_call.type == "function" and tool_call.function.name == "get_current_weather"
    assert "location" in arguments
    assert text.startswith("Based on the tool result")
    sent = emulator.requests
    assert [r.path for r in sent] == ["/openai/deployments/chatgpt-functioncalling/chat/completions"] * 2
    assert all(r.headers["api-key"] == KEY and r.query["api-version"] == "2024-10-21" for r in sent)
    assert sent[1].body["messages"][1]["tool_calls"][0]["id"] == tool_call.id


def test_precedence_call_then_module_then_environment(
    settings: Any, monkeypatch: pytest.MonkeyPatch, api_base: str, emulator: Emulator
) -> None:
    monkeypatch.setenv("AZURE_API_BASE", "http://127.0.0.1:9")  # nothing listens: used only if it wins
    monkeypatch.setenv("AZURE_API_KEY", "environment-key-that-is-wrong")
    monkeypatch.setenv("AZURE_API_VERSION", "2024-06-01")

    # environment only: the wrong endpoint fails
    with pytest.raises(modelyard.APIConnectionError):
        modelyard.completion(model="azure/gpt-4o", messages=HELLO, num_retries=0)

    # module settings beat the environment ...
    settings.api_base, settings.api_key = api_base, KEY
    modelyard.completion(model="azure/gpt-4o", messages=HELLO)
    seen = emulator.requests[-1]
    assert seen.headers["api-key"] == KEY and seen.query["api-version"] == "2024-06-01"  # version still from env
    settings.api_version = "2024-10-21"
    modelyard.completion(model="azure/gpt-4o", messages=HELLO)
    assert emulator.requests[-1].query["api-version"] == "2024-10-21"  # a change takes effect on the next call

    # ... and call arguments beat module settings
    settings.api_base, settings.api_key = "http://127.0.0.1:9", "module-key-that-is-wrong"
    modelyard.completion(model="azure/gpt-4o", messages=HELLO, api_base=api_base, api_key=KEY, api_version="2025-04-01-preview")
    seen = emulator.requests[-1]
    assert seen.headers["api-key"] == KEY and seen.query["api-version"] == "2025-04-01-preview"


def test_a_credential_in_the_call_replaces_every_module_credential(
    settings: Any, api_base: str, emulator: Emulator
) -> None:
    from modelyard.testing import AD_TOKEN

    settings.api_base, settings.api_key = api_base, "module-key-that-is-wrong"
    # not "two credentials": the call's token is the call's credential
    modelyard.completion(model="azure/gpt-4o", messages=HELLO, azure_ad_token=AD_TOKEN)
    seen = emulator.requests[-1]
    assert seen.headers["authorization"] == f"Bearer {AD_TOKEN}" and "api-key" not in seen.headers
    # LiteLLM's second name for the key is read after api_key
    settings.api_key, settings.azure_key = None, KEY
    modelyard.completion(model="azure/gpt-4o", messages=HELLO)
    assert emulator.requests[-1].headers["api-key"] == KEY


def test_module_drop_params_retries_and_timeout(settings: Any, api_base: str, emulator: Emulator) -> None:
    kw: dict[str, Any] = {"api_base": api_base, "api_key": KEY, "api_version": "2024-10-21"}
    emulator.add_deployment(Deployment("my-o3", model="o3-mini"))
    with pytest.raises(modelyard.UnsupportedParamsError):
        modelyard.completion(model="azure/o_series/my-o3", messages=HELLO, temperature=0.2, **kw)
    settings.drop_params = True
    modelyard.completion(model="azure/o_series/my-o3", messages=HELLO, temperature=0.2, **kw)
    assert "temperature" not in emulator.requests[-1].body
    # a call's drop_params=False beats the module's True
    with pytest.raises(modelyard.UnsupportedParamsError):
        modelyard.completion(model="azure/o_series/my-o3", messages=HELLO, temperature=0.2, drop_params=False, **kw)

    flaky = emulator.add_deployment(Deployment("flaky"))
    flaky.faults.script = [503, 503, 503]
    settings.num_retries = 1
    with pytest.raises(modelyard.ServiceUnavailableError):
        modelyard.completion(model="azure/flaky", messages=HELLO, **kw)
    assert flaky.faults.script == [503]  # the first try and one retry
    with pytest.raises(modelyard.ServiceUnavailableError):
        modelyard.completion(model="azure/flaky", messages=HELLO, num_retries=0, **kw)  # the call's 0 wins
    assert flaky.faults.script == []

    slow = emulator.add_deployment(Deployment("slow"))
    slow.faults.latency = 1.0
    settings.request_timeout = 0.1
    with pytest.raises(modelyard.APITimeoutError):
        modelyard.completion(model="azure/slow", messages=HELLO, num_retries=0, **kw)
    modelyard.completion(model="azure/slow", messages=HELLO, timeout=60, **kw)  # the call's timeout wins

    settings.num_retries = "twice"
    with pytest.raises(BadRequestError, match=r"modelyard\.num_retries"):
        modelyard.completion(model="azure/gpt-4o", messages=HELLO, **kw)


def test_module_secrets_never_show(
    settings: Any, api_base: str, emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "module-secret-0123456789abcdef"
    settings.api_base, settings.api_key = api_base, secret
    with caplog.at_level("DEBUG"), pytest.raises(AuthenticationError) as info:
        modelyard.completion(model="azure/gpt-4o", messages=HELLO, num_retries=0)
    assert secret not in str(info.value) and secret not in repr(info.value)
    assert secret not in caplog.text
    settings.api_version = 20241021  # a wrong type names the module setting, not the value of another
    with pytest.raises(BadRequestError) as bad:
        modelyard.completion(model="azure/gpt-4o", messages=HELLO)
    assert bad.value.param == "modelyard.api_version" and secret not in str(bad.value)


def test_module_settings_reach_files_too(settings: Any, api_base: str, emulator: Emulator) -> None:
    settings.api_base, settings.api_key, settings.api_version = api_base, KEY, "2024-10-21"
    listed = modelyard.file_list(custom_llm_provider="azure")
    assert listed.object == "list"
    assert emulator.requests[-1].headers["api-key"] == KEY


def test_import_modelyard_stays_light() -> None:
    # The settings are plain module attributes: reading them imports nothing.
    import subprocess
    import sys

    code = ("import sys, modelyard; modelyard.api_key; modelyard.num_retries; modelyard.request_timeout;"
            "print(sorted(m for m in ('httpx', 'pydantic') if m in sys.modules))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_module_settings_are_read_safely_while_another_thread_changes_them(
    settings: Any, api_base: str, emulator: Emulator
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    settings.api_base, settings.api_key = api_base, KEY
    versions = ("2024-10-21", "2024-06-01")
    settings.api_version = versions[0]

    def call(i: int) -> None:
        modelyard.completion(model="azure/gpt-4o", messages=HELLO)

    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(call, i) for i in range(24)]
        for i in range(24):  # flip the setting while calls are in flight
            settings.api_version = versions[i % 2]
        for f in futures:
            f.result()
    sent = [r.query["api-version"] for r in emulator.requests]
    assert len(sent) == 24 and set(sent) <= set(versions)  # every call saw one whole value
    settings.api_version = versions[1]
    modelyard.completion(model="azure/gpt-4o", messages=HELLO)
    assert emulator.requests[-1].query["api-version"] == versions[1]  # the next call sees the change


def test_nested_parts_equal_the_json_they_came_from(recorded: str) -> None:
    # Code written when nested parts were dicts compares them with dicts.
    r = modelyard.completion(model="azure/chat_tool_calls", messages=HELLO, api_base=recorded, api_key=KEY)
    body = _record("chat_tool_calls")["body"]
    assert r.choices[0].message.tool_calls[0] == body["choices"][0]["message"]["tool_calls"][0]  # type: ignore[union-attr,index]
    assert r.usage == body["usage"]  # type: ignore[union-attr]
    assert r.usage != {**body["usage"], "total_tokens": 0}  # type: ignore[union-attr]


def test_a_simulated_stream_carries_the_headers_of_its_call(api_base: str, emulator: Emulator) -> None:
    emulator.add_deployment(Deployment("my-o1-mini", model="o1-mini", rpm=40))
    stream = modelyard.completion(
        model="azure/my-o1-mini", messages=HELLO, stream=True, api_base=api_base, api_key=KEY, api_version="2024-10-21"
    )
    chunks = list(stream)  # type: ignore[arg-type]
    assert "stream" not in emulator.requests[-1].body  # o1-mini cannot stream: one call, replayed
    assert chunks[0].choices[0].delta.role == "assistant"
    assert stream.azure_headers.remaining_requests == 39 and stream.azure_headers.request_id  # type: ignore[union-attr]
