"""Model families end to end (issue 3): o-series, GPT-5, instruct and audio against the emulator.

The emulator enforces each model's Azure constraints from the deployment's ``model``, so a
passing call proves the family's mapping, and the raw-HTTP tests at the end prove the emulator
refuses what Azure refuses. docs/families.md names, for every rule, the test here that proves it.
"""

from __future__ import annotations

from typing import Any

import httpx
import modelyard
import pytest
from modelyard import BadRequestError, UnsupportedParamsError, completion
from modelyard.plugins import get_plugins, reset_plugins
from modelyard.testing import KEY, Emulator, add_family_deployments

VERSION = "2025-04-01-preview"
HELLO = [{"role": "user", "content": "Hello"}]


@pytest.fixture
def fam(emulator: Emulator) -> Emulator:
    return add_family_deployments(emulator)  # type: ignore[no-any-return]


@pytest.fixture
def kw(api_base: str) -> dict[str, Any]:
    return {"api_base": api_base, "api_key": KEY, "api_version": VERSION}


def resolve(model: str, **kwargs: Any) -> tuple[str, str]:
    route, family = get_plugins().families.resolve(model, **kwargs)
    return family.name, route.deployment


# --------------------------------------------------------------------------- recognition


@pytest.mark.parametrize(
    ("model", "family"),
    [
        ("azure/my-o3-deployment", "o_series"),
        ("azure/o4-mini", "o_series"),
        ("azure/o1", "o_series"),
        ("azure/o3", "o_series"),
        ("azure/prod_O3-mini", "o_series"),
        ("azure/o1-mini", "o_series_legacy"),
        ("azure/team-o1-preview-2024", "o_series_legacy"),
        ("azure/demo1", "azure"),
        ("azure/foo10", "azure"),
        ("azure/o10", "azure"),
        ("azure/gpt-4o", "azure"),
        ("azure/gpt-35-turbo1", "azure"),
        ("azure/gpt-4o-mini", "azure"),
        ("azure/my-gpt-5-deployment", "gpt5"),
        ("azure/gpt-5-mini", "gpt5"),
        ("azure/gpt-5-nano", "gpt5"),
        ("azure/gpt-5.1", "gpt5"),
        ("azure/gpt5-prod", "gpt5"),
        ("azure/gpt-50", "azure"),
        ("azure/gpt-5-chat", "gpt5_chat"),
        ("azure/my-gpt-5.1-chat", "gpt5_chat"),
        ("azure_text/my-instruct-deployment", "azure_text"),
    ],
)
def test_family_recognised_from_name(model: str, family: str) -> None:
    assert resolve(model)[0] == family


def test_explicit_segments_are_stripped() -> None:
    assert resolve("azure/o_series/my-random-deployment-name") == ("o_series", "my-random-deployment-name")
    assert resolve("azure/gpt5_series/my-gpt-5-deployment") == ("gpt5", "my-gpt-5-deployment")
    # the segment wins over whatever the name says
    assert resolve("azure/o_series/gpt-4o") == ("o_series", "gpt-4o")


def test_segment_is_refined_by_a_narrower_family() -> None:
    assert resolve("azure/o_series/my-o1-mini") == ("o_series_legacy", "my-o1-mini")
    assert resolve("azure/gpt5_series/gpt-5-chat") == ("gpt5_chat", "gpt-5-chat")
    assert resolve("azure/o_series/x", base_model="azure/o1-preview") == ("o_series_legacy", "x")


def test_base_model_wins_over_the_name() -> None:
    assert resolve("azure/prod-reasoner", base_model="azure/o3-mini")[0] == "o_series"
    assert resolve("azure/prod-reasoner", base_model="o1-mini")[0] == "o_series_legacy"
    # base_model says what the deployment is: its name is not sniffed
    assert resolve("azure/my-o3-deployment", base_model="azure/gpt-4o")[0] == "azure"
    # a lookahead could not do this: the name says gpt-5, the base model says gpt-5-chat
    assert resolve("azure/my-gpt-5-thing", base_model="azure/gpt-5-chat")[0] == "gpt5_chat"


def test_unknown_model_family_names_the_field() -> None:
    with pytest.raises(BadRequestError) as info:
        resolve("azure/x", family="o5_series")
    assert info.value.param == "model_family"
    assert "o_series" in str(info.value) and "gpt5" in str(info.value)


# --------------------------------------------------------------------------- pinning


def test_base_model_pins_o_series(fam: Emulator, kw: dict[str, Any]) -> None:
    r = completion(model="azure/prod-reasoner", messages=HELLO, max_tokens=100, base_model="azure/o3-mini", **kw)
    assert r.usage.completion_tokens_details["reasoning_tokens"] > 0
    r = completion(
        model="azure/prod-reasoner", messages=HELLO, max_tokens=100, model_info={"base_model": "azure/o3-mini"}, **kw
    )
    assert [q.body for q in fam.requests] == [{"messages": HELLO, "max_completion_tokens": 100}] * 2


def test_model_family_pins(fam: Emulator, kw: dict[str, Any]) -> None:
    completion(model="azure/prod-reasoner", messages=HELLO, max_tokens=100, model_family="o_series", **kw)
    completion(model="azure/prod-reasoner", messages=HELLO, max_tokens=100, model_info={"model_family": "o_series"}, **kw)
    assert [q.body for q in fam.requests] == [{"messages": HELLO, "max_completion_tokens": 100}] * 2


def test_unpinned_deployment_gets_azures_error(fam: Emulator, kw: dict[str, Any]) -> None:
    with pytest.raises(BadRequestError) as info:
        completion(model="azure/prod-reasoner", messages=HELLO, max_tokens=100, **kw)
    assert info.value.code == "unsupported_parameter"
    assert "max_completion_tokens" in str(info.value)


# --------------------------------------------------------------------------- o-series


def test_o_series_renames_max_tokens_and_maps_system(fam: Emulator, kw: dict[str, Any]) -> None:
    messages = [{"role": "system", "content": "Be brief."}, *HELLO]
    r = completion(model="azure/my-o3-deployment", messages=messages, max_tokens=200, reasoning_effort="high", **kw)
    [seen] = fam.requests
    assert seen.body == {
        "messages": [{"role": "developer", "content": "Be brief."}, *HELLO],
        "max_completion_tokens": 200,
        "reasoning_effort": "high",
    }
    assert messages[0]["role"] == "system"  # the caller's list is untouched
    assert r.usage.completion_tokens_details["reasoning_tokens"] == 128


def test_o_series_temperature_only_1(fam: Emulator, kw: dict[str, Any]) -> None:
    completion(model="azure/my-o3-deployment", messages=HELLO, temperature=1, **kw)
    assert fam.requests[0].body["temperature"] == 1
    fam.requests.clear()
    with pytest.raises(UnsupportedParamsError) as info:
        completion(model="azure/my-o3-deployment", messages=HELLO, temperature=0.5, **kw)
    assert fam.requests == []
    assert info.value.param == "temperature"
    assert "only 1 is allowed" in str(info.value)


@pytest.mark.parametrize(
    ("param", "value"),
    [("top_p", 0.5), ("presence_penalty", 0.1), ("frequency_penalty", 0.1), ("logprobs", True),
     ("top_logprobs", 2), ("logit_bias", {"50256": -100}), ("verbosity", "low")],
)  # fmt: skip
def test_o_series_unsupported_params_raise_before_any_request(
    fam: Emulator, kw: dict[str, Any], param: str, value: Any
) -> None:
    with pytest.raises(UnsupportedParamsError) as info:
        completion(model="azure/my-o3-deployment", messages=HELLO, **{param: value}, **kw)
    assert fam.requests == []
    err = info.value
    assert err.param == param
    assert err.status_code == 400
    message = str(err)
    assert f"'{param}'" in message and "o_series" in message and "drop_params=True" in message


def test_drop_params_per_call(fam: Emulator, kw: dict[str, Any]) -> None:
    r = completion(
        model="azure/my-o3-deployment", messages=HELLO, top_p=0.5, temperature=0.2, logprobs=True,
        max_tokens=50, drop_params=True, **kw,
    )  # fmt: skip
    assert r.choices[0].finish_reason == "stop"
    assert fam.requests[0].body == {"messages": HELLO, "max_completion_tokens": 50}


def test_drop_params_global(fam: Emulator, kw: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(modelyard, "drop_params", True)
    completion(model="azure/my-gpt-5-deployment", messages=HELLO, temperature=0.2, presence_penalty=1, **kw)
    assert fam.requests[0].body == {"messages": HELLO}
    # a per-call False overrides the global setting
    with pytest.raises(UnsupportedParamsError):
        completion(model="azure/my-gpt-5-deployment", messages=HELLO, top_p=0.1, drop_params=False, **kw)


def test_o_series_streams_natively(fam: Emulator, kw: dict[str, Any]) -> None:
    chunks = list(completion(model="azure/my-o3-deployment", messages=HELLO, stream=True,
                             stream_options={"include_usage": True}, **kw))  # fmt: skip
    assert fam.requests[0].body["stream"] is True
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).endswith("You said: Hello")
    assert chunks[-1].usage.completion_tokens_details["reasoning_tokens"] > 0


def test_o1_mini_roles_become_user_and_stream_is_simulated(fam: Emulator, kw: dict[str, Any]) -> None:
    messages = [{"role": "system", "content": "Be brief."}, {"role": "developer", "content": "No lists."}, *HELLO]
    stream = completion(model="azure/my-o1-mini", messages=messages, stream=True, max_tokens=300,
                        stream_options={"include_usage": True}, **kw)  # fmt: skip
    chunks = list(stream)
    [seen] = fam.requests
    assert seen.body == {
        "messages": [{"role": "user", "content": "Be brief."}, {"role": "user", "content": "No lists."}, *HELLO],
        "max_completion_tokens": 300,
    }
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[0].choices[0].delta.content.endswith("You said: Hello")
    assert chunks[1].choices[0].finish_reason == "stop"
    assert chunks[2].usage.completion_tokens_details["reasoning_tokens"] > 0


async def test_o1_preview_simulated_stream_async(fam: Emulator, kw: dict[str, Any]) -> None:
    stream = await modelyard.acompletion(model="azure/o_series/o1-preview", messages=HELLO, stream=True, **kw)
    chunks = [c async for c in stream]
    assert "stream" not in fam.requests[0].body
    assert [c.choices[0].finish_reason for c in chunks] == [None, "stop"]


def test_o1_mini_refuses_tools_and_reasoning_effort(fam: Emulator, kw: dict[str, Any]) -> None:
    for param, value in (("tools", [{"type": "function", "function": {"name": "f"}}]), ("reasoning_effort", "low")):
        with pytest.raises(UnsupportedParamsError) as info:
            completion(model="azure/my-o1-mini", messages=HELLO, **{param: value}, **kw)
        assert info.value.param == param
    assert fam.requests == []


# --------------------------------------------------------------------------- GPT-5


def test_gpt5_renames_max_tokens_and_passes_reasoning_effort_and_verbosity(fam: Emulator, kw: dict[str, Any]) -> None:
    messages = [{"role": "system", "content": "Be brief."}, *HELLO]
    r = completion(model="azure/gpt-5-mini", messages=messages, max_tokens=64, reasoning_effort="minimal",
                   verbosity="low", temperature=1, **kw)  # fmt: skip
    assert fam.requests[0].body == {
        "messages": messages,  # GPT-5 takes system messages as they are
        "max_completion_tokens": 64,
        "reasoning_effort": "minimal",
        "verbosity": "low",
        "temperature": 1,
    }
    assert r.usage.completion_tokens_details["reasoning_tokens"] > 0


def test_gpt5_temperature_only_1(fam: Emulator, kw: dict[str, Any]) -> None:
    with pytest.raises(UnsupportedParamsError) as info:
        completion(model="azure/gpt5_series/my-gpt-5-deployment", messages=HELLO, temperature=0.7, **kw)
    assert fam.requests == []
    assert info.value.param == "temperature" and "gpt5" in str(info.value)


def test_gpt5_reasoning_effort_none_where_the_model_takes_it(fam: Emulator, kw: dict[str, Any]) -> None:
    completion(model="azure/gpt-5.1", messages=HELLO, reasoning_effort="none", **kw)
    assert fam.requests[0].body["reasoning_effort"] == "none"
    with pytest.raises(BadRequestError) as info:  # gpt-5 itself has no 'none': Azure says so
        completion(model="azure/gpt-5-mini", messages=HELLO, reasoning_effort="none", **kw)
    assert info.value.code == "unsupported_value" and info.value.param == "reasoning_effort"


def test_gpt5_chat_is_an_ordinary_chat_model(fam: Emulator, kw: dict[str, Any]) -> None:
    completion(model="azure/my-gpt-5-chat", messages=HELLO, temperature=0.2, top_p=0.9, presence_penalty=0.5,
               max_tokens=20, **kw)  # fmt: skip
    assert fam.requests[0].body == {
        "messages": HELLO, "temperature": 0.2, "top_p": 0.9, "presence_penalty": 0.5, "max_completion_tokens": 20,
    }  # fmt: skip


# --------------------------------------------------------------------------- instruct


def test_instruct_messages_become_one_prompt(fam: Emulator, kw: dict[str, Any]) -> None:
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": [{"type": "text", "text": "Say"}, {"type": "text", "text": "hello"}]},
        {"role": "assistant", "content": None, "tool_calls": []},
        {"role": "user", "content": "Now."},
    ]
    r = completion(model="azure_text/my-instruct-deployment", messages=messages, max_tokens=100, stop=["\n"], **kw)
    [seen] = fam.requests
    assert seen.path == "/openai/deployments/my-instruct-deployment/completions"
    assert seen.body == {"prompt": "You are terse.\n\nSay\nhello\n\nNow.", "max_tokens": 100, "stop": ["\n"]}
    assert r.object == "chat.completion"
    assert r.choices[0].message.role == "assistant"
    assert r.choices[0].message.content.startswith(" This is my-instruct-deployment")
    assert r.choices[0].finish_reason == "stop"
    assert r.usage.total_tokens > 0
    assert r.prompt_filter_results[0]["prompt_index"] == 0


def test_instruct_refuses_non_text_parts(fam: Emulator, kw: dict[str, Any]) -> None:
    image = {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}
    with pytest.raises(BadRequestError) as info:
        completion(model="azure_text/my-instruct-deployment",
                   messages=[{"role": "user", "content": [{"type": "text", "text": "Look"}, image]}], **kw)  # fmt: skip
    assert info.value.param == "messages[0].content[1]"
    assert fam.requests == []


def test_instruct_refuses_chat_only_params(fam: Emulator, kw: dict[str, Any]) -> None:
    with pytest.raises(UnsupportedParamsError) as info:
        completion(model="azure_text/my-instruct-deployment", messages=HELLO, response_format={"type": "json_object"}, **kw)
    assert info.value.param == "response_format" and "azure_text" in str(info.value)
    assert fam.requests == []


def test_instruct_logprobs_from_chat_shape(fam: Emulator, kw: dict[str, Any]) -> None:
    r = completion(model="azure_text/my-instruct-deployment", messages=HELLO, logprobs=True, top_logprobs=2,
                   max_completion_tokens=50, **kw)  # fmt: skip
    assert fam.requests[0].body == {"prompt": "Hello", "logprobs": 2, "max_tokens": 50}
    assert r.choices[0].logprobs["tokens"][0] == " This"


def test_instruct_stream_in_chat_shape(fam: Emulator, kw: dict[str, Any]) -> None:
    stream = completion(model="azure_text/my-instruct-deployment", messages=HELLO, stream=True, max_tokens=50,
                        stream_options={"include_usage": True}, **kw)  # fmt: skip
    chunks = list(stream)
    assert fam.requests[0].body == {"prompt": "Hello", "max_tokens": 50, "stream": True,
                                    "stream_options": {"include_usage": True}}  # fmt: skip
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[1].choices[0].delta.role is None
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == " This is my-instruct-deployment on the modelyard emulator. You said: Hello"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage.completion_tokens > 0
    assert stream.prompt_filter_results[0]["prompt_index"] == 0


def test_text_completion_returns_the_native_shape(fam: Emulator, kw: dict[str, Any]) -> None:
    r = modelyard.text_completion(model="azure_text/my-instruct-deployment", prompt=["Hi there", "Bye"], n=2, echo=True,
                                  logprobs=1, **kw)  # fmt: skip
    assert isinstance(r, modelyard.TextCompletion)
    assert fam.requests[0].body == {"prompt": ["Hi there", "Bye"], "n": 2, "echo": True, "logprobs": 1}
    assert r.object == "text_completion"
    assert [c.index for c in r.choices] == [0, 1, 2, 3]
    assert r.choices[0].text.startswith("Hi there This is") and r.choices[2].text.startswith("Bye This is")
    assert r.choices[0].finish_reason == "length"  # Azure's default max_tokens is 16
    assert r.choices[2].finish_reason == "stop"
    assert r.choices[0].logprobs["tokens"][:2] == ["Hi", " there"]


def test_text_completion_stream(fam: Emulator, kw: dict[str, Any]) -> None:
    stream = modelyard.text_completion(model="azure_text/my-instruct-deployment", prompt="Hi", stream=True,
                                       max_tokens=40, **kw)  # fmt: skip
    assert isinstance(stream, modelyard.TextStream)
    with stream:
        chunks = list(stream)
    assert all(isinstance(c, modelyard.TextCompletion) for c in chunks)
    assert "".join(c.choices[0].text for c in chunks) == " This is my-instruct-deployment on the modelyard emulator. You said: Hi"
    assert chunks[-1].choices[0].finish_reason == "stop"


async def test_atext_completion_and_stream(fam: Emulator, kw: dict[str, Any]) -> None:
    r = await modelyard.atext_completion(model="azure_text/my-instruct-deployment", prompt="Hi", max_tokens=40, **kw)
    assert r.choices[0].text.endswith("You said: Hi")
    stream = await modelyard.atext_completion(model="azure_text/my-instruct-deployment", prompt="Hi", stream=True,
                                              max_tokens=40, **kw)  # fmt: skip
    texts = [c.choices[0].text async for c in stream]
    assert "".join(texts).endswith("You said: Hi")
    achat = await modelyard.acompletion(model="azure_text/my-instruct-deployment", messages=HELLO, max_tokens=40, **kw)
    assert achat.choices[0].message.content.endswith("You said: Hello")


def test_instruct_on_the_v1_api(fam: Emulator, api_base: str) -> None:
    r = modelyard.text_completion(model="azure_text/my-instruct-deployment", prompt="Hi", max_tokens=40,
                                  api_base=api_base, api_key=KEY, api_version="v1")  # fmt: skip
    [seen] = fam.requests
    assert (seen.path, seen.query) == ("/openai/v1/completions", {})
    assert seen.body == {"prompt": "Hi", "max_tokens": 40, "model": "my-instruct-deployment"}
    assert r.choices[0].text.endswith("You said: Hi")


class _SimulatedTextFamily:
    """A third-party completions family whose upstream cannot stream (core path, no plugin code)."""

    HOOK_API = (1, 0)

    @modelyard.hookimpl
    def register_families(self, register: Any) -> None:
        from modelyard.families import Family, ParamRules

        register(Family(name="slow_text", provider="azure", prefix="slow_text/", operation="completions",
                        rules=ParamRules(simulate_stream=True)))  # fmt: skip


def test_simulated_stream_on_a_completions_family(fam: Emulator, kw: dict[str, Any]) -> None:
    reset_plugins(extra=[_SimulatedTextFamily()])
    chunks = list(modelyard.text_completion(model="slow_text/my-instruct-deployment", prompt="Hi", stream=True,
                                            max_tokens=40, **kw))  # fmt: skip
    assert "stream" not in fam.requests[0].body
    assert [c.choices[0].text for c in chunks] == [" This is my-instruct-deployment on the modelyard emulator. You said: Hi"]
    chat = list(completion(model="slow_text/my-instruct-deployment", messages=HELLO, stream=True, max_tokens=40, **kw))
    assert chat[0].choices[0].delta.content.endswith("You said: Hello")
    assert chat[-1].choices[0].finish_reason == "stop"


def test_text_completion_needs_a_completions_family(fam: Emulator, kw: dict[str, Any]) -> None:
    with pytest.raises(BadRequestError) as info:
        modelyard.text_completion(model="azure/gpt-4o", prompt="Hi", **kw)
    assert info.value.param == "model" and "completion()" in str(info.value)
    with pytest.raises(BadRequestError) as info:
        modelyard.text_completion(model="azure_text/my-instruct-deployment", prompt="Hi", logprobs=9, **kw)
    assert info.value.param == "logprobs"
    assert fam.requests == []


# --------------------------------------------------------------------------- audio


def test_audio_stream_keeps_delta_audio(fam: Emulator, kw: dict[str, Any]) -> None:
    stream = completion(model="azure/azure-openai-4o-audio", messages=HELLO, modalities=["text", "audio"],
                        audio={"voice": "alloy", "format": "pcm16"}, stream=True, **kw)  # fmt: skip
    audio = [c.choices[0].delta.audio for c in stream if c.choices and c.choices[0].delta.audio]
    assert fam.requests[0].body["modalities"] == ["text", "audio"]
    assert audio[0]["id"].startswith("audio_")
    assert "".join(a.get("transcript", "") for a in audio).endswith("You said: Hello")
    assert "".join(a.get("data", "") for a in audio)
    assert audio[-1]["expires_at"] > 0


def test_audio_usage_counts_audio_tokens(fam: Emulator, kw: dict[str, Any]) -> None:
    r = completion(model="azure/azure-openai-4o-audio", messages=HELLO, modalities=["text", "audio"],
                   audio={"voice": "alloy", "format": "wav"}, **kw)  # fmt: skip
    assert r.usage.completion_tokens_details["audio_tokens"] > 0
    assert r.choices[0].message.content is None


# --------------------------------------------------------------------------- blocking


@pytest.mark.parametrize("blocked", ["azure_o_series", "azure_gpt5", "azure_instruct"])
def test_blocking_one_family_leaves_the_others(
    blocked: str, fam: Emulator, kw: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELYARD_BLOCK_PLUGINS", blocked)
    reset_plugins()
    plugins = get_plugins()
    status = {i.name: i.status for i in plugins.infos}
    assert status[blocked] == "blocked"
    assert {n for n, s in status.items() if s == "loaded"} >= {"azure_chat"}
    names = {f.name for f in plugins.families}
    gone = {"azure_o_series": {"o_series", "o_series_legacy"}, "azure_gpt5": {"gpt5", "gpt5_chat"},
            "azure_instruct": {"azure_text"}}[blocked]  # fmt: skip
    assert not names & gone
    assert names >= {"azure", "o_series", "gpt5", "azure_text"} - gone

    calls = {
        "azure_o_series": lambda: completion(model="azure/my-o3-deployment", messages=HELLO, max_tokens=9, **kw),
        "azure_gpt5": lambda: completion(model="azure/my-gpt-5-deployment", messages=HELLO, max_tokens=9, **kw),
        "azure_instruct": lambda: modelyard.text_completion(model="azure_text/my-instruct-deployment", prompt="Hi", **kw),
    }
    for name, call in calls.items():
        fam.requests.clear()
        if name != blocked:
            call()  # the other families still work
            continue
        if blocked == "azure_instruct":
            with pytest.raises(BadRequestError, match="azure_text/my-instruct-deployment"):
                call()
            assert fam.requests == []
        else:  # the plain azure family sends max_tokens, and the reasoning model refuses it
            with pytest.raises(BadRequestError) as info:
                call()
            assert info.value.code == "unsupported_parameter"
            assert fam.requests[0].body["max_tokens"] == 9


# --------------------------------------------------------------------------- the emulator refuses as Azure does


def _post(api_base: str, path: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{api_base}{path}", params={"api-version": VERSION}, headers={"api-key": KEY}, json=body)


@pytest.mark.parametrize(
    ("deployment", "body", "status", "code", "param"),
    [
        ("my-o3-deployment", {"max_tokens": 5}, 400, "unsupported_parameter", "max_tokens"),
        ("my-o3-deployment", {"temperature": 0.5}, 400, "unsupported_value", "temperature"),
        ("my-o3-deployment", {"top_p": 0.5}, 400, "unsupported_parameter", "top_p"),
        ("my-o3-deployment", {"verbosity": "low"}, 400, "unsupported_parameter", "verbosity"),
        ("my-o3-deployment", {"reasoning_effort": "minimal"}, 400, "unsupported_value", "reasoning_effort"),
        ("my-gpt-5-deployment", {"max_tokens": 5}, 400, "unsupported_parameter", "max_tokens"),
        ("my-gpt-5-deployment", {"temperature": 0}, 400, "unsupported_value", "temperature"),
        ("my-gpt-5-deployment", {"reasoning_effort": "minimal", "verbosity": "high"}, 200, None, None),
        ("my-o1-mini", {"messages": [{"role": "system", "content": "x"}, *HELLO]}, 400, "unsupported_value",
         "messages[0].role"),
        ("my-o1-mini", {"stream": True}, 400, "unsupported_value", "stream"),
        ("my-o1-mini", {"reasoning_effort": "low"}, 400, "unsupported_parameter", "reasoning_effort"),
        ("my-gpt-5-chat", {"max_tokens": 5, "temperature": 0.1}, 200, None, None),
        ("my-instruct-deployment", {}, 400, "OperationNotSupported", None),
        ("gpt-4o", {"modalities": ["text", "audio"], "audio": {"voice": "alloy", "format": "wav"}}, 400,
         "invalid_value", "modalities"),
        ("azure-openai-4o-audio", {"modalities": ["text", "audio"]}, 400, "missing_required_parameter", "audio"),
        ("gpt-4o", {"max_tokens": 5, "temperature": 0.1}, 200, None, None),
        ("gpt-4o", {"messages": [{"role": "developer", "content": "x"}, *HELLO]}, 200, None, None),
    ],
)  # fmt: skip
def test_emulator_enforces_azure_constraints(
    fam: Emulator, api_base: str, deployment: str, body: dict[str, Any], status: int, code: str | None,
    param: str | None,
) -> None:
    r = _post(api_base, f"/openai/deployments/{deployment}/chat/completions", {"messages": HELLO, **body})
    assert r.status_code == status, r.text
    if status == 400:
        error = r.json()["error"]
        assert (error["code"], error["param"]) == (code, param)


def test_emulator_refuses_developer_role_on_old_api_versions(fam: Emulator, api_base: str) -> None:
    body = {"messages": [{"role": "developer", "content": "Be brief."}, *HELLO]}
    r = httpx.post(f"{api_base}/openai/deployments/my-o3-deployment/chat/completions",
                   params={"api-version": "2024-10-21"}, headers={"api-key": KEY}, json=body)  # fmt: skip
    assert r.status_code == 400
    assert (r.json()["error"]["code"], r.json()["error"]["param"]) == ("invalid_value", "messages[0].role")
    r = httpx.post(f"{api_base}/openai/v1/chat/completions", headers={"api-key": KEY},
                   json={**body, "model": "my-o3-deployment"})  # fmt: skip
    assert r.status_code == 200


def test_emulator_reports_reasoning_tokens(fam: Emulator, api_base: str) -> None:
    r = _post(api_base, "/openai/deployments/my-o3-deployment/chat/completions",
              {"messages": HELLO, "reasoning_effort": "low"})  # fmt: skip
    usage = r.json()["usage"]
    assert usage["completion_tokens_details"]["reasoning_tokens"] == 32
    assert usage["completion_tokens"] > 32


def test_emulator_completions_endpoint(fam: Emulator, api_base: str) -> None:
    r = _post(api_base, "/openai/deployments/gpt-4o/completions", {"prompt": "Hi"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "OperationNotSupported"
    assert "completion operation does not work with the specified model, gpt-4o-2024-08-06" in r.text
    r = _post(api_base, "/openai/deployments/my-instruct-deployment/completions", {"prompt": "Hi", "max_tokens": 50})
    body = r.json()
    assert (r.status_code, body["object"], body["model"]) == (200, "text_completion", "gpt-35-turbo-instruct")
    r = httpx.post(f"{api_base}/openai/v1/completions", headers={"api-key": KEY},
                   json={"model": "my-instruct-deployment", "prompt": "Hi", "max_tokens": 50})  # fmt: skip
    assert r.json()["choices"][0]["text"].endswith("You said: Hi")
    r = _post(api_base, "/openai/deployments/my-instruct-deployment/completions", {"prompt": "Hi", "tools": []})
    assert r.status_code == 400 and r.json()["error"]["param"] == "tools"
    r = _post(api_base, "/openai/deployments/nope/completions", {"prompt": "Hi"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "DeploymentNotFound"


def test_cli_emulator_deployment_takes_a_model() -> None:
    from modelyard.cli import _deployment
    from modelyard.testing import Deployment

    d = _deployment("my-o3=o3-mini")
    assert (d.name, d.model) == ("my-o3", "o3-mini")
    assert _deployment("plain").model == Deployment("plain").model
