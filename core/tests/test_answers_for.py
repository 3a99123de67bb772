"""``answers_for`` (HOOK_API 1.11): an implementation that declares its routes is asked for those only.

Checked on a pluggy manager of its own (against pluggy's own answers) and on the real plugin set
through the pipeline against the emulator, beside a third-party plugin that declares nothing and
must keep being asked for every call.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import modelyard
import pluggy
import pytest
from modelyard._dispatch import call_hook
from modelyard.plugin import answers_for
from modelyard.plugins import get_plugins, reset_plugins
from modelyard.testing import KEY, Deployment, Emulator
from modelyard.types import ChatRequest, Connection, ProviderRequest, Route

spec = pluggy.HookspecMarker("answerstest")
impl = pluggy.HookimplMarker("answerstest")


class Spec:
    @spec(firstresult=True)
    def build(self, route: Route, log: list[str]) -> Any:
        """First answer wins."""

    @spec
    def observe(self, log: list[str]) -> Any:
        """No route: declarations do not apply."""


class Declared:
    @impl
    @answers_for("p", "a")
    @answers_for("q")
    def build(self, route: Route, log: list[str]) -> Any:
        log.append(f"declared {route.provider}/{route.operation}")
        return None  # it answers nothing: only whether it is asked shows

    @impl
    @answers_for("p", "a")
    def observe(self, log: list[str]) -> Any:
        log.append("declared observe")
        return 1


class Undeclared:
    @impl
    def build(self, route: Route, log: list[str]) -> Any:
        log.append(f"undeclared {route.provider}/{route.operation}")
        return f"{route.provider}/{route.operation}"


class DeclaredWrapper:
    @impl(wrapper=True)
    @answers_for("p", "b")
    def build(self, route: Route, log: list[str]) -> Generator[None, Any, Any]:
        log.append("wrapper asked")  # a probe: it changes nothing for other routes
        if (route.provider, route.operation) != ("p", "b"):
            return (yield)
        result = yield
        return f"[{result}]"


def _route(provider: str, operation: str) -> Route:
    return Route(provider=provider, family="f", model=f"{provider}/m", deployment="m", operation=operation)


def test_a_declared_implementation_is_asked_for_its_routes_only_and_the_others_for_every_route() -> None:
    pm = pluggy.PluginManager("answerstest")
    pm.add_hookspecs(Spec)
    for plugin in (Undeclared(), Declared(), DeclaredWrapper()):
        pm.register(plugin)
    plans: dict[str, Any] = {}
    asked: dict[tuple[str, str], list[str]] = {}
    for provider, operation in [("p", "a"), ("p", "b"), ("q", "z"), ("r", "a"), ("p", "a")]:
        route = _route(provider, operation)
        ours: list[str] = []
        theirs: list[str] = []
        answer = call_hook(plans, pm.hook.build, True, {"route": route, "log": ours})
        assert answer == pm.hook.build(route=route, log=theirs)  # pluggy asks everybody: same answer
        assert "wrapper asked" in theirs and any(line.startswith("declared") for line in theirs)
        asked[(provider, operation)] = ours
    assert asked[("p", "a")] == ["declared p/a", "undeclared p/a"]
    assert asked[("p", "b")] == ["wrapper asked", "undeclared p/b"]  # the wrapper wraps its declared route
    assert asked[("q", "z")] == ["declared q/z", "undeclared q/z"]  # every operation of "q"
    assert asked[("r", "a")] == ["undeclared r/a"]
    assert set(plans["build"].routed) == {("p", "a"), ("p", "b"), ("q", "z"), ("r", "a")}
    # A hook without a route argument asks everybody, declared or not.
    log: list[str] = []
    assert call_hook(plans, pm.hook.observe, True, {"log": log}) == [1] and log == ["declared observe"]
    assert plans["observe"].answers is None


def test_answers_for_takes_non_empty_names() -> None:
    for bad in (("",), ("p", ""), (None,), ("p", 3)):
        with pytest.raises(TypeError, match="non-empty strings"):
            answers_for(*bad)  # type: ignore[arg-type]


# ---------------------------------------------------------------------- the real plugin set


class ThirdParty:
    """A plugin written for an older core: declares nothing, counts what it is asked."""

    HOOK_API = (1, 0)

    def __init__(self) -> None:
        self.asked: list[tuple[str, str]] = []

    @modelyard.hookimpl
    def transform_request(self, route: Route, request: ChatRequest, connection: Connection) -> ProviderRequest | None:
        self.asked.append((route.provider, route.operation))
        return None


class Elsewhere:
    """Declares another provider's routes, and breaks any call it would wrongly be asked about."""

    HOOK_API = (1, 11)

    @modelyard.hookimpl(tryfirst=True)
    @answers_for("elsewhere", "chat")
    def transform_request(self, route: Route, request: ChatRequest, connection: Connection) -> ProviderRequest | None:
        raise AssertionError(f"asked about {route.provider}/{route.operation}")

    @modelyard.hookimpl(tryfirst=True)
    @answers_for("elsewhere")
    def resolve_auth(self, route: Route, connection: Connection, timeout: float | None) -> Any:
        raise AssertionError(f"asked about {route.provider}/{route.operation}")


def test_the_pipeline_asks_declared_plugins_for_their_routes_and_undeclared_ones_always(
    api_base: str, emulator: Emulator
) -> None:
    emulator.add_deployment(Deployment("af-embed", model="text-embedding-3-small"))
    third = ThirdParty()
    reset_plugins(extra=[third, Elsewhere()])
    try:
        settings = {"api_base": api_base, "api_key": KEY, "api_version": "2024-10-21"}
        for _ in range(2):
            r = modelyard.completion(model="azure/gpt-4o", messages=[{"role": "user", "content": "hi"}], **settings)
            assert r.choices[0].message.content
        e = modelyard.embedding(model="azure/af-embed", input=["hi"], **settings)
        assert e.data
        assert third.asked == [("azure", "chat"), ("azure", "chat"), ("azure", "embeddings")]
        plugins = get_plugins()
        plan = plugins.plans["transform_request"]
        chat = {function.__module__ for function, _, _ in plan.for_route("azure", "chat")}
        embeddings = {function.__module__ for function, _, _ in plan.for_route("azure", "embeddings")}
        # The shipped plugins declare their routes: a chat call no longer asks the embeddings,
        # images, audio, responses, Anthropic or OpenAI plugins; the undeclared one is asked.
        assert "modelyard_azure_chat.plugin" in chat and "modelyard_azure_embeddings.plugin" not in chat
        assert "modelyard_openai.plugin" not in chat and "modelyard_azure_anthropic.plugin" not in chat
        assert "modelyard_azure_embeddings.plugin" in embeddings and "modelyard_azure_chat.plugin" not in embeddings
        # azure_vision's wrapper wraps chat only.
        assert "modelyard_azure_vision.plugin" in chat and "modelyard_azure_vision.plugin" not in embeddings
        assert __name__ in chat and __name__ in embeddings
        auth = {f.__module__ for f, _, _ in plugins.plans["resolve_auth"].for_route("azure", "chat")}
        assert "modelyard_openai.plugin" not in auth and "modelyard_azure_auth.plugin" in auth
    finally:
        reset_plugins()
