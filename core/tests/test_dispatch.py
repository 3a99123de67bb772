"""The pipeline's hook calls (modelyard._dispatch): the answers pluggy gives, with less overhead.

Each case is checked against pluggy itself on a real plugin manager, and through the pipeline
against the emulator: a plugin that answers for some requests and not others is asked every
time, wrappers see results and exceptions, and what the fast calls do not reproduce goes to
pluggy (old-style hookwrappers, monitored hook calls).
"""

from __future__ import annotations

import logging
from collections.abc import Generator
from typing import Any

import modelyard
import pluggy
import pytest
from modelyard._dispatch import Plans, call_hook
from modelyard.plugins import get_plugins, reset_plugins
from modelyard.testing import KEY, Emulator
from modelyard.types import ChatRequest, Connection, ProviderRequest, Route

spec = pluggy.HookspecMarker("dispatchtest")
impl = pluggy.HookimplMarker("dispatchtest")


class Spec:
    @spec(firstresult=True)
    def pick(self, x: int, log: list[str]) -> Any:
        """First answer wins."""

    @spec
    def seen(self, x: int, log: list[str]) -> Any:
        """Every answer."""


class Sometimes:
    """Answers odd numbers only: must be asked every time, not skipped after a None."""

    @impl
    def pick(self, x: int, log: list[str]) -> Any:
        log.append("sometimes")
        return f"odd {x}" if x % 2 else None

    @impl
    def seen(self, x: int) -> Any:  # takes fewer arguments than the spec
        return x * 10


class Always:
    @impl
    def pick(self, x: int, log: list[str]) -> Any:
        log.append("always")
        if x == 3:
            raise ValueError("three")
        if x == 4:
            raise KeyError("four")
        return f"always {x}"

    @impl
    def seen(self, x: int, log: list[str]) -> Any:
        return None


class Wrapper:
    @impl(wrapper=True)
    def pick(self, x: int, log: list[str]) -> Generator[None, Any, Any]:
        log.append("wrapper in")
        try:
            result = yield
        except ValueError:
            log.append("wrapper saw ValueError")
            return "rescued"
        log.append("wrapper out")
        return f"[{result}]"


class OldStyle:
    @impl(hookwrapper=True)
    def pick(self, x: int, log: list[str]) -> Generator[None, Any, None]:
        outcome = yield
        if x == 0:
            outcome.force_result("old style")


def _manager(*plugins: object) -> pluggy.PluginManager:
    pm = pluggy.PluginManager("dispatchtest")
    pm.add_hookspecs(Spec)
    for p in plugins:
        pm.register(p)
    return pm


def _outcome(fn: Any) -> tuple[Any, list[str]]:
    log: list[str] = []
    try:
        return ("ok", fn(log)), log
    except Exception as exc:  # compared by type and text
        return ("raised", type(exc).__name__, str(exc)), log


@pytest.mark.parametrize(
    "plugins",
    [(Always(), Sometimes()), (Always(), Sometimes(), Wrapper()), (Wrapper(), Always(), Sometimes()), (Sometimes(),)],
    ids=["plain", "wrapped", "wrapper-innermost", "only-sometimes"],
)
def test_the_answers_results_exceptions_and_call_order_are_pluggys(plugins: tuple[object, ...]) -> None:
    pm = _manager(*plugins)
    plans: dict[str, Any] = {}
    for x in range(6):
        ours = _outcome(lambda log, x=x: call_hook(plans, pm.hook.pick, True, {"x": x, "log": log}))
        theirs = _outcome(lambda log, x=x: pm.hook.pick(x=x, log=log))
        assert ours == theirs, x
        assert call_hook(plans, pm.hook.seen, True, {"x": x, "log": []}) == pm.hook.seen(x=x, log=[])
    assert plans["pick"].direct  # the fast calls made these


def test_a_plugin_registered_later_is_called_and_old_style_wrappers_go_to_pluggy() -> None:
    pm = _manager(Always())
    plans: dict[str, Any] = {}
    assert call_hook(plans, pm.hook.pick, True, {"x": 1, "log": []}) == "always 1"
    pm.register(Sometimes())
    assert call_hook(plans, pm.hook.pick, True, {"x": 1, "log": []}) == "odd 1"
    pm.register(OldStyle())
    assert call_hook(plans, pm.hook.pick, True, {"x": 0, "log": []}) == "old style"
    assert not plans["pick"].direct  # pluggy made that call, and makes the next
    assert call_hook(plans, pm.hook.pick, True, {"x": 2, "log": []}) == "always 2"


def test_a_wrapper_that_does_not_yield_and_a_missing_argument_fail_as_in_pluggy() -> None:
    class NoYield:
        @impl(wrapper=True)
        def pick(self, x: int, log: list[str]) -> Generator[None, Any, Any]:
            if x >= 0:
                return "no"
            yield

    pm = _manager(Always(), NoYield())
    theirs = _outcome(lambda log: pm.hook.pick(x=1, log=log))
    assert _outcome(lambda log: call_hook({}, pm.hook.pick, True, {"x": 1, "log": log})) == theirs
    assert theirs[0][:2] == ("raised", "RuntimeError") and "did not yield" in theirs[0][2]
    with pytest.raises(pluggy.HookCallError, match="'log'"):
        call_hook({}, pm.hook.pick, True, {"x": 1})


def test_watched_plans_trust_their_clearing_and_a_subset_caller_gets_a_plan_of_its_own() -> None:
    # A watched Plans is cleared by whoever changes the plugins (the plugin set's manager), so
    # it does not ask the hook for its implementations; a caller of the same name that is not
    # the plan's own (pluggy's subset caller) still gets its own answers.
    sometimes = Sometimes()
    pm = _manager(Always(), sometimes)
    plans = Plans(watched=True)
    subset = pm.subset_hook_caller("pick", remove_plugins=[sometimes])
    for _ in range(2):
        assert call_hook(plans, subset, True, {"x": 1, "log": []}) == subset(x=1, log=[]) == "always 1"
        assert call_hook(plans, pm.hook.pick, True, {"x": 1, "log": []}) == "odd 1"
    pm.register(OldStyle())  # not seen: this test's manager does not clear the plans
    assert call_hook(plans, pm.hook.pick, True, {"x": 0, "log": []}) == "always 0"
    plans.clear()  # what the plugin set's manager does
    assert call_hook(plans, pm.hook.pick, True, {"x": 0, "log": []}) == "old style"


# ---------------------------------------------------------------------- through the pipeline


class Picky:
    """Answers ``transform_request`` only for calls whose ``user`` is "picky" (a header marks them)."""

    HOOK_API = (1, 0)

    @modelyard.hookimpl(tryfirst=True)
    def transform_request(self, route: Route, request: ChatRequest, connection: Connection) -> ProviderRequest | None:
        if request.params.get("user") != "picky":
            return None
        base = str(connection.api_base).rstrip("/")
        return ProviderRequest(
            url=f"{base}/openai/deployments/{route.deployment}/chat/completions",
            params={"api-version": "2024-10-21"},
            headers={"x-picky": "yes"},
            json_body={"messages": request.messages, **request.params},
        )


def test_a_plugin_answering_some_requests_only_is_asked_on_every_call(api_base: str, emulator: Emulator) -> None:
    reset_plugins(extra=[Picky()])
    users = ["picky", "other", "picky", "other", "other", "picky"]
    for user in users:
        r = modelyard.completion(model="azure/gpt-4o", messages=[{"role": "user", "content": "hi"}],
                                 api_base=api_base, api_key=KEY, api_version="2024-10-21", user=user)  # fmt: skip
        assert r.choices[0].message.content
    marked = [req.headers.get("x-picky") for req in emulator.requests]
    assert marked == ["yes" if u == "picky" else None for u in users]
    assert get_plugins().plans["transform_request"].direct


def test_monitored_hook_calls_go_through_pluggy(api_base: str, emulator: Emulator, monkeypatch: pytest.MonkeyPatch,
                                                caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    monkeypatch.setenv("MODELYARD_TRACE_PLUGINS", "1")
    reset_plugins()
    with caplog.at_level(logging.INFO, logger="modelyard.plugins.trace"):
        modelyard.completion(model="azure/gpt-4o", messages=[{"role": "user", "content": "hi"}],
                             api_base=api_base, api_key=KEY, api_version="2024-10-21")  # fmt: skip
    traced = [r.getMessage() for r in caplog.records if r.name == "modelyard.plugins.trace"]
    assert any(m.startswith("call transform_request(") for m in traced)
    assert any(m.startswith("call resolve_auth(") for m in traced)
    assert "done transform_request -> ProviderRequest" in traced
    assert not get_plugins().plans["transform_request"].direct


class Shouting:
    """Changes every chat answer (and declares no ``keeps_answers``): its normalize hook must run."""

    HOOK_API = (1, 0)

    @modelyard.hookimpl(wrapper=True)
    def normalize_response(self, route: Route, response: Any) -> Generator[None, Any, Any]:
        result = yield
        result.choices[0].message.content = result.choices[0].message.content.upper()
        return result


def test_plugins_registered_or_removed_on_the_sets_manager_take_part_in_the_next_call(
    api_base: str, emulator: Emulator
) -> None:  # fmt: skip
    # The set's plans and kept-answer verdicts are forgotten when its manager's plugins change:
    # a plugin registered after calls were made is asked by the next call (its request hook, and
    # its answer hook, which the kept-as-sent verdict made before it would skip), and one
    # unregistered is not.
    reset_plugins()
    plugins = get_plugins()
    assert plugins.plans.watched

    def call(user: str) -> str:
        r = modelyard.completion(model="azure/gpt-4o", messages=[{"role": "user", "content": "hi"}],
                                 api_base=api_base, api_key=KEY, api_version="2024-10-21", user=user)  # fmt: skip
        return str(r.choices[0].message.content)

    plain = call("picky")
    assert plain != plain.upper() and emulator.requests[-1].headers.get("x-picky") is None
    picky, shouting = Picky(), Shouting()
    plugins.pm.register(picky)
    plugins.pm.register(shouting)
    assert call("picky") == plain.upper()
    assert emulator.requests[-1].headers.get("x-picky") == "yes"
    plugins.pm.unregister(shouting)
    plugins.pm.unregister(picky)
    assert call("picky") == plain and emulator.requests[-1].headers.get("x-picky") is None
