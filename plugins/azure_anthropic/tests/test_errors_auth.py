"""Anthropic's errors to the error tree (529 retried), Entra ID sign-in, and the plugin blocked."""

from __future__ import annotations

from typing import Any

import pytest
from modelyard import (
    AuthenticationError,
    BadRequestError,
    RateLimitError,
    ServiceUnavailableError,
    acompletion,
    completion,
    hookimpl,
)
from modelyard.errors import PluginNotLoadedError
from modelyard.plugins import get_plugins
from modelyard.testing import KEY, Emulator
from modelyard.testing.emulator import Deployment, Faults
from modelyard.testing.entra import EntraEmulator
from modelyard.testing.helpers import CLIENT_ID, CLIENT_SECRET, TENANT

MODEL = "azure/claude-sonnet-4-5"
HELLO = [{"role": "user", "content": "Hello"}]


@pytest.fixture
def claude(claude_deployment: Deployment, api_base: str) -> dict[str, Any]:
    return {"api_base": api_base, "api_key": KEY}


def test_overloaded_529_is_retried_with_backoff(claude: dict[str, Any], claude_deployment: Deployment, emulator: Emulator) -> None:
    claude_deployment.faults = Faults(script=[529])
    r = completion(model=MODEL, messages=HELLO, num_retries=1, **claude)
    assert r.choices[0].message.content == "Claude heard: Hello"
    assert len(emulator.requests) == 2


def test_overloaded_529_when_retries_are_spent(claude: dict[str, Any], claude_deployment: Deployment) -> None:
    claude_deployment.faults = Faults(script=[529])
    with pytest.raises(ServiceUnavailableError) as caught:
        completion(model=MODEL, messages=HELLO, num_retries=0, **claude)
    err = caught.value
    assert (err.status_code, err.code, err.message) == (529, "overloaded_error", "Overloaded")
    assert (err.provider, err.deployment) == ("azure_anthropic", "claude-sonnet-4-5")


def test_rate_limit_keeps_retry_after(claude: dict[str, Any], claude_deployment: Deployment) -> None:
    claude_deployment.faults = Faults(script=[429], retry_after=7)
    with pytest.raises(RateLimitError) as caught:
        completion(model=MODEL, messages=HELLO, num_retries=0, **claude)
    assert caught.value.retry_after == 7
    assert caught.value.code == "rate_limit_error"


def test_invalid_request_and_authentication_errors(claude: dict[str, Any]) -> None:
    with pytest.raises(BadRequestError) as bad:
        completion(model=MODEL, messages=HELLO, temperature=1.5, **claude)
    assert bad.value.code == "invalid_request_error"
    assert "temperature" in bad.value.message
    with pytest.raises(AuthenticationError) as denied:
        completion(model=MODEL, messages=HELLO, **{**claude, "api_key": "wrong-key"})
    assert denied.value.code == "authentication_error"
    assert "wrong-key" not in str(denied.value)


async def test_an_error_event_inside_a_stream_is_raised(claude: dict[str, Any]) -> None:
    messages = [{"role": "user", "content": "emulator:overloaded-midstream please"}]
    stream = await acompletion(model=MODEL, messages=messages, stream=True, **claude)
    seen = []
    with pytest.raises(ServiceUnavailableError) as caught:
        async for chunk in stream:
            seen.append(chunk)
    assert caught.value.code == "overloaded_error"
    assert "".join(c.choices[0].delta.content or "" for c in seen).startswith("Claude heard:")


def test_entra_id_token_for_the_foundry_scope(
    claude_deployment: Deployment, entra: EntraEmulator, emulator: Emulator, api_base: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in (("AZURE_TENANT_ID", TENANT), ("AZURE_CLIENT_ID", CLIENT_ID), ("AZURE_CLIENT_SECRET", CLIENT_SECRET)):
        monkeypatch.setenv(name, value)
    r = completion(model=MODEL, messages=HELLO, api_base=api_base)
    assert r.choices[0].message.content == "Claude heard: Hello"
    [token_request] = entra.token_requests
    assert token_request.scope == "https://ai.azure.com/.default"
    [request] = emulator.requests
    assert request.headers["authorization"].startswith("Bearer ey")
    assert "x-api-key" not in request.headers and "api-key" not in request.headers
    # A token for Azure OpenAI's audience is not one the Foundry endpoint takes.
    with pytest.raises(AuthenticationError):
        completion(model=MODEL, messages=HELLO, api_base=api_base, azure_scope="https://cognitiveservices.azure.com/.default")


def test_key_from_the_environment(claude_deployment: Deployment, emulator: Emulator, api_base: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_AI_API_BASE", api_base)
    monkeypatch.setenv("AZURE_AI_API_KEY", KEY)
    completion(model=MODEL, messages=HELLO)
    assert emulator.requests[-1].headers["x-api-key"] == KEY


@pytest.fixture
def blocked(monkeypatch: pytest.MonkeyPatch, azure_env: Emulator, claude_deployment: Deployment) -> Emulator:
    monkeypatch.setenv("MODELYARD_BLOCK_PLUGINS", "modelyard-azure-anthropic")
    assert get_plugins().missing("modelyard-azure-anthropic") == "blocked: named in the block list"
    return azure_env


def test_blocked_azure_chat_still_works(blocked: Emulator) -> None:
    r = completion(model="azure/gpt-4o", messages=HELLO)
    assert r.choices[0].message.content.endswith("You said: Hello")
    assert [q.path for q in blocked.requests] == ["/openai/deployments/gpt-4o/chat/completions"]


def test_blocked_claude_fails_before_sending_naming_the_plugin(blocked: Emulator) -> None:
    with pytest.raises(PluginNotLoadedError) as caught:
        completion(model=MODEL, messages=HELLO)
    err = caught.value
    assert err.plugin == "modelyard-azure-anthropic"
    assert "modelyard-azure-anthropic" in err.message and "blocked" in err.message
    assert not blocked.requests


def test_the_messages_operation_on_an_azure_openai_deployment_is_a_400(azure_env: Emulator) -> None:
    from modelyard import anthropic_messages

    with pytest.raises(BadRequestError) as caught:
        anthropic_messages(model="azure/gpt-4o", messages=HELLO, max_tokens=10)
    assert caught.value.param == "model" and "Messages API" in caught.value.message
    assert not azure_env.requests


def test_anthropic_messages_from_the_sdk(claude: dict[str, Any], emulator: Emulator) -> None:
    import json

    from modelyard import anthropic_messages

    answer = anthropic_messages(model=MODEL, messages=HELLO, max_tokens=10, **claude)
    assert answer.content_type.startswith("application/json")
    assert json.loads(answer.read())["content"] == [{"type": "text", "text": "Claude heard: Hello"}]
    assert emulator.requests[-1].body == {"model": "claude-sonnet-4-5", "messages": HELLO, "max_tokens": 10}


class Recorder:
    HOOK_API = (1, 0)

    def __init__(self) -> None:
        self.successes: list[Any] = []

    @hookimpl
    def on_success(self, event: Any) -> None:
        self.successes.append(event)


@pytest.mark.parametrize("stream", [False, True])
def test_a_passed_through_answer_is_priced_and_observed(claude: dict[str, Any], emulator: Emulator, stream: bool) -> None:
    from modelyard import anthropic_messages
    from modelyard.plugins import reset_plugins
    from modelyard_azure_anthropic.prices import PRICES

    recorder = Recorder()
    reset_plugins(extra=[recorder])
    answer = anthropic_messages(model=MODEL, messages=HELLO, max_tokens=10, stream=stream, **claude)
    body = b"".join(answer.iter_bytes())
    assert (b"event: message_stop" in body) is stream
    [event] = recorder.successes
    assert event.route.operation == "messages"
    assert event.usage["prompt_tokens"] > 0 and event.usage["completion_tokens"] > 0
    prices = PRICES["claude-sonnet-4-5"]
    expected = event.usage["prompt_tokens"] * prices["input_cost_per_token"] + event.usage["completion_tokens"] * prices["output_cost_per_token"]
    assert event.cost == pytest.approx(expected)
