"""What a call would otherwise rebuild each time from the same inputs, remembered.

A call's :class:`~modelyard.types.Connection` (checked settings, secrets as ``SecretStr``) depends
only on the connection keywords it ends up with (its own, completed from the module settings)
and on the plugin set's connection schema. Both are the cache's key, so a module setting
changed at run time, or another plugin set, gives another key: nothing is ever stale. A
``Connection`` is frozen, so one object serves every call with the same settings. Keywords
whose values cannot be hashed (``extra_headers``, a dict) are not cached.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .connection import ConnectionSchema
from .types import Connection

_MAX = 256
_connections: dict[tuple[Any, ...], Connection] = {}


def cached_connection(schema: ConnectionSchema, conn_kw: dict[str, Any], build: Callable[[], Connection]) -> Connection:
    """The Connection ``build()`` makes for ``conn_kw`` under ``schema``, built once per distinct pair.

    The key holds each value's type beside it (``True`` and ``1`` hash alike, but only one of
    them is a valid flag), and the schema object itself (one per plugin set).
    """
    try:
        # One flat tuple (the pairs, then the types; its length tells where they split): a
        # third cheaper to build and hash than three nested ones.
        key = (schema, *conn_kw.items(), *map(type, conn_kw.values()))
        found = _connections.get(key)
    except TypeError:  # an unhashable value (extra_headers): built per call
        return build()
    if found is None:
        found = build()
        if len(_connections) >= _MAX:
            _connections.clear()
        _connections[key] = found
    return found


def clear() -> None:
    """Forget every cached connection (tests)."""
    _connections.clear()
