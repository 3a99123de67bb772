"""The cost of a call: LiteLLM's price data, base_model, overrides, every unit, streams (issue 14).

Figures are taken from the shipped price table (``modelyard/data/model_prices.json``, LiteLLM's
data); the rates each test relies on are asserted first, so a price refresh that changes them
fails here by name rather than somewhere in the arithmetic.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import modelyard
import pytest
from modelyard import pricing
from modelyard.plugins import reset_plugins
from modelyard.pricing import Units, completion_cost, cost, get_model_prices, token_cost, units_of
from modelyard.testing import KEY, Deployment, Emulator
from modelyard.types import ChatCompletion, EmbeddingUsage, Usage

MESSAGES = [{"role": "user", "content": "Say hello to the pricing tests"}]


@pytest.fixture(autouse=True)
def _fresh_prices(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("MODELYARD_PRICES", raising=False)
    pricing.reset_prices()
    yield
    pricing.reset_prices()


@pytest.fixture
def gpt4(emulator: Emulator) -> Emulator:
    """The Azure page's example: a gpt-4-1106-preview deployment that reports ``gpt-4``."""
    emulator.add_deployment(Deployment("spend-gpt4", model="gpt-4"))
    emulator.add_deployment(Deployment("spend-mystery", model="mystery-model-7"))
    emulator.add_deployment(Deployment("spend-o3", model="o3-mini"))
    return emulator


def _call(api_base: str, deployment: str = "spend-gpt4", **kw: Any) -> Any:
    return modelyard.completion(
        model=f"azure/{deployment}", messages=MESSAGES, api_base=api_base, api_key=KEY, **kw
    )


def _rates(name: str) -> tuple[float, float]:
    entry = get_model_prices(name)
    assert entry is not None, name
    return entry["input_cost_per_token"], entry["output_cost_per_token"]


# --------------------------------------------------------------------------- the Azure page


def test_base_model_prices_a_gpt4_reply_at_gpt_4_1106_preview_rates(api_base: str, gpt4: Emulator) -> None:
    assert _rates("azure/gpt-4-1106-preview") == (1e-05, 3e-05)  # LiteLLM's data, as shipped
    assert _rates("gpt-4") == (3e-05, 6e-05)
    r = _call(api_base, base_model="azure/gpt-4-1106-preview")
    assert r.model == "gpt-4"  # what Azure reports for the deployment
    p, c = r.usage.prompt_tokens, r.usage.completion_tokens
    assert p > 0 and c > 0
    expected = p * 1e-05 + c * 3e-05
    assert r.cost == pytest.approx(expected, rel=1e-12)
    assert r._hidden_params["response_cost"] == r.cost
    assert modelyard.completion_cost(completion_response=r) == r.cost
    # Without base_model the reported model's price applies: gpt-4's, which is not the bill.
    plain = _call(api_base)
    assert plain.cost == pytest.approx(p * 3e-05 + c * 6e-05, rel=1e-12)
    # model_info.base_model (the proxy's config shape) does the same.
    via_info = _call(api_base, model_info={"base_model": "azure/gpt-4-1106-preview"})
    assert via_info.cost == pytest.approx(expected, rel=1e-12)


def test_completion_cost_reprices_as_another_model(api_base: str, gpt4: Emulator) -> None:
    r = _call(api_base)
    p, c = r.usage.prompt_tokens, r.usage.completion_tokens
    again = completion_cost(completion_response=r, model="azure/gpt-4-1106-preview")
    assert again == pytest.approx(p * 1e-05 + c * 3e-05, rel=1e-12)
    as_dict = completion_cost(completion_response=r.model_dump(), base_model="gpt-4-1106-preview")
    assert as_dict == again


# --------------------------------------------------------------------------- streams


def test_stream_and_plain_call_with_the_same_usage_cost_the_same(api_base: str, gpt4: Emulator) -> None:
    plain = _call(api_base, base_model="azure/gpt-4-1106-preview")
    stream = _call(api_base, base_model="azure/gpt-4-1106-preview", stream=True)
    chunks = list(stream)
    assert stream.usage is not None and stream.usage.total_tokens == plain.usage.total_tokens
    assert stream.cost is not None and stream.cost == plain.cost
    assert stream._hidden_params["response_cost"] == plain.cost
    assert completion_cost(completion_response=stream) == plain.cost
    # The SDK asked for the usage chunk, and did not hand it to a caller who did not ask.
    assert gpt4.requests[-1].body["stream_options"] == {"include_usage": True}
    assert chunks and all(ch.choices for ch in chunks) and all(ch.usage is None for ch in chunks)


async def test_async_stream_priced_and_usage_chunk_only_when_asked(api_base: str, gpt4: Emulator) -> None:
    plain = _call(api_base)
    stream = await modelyard.acompletion(
        model="azure/spend-gpt4", messages=MESSAGES, api_base=api_base, api_key=KEY, stream=True
    )
    chunks = [ch async for ch in stream]
    assert all(ch.choices for ch in chunks)
    assert stream.cost == plain.cost
    asked = await modelyard.acompletion(
        model="azure/spend-gpt4", messages=MESSAGES, api_base=api_base, api_key=KEY, stream=True,
        stream_options={"include_usage": True},
    )  # fmt: skip
    chunks = [ch async for ch in asked]
    [last] = [ch for ch in chunks if ch.usage is not None]
    assert last is chunks[-1] and last.choices == [] and last.usage.total_tokens == plain.usage.total_tokens
    assert asked.cost == plain.cost


def test_old_api_version_is_not_sent_stream_options(api_base: str, gpt4: Emulator, caplog: Any) -> None:
    # 2024-02-01 predates stream_options (Azure answers 400 to it): the stream works, unpriced.
    stream = _call(api_base, stream=True, api_version="2024-02-01")
    assert [ch for ch in stream]
    assert "stream_options" not in gpt4.requests[-1].body
    assert stream.cost is None and stream.usage is None


# --------------------------------------------------------------------------- no price


def test_unknown_model_costs_none_with_one_warning(api_base: str, gpt4: Emulator, caplog: Any) -> None:
    caplog.set_level(logging.WARNING, logger="modelyard.pricing")
    first = _call(api_base, "spend-mystery")
    second = _call(api_base, "spend-mystery", stream=True)
    assert [ch for ch in second]
    assert first.choices[0].message.content  # the call itself is unaffected
    assert first.cost is None and first._hidden_params["response_cost"] is None and second.cost is None
    assert completion_cost(completion_response=first) is None
    warnings = [r for r in caplog.records if r.name == "modelyard.pricing"]
    assert len(warnings) == 1 and "spend-mystery" in warnings[0].getMessage()
    assert "mystery-model-7" not in pricing._prices()


# --------------------------------------------------------------------------- overrides


def test_deployment_prices_win_over_base_model(api_base: str, gpt4: Emulator) -> None:
    r = _call(api_base, base_model="azure/gpt-4-1106-preview", input_cost_per_token=2e-06, output_cost_per_token=4e-06)
    p, c = r.usage.prompt_tokens, r.usage.completion_tokens
    assert r.cost == pytest.approx(p * 2e-06 + c * 4e-06, rel=1e-12)
    assert "input_cost_per_token" not in gpt4.requests[-1].body  # a price is not an upstream parameter
    info = _call(api_base, "spend-mystery", model_info={"input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06})
    assert info.cost == pytest.approx(info.usage.prompt_tokens * 1e-06 + info.usage.completion_tokens * 2e-06)
    # litellm_params (call kwargs) over model_info, key by key.
    both = _call(
        api_base, "spend-mystery", input_cost_per_token=5e-06,
        model_info={"input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06},
    )  # fmt: skip
    assert both.cost == pytest.approx(both.usage.prompt_tokens * 5e-06 + both.usage.completion_tokens * 2e-06)


def test_reasoning_tokens_priced(api_base: str, gpt4: Emulator) -> None:
    rate_in, rate_out = _rates("azure/o3-mini")
    r = _call(api_base, "spend-o3", reasoning_effort="high")
    p, c = r.usage.prompt_tokens, r.usage.completion_tokens
    reasoning = r.usage.completion_tokens_details.reasoning_tokens
    assert reasoning == 128 and c > reasoning
    assert r.cost == pytest.approx(p * rate_in + c * rate_out, rel=1e-12)  # billed as output tokens
    own = _call(api_base, "spend-o3", reasoning_effort="high", model_info={"output_cost_per_reasoning_token": 1e-03})
    assert own.cost == pytest.approx(p * rate_in + (c - reasoning) * rate_out + reasoning * 1e-03, rel=1e-12)


def test_observers_receive_the_cost(api_base: str, gpt4: Emulator) -> None:
    seen: list[Any] = []

    class Recorder:
        HOOK_API = (1, 5)

        @modelyard.hookimpl
        def on_success(self, event: Any) -> None:
            seen.append(event)

    reset_plugins(extra=[Recorder()])
    try:
        r = _call(api_base, base_model="azure/gpt-4-1106-preview")
        list(_call(api_base, base_model="azure/gpt-4-1106-preview", stream=True))
    finally:
        reset_plugins()
    assert [e.cost for e in seen] == [r.cost, r.cost] and r.cost is not None


# --------------------------------------------------------------------------- units


def _response(usage: dict[str, Any], model: str = "gpt-4o-2024-08-06") -> ChatCompletion:
    return ChatCompletion.model_validate({"id": "x", "model": model, "choices": [], "usage": usage})


def test_cached_input_tokens_at_the_cache_read_rate() -> None:
    entry = get_model_prices("azure/gpt-4o")
    assert entry is not None
    assert (entry["input_cost_per_token"], entry["cache_read_input_token_cost"], entry["output_cost_per_token"]) == (
        2.5e-06, 1.25e-06, 1e-05,
    )  # fmt: skip
    usage = {"prompt_tokens": 2000, "completion_tokens": 100, "prompt_tokens_details": {"cached_tokens": 1536}}
    got = completion_cost(completion_response=_response(usage), model="azure/gpt-4o")
    assert got == pytest.approx(464 * 2.5e-06 + 1536 * 1.25e-06 + 100 * 1e-05, rel=1e-12)


def test_cached_prompt_tokens_of_a_repeated_long_prompt_priced_through_the_pipeline(api_base: str, emulator: Emulator) -> None:
    entry = get_model_prices("azure/gpt-4o-2024-08-06")  # what the emulator's gpt-4o reports
    assert entry is not None
    rate_in, rate_cached, rate_out = entry["input_cost_per_token"], entry["cache_read_input_token_cost"], entry["output_cost_per_token"]
    assert rate_cached < rate_in
    long_prompt = [{"role": "user", "content": "tell me more " * 500}]
    call = {"model": "azure/gpt-4o", "messages": long_prompt, "api_base": api_base, "api_key": KEY, "max_tokens": 5}
    first = modelyard.completion(**call)
    again = modelyard.completion(**call)
    cached = again.usage.prompt_tokens_details.cached_tokens
    assert first.usage.prompt_tokens_details.cached_tokens == 0 and cached >= 1024
    p, c = again.usage.prompt_tokens, again.usage.completion_tokens
    assert first.cost == pytest.approx(p * rate_in + c * rate_out, rel=1e-12)
    assert again.cost == pytest.approx((p - cached) * rate_in + cached * rate_cached + c * rate_out, rel=1e-12)
    assert again.cost < first.cost


def test_audio_tokens_at_the_audio_rates() -> None:
    entry = get_model_prices("azure/gpt-4o-audio-preview-2024-12-17")
    assert entry is not None
    usage = {
        "prompt_tokens": 300, "completion_tokens": 500,
        "prompt_tokens_details": {"audio_tokens": 200}, "completion_tokens_details": {"audio_tokens": 400},
    }  # fmt: skip
    expected = (100 * entry["input_cost_per_token"] + 200 * entry["input_cost_per_audio_token"]
                + 100 * entry["output_cost_per_token"] + 400 * entry["output_cost_per_audio_token"])  # fmt: skip
    assert entry["input_cost_per_audio_token"] > entry["input_cost_per_token"]
    assert completion_cost(usage=usage, model="azure/gpt-4o-audio-preview-2024-12-17") == pytest.approx(expected)


def test_audio_tokens_without_an_audio_price_are_unknown_not_text(caplog: Any) -> None:
    usage = {"prompt_tokens": 300, "completion_tokens": 5, "prompt_tokens_details": {"audio_tokens": 200}}
    assert completion_cost(usage=usage, model="azure/gpt-4-1106-preview") is None


def test_images_by_size_and_quality() -> None:
    hd = get_model_prices("azure/hd/1024-x-1792/dall-e-3")
    standard = get_model_prices("azure/standard/1024-x-1024/dall-e-3")
    assert hd is not None and standard is not None
    assert (hd["input_cost_per_pixel"], standard["input_cost_per_pixel"]) == (7.19343e-08, 4.19617e-08)
    images = {"created": 1, "data": [{"url": "https://x/1.png"}, {"url": "https://x/2.png"}]}
    got = completion_cost(completion_response=images, base_model="dall-e-3", size="1024x1792", quality="hd")
    assert got == pytest.approx(2 * 7.19343e-08 * 1024 * 1792, rel=1e-12)
    default = cost(Units(images=1), base_model="azure/dall-e-3")  # Azure's defaults: 1024x1024, standard
    assert default == pytest.approx(4.19617e-08 * 1024 * 1024, rel=1e-12)
    own = {"input_cost_per_image": {"hd/1024x1792": 0.12, "1024x1024": 0.04}}
    assert cost(Units(images=3, size="1024x1792", quality="hd"), deployment="img", overrides=own) == pytest.approx(0.36)


def test_speech_per_character_transcription_per_second_embeddings_per_token() -> None:
    tts = get_model_prices("azure/tts-1")
    whisper = get_model_prices("azure/whisper-1")
    emb = get_model_prices("azure/text-embedding-3-small")
    assert tts is not None and whisper is not None and emb is not None
    text = "Hello from the speech test."
    assert completion_cost(model="azure/tts-1", prompt=text) == pytest.approx(len(text) * tts["input_cost_per_character"])
    transcript = {"text": "hi", "duration": 61.5}
    got = completion_cost(completion_response=transcript, model="azure/whisper-1")
    assert got == pytest.approx(61.5 * whisper["input_cost_per_second"])
    embedding = {"object": "list", "model": "text-embedding-3-small", "data": [{"embedding": [0.1]}],
                 "usage": {"prompt_tokens": 1000, "total_tokens": 1000}}  # fmt: skip
    assert completion_cost(completion_response=embedding) == pytest.approx(1000 * emb["input_cost_per_token"])


def test_batch_discount() -> None:
    entry = get_model_prices("azure/gpt-4o")
    assert entry is not None and entry["input_cost_per_token_batches"] == 1.25e-06
    usage = {"prompt_tokens": 1000, "completion_tokens": 100}
    got = completion_cost(usage=usage, model="azure/gpt-4o", batch=True)
    assert got == pytest.approx(1000 * 1.25e-06 + 100 * entry["output_cost_per_token_batches"])
    # A model without *_batches prices gets Azure's 50% batch discount.
    full = completion_cost(usage=usage, model="azure/gpt-4-1106-preview")
    assert full is not None
    assert completion_cost(usage=usage, model="azure/gpt-4-1106-preview", batch=True) == pytest.approx(full / 2)


def test_long_prompts_use_the_tier_above_the_threshold() -> None:
    pricing.register_model({"azure/tiered": {"input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06,
                                             "input_cost_per_token_above_200k_tokens": 3e-06}})  # fmt: skip
    assert completion_cost(usage={"prompt_tokens": 1000, "completion_tokens": 0}, model="azure/tiered") == pytest.approx(1e-03)
    big = completion_cost(usage={"prompt_tokens": 300_000, "completion_tokens": 0}, model="azure/tiered")
    assert big == pytest.approx(0.9)


def test_text_only_usage_costs_the_same_with_or_without_zero_breakdowns() -> None:
    # Text tokens only take a shorter sum (issue 17): Azure's zero breakdowns, no breakdown, a
    # tiered price and a missing output price must give what the full sum gives.
    pricing.register_model({"azure/text-only": {"input_cost_per_token": 1e-06, "output_cost_per_token": 3e-06,
                                                "input_cost_per_token_above_200k_tokens": 2e-06},
                            "azure/input-only": {"input_cost_per_token": 1e-06}})  # fmt: skip
    plain = {"prompt_tokens": 1200, "completion_tokens": 34}
    zeros = {**plain, "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
             "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0}}  # fmt: skip
    assert completion_cost(usage=plain, model="azure/text-only") == 1200 * 1e-06 + 34 * 3e-06
    assert completion_cost(usage=zeros, model="azure/text-only") == 1200 * 1e-06 + 34 * 3e-06
    assert completion_cost(usage={"prompt_tokens": 250_000, "completion_tokens": 0}, model="azure/text-only") == 250_000 * 2e-06
    assert completion_cost(usage={"prompt_tokens": 0, "completion_tokens": 10}, model="azure/text-only") == 10 * 3e-06
    assert completion_cost(usage={"prompt_tokens": 5, "completion_tokens": 0}, model="azure/input-only") == 5 * 1e-06
    assert completion_cost(usage=plain, model="azure/input-only") is None  # output tokens without a price


def test_text_rates_cached_per_lookup_give_what_the_general_way_gives(caplog: Any) -> None:
    # _Call.cost prices text-only usage at two rates cached per price lookup (issue 17, round
    # five): every usage and price here must cost what cost(units_of(...)) gives, and a price
    # changed by register_model must apply to the next call.
    pricing.register_model({"azure/text-only": {"input_cost_per_token": 1e-06, "output_cost_per_token": 3e-06,
                                                "input_cost_per_token_above_200k_tokens": 2e-06,
                                                "cache_read_input_token_cost": 5e-07},
                            "azure/flat": {"input_cost_per_token": 1e-06, "output_cost_per_token": 3e-06},
                            "azure/input-only": {"input_cost_per_token": 1e-06}})  # fmt: skip
    usages = [
        Usage(prompt_tokens=1200, completion_tokens=34, total_tokens=1234),
        Usage.model_validate({"prompt_tokens": 1200, "completion_tokens": 34,
                              "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                              "completion_tokens_details": {"reasoning_tokens": 0}}),
        Usage.model_validate({"prompt_tokens": 1200, "completion_tokens": 34,
                              "prompt_tokens_details": {"cached_tokens": 1000}}),
        Usage.model_validate({"prompt_tokens": 10, "completion_tokens": 34,
                              "completion_tokens_details": {"reasoning_tokens": 20}}),
        Usage(prompt_tokens=250_000),
        Usage(prompt_tokens=0, completion_tokens=10),
        Usage(prompt_tokens=5),
        Usage(),
        EmbeddingUsage(prompt_tokens=7, total_tokens=7),
    ]  # fmt: skip
    kinds = [{"base_model": "azure/text-only"}, {"base_model": "azure/flat"}, {"base_model": "azure/input-only"},
             {"reported_model": "gpt-4o-2024-08-06"}, {"deployment": "no-such-model"},
             {"base_model": "azure/flat", "overrides": {"output_cost_per_token": 1e-05}},
             {"deployment": "no-such-model", "overrides": {"input_cost_per_token": 2e-06}}]  # fmt: skip
    checked = 0
    for usage in usages:
        for kind in kinds:
            general = cost(units_of("chat", usage), **kind)
            for _ in range(2):  # the second from the cached rates
                fast = token_cost(usage, **kind)
                assert fast is None or fast == general, (usage, kind, fast, general)
                checked += fast is not None
    assert checked > 20  # most of the grid takes the cached rates
    assert token_cost(usages[0], base_model="azure/flat") == 1200 * 1e-06 + 34 * 3e-06
    pricing.register_model({"azure/flat": {"output_cost_per_token": 4e-06}})
    assert token_cost(usages[0], base_model="azure/flat") == 1200 * 1e-06 + 34 * 4e-06
    assert token_cost({"prompt_tokens": 3}, base_model="azure/flat") is None  # a dict: the general way


# --------------------------------------------------------------------------- where prices come from


class _FoundryPrices:
    HOOK_API = (1, 5)

    @modelyard.hookimpl
    def register_prices(self, register: Any) -> None:
        register("azure_ai/claude-test", {"input_cost_per_token": 3e-06, "output_cost_per_token": 1.5e-05})
        register("azure/gpt-4-1106-preview", {"output_cost_per_token": 9e-05})


def test_plugin_prices_then_file_then_register_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    usage = {"prompt_tokens": 1000, "completion_tokens": 100}
    reset_plugins(extra=[_FoundryPrices()])
    try:
        assert completion_cost(usage=usage, model="azure_ai/claude-test") == pytest.approx(1000 * 3e-06 + 100 * 1.5e-05)
        # laid over the shipped entry key by key: the input price stays LiteLLM's
        assert completion_cost(usage=usage, model="gpt-4-1106-preview") == pytest.approx(1000 * 1e-05 + 100 * 9e-05)
        prices = tmp_path / "prices.json"
        prices.write_text(json.dumps({"azure_ai/claude-test": {"input_cost_per_token": 4e-06}}))
        monkeypatch.setenv("MODELYARD_PRICES", str(prices))
        pricing.reset_prices()
        assert completion_cost(usage=usage, model="azure_ai/claude-test") == pytest.approx(1000 * 4e-06 + 100 * 1.5e-05)
        modelyard.register_model({"azure_ai/claude-test": {"output_cost_per_token": 1e-06}})
        assert completion_cost(usage=usage, model="azure_ai/claude-test") == pytest.approx(1000 * 4e-06 + 100 * 1e-06)
    finally:
        reset_plugins()


def test_unreadable_prices_file_keeps_the_shipped_prices(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: Any) -> None:
    monkeypatch.setenv("MODELYARD_PRICES", str(tmp_path / "missing.json"))
    assert completion_cost(usage={"prompt_tokens": 10, "completion_tokens": 0}, model="azure/gpt-4-1106-preview") == (
        pytest.approx(1e-04)
    )
    assert any("MODELYARD_PRICES" in r.getMessage() for r in caplog.records)


def test_import_does_not_load_prices() -> None:
    import subprocess
    import sys

    code = "import sys, modelyard; print('modelyard.pricing' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_text_completion_stream_priced_like_the_plain_call(api_base: str, emulator: Emulator) -> None:
    emulator.add_deployment(Deployment("spend-instruct", model="gpt-35-turbo-instruct"))
    rate_in, rate_out = _rates("azure/gpt-35-turbo-instruct")
    kw: dict[str, Any] = {"model": "azure_text/spend-instruct", "api_base": api_base, "api_key": KEY, "max_tokens": 20}
    plain = modelyard.text_completion("Once upon a time", **kw)
    p, c = plain.usage.prompt_tokens, plain.usage.completion_tokens
    assert plain.cost == pytest.approx(p * rate_in + c * rate_out, rel=1e-12)
    stream = modelyard.text_completion("Once upon a time", stream=True, **kw)
    chunks = list(stream)
    assert chunks and all(ch.choices for ch in chunks)  # the usage chunk was asked for, not handed on
    assert stream.cost == plain.cost
    # completion() on the same deployment (chat shape) carries the same cost
    chat = modelyard.completion(messages=[{"role": "user", "content": "Once upon a time"}], **kw)
    assert chat.cost == pytest.approx(chat.usage.prompt_tokens * rate_in + chat.usage.completion_tokens * rate_out)


def test_simulated_stream_of_a_legacy_o1_model_carries_the_plain_cost(api_base: str, emulator: Emulator) -> None:
    emulator.add_deployment(Deployment("spend-o1-mini", model="o1-mini"))  # its family simulates streams
    rate_in, rate_out = _rates("azure/o1-mini")
    plain = _call(api_base, "spend-o1-mini")
    assert plain.cost == pytest.approx(plain.usage.prompt_tokens * rate_in + plain.usage.completion_tokens * rate_out)
    stream = _call(api_base, "spend-o1-mini", stream=True)
    chunks = list(stream)
    assert chunks and all(ch.usage is None for ch in chunks)
    assert stream.cost == plain.cost


def test_v1_api_and_new_previews_are_asked_for_usage_ga_2024_10_21_is_not(api_base: str, gpt4: Emulator) -> None:
    sent = {}
    for version in ("v1", "2025-04-01-preview", "2024-09-01-preview", "2024-10-21", "2024-06-01"):
        list(_call(api_base, stream=True, api_version=version))
        sent[version] = gpt4.requests[-1].body.get("stream_options")
    assert sent == {
        "v1": {"include_usage": True}, "2025-04-01-preview": {"include_usage": True},
        "2024-09-01-preview": {"include_usage": True}, "2024-10-21": None, "2024-06-01": None,
    }  # fmt: skip


def test_calls_without_usage_cost_none_with_one_warning_per_name(caplog: Any) -> None:
    # A stream on an api-version that sends no usage: None, warned once per model name, then
    # answered without the general way's raised and caught "no usage" (issue 17, round five).
    pricing.register_model({"azure/flat": {"input_cost_per_token": 1e-06, "output_cost_per_token": 3e-06}})
    assert not pricing.warned_unpriced(base_model="azure/flat")
    with caplog.at_level(logging.WARNING, logger="modelyard.pricing"):
        for _ in range(3):
            assert cost(units_of("chat", None), base_model="azure/flat") is None
            assert cost(units_of("chat", None), deployment="no-such-model") is None
    assert len([r for r in caplog.records if "azure/flat" in r.getMessage()]) == 1
    assert len([r for r in caplog.records if "no-such-model" in r.getMessage()]) == 1
    assert pricing.warned_unpriced(base_model="azure/flat")
    assert pricing.warned_unpriced(deployment="no-such-model")
    assert not pricing.warned_unpriced(base_model="azure/other-name")


def test_cached_text_rates_outlive_other_lookups() -> None:
    # The rates cached for one model stay when another model is looked up for the first time
    # (only a new price table, register_model or reset_prices forget them).
    pricing.register_model({"azure/flat": {"input_cost_per_token": 1e-06, "output_cost_per_token": 3e-06}})
    usage = Usage(prompt_tokens=10, completion_tokens=2)
    assert token_cost(usage, base_model="azure/flat") == 10 * 1e-06 + 2 * 3e-06
    assert len(pricing._text_rates) == 1
    token_cost(usage, base_model="gpt-4o")
    cost(units_of("chat", usage), base_model="azure/other-name")
    assert len(pricing._text_rates) == 2  # azure/flat's kept, gpt-4o's added
