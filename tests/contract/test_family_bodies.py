"""Every request body the model families send validates against Microsoft's inference spec.

The bodies are the ones the emulator recorded, so this checks the wire, not a model of it.
Schema: ``createChatCompletionRequest`` / ``createCompletionRequest`` of the
2025-04-01-preview spec (the newest dated one, modelyard's default api-version). GPT-5's
``reasoning_effort="minimal"`` and ``verbosity`` are newer than that spec, so they are not
sent here.
"""

from __future__ import annotations

from typing import Any

import jsonschema
import modelyard
import pytest
from modelyard.testing import KEY, Emulator, add_family_deployments

from .test_request_bodies import assert_conforms, validator

VERSION = "2025-04-01-preview"
HELLO = [{"role": "user", "content": "Hello"}]


@pytest.fixture
def recorded(emulator: Emulator, api_base: str) -> list[Any]:
    add_family_deployments(emulator)
    kw: dict[str, Any] = {"api_base": api_base, "api_key": KEY}
    system = [{"role": "system", "content": "Be brief."}, *HELLO]
    modelyard.completion(model="azure/my-o3-deployment", messages=system, max_tokens=100, reasoning_effort="low", **kw)
    list(modelyard.completion(model="azure/o_series/my-random-deployment-name", messages=system, stream=True,
                              stream_options={"include_usage": True}, **kw))  # fmt: skip
    list(modelyard.completion(model="azure/my-o1-mini", messages=system, stream=True, max_tokens=100, **kw))
    modelyard.completion(model="azure/my-gpt-5-deployment", messages=system, max_tokens=100, reasoning_effort="high", **kw)
    modelyard.completion(model="azure/my-gpt-5-chat", messages=HELLO, temperature=0.3, max_tokens=10, **kw)
    modelyard.completion(model="azure/azure-openai-4o-audio", messages=HELLO, modalities=["text", "audio"],
                         audio={"voice": "alloy", "format": "wav"}, **kw)  # fmt: skip
    modelyard.completion(model="azure_text/my-instruct-deployment", messages=system, max_tokens=20, logprobs=True,
                         top_logprobs=2, stop=["\n"], **kw)  # fmt: skip
    list(modelyard.completion(model="azure_text/my-instruct-deployment", messages=HELLO, stream=True,
                              stream_options={"include_usage": True}, **kw))  # fmt: skip
    modelyard.text_completion(model="azure_text/my-instruct-deployment", prompt=["a", "b"], n=2, echo=True, **kw)
    list(modelyard.text_completion(model="azure_text/my-instruct-deployment", prompt="a", stream=True, **kw))
    assert all(r.path.startswith("/openai/deployments/") for r in emulator.requests)
    return emulator.requests


def test_family_request_bodies_match_the_spec(recorded: list[Any]) -> None:
    chat = [r for r in recorded if r.path.endswith("/chat/completions")]
    text = [r for r in recorded if r.path.endswith("/completions") and r not in chat]
    assert (len(chat), len(text)) == (6, 4)
    for request in chat:
        assert_conforms(VERSION, request.body)
    for request in text:
        assert_conforms(VERSION, request.body, "createCompletionRequest")


def test_the_schema_check_is_real() -> None:
    chat = validator(VERSION, "createChatCompletionRequest")
    completions = validator(VERSION, "createCompletionRequest")
    with pytest.raises(jsonschema.ValidationError):
        chat.validate({"messages": [{"role": "wizard", "content": "x"}]})
    with pytest.raises(jsonschema.ValidationError):
        completions.validate({"prompt": "x", "logprobs": True})
    with pytest.raises(jsonschema.ValidationError):
        chat.validate({"messages": HELLO, "reasoning_effort": "extreme"})
    with pytest.raises(jsonschema.ValidationError):  # the o-series role is in this spec, not in 2024-10-21's
        validator("2024-10-21", "createChatCompletionRequest").validate({"messages": [{"role": "developer", "content": "x"}]})
