"""The proxy paths plugins contribute (:class:`~modelyard.operations.ProxyPath`), compiled once.

A path without ``{model}`` is an exact route (a dict lookup, as the core's own paths); the
paths with a ``{model}`` segment are alternatives of one compiled regular expression, tried
only when no exact route matched, whose last matching group says which path (and so which
operation's handler) it was; the model group is the ``{model}`` segment. The same table gives the metrics their
bounded endpoint labels: a contributed path is labelled with its operation's own path.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from ..operations import OPERATIONS, Operation, ProxyPath

__all__ = ["PathRoutes"]


class PathRoutes:
    """The contributed paths of one proxy app.

    Args:
        paths: the loaded plugins' :class:`~modelyard.operations.ProxyPath` rows.
        handler: the app's handler for an operation (chat, completions, responses, any other row).
    """

    def __init__(self, paths: Sequence[ProxyPath], handler: Callable[[Operation], Any]) -> None:
        self.exact: dict[str, Any] = {}
        """``"POST <path>"`` -> handler, for the paths without ``{model}``."""
        self.labels: dict[str, str] = {}
        """Every contributed exact path -> its metrics label."""
        self.rows = list(paths)
        self._templated: list[tuple[str, Any, str]] = []  # per template: its model group, handler, label
        tails: dict[str, list[str]] = {}  # what comes before {model} -> the alternatives after it
        for path in paths:
            op = OPERATIONS[path.operation]
            label = op.paths[0] if op.paths else path.template
            if path.model_in_path:
                before, after = path.template.split("{model}")
                group = tails.setdefault(before, [])
                group.append(f"(?P<t{len(self._templated)}>{re.escape(after)})")
                self._templated.append((f"m{list(tails).index(before)}", handler(op), label))
            else:
                self.exact[f"POST {path.template}"] = handler(op)
                self.labels[path.template] = label
        # One expression; templates sharing what precedes {model} share one branch, so the model
        # segment is scanned once per shape, not once per template.
        branches = [f"{re.escape(before)}(?P<m{i}>[^/]+)(?:{'|'.join(after)})" for i, (before, after) in enumerate(tails.items())]
        self._regex = re.compile("^(?:" + "|".join(branches) + ")$") if branches else None

    def match(self, path: str) -> tuple[str, Any] | None:
        """``(model group, handler)`` for a path with the model in it, or None."""
        if self._regex is None:
            return None
        found = self._regex.match(path)
        if found is None or found.lastgroup is None:
            return None
        model_group, handler, _ = self._templated[int(found.lastgroup[1:])]
        return found.group(model_group), handler

    def label(self, path: str) -> str | None:
        """The metrics label of a contributed path (its operation's own path), or None."""
        exact = self.labels.get(path)
        if exact is not None or self._regex is None:
            return exact
        found = self._regex.match(path)
        if found is None or found.lastgroup is None:
            return None
        return self._templated[int(found.lastgroup[1:])][2]
