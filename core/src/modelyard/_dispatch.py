"""The per-call hook calls, without pluggy's general machinery (issue 17).

A call of the pipeline makes four hook calls (``transform_request``, ``resolve_auth``,
``on_call_start``, ``on_success``); through pluggy's ``HookCaller`` each costs about 1 µs plus
0.3-0.5 µs per implementation (defaults applied, arguments checked against the spec, the list of
implementations copied, the call routed through the manager, a try block and a list of
arguments per implementation). :func:`call_hook` makes the same calls in the same order with
the same results: it is pluggy's ``_multicall`` for the cases the pipeline has, with the
arguments each implementation takes worked out once per plugin set.

Every implementation is still called, in pluggy's order, each time: an implementation that
answers None for one request and an answer for the next is asked every time, as before, and
a new-style wrapper (``wrapper=True``) sees and may replace the result or the exception.
What is remembered per hook is only who implements it and which arguments each takes. A plugin
registered later gets a new plan: the plugin set's own manager forgets every plan when a plugin
or a hook specification comes or goes (:class:`Plans` ``watched``); plans kept anywhere else are
checked on every call against the hook's current implementations. Whatever this does not
reproduce exactly goes to pluggy itself: an old-style ``hookwrapper``, an implementation with
keyword-only arguments, a hook specification with defaults, or hook-call monitoring
(``MODELYARD_TRACE_PLUGINS=1``).

An implementation marked with :func:`modelyard.hookspecs.answers_for` (HOOK_API 1.11) declares
the (provider, operation) pairs it answers for: a hook call with a ``route`` skips it for the
other routes (it promised to return None for them). Which implementations a route asks is worked
out once per (provider, operation) and kept with the plan; one declaring nothing is asked for
every route, as before.

An implementation marked with :func:`modelyard.hookspecs.active_when` (HOOK_API 1.13) is asked
only when its check answers true for the call's arguments; the check's argument names are worked
out with the plan. For the observer hooks the argument-free checks are asked once per pipeline
call, at its start (:func:`observers`), and their answers hold for the whole call; it also tells
the core, before it builds an observer's event, whether any implementation would get it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Generator, Sequence
from operator import itemgetter
from typing import Any, NamedTuple, NoReturn

from pluggy import HookCallError

from .hookspecs import ACTIVE_ATTR, ANSWERS_ATTR

__all__ = ["Observers", "Plans", "call_hook", "observers"]

# (function, what picks its arguments from the hook's keyword arguments, whether it is a
# new-style wrapper), in calling order.
_Args = Callable[[dict[str, Any]], tuple[Any, ...]]
_Step = tuple[Callable[..., Any], _Args, bool]


_Answers = frozenset[tuple[str, str | None]]
# An implementation's active_when check, the argument names it takes and what picks them, by
# implementation.
_Gates = dict[Callable[..., Any], tuple[Callable[..., Any], tuple[str, ...], _Args]]
_MAX_ROUTES = 256


class Plans(dict[str, Any]):
    """Where the plans of one plugin set are kept, per hook name.

    ``watched``: whoever changes the set's plugins clears this dict at each change (the plugin
    set's own manager, :class:`modelyard.plugins.Plugins`), so a plan found here is current
    without asking the hook for its implementations (~1.5 K instructions per hook call, several
    hook calls per pipeline call). Otherwise, as for a plain dict, each call checks.
    """

    __slots__ = ("watched",)

    def __init__(self, watched: bool = False) -> None:
        super().__init__()
        self.watched = watched


class _Plan:
    """How to call a hook's ``impls``: ``steps``, or None when pluggy must (see the module).

    ``answers``: per step, the routes its implementation declared (None: every route), or None
    when no step declared any; ``routed``: the steps each (provider, operation) asks; ``gates``:
    the ``active_when`` checks of the steps that have one, or None when none has.
    """

    __slots__ = ("answers", "caller", "firstresult", "gates", "impls", "routed", "steps")

    def __init__(
        self, caller: Any, impls: list[Any], steps: tuple[_Step, ...] | None, firstresult: bool = False,
        answers: tuple[_Answers | None, ...] | None = None, gates: _Gates | None = None,
    ) -> None:  # fmt: skip
        self.caller, self.impls, self.steps, self.firstresult, self.answers = caller, impls, steps, firstresult, answers
        self.gates = gates
        self.routed: dict[tuple[str, str], tuple[_Step, ...]] = {}

    def for_route(self, provider: str, operation: str) -> tuple[_Step, ...]:
        """The steps a route of (``provider``, ``operation``) asks: those that did not declare
        routes, and those that declared this one."""
        key = (provider, operation)
        steps = self.routed.get(key)
        if steps is None:
            assert self.steps is not None and self.answers is not None
            anywhere = (provider, None)
            steps = tuple(
                step for step, answers in zip(self.steps, self.answers, strict=True)
                if answers is None or key in answers or anywhere in answers
            )  # fmt: skip
            if len(self.routed) < _MAX_ROUTES:
                self.routed[key] = steps
        return steps

    @property
    def direct(self) -> bool:
        """Whether these calls are made here (else by pluggy)."""
        return self.steps is not None


def _plan(caller: Any, impls: list[Any], direct: bool) -> _Plan:
    spec = caller.spec
    if not direct or spec is None or spec.kwargnames or caller.is_historic():
        return _Plan(caller, impls, None)
    steps: list[_Step] = []
    answers: list[_Answers | None] = []
    gates: _Gates = {}
    for impl in reversed(impls):
        if impl.hookwrapper or impl.kwargnames:
            return _Plan(caller, impls, None)
        steps.append((impl.function, _picker(tuple(impl.argnames)), bool(impl.wrapper)))
        declared = getattr(impl.function, ANSWERS_ATTR, None)
        answers.append(declared if isinstance(declared, frozenset) and declared else None)
        check = getattr(impl.function, ACTIVE_ATTR, None)
        if check is not None:
            names = _check_args(check, impl, caller.name, spec.argnames)
            gates[impl.function] = (check, names, _picker(names))
    routed = "route" in spec.argnames and any(a is not None for a in answers)
    return _Plan(caller, impls, tuple(steps), bool(spec.opts.get("firstresult")), tuple(answers) if routed else None,
                 gates or None)  # fmt: skip


def _picker(names: tuple[str, ...]) -> _Args:
    """What takes the arguments ``names`` from a hook call's keyword arguments, as a tuple; a
    missing one raises KeyError. ``operator.itemgetter`` in C for two or more: a quarter of
    ``tuple(map(kwargs.__getitem__, names))``'s cost (~1.1 K instructions against ~3.9 K)."""
    if len(names) > 1:
        return itemgetter(*names)
    if names:
        (name,) = names
        return lambda kwargs: (kwargs[name],)
    return lambda kwargs: ()


def _check_args(check: Callable[..., Any], impl: Any, hook: str, hook_args: Sequence[str]) -> tuple[str, ...]:
    """The hook arguments an ``active_when`` check takes, by name.

    Raises:
        TypeError: the check takes something the hook does not pass (naming both).
    """
    names = []
    for parameter in inspect.signature(check).parameters.values():
        if parameter.name not in hook_args or parameter.kind not in (
            parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD
        ):  # fmt: skip
            raise TypeError(
                f"the active_when check {getattr(check, '__qualname__', check)!r} of plugin "
                f"{impl.plugin_name!r} takes {parameter.name!r}, which hook {hook!r} does not pass "
                f"(it passes {', '.join(hook_args) or 'nothing'})"
            )
        names.append(parameter.name)
    return tuple(names)


def call_hook(
    plans: dict[str, Any], caller: Any, direct: bool, kwargs: dict[str, Any], down: frozenset[Any] | None = None
) -> Any:  # fmt: skip
    """``caller(**kwargs)``, as pluggy would answer it (see the module).

    Args:
        plans: where the plans of one plugin set are kept, per hook name.
        caller: the pluggy ``HookCaller`` (``plugins.hook.transform_request``).
        direct: False when the manager's hook calls are monitored: pluggy calls then.
        kwargs: the hook's arguments, by name.
        down: the argument-free ``active_when`` checks already answered for this pipeline call
            (:func:`observers`): those in it count as false, the others as true, and none is
            asked again. None: each is asked now.
    """
    plan: _Plan | None = plans.get(caller.name)  # _current and _fresh, inline: several times a pipeline call
    if plan is None or plan.caller is not caller or (
        not getattr(plans, "watched", False) and plan.impls != caller.get_hookimpls()
    ):
        plan = plans[caller.name] = _plan(caller, caller.get_hookimpls(), direct)
    steps: Sequence[_Step] | None = plan.steps
    if steps is None:
        return caller(**kwargs)
    if plan.answers is not None:
        route = kwargs.get("route")
        if route is not None:
            steps = plan.routed.get((route.provider, route.operation))
            if steps is None:
                steps = plan.for_route(route.provider, route.operation)
    if plan.gates is not None:
        steps = _active(steps, plan.gates, kwargs, down)
    if len(steps) == 1 and not steps[0][2]:
        # One plain implementation (the usual case once a route has picked its own): what
        # _multicall does for it, without its lists and loop.
        function, pick, _ = steps[0]
        try:
            args = pick(kwargs)
        except KeyError as e:
            raise HookCallError(f"hook call must provide argument {e.args[0]!r}") from e
        result = function(*args)
        if plan.firstresult:
            return result
        return [] if result is None else [result]
    return _multicall(steps, plan.firstresult, kwargs)


def _reaches(plans: dict[str, Any], caller: Any, direct: bool, down: frozenset[Any]) -> bool:
    """Whether a call of ``caller``, whose event is not built yet, would reach any implementation:
    an argument-free ``active_when`` check answers as in ``down``; one taking arguments counts as
    active, and so does every implementation when pluggy makes the calls."""
    plan = _current(plans, caller, direct)
    gates = plan.gates
    if plan.steps is None or gates is None:
        return bool(plan.impls)
    for step in plan.steps:
        gate = gates.get(step[0])
        if gate is None or gate[1] or gate[0] not in down:
            return True
    return False


_NONE_DOWN: frozenset[Any] = frozenset()
_OBSERVERS = "\0observers"  # kept in ``plans`` under a key no hook name can be


class Observers(NamedTuple):
    """Which observers see one pipeline call, decided at its start (:func:`observers`)."""

    down: frozenset[Any]
    """The argument-free ``active_when`` checks that answered false (pass to :func:`call_hook`)."""
    start: bool
    """Whether ``on_call_start`` reaches any implementation (else no event is built for it)."""
    success: bool
    failure: bool


def observers(plans: dict[str, Any], callers: tuple[Any, Any, Any], direct: bool) -> Observers:
    """For the observer hooks ``callers`` (``on_call_start``, ``on_success``, ``on_failure``): the
    argument-free ``active_when`` checks of their implementations, each asked once, and whether
    each hook then reaches anyone. A call decides this at its start, so that an observer sees
    all of it (``on_call_start`` and its ``on_success`` / ``on_failure``) or none of it."""
    known: _ObserverPlan | None = plans.get(_OBSERVERS)
    fresh = known is not None and known.callers == callers
    if fresh and not getattr(plans, "watched", False):
        for impls, caller in zip(known.impls, callers, strict=True):  # type: ignore[union-attr]
            if impls != caller.get_hookimpls():
                fresh = False
                break
    if known is None or not fresh:
        known = plans[_OBSERVERS] = _ObserverPlan(callers, [_current(plans, caller, direct) for caller in callers])
    checks = known.checks
    if not checks:
        down = _NONE_DOWN
    elif len(checks) == 1:  # the usual case: one plugin's check (modelyard-otel's)
        down = _NONE_DOWN if checks[0]() else known.all_down
    else:
        down = frozenset([check for check in checks if not check()])
    answer = known.answers.get(down)
    if answer is None:  # at most one per subset of the checks
        start, success, failure = (_reaches(plans, caller, direct, down) for caller in callers)
        answer = known.answers[down] = Observers(down, start, success, failure)
    return answer


class _ObserverPlan:
    """What :func:`observers` keeps per set of observer implementations."""

    __slots__ = ("all_down", "answers", "callers", "checks", "impls")

    def __init__(self, callers: tuple[Any, Any, Any], plans: list[_Plan]) -> None:
        self.callers = callers
        self.impls = [plan.impls for plan in plans]
        found = {gate[0]: None for plan in plans if plan.gates for gate in plan.gates.values() if not gate[1]}
        self.checks = tuple(found)
        self.all_down = frozenset(found)
        self.answers: dict[frozenset[Any], Observers] = {}


def _current(plans: dict[str, Any], caller: Any, direct: bool) -> _Plan:
    plan: _Plan | None = plans.get(caller.name)
    if plan is None or not _fresh(plan, plans, caller):
        plan = plans[caller.name] = _plan(caller, caller.get_hookimpls(), direct)
    return plan


def _fresh(plan: _Plan, plans: dict[str, Any], caller: Any) -> bool:
    """Whether ``plan`` is still the plan of ``caller``: made for this caller (not for another of
    the same name, a subset caller), and its implementations are the hook's (known without asking
    when ``plans`` is watched)."""
    if plan.caller is not caller:
        return False
    return getattr(plans, "watched", False) or plan.impls == caller.get_hookimpls()


def _active(steps: Sequence[_Step], gates: _Gates, kwargs: dict[str, Any], down: frozenset[Any] | None) -> list[_Step]:
    """The ``steps`` whose implementation has no ``active_when`` check or one answering true."""
    active = []
    for step in steps:
        gate = gates.get(step[0])
        if gate is not None:
            check, names, pick = gate
            if not names and down is not None:
                if check in down:
                    continue
            else:
                try:
                    args = pick(kwargs)
                except KeyError as e:
                    raise HookCallError(f"hook call must provide argument {e.args[0]!r}") from e
                if not check(*args):
                    continue
        active.append(step)
    return active


def _multicall(steps: Sequence[_Step], firstresult: bool, kwargs: dict[str, Any]) -> Any:
    """pluggy's ``_multicall`` (pluggy 1.5-1.7), for new-style wrappers and plain implementations."""
    results: list[Any] = []
    teardowns: list[Generator[None, Any, Any]] | None = None
    exception: BaseException | None = None
    try:
        for function, pick, wrapper in steps:
            try:
                args = pick(kwargs)
            except KeyError as e:
                raise HookCallError(f"hook call must provide argument {e.args[0]!r}") from e
            if wrapper:
                gen = function(*args)
                try:
                    next(gen)
                except StopIteration:
                    _wrapfail(gen, "did not yield")
                if teardowns is None:
                    teardowns = []
                teardowns.append(gen)
                continue
            res = function(*args)
            if res is not None:
                results.append(res)
                if firstresult:
                    break
    except BaseException as exc:
        if teardowns is None:
            raise
        exception = exc
    result: Any = (results[0] if results else None) if firstresult else results
    if teardowns is None:
        return result
    for teardown in reversed(teardowns):
        try:
            if exception is not None:
                try:
                    teardown.throw(exception)
                except RuntimeError as re:
                    if isinstance(exception, StopIteration) and re.__cause__ is exception:
                        teardown.close()
                        continue
                    raise
            else:
                teardown.send(result)
            teardown.close()
        except StopIteration as si:
            result = si.value
            exception = None
            continue
        except BaseException as e:
            exception = e
            continue
        _wrapfail(teardown, "has second yield")
    if exception is not None:
        raise exception
    return result


def _wrapfail(gen: Generator[None, Any, Any], msg: str) -> NoReturn:
    co = gen.gi_code  # type: ignore[attr-defined]
    raise RuntimeError(f"wrap_controller at {co.co_name!r} {co.co_filename}:{co.co_firstlineno} {msg}")
