"""Answers kept as the upstream sent them: when the normalize hooks may be skipped (HOOK_API 1.10).

A provider whose upstream already answers in OpenAI's shape (Azure OpenAI chat, OpenAI) has
nothing to normalize: its ``normalize_response`` / ``normalize_chunk`` only validate the JSON as
the operation's model. The plugins say so per route with ``keeps_answers``; this module collects
their answers once per (provider, family, operation, kind) and caches the verdict on the
:class:`~modelyard.plugins.Plugins` set. The pipeline (:mod:`modelyard.api`) then validates the
JSON itself instead of calling the hook, and marks the result so that the proxy sends the
upstream's bytes instead of re-serialising the model. Plugins whose hooks change some answers
(the vision plugin: extension-shaped ones) give a check; an answer a check claims takes the
hook, as before.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .hookspecs import MARKERS_ATTR

if TYPE_CHECKING:
    from .plugins import Plugins
    from .types import Route

Check = Callable[[dict[str, Any]], bool]
log = logging.getLogger("modelyard.plugins")
_MARKERS: dict[tuple[Check, ...], tuple[bytes, ...] | None] = {}

_HOOKS = {"response": "normalize_response", "chunk": "normalize_chunk"}


def kept_checks(plugins: Plugins, route: Route, kind: str) -> tuple[Check, ...] | None:
    """The checks an answer of ``route`` must pass to be kept as sent, or None: always normalize.

    ``()`` means every answer of the route is kept as sent (unless it is not a JSON object).
    """
    key = (route.provider, route.family, route.operation, kind)
    try:
        return plugins.kept[key]  # type: ignore[no-any-return]
    except KeyError:
        pass
    verdict = _verdict(plugins, route, kind)
    plugins.kept[key] = verdict
    return verdict


def _verdict(plugins: Plugins, route: Route, kind: str) -> tuple[Check, ...] | None:
    hook = getattr(plugins.pm.hook, _HOOKS[kind])
    declared = {impl.plugin_name: impl for impl in plugins.pm.hook.keeps_answers.get_hookimpls()}
    checks: list[Check] = []
    answered = False
    for impl in hook.get_hookimpls():
        keeps = declared.get(impl.plugin_name)
        if keeps is None:  # written before HOOK_API 1.10, or changes answers: always called
            return None
        try:
            answer = keeps.function(route=route, kind=kind)
        except Exception:  # a broken declaration costs the fast path, never the call
            log.exception(
                "keeps_answers of plugin %s raised; its normalize hooks stay on", impl.plugin_name
            )
            return None
        if answer is None:
            continue
        if answer is True:
            answered = answered or not (impl.wrapper or impl.hookwrapper)
        elif callable(answer):
            checks.append(answer)
        else:  # False, or an answer of the wrong type
            return None
    return tuple(checks) if answered else None


def changed(checks: tuple[Check, ...], data: Any) -> bool:
    """Whether a parsed answer needs the normalize hooks: not an object, or claimed by a check."""
    if type(data) is not dict:
        return True
    for check in checks:  # noqa: SIM110  (a loop: no generator per chunk)
        if check(data):
            return True
    return False


def unclaimed(checks: tuple[Check, ...], content: bytes) -> bool:
    """Whether no check can claim the answer ``content``, known from its bytes alone: every check
    declared its markers (:func:`modelyard.hookspecs.claims_only_with`), none is in ``content``,
    and no ``\\u`` escape could hide one. False means: parse it and ask the checks."""
    try:
        markers = _MARKERS[checks]
    except KeyError:
        markers = _markers(checks)
    # ``\\`` first: one memchr, a third of the two-byte search most answers can then skip. ``find``,
    # not ``in``: ``bytes.__contains__`` first tries its operand as an int, and makes and drops a
    # TypeError for every bytes needle (~1 K instructions each, three per answer).
    find = content.find
    if markers is None or (find(b"\\") != -1 and find(b"\\u") != -1):
        return False
    for marker in markers:  # noqa: SIM110  (a loop: no generator per answer)
        if find(marker) != -1:
            return False
    return True


def _markers(checks: tuple[Check, ...]) -> tuple[bytes, ...] | None:
    found: list[bytes] = []
    for check in checks:
        declared = getattr(check, MARKERS_ATTR, None)
        if not isinstance(declared, tuple) or not declared or not all(type(m) is bytes and m for m in declared):
            found_all = None
            break
        found.extend(declared)
    else:
        found_all = tuple(found)
    if len(_MARKERS) >= 64:  # one entry per plugin set and route kind: a handful
        _MARKERS.clear()
    _MARKERS[checks] = found_all
    return found_all
