"""The family modules as data: what each entry point registers, the name patterns, the prompt rule."""

from __future__ import annotations

import re

import pytest
from modelyard.errors import BadRequestError
from modelyard.families import Family
from modelyard.types import ChatRequest
from modelyard_azure_chat import gpt5, instruct, o_series, text


def registered(module: object) -> dict[str, Family]:
    found: list[Family] = []
    module.register_families(register=found.append)  # type: ignore[attr-defined]
    return {f.name: f for f in found}


def test_each_entry_point_registers_its_families() -> None:
    assert set(registered(o_series)) == {"o_series", "o_series_legacy"}
    assert set(registered(gpt5)) == {"gpt5", "gpt5_chat"}
    assert set(registered(instruct)) == {"azure_text"}
    for module in (o_series, gpt5, instruct):
        assert module.HOOK_API == (1, 0)


def test_narrow_families_refine_and_outrank_their_parents() -> None:
    families = {**registered(o_series), **registered(gpt5)}
    assert families["o_series_legacy"].refines == "o_series"
    assert families["gpt5_chat"].refines == "gpt5"
    order = sorted(families.values(), key=lambda f: -f.priority)
    assert [f.name for f in order] == ["gpt5_chat", "o_series_legacy", "gpt5", "o_series"]


@pytest.mark.parametrize(
    ("pattern", "yes", "no"),
    [
        (o_series.O_SERIES_PATTERN, ["o1", "o3-mini", "O4-MINI", "my-o3-deployment", "prod_o3", "x.o1"],
         ["demo1", "foo10", "o10", "gpt-4o", "gpt-4o-mini", "gpt-35-turbo1", "hello", "zoo3"]),
        (o_series.O1_LEGACY_PATTERN, ["o1-mini", "o1-preview", "o1mini", "team-o1-mini-2024-09-12"],
         ["o1", "o3-mini", "demo1-mini", "o1-minis"]),
        (gpt5.GPT5_PATTERN, ["gpt-5", "gpt-5-mini", "gpt-5-nano", "gpt-5.1", "my-gpt-5-deployment", "GPT5"],
         ["gpt-50", "gpt-4o", "gpt-4.5"]),
        (gpt5.GPT5_CHAT_PATTERN, ["gpt-5-chat", "gpt-5.1-chat", "my-gpt-5-chat-prod"], ["gpt-5-mini", "gpt-5"]),
    ],
)  # fmt: skip
def test_patterns(pattern: str, yes: list[str], no: list[str]) -> None:
    assert [n for n in yes if not re.search(pattern, n, re.IGNORECASE)] == []
    assert [n for n in no if re.search(pattern, n, re.IGNORECASE)] == []


def test_prompt_rule() -> None:
    assert text.prompt_from_messages([{"role": "user", "content": "Just this."}]) == "Just this."
    messages = [
        {"role": "system", "content": "Sys."},
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "1"}]},
        {"role": "tool", "content": "42"},
        {"role": "user", "content": ""},
    ]
    assert text.prompt_from_messages(messages) == "Sys.\n\na\nb\n\n42"
    with pytest.raises(BadRequestError) as info:
        text.prompt_from_messages([{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}])
    assert info.value.param == "messages[0].content[0]"


def test_completions_body() -> None:
    chat = ChatRequest(messages=[{"role": "user", "content": "Hi"}], params={"logprobs": True, "top_logprobs": 3})
    assert text.completions_body(chat) == {"prompt": "Hi", "logprobs": 3}
    chat = ChatRequest(messages=[{"role": "user", "content": "Hi"}], params={"logprobs": False})
    assert text.completions_body(chat) == {"prompt": "Hi"}
    native = ChatRequest(messages=[], params={"prompt": ["a", "b"], "logprobs": 2})
    assert text.completions_body(native) == {"prompt": ["a", "b"], "logprobs": 2}
