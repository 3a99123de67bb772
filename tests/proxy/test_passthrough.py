"""Answers no plugin changes pass through the proxy as the upstream sent them (issue 17, HOOK_API 1.10).

A plugin says per route with ``keeps_answers`` whether its ``normalize_response`` /
``normalize_chunk`` change answers. When none does, the pipeline skips those hooks: the proxy
sends the upstream's body as it came, and each stream event's JSON as parsed. A plugin that
claims an answer (a check) or does not declare itself still gets every answer it used to.

The emulator writes ``system_fingerprint`` and ``prompt_filter_results`` before ``choices``;
the proxy's own serialisation writes the model's field order (``choices`` first), so the key
order in the proxy's answer shows whose bytes they are.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Generator
from typing import Any

import httpx
import modelyard
import pytest
from modelyard.testing import KEY, Deployment, Emulator
from modelyard.testing.server import serve_in_thread

from .conftest import MASTER_KEY, azure, running_proxy

HEADERS = {"Authorization": f"Bearer {MASTER_KEY}"}
BODY = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi there"}]}


class Undeclared:
    """Wraps both normalize hooks and counts the calls; written before HOOK_API 1.10."""

    HOOK_API = (1, 8)

    def __init__(self) -> None:
        self.responses = 0
        self.chunks = 0

    @modelyard.hookimpl(wrapper=True)
    def normalize_response(self, route: Any, response: Any) -> Generator[None, Any, Any]:
        self.responses += 1
        return (yield)

    @modelyard.hookimpl(wrapper=True)
    def normalize_chunk(self, route: Any, chunk: Any) -> Generator[None, Any, Any]:
        self.chunks += 1
        return (yield)


class Counter(Undeclared):
    """The same, declaring that it changes nothing."""

    HOOK_API = (1, 10)

    @modelyard.hookimpl
    def keeps_answers(self, route: Any, kind: str) -> bool:
        return True


class Shouter:
    """Upper-cases the content of the chunks and answers its check claims (those with content)."""

    HOOK_API = (1, 10)

    def __init__(self) -> None:
        self.chunks = 0
        self.responses = 0

    @modelyard.hookimpl
    def keeps_answers(self, route: Any, kind: str) -> Callable[[dict[str, Any]], bool]:
        return _has_content

    @modelyard.hookimpl(wrapper=True)
    def normalize_chunk(self, route: Any, chunk: Any) -> Generator[None, Any, Any]:
        self.chunks += 1
        result = yield
        for choice in result.choices:
            if choice.delta.content:
                choice.delta.content = choice.delta.content.upper()
        return result

    @modelyard.hookimpl(wrapper=True)
    def normalize_response(self, route: Any, response: Any) -> Generator[None, Any, Any]:
        self.responses += 1
        result = yield
        result.choices[0].message.content = result.choices[0].message.content.upper()
        return result


def _has_content(data: dict[str, Any]) -> bool:
    return any(
        (c.get("delta") or c.get("message") or {}).get("content") for c in data.get("choices") or ()
    )


def _events(text: str) -> list[str]:
    return [
        line[6:]
        for line in text.splitlines()
        if line.startswith("data: ") and line != "data: [DONE]"
    ]


def _stream(client: httpx.Client, **extra: Any) -> list[str]:
    with client.stream(
        "POST", "/v1/chat/completions", json={**BODY, "stream": True, **extra}
    ) as stream:
        assert stream.status_code == 200
        return _events(stream.read().decode())


def test_an_answer_no_plugin_changes_is_the_upstreams_body(
    proxy: serve_in_thread, plugin_set: Callable[..., None]
) -> None:
    counter = Counter()
    plugin_set(counter)
    with httpx.Client(base_url=proxy.url, headers=HEADERS, timeout=30) as client:
        answer = client.post("/v1/chat/completions", json=BODY)
    assert answer.status_code == 200
    assert counter.responses == 0  # declared, changes nothing: not called
    text = answer.text
    assert text.index('"prompt_filter_results"') < text.index('"choices"')  # the emulator's order
    body = answer.json()
    assert body["object"] == "chat.completion" and body["choices"][0]["message"]["content"]
    assert float(answer.headers["x-modelyard-response-cost"]) > 0  # priced from the same answer


def test_a_plugin_that_does_not_declare_itself_is_called_as_before(
    proxy: serve_in_thread, plugin_set: Callable[..., None]
) -> None:
    counter = Undeclared()
    plugin_set(counter)
    with httpx.Client(base_url=proxy.url, headers=HEADERS, timeout=30) as client:
        answer = client.post("/v1/chat/completions", json=BODY)
        events = _stream(client)
    assert (
        counter.responses == 1 and counter.chunks == len(events) + 1
    )  # + Azure's empty first event
    text = answer.text
    assert text.index('"choices"') < text.index(
        '"prompt_filter_results"'
    )  # serialised by the proxy


def test_a_stream_no_plugin_changes_skips_normalize_chunk(
    proxy: serve_in_thread, plugin_set: Callable[..., None]
) -> None:
    counter = Counter()
    plugin_set(counter)
    with httpx.Client(base_url=proxy.url, headers=HEADERS, timeout=30) as client:
        events = _stream(client, stream_options={"include_usage": True})
    assert counter.chunks == 0
    chunks = [json.loads(e) for e in events]
    assert all(
        e.index('"system_fingerprint"') < e.index('"choices"') for e in events
    )  # as the upstream sent them
    # Azure's empty first event is folded into the next one, as before.
    assert (
        chunks[0]["prompt_filter_results"]
        and chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    )
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] > 0


def test_the_usage_chunk_asked_for_pricing_only_is_still_dropped(
    proxy: serve_in_thread, plugin_set: Callable[..., None]
) -> None:
    plugin_set(Counter())
    with httpx.Client(base_url=proxy.url, headers=HEADERS, timeout=30) as client:
        chunks = [json.loads(e) for e in _stream(client)]
    assert all(c["choices"] and "usage" not in c for c in chunks)


def test_a_plugin_still_rewrites_what_its_check_claims(
    proxy: serve_in_thread, plugin_set: Callable[..., None]
) -> None:
    shouter = Shouter()
    plugin_set(shouter)
    with httpx.Client(base_url=proxy.url, headers=HEADERS, timeout=30) as client:
        answer = client.post("/v1/chat/completions", json=BODY)
        chunks = [json.loads(e) for e in _stream(client)]
    content = answer.json()["choices"][0]["message"]["content"]
    assert (
        shouter.responses == 1 and content == content.upper() and any(c.isalpha() for c in content)
    )
    streamed = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert streamed == streamed.upper() and any(c.isalpha() for c in streamed)
    with_content = sum(1 for c in chunks if c["choices"][0]["delta"].get("content"))
    assert shouter.chunks == with_content  # the role and finish events were not its to see


def _without_ids(value: Any) -> Any:
    data = value.model_dump()
    data.pop("id", None)
    data.pop("created", None)
    return data


def test_the_sdk_gets_the_same_objects_either_way(
    api_base: str, emulator: Emulator, plugin_set: Callable[..., None]
) -> None:
    def call(**kw: Any) -> Any:
        return modelyard.completion(model="azure/gpt-4o", api_base=api_base, api_key=KEY, seed=7,
                                    messages=[{"role": "user", "content": "same words"}], **kw)  # fmt: skip

    got = {}
    for declared in (True, False):
        counter = Counter() if declared else Undeclared()
        plugin_set(counter)
        result = call()
        stream = call(stream=True, stream_options={"include_usage": True})
        chunks = list(stream)
        assert (counter.responses, counter.chunks == 0) == ((0, True) if declared else (1, False))
        got[declared] = (result, chunks, stream)
    (fast, fast_chunks, fast_stream), (slow, slow_chunks, slow_stream) = got[True], got[False]
    assert type(fast) is type(slow) is modelyard.ChatCompletion
    assert _without_ids(fast) == _without_ids(slow)
    assert fast.cost == slow.cost and fast.cost is not None and fast._response_headers is not None
    assert [type(c) for c in fast_chunks] == [type(c) for c in slow_chunks]
    assert [_without_ids(c) for c in fast_chunks] == [_without_ids(c) for c in slow_chunks]
    assert fast_chunks[0].model_fields_set == slow_chunks[0].model_fields_set
    assert fast_stream.prompt_filter_results == slow_stream.prompt_filter_results is not None
    assert (
        fast_stream.usage == slow_stream.usage is not None and fast_stream.cost == slow_stream.cost
    )


def test_the_access_log_line_takes_any_model_name(proxy: serve_in_thread, everything_logged: Any) -> None:
    # The log line is written by pydantic-core's encoder, which refuses a lone surrogate (JSON
    # allows the escape): that line is escaped as json.dumps does, and the request still ends well.
    raw = b'{"model": "gpt-\\ud800", "messages": [{"role": "user", "content": "hi"}]}'
    with httpx.Client(base_url=proxy.url, headers={**HEADERS, "content-type": "application/json"}, timeout=30) as client:
        answer = client.post("/v1/chat/completions", content=raw)
        assert answer.status_code == 404
        assert client.post("/v1/chat/completions", json=BODY).status_code == 200
    # The line is written after the answer is sent: wait for both (a loaded machine may lag).
    deadline = time.monotonic() + 10
    while True:
        lines = [r.getMessage() for r in everything_logged.records if r.name == "modelyard.proxy.access"]
        if len(lines) >= 2 or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    assert [json.loads(line)["status"] for line in lines] == [404, 200]
    assert '"gpt-\\ud800"' in lines[0] and json.loads(lines[0])["model"] == "gpt-\ud800"


def test_an_embeddings_answer_no_plugin_changes_skips_normalize_response(
    api_base: str, emulator: Emulator, plugin_set: Callable[..., None]
) -> None:
    emulator.add_deployment(Deployment("pt-emb", model="text-embedding-3-small"))
    counter = Counter()
    plugin_set(counter)
    config = {"model_list": [{"model_name": "embed", "litellm_params": azure(api_base, "pt-emb"),
                              "model_info": {"mode": "embedding"}}]}  # fmt: skip
    with running_proxy(config) as server, httpx.Client(base_url=server.url, headers=HEADERS, timeout=30) as client:
        answer = client.post("/v1/embeddings", json={"model": "embed", "input": ["one", "two"]})
    assert answer.status_code == 200 and counter.responses == 0
    body = answer.json()
    assert body["object"] == "list" and [d["index"] for d in body["data"]] == [0, 1]
    assert len(body["data"][0]["embedding"]) > 100 and body["usage"]["total_tokens"] > 0
    assert float(answer.headers["x-modelyard-response-cost"]) > 0


ODD_FILTERS = {
    "id": "chatcmpl-odd", "object": "chat.completion", "created": 1, "model": "gpt-4o-2024-08-06",
    "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {"hate": "safe", "new_category": [1, 2]}}],
    "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "hi", "odd": {"x": 1}},
                 "content_filter_results": {"violence": {"filtered": False, "severity": "safe"}}}],
    "usage": {"prompt_tokens": 9, "completion_tokens": 1, "total_tokens": 10},
}  # fmt: skip


async def _odd_upstream(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """An upstream whose chat answer has a filter verdict in a shape the SDK's models refuse."""
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    body = json.dumps(ODD_FILTERS).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


def test_the_proxy_forwards_an_answer_whose_filter_results_the_sdk_would_refuse() -> None:
    # Issue 17, round thirteen: the proxy sends a kept answer as its bytes, so it types only what
    # it reads (envelope, usage, finish reasons). An answer with a content-filter verdict in a
    # shape the models do not know goes through whole and priced, where the SDK refuses it.
    from pydantic import ValidationError

    with serve_in_thread(_odd_upstream) as upstream:
        with pytest.raises(ValidationError):
            modelyard.completion(model="azure/odd", api_base=upstream.url, api_key=KEY, api_version="2024-10-21",
                                 messages=[{"role": "user", "content": "hi"}])  # fmt: skip
        config = {"model_list": [{"model_name": "gpt-4o", "litellm_params": azure(upstream.url, "odd")}]}
        with running_proxy(config) as server, httpx.Client(base_url=server.url, headers=HEADERS, timeout=30) as client:
            answer = client.post("/v1/chat/completions", json=BODY)
    assert answer.status_code == 200
    assert answer.content == json.dumps(ODD_FILTERS).encode()
    assert float(answer.headers["x-modelyard-response-cost"]) > 0


class Watcher:
    """An observer: with one active, the proxy types answers whole, as the SDK does."""

    HOOK_API = (1, 0)

    @modelyard.hookimpl
    def on_success(self, event: Any) -> None:
        pass


def test_an_answer_that_does_not_validate_is_a_502_naming_the_field(
    plugin_set: Callable[..., None], caplog: pytest.LogCaptureFixture
) -> None:
    # The answer typed whole (an observer is active) fails on the verdict it cannot read: the
    # gateway's fault to report, not "Internal error in the proxy" (a 500, before round thirteen).
    plugin_set(Watcher())
    with serve_in_thread(_odd_upstream) as upstream:
        config = {"model_list": [{"model_name": "gpt-4o", "litellm_params": azure(upstream.url, "odd")}]}
        with running_proxy(config) as server, httpx.Client(base_url=server.url, headers=HEADERS, timeout=30) as client:
            answer = client.post("/v1/chat/completions", json=BODY)
            ok = client.get("/health/liveliness")
    assert answer.status_code == 502 and ok.status_code == 200
    error = answer.json()["error"]
    assert error["code"] == "invalid_upstream_answer" and error["type"] == "api_error"
    assert "'prompt_filter_results.0.content_filter_results.hate'" in error["message"]
    assert "ChatCompletion" in error["message"]
    assert any(r.levelname == "WARNING" and error["message"] in r.getMessage() for r in caplog.records)
