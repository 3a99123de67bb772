"""Spend through the proxy (issue 14): deployment prices from config reach the pricing; an
OpenAI client that did not ask for usage never sees the usage chunk the proxy asks Azure for."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import modelyard
import pytest
from modelyard import pricing
from modelyard.errors import ConfigError
from modelyard.plugins import reset_plugins
from modelyard.testing import Deployment, Emulator

from .conftest import MASTER_KEY, azure, running_proxy

AUTH = {"Authorization": f"Bearer {MASTER_KEY}"}
HELLO = [{"role": "user", "content": "hello there"}]
VERSION = "2025-04-01-preview"  # takes stream_options (the helper's 2024-10-21 GA does not)


class _Costs:
    HOOK_API = (1, 5)

    def __init__(self) -> None:
        self.events: list[Any] = []

    @modelyard.hookimpl
    def on_success(self, event: Any) -> None:
        self.events.append(event)


@pytest.fixture
def costs(api_base: str, emulator: Emulator) -> Iterator[tuple[str, _Costs]]:
    emulator.add_deployment(Deployment("spend-gpt4", model="gpt-4"))
    recorder = _Costs()
    reset_plugins(extra=[recorder])
    pricing.reset_prices()
    config = {
        "model_list": [
            {"model_name": "gpt-4", "litellm_params": azure(api_base, "spend-gpt4", api_version=VERSION),
             "model_info": {"base_model": "azure/gpt-4-1106-preview"}},
            {"model_name": "negotiated", "litellm_params": {**azure(api_base, "spend-gpt4"),
             "input_cost_per_token": 2e-06, "output_cost_per_token": 4e-06}},
        ],
        "router_settings": {"num_retries": 0},
    }  # fmt: skip
    try:
        with running_proxy(config) as server:
            yield server.url, recorder
    finally:
        reset_plugins()
        pricing.reset_prices()


def _events(response: httpx.Response) -> list[dict[str, Any]]:
    lines = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
    return [json.loads(line) for line in lines if line != "[DONE]"]


def test_config_prices_and_base_model_reach_the_cost(costs: tuple[str, _Costs], emulator: Emulator) -> None:
    url, recorder = costs
    with httpx.Client(base_url=url, headers=AUTH, timeout=30) as client:
        a = client.post("/v1/chat/completions", json={"model": "gpt-4", "messages": HELLO}).json()
        b = client.post("/v1/chat/completions", json={"model": "negotiated", "messages": HELLO}).json()
    assert "input_cost_per_token" not in emulator.requests[-1].body
    first, second = recorder.events
    assert first.cost == pytest.approx(a["usage"]["prompt_tokens"] * 1e-05 + a["usage"]["completion_tokens"] * 3e-05)
    assert second.cost == pytest.approx(b["usage"]["prompt_tokens"] * 2e-06 + b["usage"]["completion_tokens"] * 4e-06)


def test_stream_client_gets_usage_chunk_only_when_it_asked(costs: tuple[str, _Costs], emulator: Emulator) -> None:
    url, recorder = costs
    body = {"model": "gpt-4", "messages": HELLO, "stream": True}
    with httpx.Client(base_url=url, headers=AUTH, timeout=30) as client:
        plain = _events(client.post("/v1/chat/completions", json=body))
        asked = _events(client.post("/v1/chat/completions", json={**body, "stream_options": {"include_usage": True}}))
    assert emulator.requests[-2].body["stream_options"] == {"include_usage": True}  # the proxy asked anyway
    assert plain and all(e["choices"] for e in plain) and not any(e.get("usage") for e in plain)
    assert asked[-1]["choices"] == [] and asked[-1]["usage"]["total_tokens"] > 0
    assert [e.cost for e in recorder.events] == [recorder.events[1].cost] * 2 and recorder.events[0].cost is not None


def test_prices_file_from_config_loaded_at_start(api_base: str, emulator: Emulator, tmp_path: Any) -> None:
    emulator.add_deployment(Deployment("spend-gpt4", model="gpt-4"))
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"azure/gpt-4": {"input_cost_per_token": 1e-03, "output_cost_per_token": 2e-03}}))
    recorder = _Costs()
    reset_plugins(extra=[recorder])
    config: dict[str, Any] = {
        "model_list": [{"model_name": "gpt-4", "litellm_params": azure(api_base, "spend-gpt4")}],
        "modelyard_settings": {"prices": str(prices)},
    }
    try:
        with running_proxy(config) as server:
            assert pricing._table is not None  # loaded at start-up, not at the first request
            with httpx.Client(base_url=server.url, headers=AUTH, timeout=30) as client:
                usage = client.post("/v1/chat/completions", json={"model": "gpt-4", "messages": HELLO}).json()["usage"]
        [event] = recorder.events
        assert event.cost == pytest.approx(usage["prompt_tokens"] * 1e-03 + usage["completion_tokens"] * 2e-03)
        config["modelyard_settings"] = {"prices": str(tmp_path / "missing.json")}
        with pytest.raises(ConfigError) as exc, running_proxy(config):
            pass
        assert exc.value.key == "modelyard_settings.prices" and "missing.json" in exc.value.message
    finally:
        reset_plugins()
        pricing.reset_prices()


def test_chat_response_headers_carry_the_cost_and_the_deployment(costs: tuple[str, _Costs]) -> None:
    url, recorder = costs
    with httpx.Client(base_url=url, headers=AUTH, timeout=30) as client:
        plain = client.post("/v1/chat/completions", json={"model": "gpt-4", "messages": HELLO})
        streamed = client.post("/v1/chat/completions", json={"model": "gpt-4", "messages": HELLO, "stream": True})
    usage = plain.json()["usage"]
    expected = usage["prompt_tokens"] * 1e-05 + usage["completion_tokens"] * 3e-05  # gpt-4-1106-preview's rates
    assert float(plain.headers["x-modelyard-response-cost"]) == pytest.approx(expected, rel=1e-12)
    assert plain.headers["x-litellm-response-cost"] == plain.headers["x-modelyard-response-cost"]
    assert float(plain.headers["x-modelyard-response-cost"]) == recorder.events[0].cost
    deployment = plain.headers["x-modelyard-deployment-id"]
    assert deployment and plain.headers["x-litellm-model-id"] == deployment
    # A stream's headers go out before its usage is known: the deployment, not the cost.
    assert streamed.headers["x-modelyard-deployment-id"] == deployment
    assert "x-modelyard-response-cost" not in streamed.headers
