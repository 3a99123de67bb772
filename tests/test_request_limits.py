"""The SDK's request models carry the spec's ranges and lengths: out-of-range input is refused
before sending, naming the field (issue 18)."""

from __future__ import annotations

from typing import Any

import modelyard
import pytest
from modelyard.errors import BadRequestError
from modelyard.testing import KEY, Emulator

HELLO = [{"role": "user", "content": "hi"}]

OUT_OF_RANGE = [
    ("n", 129), ("n", 0), ("n", 100_000_000), ("temperature", 2.01), ("temperature", -0.1), ("top_p", 1.5),
    ("presence_penalty", -2.5), ("frequency_penalty", 2.5), ("top_logprobs", 21), ("stop", ["a", "b", "c", "d", "e"]),
    ("stop", []), ("extra_thing", float("nan")),
]  # fmt: skip


@pytest.mark.parametrize(("name", "value"), OUT_OF_RANGE)
def test_chat_refuses_out_of_range_before_sending(azure_env: Emulator, name: str, value: Any) -> None:
    with pytest.raises(BadRequestError) as caught:
        modelyard.completion(model="azure/gpt-4o", messages=HELLO, **{name: value})
    assert caught.value.param == name, caught.value
    assert azure_env.requests == []


@pytest.mark.parametrize(("name", "value"), [("n", 129), ("temperature", 3), ("top_p", -1), ("stop", ["1", "2", "3", "4", "5"])])
def test_text_completion_refuses_out_of_range(azure_env: Emulator, name: str, value: Any) -> None:
    with pytest.raises(BadRequestError) as caught:
        modelyard.text_completion(model="azure_text/my-instruct-deployment", prompt="hi", **{name: value})
    assert caught.value.param == name
    assert azure_env.requests == []


def test_the_edges_are_sent(azure_env: Emulator, api_base: str) -> None:
    r = modelyard.completion(model="azure/gpt-4o", messages=HELLO, n=128, temperature=2, top_p=0, presence_penalty=-2,
                             frequency_penalty=2, stop=["a", "b", "c", "d"], api_key=KEY, api_base=api_base)  # fmt: skip
    assert len(r.choices) == 128
