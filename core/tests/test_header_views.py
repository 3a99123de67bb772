"""Provider data the core no longer names (issue 13, part 1): header views and price names.

A test provider, written only against :mod:`modelyard.plugin`, answers in-process and contributes
a typed view of its response headers (``register_header_views``) and how the price table names
its models (``register_price_names``). Results of its calls carry the view; its cost is found
through its prefixes and aliases; blocking it takes both away.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import modelyard
import modelyard.types
import pytest
from modelyard import pricing
from modelyard.plugin import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatRequest,
    Connection,
    Family,
    NoCredential,
    PluginError,
    PriceNames,
    ProviderRequest,
    ProviderResponse,
    Route,
    hookimpl,
)
from modelyard.plugins import reset_plugins

HI = [{"role": "user", "content": "hi"}]
PRICES = {"input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06, "mode": "chat"}
OWN_PRICES = {"input_cost_per_token": 5e-06, "output_cost_per_token": 5e-06, "mode": "chat"}


@dataclass(frozen=True)
class QuotaHeaders:
    """The test provider's quota headers, typed."""

    left: int | None = None
    region: str | None = None

    @classmethod
    def from_headers(cls, headers: Mapping[str, str] | None) -> QuotaHeaders:
        if not headers:
            return cls()
        left = headers.get("x-quota-left")
        return cls(left=int(left) if left is not None else None, region=headers.get("x-where"))


def _answer(request: httpx.Request) -> httpx.Response:
    body = json.loads(request.content)
    headers = {"x-quota-left": "7", "x-where": "here"}
    if body.get("stream"):
        events = [
            {"id": "q", "object": "chat.completion.chunk", "model": "m-35",
             "choices": [{"index": 0, "delta": {"content": "ok"}, "finish_reason": "stop"}]},
            {"id": "q", "object": "chat.completion.chunk", "model": "m-35", "choices": [],
             "usage": {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5}},
        ]  # fmt: skip
        sse = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
        return httpx.Response(200, headers={**headers, "content-type": "text/event-stream"}, content=sse.encode())
    return httpx.Response(200, headers=headers, json={
        "id": "q", "object": "chat.completion", "model": "m-35",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5},
    })  # fmt: skip


class QuotaProvider:
    """Provider ``quota`` (``quota/<model>``), in-process; its price-table keys are ``quota/`` and ``qq/``."""

    HOOK_API = (1, 9)

    @staticmethod
    @hookimpl
    def register_families(register: Any) -> None:
        register(Family(name="quota", provider="quota", prefix="quota/"))

    @staticmethod
    @hookimpl
    def transform_request(route: Route, request: ChatRequest, connection: Connection) -> ProviderRequest | None:
        if route.provider != "quota":
            return None
        body = {"messages": request.messages, **({"stream": True} if request.stream else {})}
        return ProviderRequest(url="http://quota.invalid/chat", json_body=body, stream=request.stream, handler=_answer)

    @staticmethod
    @hookimpl
    def resolve_auth(route: Route, connection: Connection, timeout: float | None) -> NoCredential | None:
        return NoCredential() if route.provider == "quota" else None

    @staticmethod
    @hookimpl
    def normalize_response(route: Route, response: ProviderResponse) -> Any:
        return ChatCompletion.model_validate_json(response.content) if route.provider == "quota" else None

    @staticmethod
    @hookimpl
    def normalize_chunk(route: Route, chunk: dict[str, Any]) -> Any:
        return ChatCompletionChunk.model_validate(chunk) if route.provider == "quota" else None

    @staticmethod
    @hookimpl
    def register_header_views(register: Any) -> None:
        register("quota_headers", QuotaHeaders)

    @staticmethod
    @hookimpl
    def register_prices(register: Any) -> None:
        register("m-3.5", PRICES)  # the table's spelling of the model, bare
        register("quota/m-3.5", OWN_PRICES)  # the provider's own entry

    @staticmethod
    @hookimpl
    def register_price_names(register: Any) -> None:
        register(PriceNames(provider="quota", prefixes=("qq",), aliases={"m-35": "m-3.5"}))


@pytest.fixture
def quota(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    def no_network(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the in-process provider opened a connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    reset_plugins(extra=[QuotaProvider])
    pricing.reset_prices()
    yield
    reset_plugins()
    pricing.reset_prices()


def test_results_carry_the_plugins_header_view(quota: None) -> None:
    r = modelyard.completion(model="quota/m-35", messages=HI)
    assert r.quota_headers == QuotaHeaders(left=7, region="here")  # type: ignore[union-attr]
    with modelyard.completion(model="quota/m-35", messages=HI, stream=True) as stream:  # type: ignore[union-attr]
        assert stream.quota_headers.left == 7  # type: ignore[union-attr]
    # Built by hand: no headers, every field None (as the view's from_headers says).
    assert modelyard.types.ChatCompletion().quota_headers == QuotaHeaders()  # type: ignore[attr-defined]
    # The class is a public name of modelyard (and of modelyard.types), as the core's own were.
    assert modelyard.QuotaHeaders is QuotaHeaders  # type: ignore[attr-defined]
    assert modelyard.types.QuotaHeaders is QuotaHeaders  # type: ignore[attr-defined]
    assert "QuotaHeaders" in modelyard.__all__ and "QuotaHeaders" in dir(modelyard)
    # Other attributes still fail as they always did.
    with pytest.raises(AttributeError, match="'ChatCompletion' object has no attribute 'quota_header'"):
        _ = r.quota_header  # type: ignore[union-attr]
    with pytest.raises(AttributeError, match="has no attribute 'NoSuchView'"):
        _ = modelyard.NoSuchView  # type: ignore[attr-defined]


async def test_async_results_carry_it_too(quota: None) -> None:
    r = await modelyard.acompletion(model="quota/m-35", messages=HI)
    assert r.quota_headers.left == 7  # type: ignore[union-attr]
    stream = await modelyard.acompletion(model="quota/m-35", messages=HI, stream=True)
    async with stream:  # type: ignore[union-attr]
        _ = [c async for c in stream]  # type: ignore[union-attr]
    assert stream.quota_headers.region == "here"  # type: ignore[union-attr]


def test_the_view_lookup_is_built_once(quota: None) -> None:
    from modelyard.plugins import get_plugins

    r = modelyard.completion(model="quota/m-35", messages=HI)
    _ = r.quota_headers  # type: ignore[union-attr]
    views = get_plugins().header_views
    assert views["quota_headers"] is QuotaHeaders
    _ = r.quota_headers  # type: ignore[union-attr]
    assert get_plugins().header_views is views


def test_prices_are_found_through_the_declared_prefixes_and_aliases(quota: None) -> None:
    # The deployment "m-35" is the table's bare "m-3.5", through the declared alias.
    r = modelyard.completion(model="quota/m-35", messages=HI)
    assert r.cost == pytest.approx(2 * 1e-06 + 3 * 2e-06)  # type: ignore[union-attr]
    assert pricing.get_model_prices("m-35", provider="quota") == PRICES
    # A declared prefix names the provider: "qq/m-3.5" is the bare "m-3.5", the provider's own entry first.
    assert pricing.get_model_prices("qq/m-3.5", provider="quota") == OWN_PRICES
    assert pricing.get_model_prices("m-3.5", provider="quota") == OWN_PRICES


def test_without_the_declaration_there_is_no_price(monkeypatch: pytest.MonkeyPatch) -> None:
    class Undeclared(QuotaProvider):
        register_price_names = None  # type: ignore[assignment]
        register_header_views = None  # type: ignore[assignment]

    monkeypatch.setattr(socket.socket, "connect", lambda *a, **k: (_ for _ in ()).throw(AssertionError("network")))
    reset_plugins(extra=[Undeclared])
    pricing.reset_prices()
    try:
        r = modelyard.completion(model="quota/m-35", messages=HI)
        assert r.cost is None  # type: ignore[union-attr]
        assert pricing.get_model_prices("qq/m-3.5", provider="quota") is None
        with pytest.raises(AttributeError, match="has no attribute 'quota_headers'"):
            _ = r.quota_headers  # type: ignore[union-attr]
    finally:
        reset_plugins()
        pricing.reset_prices()


def test_one_name_with_two_classes_is_a_plugin_error() -> None:
    @dataclass(frozen=True)
    class Other:
        @classmethod
        def from_headers(cls, headers: Mapping[str, str] | None) -> Other:
            return cls()

    class Clash:
        HOOK_API = (1, 9)

        @staticmethod
        @hookimpl
        def register_header_views(register: Any) -> None:
            register("quota_headers", Other)

    reset_plugins(extra=[QuotaProvider, Clash])
    try:
        from modelyard.plugins import get_plugins

        with pytest.raises(PluginError, match="both register the header view 'quota_headers'"):
            _ = get_plugins().header_views
    finally:
        reset_plugins()
