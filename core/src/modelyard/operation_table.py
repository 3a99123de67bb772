"""The operation rows and proxy paths the loaded plugins contribute (``register_operations``).

A plugin registers :class:`~modelyard.operations.Operation` rows (a new operation: its SDK
functions ``modelyard.<sdk>`` / ``a<sdk>``, the Router's methods of the same names, its proxy
paths), :class:`~modelyard.operations.ProxyPath` rows (more proxy paths for an operation, the
model taken from the path or the body) and :class:`~modelyard.operations.OperationRef` notes
(a sibling distribution's row, so that its SDK names fail naming it while it is not loaded).
:class:`OperationTable` holds what one plugin set registered; it is collected once per plugin
set (:attr:`modelyard.plugins.Plugins.operations`), never at import.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import PluginError
from .operations import CORE_OPERATIONS, Operation, OperationRef, ProxyPath

if TYPE_CHECKING:
    from .plugins import Plugins

__all__ = ["OperationTable", "collect_operations", "sdk_function"]

_TEMPLATE = re.compile(r"^(/[A-Za-z0-9._~\-]+|/\{model\})+$")


@dataclass
class OperationTable:
    """What the loaded plugins registered through ``register_operations``.

    Attributes:
        rows: the plugins' operation rows, by name (the core's are not here).
        paths: every :class:`~modelyard.operations.ProxyPath`, in registration order.
        owners: the plugin (entry-point name) that registered each row and path template.
        by_sdk: every SDK name of the rows (``sdk`` and its async twin) and whether it is the twin.
        refs: SDK names another distribution contributes, by the loaded siblings' notes.
    """

    rows: dict[str, Operation] = field(default_factory=dict)
    paths: list[ProxyPath] = field(default_factory=list)
    owners: dict[str, str] = field(default_factory=dict)
    by_sdk: dict[str, tuple[Operation, bool]] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)
    _functions: dict[str, Callable[..., Any]] = field(default_factory=dict, repr=False)

    def function(self, name: str) -> Callable[..., Any] | None:
        """The SDK function ``name`` of a contributed row (built once), or None."""
        fn = self._functions.get(name)
        if fn is None and name in self.by_sdk:
            from .api import operation_functions

            op = self.by_sdk[name][0]
            self._functions[op.sdk], self._functions[op.async_sdk] = operation_functions(op)
            fn = self._functions[name]
        return fn

    def cached(self, key: str, build: Callable[[], Callable[..., Any]]) -> Callable[..., Any]:
        """``build()``, once per key for this plugin set (the Router's methods of the rows)."""
        fn = self._functions.get(key)
        if fn is None:
            fn = self._functions[key] = build()
        return fn

    def missing(self, name: str, plugins: Plugins) -> str | None:
        """Why the SDK name ``name`` is not available, naming its plugin; None when no plugin notes it."""
        distribution = self.refs.get(name)
        if distribution is None:
            return None
        from .plugins import _fix

        return f"{name} is an operation of the plugin {distribution}, {_fix(distribution, plugins._lookup(distribution))}"


def collect_operations(plugins: Plugins) -> OperationTable:
    """Call every plugin's ``register_operations`` and check what they register.

    Raises:
        PluginError: a registered object of another type; a row whose name or SDK names the
            core or another plugin has; a path template that is not an absolute path (with at
            most one ``{model}`` segment), registered twice, or naming an unknown operation or
            one without paths of its own.
    """
    from . import _CORE_ALL  # the core's public names: a row's SDK names may not shadow them

    table = OperationTable()
    taken = set(_CORE_ALL)
    impls = sorted(plugins.pm.hook.register_operations.get_hookimpls(), key=lambda i: i.plugin_name)
    for impl in impls:
        plugin = impl.plugin_name

        def register(row: Operation | ProxyPath | OperationRef, /, _plugin: str = plugin) -> None:
            if isinstance(row, Operation):
                _add_row(table, taken, row, _plugin)
            elif isinstance(row, ProxyPath):
                if not _TEMPLATE.match(row.template) or row.template.count("{model}") > 1:
                    raise PluginError(
                        f"plugin {_plugin!r} registered the proxy path {row.template!r}: a path is absolute, of "
                        "plain segments and at most one {model}", plugin=_plugin,
                    )  # fmt: skip
                if row.template in table.owners:
                    raise PluginError(
                        f"plugin {_plugin!r} registered the proxy path {row.template!r}, which plugin "
                        f"{table.owners[row.template]!r} registered already", plugin=_plugin,
                    )  # fmt: skip
                table.owners[row.template] = _plugin
                table.paths.append(row)
            elif isinstance(row, OperationRef):
                for name in (row.sdk, "a" + row.sdk):
                    table.refs.setdefault(name, row.distribution)
            else:
                raise PluginError(
                    f"plugin {_plugin!r} registered {type(row).__name__}, not a modelyard.operations.Operation, "
                    "ProxyPath or OperationRef", plugin=_plugin,
                )  # fmt: skip

        impl.function(register=register)
    for path in table.paths:
        op = CORE_OPERATIONS.get(path.operation) or table.rows.get(path.operation)
        owner = table.owners[path.template]
        if op is None:
            raise PluginError(
                f"plugin {owner!r} registered the proxy path {path.template!r} for the operation "
                f"{path.operation!r}, which neither the core nor a loaded plugin has", plugin=owner,
            )  # fmt: skip
        if not op.paths:  # the proxy's errors and metrics name an operation by its own path
            raise PluginError(
                f"plugin {owner!r} registered the proxy path {path.template!r} for the operation "
                f"{path.operation!r}, which has no paths of its own (Operation.paths)", plugin=owner,
            )  # fmt: skip
    return table


def _add_row(table: OperationTable, taken: set[str], op: Operation, plugin: str) -> None:
    if op.name in CORE_OPERATIONS or op.name in table.rows:
        who = "the core" if op.name in CORE_OPERATIONS else f"plugin {table.owners[op.name]!r}"
        raise PluginError(f"plugin {plugin!r} registered the operation {op.name!r}, which {who} has already", plugin=plugin)
    for name in (op.sdk, op.async_sdk):
        if name in taken or not name.isidentifier() or name.startswith("_"):
            raise PluginError(
                f"plugin {plugin!r} registered the operation {op.name!r} with the SDK name {name!r}, which is "
                "taken (a core name or another row's) or not a public identifier", plugin=plugin,
            )  # fmt: skip
    taken.update((op.sdk, op.async_sdk))
    table.rows[op.name] = op
    table.owners[op.name] = plugin
    table.by_sdk[op.sdk] = (op, False)
    table.by_sdk[op.async_sdk] = (op, True)


def sdk_function(name: str, owner: str) -> Callable[..., Any]:
    """The SDK function ``name`` a loaded plugin's row gives (``modelyard.<name>``).

    Raises:
        AttributeError: no loaded plugin's row has it; the message names the plugin that
            contributes it when a loaded plugin says (:class:`~modelyard.operations.OperationRef`),
            and why it is not loaded.
    """
    from .plugins import get_plugins

    plugins = get_plugins()
    table = plugins.operations
    fn = table.function(name)
    if fn is None:
        raise AttributeError(table.missing(name, plugins) or f"module {owner!r} has no attribute {name!r}", name=name)
    return fn
