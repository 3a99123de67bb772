"""The end of a call made cheaper (issue 17, round five): the same answers, records and costs."""

from __future__ import annotations

import json
from typing import Any

import httpx
from modelyard._ratelimit import REMAINING, remaining
from modelyard.types import ChatCompletion, EmbeddingResponse

ANSWER = {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o",
          "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "hi"}}],
          "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}  # fmt: skip


def _state(answer: Any) -> tuple[Any, Any, Any]:
    return answer._response_headers, answer._hidden_params, answer._upstream


def test_private_state_of_validated_answers_is_their_own() -> None:
    # Each answer has the defaults and a hidden-params dict of its own, however it was made.
    first, second = ChatCompletion.model_validate(ANSWER), ChatCompletion.model_validate_json(b'{"id": "x"}')
    for answer in (first, second, ChatCompletion(), ChatCompletion.model_construct(), EmbeddingResponse()):
        assert _state(answer) == (None, {}, None)
    first._hidden_params["response_cost"] = 1.0
    assert second._hidden_params == {} and ChatCompletion()._hidden_params == {}
    assert first.cost == 1.0 and second.cost is None
    second._response_headers = httpx.Headers({"x-a": "1"})
    assert second._response_headers["X-A"] == "1" and first._response_headers is None


def test_private_state_is_made_lazily_and_compares_copies_and_pickles_as_before() -> None:
    # The state is not pydantic's PrivateAttr (whose per-object init cost ~3 µs, issue 17 round
    # nine): made on first use, it still counts in ==, and copies and pickles carry it.
    import pickle

    untouched, read = ChatCompletion.model_validate(ANSWER), ChatCompletion.model_validate(ANSWER)
    assert read._hidden_params == {}
    assert untouched == read and read == untouched  # made or not, the defaults are equal
    read._hidden_params["response_cost"] = 2.0
    assert untouched != read
    headers = httpx.Headers({"apim-request-id": "r1"})
    read._attach(headers, {"response_cost": 3.0})
    for copy in (read.model_copy(), read.model_copy(deep=True), pickle.loads(pickle.dumps(read))):
        assert copy.cost == 3.0 and copy._response_headers["apim-request-id"] == "r1"
        assert copy == read
    shallow = read.model_copy()
    shallow._hidden_params = {"response_cost": 4.0}  # a copy's state is its own dict
    assert read.cost == 3.0 and shallow.cost == 4.0
    assert ChatCompletion.model_construct()._hidden_params is not ChatCompletion.model_construct()._hidden_params


def test_an_answer_type_with_its_own_post_init_and_private_attributes_keeps_both() -> None:
    from pydantic import PrivateAttr

    seen: list[Any] = []

    class Noted(ChatCompletion):
        _note: str = PrivateAttr(default="n")

        def model_post_init(self, context: Any, /) -> None:
            seen.append((self._note, self._hidden_params))

    noted = Noted.model_validate(ANSWER)
    assert seen == [("n", {})]
    assert noted._hidden_params is seen[0][1]
    noted._note = "changed"
    noted._attach(None, {"response_cost": 1.0})
    assert (noted._note, noted.cost) == ("changed", 1.0)
    assert noted.model_copy()._note == "changed"


def test_remaining_headers_read_in_one_pass_as_httpx_gives_them() -> None:
    # The Router's quota and the proxy's gauges read both x-ratelimit-remaining-* headers in
    # one pass over httpx's list: the same strings httpx's get gives, whatever the headers are.
    cases = [
        [],
        [(b"content-type", b"application/json")],
        [(b"X-RateLimit-Remaining-Requests", b"99"), (b"x-ratelimit-remaining-tokens", b"9000"), (b"date", b"Mon")],
        [(b"x-ratelimit-remaining-tokens", b"12")],
        [(b"x-ratelimit-remaining-requests", b"1"), (b"x-ratelimit-remaining-requests", b"2")],
        [(b"x-ratelimit-remaining-requests", "é".encode())],
        [(b"x-ratelimit-remaining-requests", "é".encode("latin-1"))],
    ]
    for raw in cases:
        headers = httpx.Headers(raw)
        expected = (headers.get(REMAINING[0]), headers.get(REMAINING[1]))
        assert remaining(headers) == expected, raw
        assert remaining(dict(headers.items())) == (dict(headers.items()).get(REMAINING[0]), dict(headers.items()).get(REMAINING[1]))
    assert remaining(None) == (None, None)
    assert remaining(httpx.Headers([(b"X-RateLimit-Remaining-Requests", b"99")])) == ("99", None)


def test_price_overrides_found_by_name_as_before() -> None:
    # Which names are prices is worked out once per name now (issue 17, round five): the same
    # keys, first source first, None values skipped, whatever the order of calls.
    from modelyard.pricing import price_overrides

    control = {"timeout": 600, "input_cost_per_token": None, "base_model": "azure/gpt-4o"}
    info = {"id": "abc", "input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06, "my_cost_": 3.0, 7: "x"}
    for _ in range(3):
        assert price_overrides(control, info) == {"input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06, "my_cost_": 3.0}
        assert price_overrides({"output_cost_per_token": 5e-06}, info)["output_cost_per_token"] == 5e-06
        assert price_overrides(None, {}) == {}


def test_call_records_carry_the_usage_model_dump_gives() -> None:
    # CallRecord.usage of a plain Usage is its fields copied (issue 17, round five): the dict
    # model_dump gives, for Azure's recorded answers and for usages with fields of their own.
    from pathlib import Path

    from modelyard.api import _usage_dump
    from modelyard.types import Usage

    data = Path(__file__).resolve().parents[2] / "tests" / "data" / "azure_responses"
    usages = [json.loads(p.read_text())["body"]["usage"] for p in sorted(data.glob("chat_*.json"))]
    usages += [
        {"prompt_tokens": 9, "completion_tokens": 6, "total_tokens": 15},
        {"prompt_tokens": 9, "prompt_tokens_details": {"cached_tokens": 3, "audio_tokens": None}},
        {"prompt_tokens": 9, "completion_tokens_details": {"reasoning_tokens": 2, "new_kind_tokens": 4}},
        {"prompt_tokens": 9, "new_top_level": {"a": 1}},
        {},
    ]
    assert len(usages) >= 8
    for raw in usages:
        usage = Usage.model_validate(raw)
        dumped = _usage_dump(usage)
        assert dumped == usage.model_dump() and list(dumped) == list(usage.model_dump()), raw
        assert dumped is not usage.__dict__
    assert _usage_dump(Usage(prompt_tokens=1))["prompt_tokens_details"] is None


def test_a_subclass_of_an_answer_type_gets_the_same_private_state() -> None:
    class Mine(ChatCompletion):
        note: str = ""

    class Deeper(Mine):
        def model_post_init(self, context: Any, /) -> None:
            self._hidden_params["seen"] = True

    assert _state(Mine.model_validate(ANSWER)) == (None, {}, None)
    assert Deeper.model_validate(ANSWER)._hidden_params == {"seen": True}
    assert Mine()._hidden_params == {}  # not the one Deeper wrote into


def test_an_answer_that_is_not_a_chat_completion_is_still_refused() -> None:
    # The kept answer stays validated whole (the decision of issue 17 round five): a body with
    # the envelope but a choice without its message is not passed on as the upstream's bytes.
    import pytest
    from modelyard import api
    from pydantic import ValidationError

    call = api._prepare("azure/gpt-4o", [{"role": "user", "content": "hi"}], False,
                        {"api_base": "http://127.0.0.1:1", "api_key": "k", "api_version": "2024-10-21"})  # fmt: skip
    good = httpx.Response(200, content=json.dumps(ANSWER).encode())
    kept = api._normalize(call, good)
    assert isinstance(kept, ChatCompletion) and kept.choices[0].message.content == "hi"
    assert kept._upstream == (id(kept), good.content)
    bad = {**ANSWER, "choices": [{"index": 0, "finish_reason": "stop"}]}
    assert api._kept_response(call, httpx.Response(200, content=json.dumps(bad).encode())) is None
    with pytest.raises(ValidationError):
        api._normalize(call, httpx.Response(200, content=json.dumps(bad).encode()))


FILTERED = {
    **ANSWER,
    "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {"hate": {"filtered": False, "severity": "safe"}}}],
    "choices": [{**ANSWER["choices"][0], "content_filter_results": {"violence": {"filtered": False, "severity": "safe"}}}],
}


def _forwarded(answer: dict[str, Any], *, forwards: bool = True, model: str = "azure/gpt-4o", stream: bool = False) -> Any:
    """``answer`` through the end of a call whose scope forwards the answers (as the proxy's
    does); for a simulated stream, the chunks made of it."""
    from modelyard import api
    from modelyard.observe import CallScope, enter_scope, leave_scope

    _, token = enter_scope(CallScope(forwards_answers=forwards))
    try:
        call = api._prepare(model, [{"role": "user", "content": "hi"}], stream,
                            {"api_base": "http://127.0.0.1:1", "api_key": "k", "api_version": "2024-10-21"})  # fmt: skip
        result = api._normalize(call, httpx.Response(200, content=json.dumps(answer).encode()))
        return api._simulated_chunks(result, False) if call.simulate_stream else result
    finally:
        leave_scope(token)


def test_a_forwarded_answer_is_typed_only_where_the_pipeline_reads_it() -> None:
    # Issue 17, round thirteen: the proxy sends a kept answer as its bytes, so its messages and
    # filter results are not made into models; the envelope, usage and finish reasons are.
    from modelyard.types import Message, Usage

    kept = _forwarded(FILTERED)
    assert isinstance(kept, ChatCompletion) and type(kept) is not ChatCompletion
    assert kept._upstream == (id(kept), json.dumps(FILTERED).encode())
    assert isinstance(kept.usage, Usage) and kept.usage.total_tokens == 4 and kept.model == "gpt-4o"
    assert kept.choices[0].finish_reason == "stop" and kept.choices[0].index == 0
    assert kept.choices[0].message == {"role": "assistant", "content": "hi"}
    assert kept.choices[0].content_filter_results == FILTERED["choices"][0]["content_filter_results"]
    assert kept.prompt_filter_results == FILTERED["prompt_filter_results"]
    assert kept._hidden_params["response_cost"] == _forwarded(FILTERED, forwards=False)._hidden_params["response_cost"]
    # Without the scope's word, the same answer is typed whole, as an SDK caller gets it.
    whole = _forwarded(FILTERED, forwards=False)
    assert type(whole) is ChatCompletion and isinstance(whole.choices[0].message, Message)
    assert whole.choices[0].content_filter_results.violence.severity == "safe"  # type: ignore[union-attr]


def test_a_forwarded_answer_is_typed_whole_for_an_observer_and_a_simulated_stream() -> None:
    import modelyard
    from modelyard.plugins import reset_plugins
    from modelyard.types import Message

    class Observer:
        HOOK_API = (1, 0)

        def __init__(self) -> None:
            self.seen: list[Any] = []

        @modelyard.hookimpl
        def on_success(self, event: Any) -> None:
            self.seen.append(event.response)

    observer = Observer()
    reset_plugins(extra=[observer])
    kept = _forwarded(FILTERED)
    assert type(kept) is ChatCompletion and observer.seen == [kept]
    assert isinstance(observer.seen[0].choices[0].message, Message)
    reset_plugins()
    # o1-mini cannot stream: its answer becomes chunks made from the typed message.
    chunks = _forwarded(FILTERED, model="azure/o_series/o1-mini", stream=True)
    assert [c.choices[0].delta.content for c in chunks] == ["hi", None]


def test_a_forwarded_answer_still_needs_its_messages_and_passes_a_filter_shape_unknown_here() -> None:
    import pytest
    from pydantic import ValidationError

    bad = {**ANSWER, "choices": [{"index": 0, "finish_reason": "stop"}]}
    with pytest.raises(ValidationError):
        _forwarded(bad)
    with pytest.raises(ValidationError):
        _forwarded({**ANSWER, "choices": [{"index": 0, "message": "hi"}]})
    with pytest.raises(ValidationError):
        _forwarded({**ANSWER, "usage": {"prompt_tokens": "many"}})
    # A filter verdict in a shape the models do not know (a category as a bare string) fails the
    # whole validation, and is forwarded as the upstream sent it.
    odd = {**ANSWER, "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {"hate": "safe"}}]}
    with pytest.raises(ValidationError):
        _forwarded(odd, forwards=False)
    assert _forwarded(odd)._upstream[1] == json.dumps(odd).encode()
