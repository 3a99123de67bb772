"""``active_when`` (HOOK_API 1.13): an implementation is skipped for the calls its check turns down.

Checked on a pluggy manager of its own (the answers are pluggy's own whenever the checks say yes)
and through the pipeline against the emulator: an observer that is idle is not called and the
core does not build its events, and one that is on sees every call as before.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import modelyard
import pluggy
import pytest
from modelyard._dispatch import call_hook, observers
from modelyard.plugin import active_when
from modelyard.plugins import get_plugins, reset_plugins
from modelyard.testing import KEY, Emulator

spec = pluggy.HookspecMarker("activetest")
impl = pluggy.HookimplMarker("activetest")


class Spec:
    @spec
    def build(self, value: int, log: list[str]) -> Any:
        """Every answer collected."""

    @spec(firstresult=True)
    def first(self, value: int, log: list[str]) -> Any:
        """First answer wins."""


def _even(value: int) -> bool:
    return value % 2 == 0


class Gated:
    @impl
    @active_when(_even)
    def build(self, value: int, log: list[str]) -> Any:
        log.append(f"gated {value}")
        return f"gated {value}" if value % 2 == 0 else None  # kept: None whenever the check says no

    @impl(tryfirst=True)
    @active_when(_even)
    def first(self, value: int, log: list[str]) -> Any:
        log.append(f"gated first {value}")
        return "gated" if value % 2 == 0 else None


class Plain:
    @impl
    def build(self, value: int, log: list[str]) -> Any:
        log.append(f"plain {value}")
        return f"plain {value}"

    @impl
    def first(self, value: int, log: list[str]) -> Any:
        log.append(f"plain first {value}")
        return "plain"


class GatedWrapper:
    @impl(wrapper=True)
    @active_when(lambda value: value > 10)
    def build(self, value: int, log: list[str]) -> Generator[None, Any, Any]:
        log.append(f"wrapper {value}")
        result = yield
        return [*result, "wrapped"] if value > 10 else result


def _manager(*plugins: Any) -> pluggy.PluginManager:
    pm = pluggy.PluginManager("activetest")
    pm.add_hookspecs(Spec)
    for plugin in plugins:
        pm.register(plugin)
    return pm


@pytest.mark.parametrize("value", [1, 2, 11, 12])
def test_an_implementation_is_asked_only_when_its_check_says_yes_and_the_answers_are_pluggys(value: int) -> None:
    pm = _manager(Plain(), Gated(), GatedWrapper())
    plans: dict[str, Any] = {}
    for name in ("build", "first"):
        caller = getattr(pm.hook, name)
        ours: list[str] = []
        theirs: list[str] = []
        assert call_hook(plans, caller, True, {"value": value, "log": ours}) == caller(value=value, log=theirs)
        # pluggy asks everyone; here only the implementations whose check said yes are asked.
        assert ours == [line for line in theirs if not (
            (line.startswith("gated") and value % 2) or (line.startswith("wrapper") and value <= 10)
        )]  # fmt: skip
    log: list[str] = []
    call_hook(plans, pm.hook.build, True, {"value": value, "log": log})
    assert ("gated " + str(value) in log) == (value % 2 == 0)
    assert ("wrapper " + str(value) in log) == (value > 10)


class ObserverSpec:
    @spec
    def start(self, value: int) -> Any:
        """Like on_call_start."""

    @spec
    def success(self, value: int) -> Any:
        """Like on_success."""

    @spec
    def failure(self, value: int) -> Any:
        """Like on_failure."""


ASKED: list[str] = []


def _exporting() -> bool:
    ASKED.append("exporting")
    return SWITCH["on"]


class Idle:
    @impl
    @active_when(_exporting)
    def start(self, value: int) -> Any:
        return None

    @impl
    @active_when(_exporting)
    def success(self, value: int) -> Any:
        return None


class ByValue:
    @impl
    @active_when(_even)
    def failure(self, value: int) -> Any:
        return None


def test_observers_asks_each_argument_free_check_once_and_says_which_hooks_reach_anyone() -> None:
    pm = pluggy.PluginManager("activetest")
    pm.add_hookspecs(ObserverSpec)
    pm.register(Idle())
    pm.register(ByValue())
    callers = (pm.hook.start, pm.hook.success, pm.hook.failure)
    plans: dict[str, Any] = {}
    SWITCH["on"] = False
    ASKED.clear()
    idle = observers(plans, callers, True)
    # One check for two hooks, asked once; the check taking `value` cannot be asked before the
    # event exists, so `failure` counts as reached.
    assert ASKED == ["exporting"] and idle.down == {_exporting}
    assert (idle.start, idle.success, idle.failure) == (False, False, True)
    SWITCH["on"] = True
    on = observers(plans, callers, True)
    assert on.down == frozenset() and (on.start, on.success, on.failure) == (True, True, True)
    # The answers decided at the start hold in the hook calls: the check is not asked again.
    ASKED.clear()
    assert call_hook(plans, pm.hook.success, True, {"value": 1}, idle.down) == []
    assert ASKED == []
    # Monitored calls go to pluggy, which calls everyone.
    SWITCH["on"] = False
    monitored = observers({}, callers, False)
    assert (monitored.start, monitored.success, monitored.failure) == (True, True, True)


def test_active_when_takes_a_callable_whose_arguments_the_hook_passes() -> None:
    with pytest.raises(TypeError, match="takes a callable"):
        active_when("yes")  # type: ignore[arg-type]

    class Wrong:
        @impl
        @active_when(lambda route: True)
        def build(self, value: int, log: list[str]) -> Any:
            return None

    pm = _manager(Wrong())
    with pytest.raises(TypeError, match=r"takes 'route', which hook 'build' does not pass \(it passes value, log\)"):
        call_hook({}, pm.hook.build, True, {"value": 1, "log": []})


SWITCH = {"on": False}


def _switched_on() -> bool:
    return SWITCH["on"]


class Observer:
    """An observer with a switch: idle, it must not be called at all."""

    HOOK_API = (1, 13)

    def __init__(self) -> None:
        self.seen: list[str] = []

    @modelyard.hookimpl
    @active_when(_switched_on)
    def on_call_start(self, call: Any) -> dict[str, str] | None:
        self.seen.append(f"start {call.route.deployment}")
        call.state["mine"] = len(self.seen)
        return {"x-observed": "yes"}

    @modelyard.hookimpl
    @active_when(_switched_on)
    def on_success(self, event: Any) -> None:
        self.seen.append(f"success {event.state.get('mine')}")

    @modelyard.hookimpl
    @active_when(_switched_on)
    def on_failure(self, event: Any) -> None:
        self.seen.append(f"failure {event.state.get('mine')}")


def test_an_idle_observer_is_skipped_with_its_events_and_an_active_one_sees_every_call(
    api_base: str, emulator: Emulator
) -> None:
    observer = Observer()
    SWITCH["on"] = False
    reset_plugins(extra=[observer], block=["otel"])
    try:
        plugins = get_plugins()
        settings = {"api_base": api_base, "api_key": KEY, "api_version": "2024-10-21"}
        messages = [{"role": "user", "content": "hi"}]
        modelyard.completion(model="azure/gpt-4o", messages=messages, **settings)
        with pytest.raises(modelyard.NotFoundError):
            modelyard.completion(model="azure/no-such-deployment", messages=messages, **settings)
        assert observer.seen == []
        assert "x-observed" not in emulator.requests[-1].headers
        seen = plugins.observers()
        assert (seen.start, seen.success, seen.failure) == (False, False, False)  # no event is built
        SWITCH["on"] = True
        modelyard.completion(model="azure/gpt-4o", messages=messages, **settings)
        assert emulator.requests[-1].headers["x-observed"] == "yes"
        with pytest.raises(modelyard.NotFoundError):
            modelyard.completion(model="azure/no-such-deployment", messages=messages, **settings)
        assert observer.seen == ["start gpt-4o", "success 1", "start no-such-deployment", "failure 3"]
    finally:
        SWITCH["on"] = False
        reset_plugins()


class Flipper:
    """An observer without a check that switches the gated one on while a call is starting."""

    HOOK_API = (1, 5)

    @modelyard.hookimpl
    def on_call_start(self, call: Any) -> None:
        SWITCH["on"] = True


def test_an_observer_sees_all_of_a_call_or_none_of_it(api_base: str, emulator: Emulator) -> None:
    observer = Observer()
    SWITCH["on"] = False
    reset_plugins(extra=[observer, Flipper()], block=["otel"])
    try:
        settings = {"api_base": api_base, "api_key": KEY, "api_version": "2024-10-21"}
        messages = [{"role": "user", "content": "hi"}]
        # Switched on after the call started: its check was answered at the start, for the whole
        # call, so it gets neither on_call_start nor an on_success without one.
        modelyard.completion(model="azure/gpt-4o", messages=messages, **settings)
        assert SWITCH["on"] and observer.seen == []
        modelyard.completion(model="azure/gpt-4o", messages=messages, **settings)
        assert observer.seen == ["start gpt-4o", "success 1"]
    finally:
        SWITCH["on"] = False
        reset_plugins()
