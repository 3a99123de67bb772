"""Typed views of response headers that provider plugins contribute (``register_header_views``).

A result of a call (a response, a stream, a binary response, a Responses API result) answers
an attribute it lacks with the view registered under that name, read from its upstream's
headers: ``response.<name>`` is ``view.from_headers(headers)``. The view classes are public
names of :mod:`modelyard` too. The lookup is the plugin set's, collected once and cached here
with the sentence on plugins that are not loaded; reading a view costs one dict lookup more
than the view's own ``from_headers``, and an attribute no view answers (``getattr(r, "x", None)``)
costs the same as before unless plugins are not loaded (then the error names them).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["current", "lookup", "missing", "missing_class", "not_loaded", "read_view", "view_class"]

_state: tuple[object, Mapping[str, Any], str] | None = None
_get_plugins: Callable[[], Any] | None = None


def _current() -> tuple[object, Mapping[str, Any], str]:
    """(the plugin set, its views, its not-loaded sentence), rebuilt only when the plugin set changes."""
    global _state, _get_plugins
    if _get_plugins is None:
        from .plugins import get_plugins

        _get_plugins = get_plugins
    plugins = _get_plugins()
    state = _state
    if state is None or state[0] is not plugins:
        note = plugins.not_loaded()
        sentence = f"No loaded plugin registers it (register_header_views). {note}" if note else ""
        state = _state = (plugins, plugins.header_views, sentence)
    return state


def current() -> tuple[Mapping[str, Any], str]:
    """(the loaded plugins' views by name, the sentence on plugins not loaded or ``""``)."""
    _, views, note = _current()
    return views, note


def lookup(name: str) -> Any:
    """The view registered as ``name``, or None (private names never are)."""
    return None if name.startswith("_") else _current()[1].get(name)


def not_loaded() -> str:
    """The sentence appended to a missing view's error: the installed plugins not loaded, or ``""``."""
    return _current()[2]


def missing(owner: object, name: str, error: AttributeError | None = None) -> AttributeError:
    """The error for ``owner.<name>`` that no view answers: ``error`` as it was, or naming the plugins not loaded."""
    note = "" if name.startswith("_") else not_loaded()
    if not note and error is not None:
        return error
    message = f"{type(owner).__name__!r} object has no attribute {name!r}"
    return AttributeError(f"{message}. {note}" if note else message, name=name, obj=owner)


def read_view(owner: object, headers: Mapping[str, str] | None, name: str) -> Any:
    """``owner.<name>``: the header view registered as ``name``, read from ``headers``.

    Raises:
        AttributeError: no loaded plugin registers ``name`` (the message names the installed
            plugins that are not loaded, when there are some).
    """
    view = lookup(name)
    if view is None:
        raise missing(owner, name)
    return view.from_headers(headers)


def view_class(name: str) -> Any:
    """The registered view class whose ``__name__`` is ``name``, or None."""
    return next((v for v in _current()[1].values() if getattr(v, "__name__", None) == name), None)


def missing_class(module: str, name: str) -> AttributeError:
    """The error for ``module.<name>`` that no view, setting or submodule answers."""
    note = not_loaded()
    message = f"module {module!r} has no attribute {name!r}"
    return AttributeError(f"{message}. {note}" if note else message, name=name)
