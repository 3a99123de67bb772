"""Operation rows and proxy paths contributed by a plugin (``register_operations``, HOOK_API 1.9).

The ``Shout`` plugin below is written against :mod:`modelyard.plugin` only: it contributes a
``shout`` operation (``modelyard.shout`` / ``ashout``, ``Router.shout``, the proxy's ``/shout``)
and two proxy paths for it (the model from the path, and from the body), and serves it
in-process. Without the plugin none of it exists, and the errors say so.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import modelyard
import pytest
from modelyard.plugin import (
    Family,
    NoCredential,
    Operation,
    OperationRef,
    PluginError,
    ProviderRequest,
    ProviderResponse,
    ProxyPath,
    Route,
    hookimpl,
)
from modelyard.plugins import get_plugins, reset_plugins
from modelyard.testing import MASTER_KEY, running_proxy
from pydantic import BaseModel, ConfigDict

AUTH = {"Authorization": f"Bearer {MASTER_KEY}"}


class ShoutParams(BaseModel):
    """The ``shout`` body (without ``model``)."""

    model_config = ConfigDict(extra="forbid")

    text: str
    times: int = 1


class Shouted(BaseModel):
    """The ``shout`` answer."""

    text: str
    model: str


SHOUT = Operation(
    name="shout", sdk="shout", request=ShoutParams, response=Shouted, payload=("text",), paths=("/shout",),
    modes=frozenset({"chat"}), description="shouting",
)  # fmt: skip
SEEN: list[dict[str, Any]] = []


def _answer(request: httpx.Request) -> httpx.Response:
    body = json.loads(request.content)
    SEEN.append(body)
    return httpx.Response(200, json={"text": " ".join([body["text"].upper()] * body.get("times", 1)), "model": body["model"]})


class Shout:
    """A provider plugin with an operation of its own."""

    HOOK_API = (1, 9)

    @staticmethod
    @hookimpl
    def register_operations(register: Any) -> None:
        register(SHOUT)
        register(ProxyPath("/loud/{model}/shout", "shout", query=("loudness",), description="(the loud client's path)"))
        register(ProxyPath("/loud/v2/shout", "shout"))
        register(OperationRef(sdk="whisper", distribution="modelyard-whisper"))

    @staticmethod
    @hookimpl
    def register_families(register: Any) -> None:
        register(Family(name="loud", provider="loud", prefix="loud/"))

    @staticmethod
    @hookimpl
    def transform_request(route: Route, request: Any, connection: Any) -> ProviderRequest | None:
        if route.provider != "loud" or route.operation != "shout":
            return None
        body = {"model": route.deployment, **request.params}
        return ProviderRequest(url="http://loud.invalid/shout", json_body=body, handler=_answer)

    @staticmethod
    @hookimpl
    def resolve_auth(route: Route, connection: Any, timeout: float | None) -> NoCredential | None:
        return NoCredential() if route.provider == "loud" else None

    @staticmethod
    @hookimpl
    def normalize_response(route: Route, response: ProviderResponse) -> Any:
        return Shouted.model_validate_json(response.content) if route.provider == "loud" else None


@pytest.fixture
def shout() -> Iterator[None]:
    reset_plugins(extra=[Shout])
    SEEN.clear()
    yield
    reset_plugins()


def test_the_sdk_functions_of_a_contributed_row(shout: None) -> None:
    answer = modelyard.shout("loud/m1", "hi", times=2)
    assert answer == Shouted(text="HI HI", model="m1")
    assert asyncio.run(modelyard.ashout(model="loud/m1", text="yo")).text == "YO"
    assert {"shout", "ashout"} <= set(dir(modelyard)) and "shout" in modelyard.__all__
    from modelyard.api import shout as from_api
    from modelyard.operations import OPERATIONS

    assert from_api is modelyard.shout  # built once per plugin set
    assert OPERATIONS["shout"] is SHOUT and "shout" in list(OPERATIONS)
    with pytest.raises(modelyard.BadRequestError, match="times"):  # validated against the row's model
        modelyard.shout("loud/m1", "hi", times="many")
    assert SEEN == [{"model": "m1", "text": "hi", "times": 2}, {"model": "m1", "text": "yo"}]


def test_the_router_methods_of_a_contributed_row(shout: None) -> None:
    router = modelyard.Router(model_list=[{"model_name": "loudly", "litellm_params": {"model": "loud/m2"}}])
    assert router.shout("loudly", "hey").text == "HEY"
    assert asyncio.run(router.ashout(model="loudly", text="ho", times=3)).text == "HO HO HO"
    with pytest.raises(AttributeError, match="'Router' object has no attribute 'scream'"):
        router.scream  # noqa: B018


def test_the_proxy_serves_a_contributed_row_and_its_paths(shout: None) -> None:
    config = {"model_list": [{"model_name": "loudly", "litellm_params": {"model": "loud/m3"}}]}
    with running_proxy(config) as server, httpx.Client(base_url=server.url, headers=AUTH) as client:
        for path, body in (
            ("/shout", {"model": "loudly", "text": "a"}),
            ("/v1/shout", {"model": "loudly", "text": "b"}),
            ("/loud/loudly/shout?loudness=11", {"text": "c"}),  # the model from the path
            ("/loud/v2/shout", {"model": "loudly", "text": "d"}),  # from the body
        ):
            r = client.post(path, json=body)
            assert r.status_code == 200, (path, r.text)
            assert r.json() == {"text": body["text"].upper(), "model": "m3"}
        r = client.get("/loud/loudly/shout")
        assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"
        r = client.post("/loud/nope/shout", json={"text": "e"})
        assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
        doc = client.get("/openapi.json").json()
        templated = doc["paths"]["/loud/{model}/shout"]["post"]
        assert templated["summary"] == "shouting (the loud client's path)"
        assert [p["name"] for p in templated["parameters"]] == ["model", "loudness"]
        assert "model" not in templated["requestBody"]["content"]["application/json"]["schema"]["required"]
        assert {"/shout", "/v1/shout", "/loud/v2/shout"} <= set(doc["paths"])
    assert [b["text"] for b in SEEN] == ["a", "b", "c", "d"]


def test_the_metrics_label_a_contributed_path_as_its_operation(shout: None) -> None:
    config = {"model_list": [{"model_name": "loudly", "litellm_params": {"model": "loud/m4"}}],
              "general_settings": {"metrics": True}}  # fmt: skip
    with running_proxy(config) as server, httpx.Client(base_url=server.url, headers=AUTH) as client:
        assert client.post("/loud/loudly/shout", json={"text": "x"}).status_code == 200
        assert client.post("/loud/v2/shout", json={"model": "loudly", "text": "y"}).status_code == 200
        page = client.get("/metrics").text
    lines = [line for line in page.splitlines() if line.startswith("modelyard_requests_total{")]
    assert any('endpoint="/shout"' in line and line.endswith(" 2.0") for line in lines), lines


def test_without_the_plugin_the_row_and_its_paths_are_gone(shout: None) -> None:
    reset_plugins()
    with pytest.raises(AttributeError, match="no attribute 'shout'"):
        modelyard.shout  # noqa: B018
    assert "shout" not in dir(modelyard)
    config = {"model_list": [{"model_name": "chat", "litellm_params": {"model": "azure/gpt-4o", "api_key": "k",
                                                                      "api_base": "http://127.0.0.1:9"}}]}  # fmt: skip
    with running_proxy(config) as server, httpx.Client(base_url=server.url, headers=AUTH) as client:
        for path in ("/v1/shout", "/loud/chat/shout", "/loud/v2/shout"):
            r = client.post(path, json={"model": "chat", "text": "z"})
            assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", path


def test_a_sibling_names_the_plugin_of_a_row_it_does_not_have(shout: None) -> None:
    with pytest.raises(AttributeError, match="whisper is an operation of the plugin modelyard-whisper, which is not installed"):
        modelyard.whisper  # noqa: B018
    router = modelyard.Router(model_list=[{"model_name": "loudly", "litellm_params": {"model": "loud/m2"}}])
    with pytest.raises(AttributeError, match="awhisper is an operation of the plugin modelyard-whisper"):
        router.awhisper  # noqa: B018


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (Operation(name="chat", sdk="chat2", request=ShoutParams, response=Shouted), "'chat', which the core has"),
        (Operation(name="yell", sdk="completion", request=ShoutParams, response=Shouted), "SDK name 'completion'"),
        (ProxyPath("/x/{model}/{model}", "shout"), "at most one {model}"),
        (ProxyPath("relative/{model}", "shout"), "a path is absolute"),
        (ProxyPath("/loud/v2/shout", "shout"), "the proxy path '/loud/v2/shout', which plugin '(Bad|Shout)' registered already"),
        (ProxyPath("/x/y", "nothing"), "'nothing', which neither the core nor a loaded plugin has"),
        ("a string", "registered str, not a modelyard.operations.Operation"),
        ([Operation(name="quiet", sdk="quiet", request=ShoutParams, response=Shouted), ProxyPath("/q", "quiet")],
         "'quiet', which has no paths of its own"),
    ],
)
def test_bad_rows_are_refused_naming_the_plugin(row: Any, message: str) -> None:
    class Bad:
        HOOK_API = (1, 9)

        @staticmethod
        @hookimpl
        def register_operations(register: Any) -> None:
            for one in row if isinstance(row, list) else [row]:
                register(one)

    reset_plugins(extra=[Shout, Bad])
    try:
        with pytest.raises(PluginError, match=message.replace("{m", r"\{m").replace("l}", r"l\}")) as caught:
            _ = get_plugins().operations
        assert "Bad" in str(caught.value)
    finally:
        reset_plugins()


def test_import_loads_no_plugin_and_core_rows_need_none() -> None:
    import subprocess
    import sys

    code = (
        "import sys, modelyard\n"
        "from modelyard.operations import OPERATIONS\n"
        "assert OPERATIONS['embeddings'].sdk == 'embedding'\n"
        "print(sorted(m for m in sys.modules if m == 'pluggy' or m.startswith('modelyard_')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
