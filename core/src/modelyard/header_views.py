"""Typed views of response headers that provider plugins contribute (``register_header_views``).

A result of a call (a response, a stream, a binary response, a Responses API result) answers
an attribute it lacks with the view registered under that name, read from its upstream's
headers: ``response.<name>`` is ``view.from_headers(headers)``. The view classes are public
names of :mod:`modelyard` too. The lookup is the plugin set's, collected once; a result pays
one dict lookup per such attribute read, and nothing when it is not read.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["missing_class", "read_view", "view_class"]


def _views() -> Mapping[str, Any]:
    from .plugins import get_plugins

    return get_plugins().header_views


def _not_loaded() -> str:
    from .plugins import get_plugins

    note = get_plugins().not_loaded()
    return f" No loaded plugin registers it (register_header_views). {note}" if note else ""


def read_view(owner: object, headers: Mapping[str, str] | None, name: str) -> Any:
    """``owner.<name>``: the header view registered as ``name``, read from ``headers``.

    Raises:
        AttributeError: no loaded plugin registers ``name`` (the message names the installed
            plugins that are not loaded, when there are some).
    """
    view = None if name.startswith("_") else _views().get(name)
    if view is None:
        message = f"{type(owner).__name__!r} object has no attribute {name!r}"
        note = "" if name.startswith("_") else _not_loaded()
        raise AttributeError(f"{message}.{note}" if note else message, name=name, obj=owner)
    return view.from_headers(headers)


def view_class(name: str) -> Any:
    """The registered view class whose ``__name__`` is ``name``, or None."""
    return next((v for v in _views().values() if getattr(v, "__name__", None) == name), None)


def missing_class(module: str, name: str) -> AttributeError:
    """The error for ``module.<name>`` that no view, setting or submodule answers."""
    note = _not_loaded()
    message = f"module {module!r} has no attribute {name!r}"
    return AttributeError(f"{message}.{note}" if note else message, name=name)
