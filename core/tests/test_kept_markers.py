"""``claims_only_with`` (HOOK_API 1.12): a ``keeps_answers`` check that names the bytes of what it
claims is not given the other answers, which are validated straight from their bytes.

Checked on the real plugin set (azure_chat, azure_vision's check) beside a third-party plugin
whose check counts its calls: the same results as the parsed way, and the check still asked
whenever one of the markers, or a ``\\u`` escape that could hide one, is in the body.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Generator
from typing import Any

import httpx
import pytest
from modelyard import api, hookimpl
from modelyard._kept import kept_checks, unclaimed
from modelyard.plugin import answers_for, claims_only_with
from modelyard.plugins import get_plugins, reset_plugins
from modelyard.types import ChatCompletion, ProviderResponse, Route
from pydantic import ValidationError

ANSWER = {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o",
          "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "hi\nthere"}}],
          "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}  # fmt: skip
SETTINGS = {"api_base": "http://127.0.0.1:1", "api_key": "k", "api_version": "2024-10-21"}


class Counting:
    """A third-party wrapper of azure chat's normalize_response with a check; ``marked`` or not."""

    def __init__(self, marked: bool) -> None:
        self.seen: list[dict[str, Any]] = []
        self.wrapped = 0

        def check(data: dict[str, Any]) -> bool:
            self.seen.append(data)
            return "tagged_by_us" in data

        self.check: Callable[[dict[str, Any]], bool] = claims_only_with(b'"tagged_by_us"')(check) if marked else check

    @hookimpl(wrapper=True)
    @answers_for("azure", "chat")
    def normalize_response(self, route: Route, response: ProviderResponse) -> Generator[None, Any, Any]:
        self.wrapped += 1
        return (yield)

    @hookimpl
    @answers_for("azure", "chat")
    def keeps_answers(self, route: Route, kind: str) -> Any:
        return self.check


def _kept(body: bytes) -> Any:
    call = api._prepare("azure/gpt-4o", [{"role": "user", "content": "hi"}], False, dict(SETTINGS))
    return call, api._kept_response(call, httpx.Response(200, content=body))


@pytest.fixture
def counting() -> Generator[Counting, None, None]:
    plugin = Counting(marked=True)
    reset_plugins(extra=[plugin])
    try:
        yield plugin
    finally:
        reset_plugins()


def test_claims_only_with_takes_non_empty_bytes() -> None:
    for bad in ((), ("text",), (b"",), (b"x", None)):
        with pytest.raises(TypeError):
            claims_only_with(*bad)  # type: ignore[arg-type]

    @claims_only_with(b"a", b"bc")
    def check(data: dict[str, Any]) -> bool:
        return False

    assert check.modelyard_markers == (b"a", b"bc")  # type: ignore[attr-defined]


def test_an_answer_without_the_markers_is_validated_from_its_bytes_without_the_checks(counting: Counting) -> None:
    body = json.dumps(ANSWER).encode()
    call, result = _kept(body)
    assert isinstance(result, ChatCompletion) and result.choices[0].message.content == "hi\nthere"
    assert result.model_dump() == ChatCompletion.model_validate(ANSWER).model_dump()
    assert result._upstream == (id(result), body)
    assert counting.seen == []  # never parsed for the check
    # Through the whole normalize step too: kept as sent, no hook call.
    assert api._normalize(call, httpx.Response(200, content=body)).model_dump() == result.model_dump()
    assert counting.seen == [] and counting.wrapped == 0


def test_a_marker_or_an_escape_in_the_body_still_asks_every_check(counting: Counting) -> None:
    tagged = json.dumps({**ANSWER, "tagged_by_us": 1}).encode()
    call, result = _kept(tagged)
    assert result is None and len(counting.seen) == 1  # claimed: the hook's answer
    assert api._normalize(call, httpx.Response(200, content=tagged)).tagged_by_us == 1
    assert counting.wrapped == 1
    # The key behind an escape: the bytes do not show it, the parsed answer does.
    escaped = json.dumps({**ANSWER, "tagged_by_us": 1}).replace("tagged_by_us", "tagged\\u005fby_us").encode()
    assert b"tagged_by_us" not in escaped
    _, result = _kept(escaped)
    assert result is None and counting.seen[-1]["tagged_by_us"] == 1
    # An escape anywhere sends the answer the parsed way, which keeps it when nothing claims it.
    plain_escape = json.dumps({**ANSWER, "id": "caf\u00e9"}).encode()
    assert b"\\u00e9" in plain_escape
    seen = len(counting.seen)
    _, result = _kept(plain_escape)
    assert isinstance(result, ChatCompletion) and result.id == "caf\u00e9" and len(counting.seen) == seen + 1


def test_a_check_without_markers_is_asked_for_every_answer() -> None:
    plugin = Counting(marked=False)
    reset_plugins(extra=[plugin])
    try:
        body = json.dumps(ANSWER).encode()
        call, result = _kept(body)
        assert isinstance(result, ChatCompletion) and len(plugin.seen) == 1
        checks = kept_checks(get_plugins(), call.route, "response")
        assert checks is not None and not unclaimed(checks, body)
    finally:
        reset_plugins()


def test_the_vision_plugins_answers_are_still_its_own() -> None:
    reset_plugins()
    details = {**ANSWER, "choices": [{"index": 0, "finish_reason": None, "finish_details": {"type": "max_tokens"},
                                      "message": {"role": "assistant", "content": "hi"}}]}  # fmt: skip
    for body in (json.dumps(details).encode(),
                 json.dumps(details).replace("finish_details", "finish\\u005fdetails").encode(),
                 json.dumps({**ANSWER, "object": "extensions.chat.completion"}).encode()):  # fmt: skip
        call, kept = _kept(body)
        assert kept is None  # claimed by azure_vision's check: its normalize_response makes the answer
        result = api._normalize(call, httpx.Response(200, content=body))
        assert result.object == "chat.completion"
        assert result.choices[0].finish_reason in ("stop", "length")
    assert _kept(json.dumps(details).encode())[0] is not None
    # A choice that is not an object: no chat completion validates it, and it still goes to the hook
    # (which refuses it as before).
    broken = json.dumps({**ANSWER, "choices": [None]}).encode()
    call, kept = _kept(broken)
    assert kept is None
    with pytest.raises(ValidationError):
        api._normalize(call, httpx.Response(200, content=broken))
