"""Plugin discovery and loading.

Plugins are entry points in the group ``modelyard``, one per hooks module. They are found
through ``importlib.metadata`` and loaded lazily, on the first call that needs them, by
:func:`get_plugins`. Which ones load:

* ``MODELYARD_LOAD_PLUGINS``: unset loads every installed plugin; ``""`` loads none;
  ``"modelyard-azure-chat,modelyard-azure-auth"`` loads only those.
* ``MODELYARD_BLOCK_PLUGINS``: never loads the ones it names; wins over the load list.
* The same two lists may come from settings (``modelyard_settings.load_plugins`` /
  ``block_plugins`` in config.yaml); the environment variable overrides the setting.

A name is a distribution name (``modelyard-azure-chat``) or an entry-point name
(``azure_o_series``), compared after normalising case and ``-``/``_``/``.``. Filtering happens
before ``EntryPoint.load()``, so a blocked plugin is never imported. A plugin that fails to
import or declares an incompatible ``HOOK_API`` is skipped with a warning, unless it was named
explicitly in the load list, in which case :class:`~modelyard.errors.PluginError` is raised.

A subset is a normal install: a block list naming a plugin that is not installed only warns
(one config serves every subset), suggesting the closest installed name when it looks misspelt;
a load list naming an absent plugin is an error with the same suggestion. A load list that names
one entry point of a distribution but not its siblings warns which families that leaves out.
When no loaded plugin serves a call, :meth:`Plugins.unserved` names the distribution the
provider's plugins declare for it (``register_providers``) and why it is not loaded.
"""

from __future__ import annotations

import difflib
import logging
import os
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from types import ModuleType
from typing import Any, Literal

import pluggy

from . import hookspecs
from ._dispatch import Observers, Plans, call_hook, observers
from .connection import ConnectionSchema, ConnectionSetting
from .errors import ConfigError, PluginError, PluginNotLoadedError
from .families import Family, FamilyRegistry, Provider
from .operation_table import OperationTable
from .types import Route

__all__ = [
    "ENTRY_POINT_GROUP",
    "PluginInfo",
    "Plugins",
    "get_plugins",
    "load_plugins",
    "reset_plugins",
]

ENTRY_POINT_GROUP = "modelyard"
log = logging.getLogger("modelyard.plugins")

Status = Literal["loaded", "blocked", "not enabled", "skipped"]


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _split(value: str | Sequence[str] | None) -> list[str] | None:
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else list(value)
    return [i.strip() for i in items if i.strip()]


@dataclass
class PluginInfo:
    """What ``modelyard plugins`` shows about one entry point."""

    name: str
    distribution: str
    version: str
    status: Status
    reason: str = ""
    hook_api: tuple[int, int] | None = None
    hooks: list[str] = field(default_factory=list)
    families: list[str] = field(default_factory=list)


class _Manager(pluggy.PluginManager):
    """pluggy's manager, telling the plugin set built on it (:class:`Plugins`) whenever a plugin
    or a hook specification comes or goes, so that the set forgets what it worked out from them.

    Calls then need not check every hook's implementations against the plan they made
    (``Plans.watched``). A set built on another manager checks them on every call instead.
    """

    def __init__(self, project_name: str) -> None:
        super().__init__(project_name)
        self.on_change: list[Callable[[], None]] = []

    def register(self, plugin: Any, name: str | None = None) -> str | None:
        try:
            return super().register(plugin, name)
        finally:
            self._changed()

    def unregister(self, plugin: Any | None = None, name: str | None = None) -> Any | None:
        try:
            return super().unregister(plugin, name)
        finally:
            self._changed()

    def add_hookspecs(self, module_or_class: Any) -> None:
        try:
            super().add_hookspecs(module_or_class)
        finally:
            self._changed()

    def _changed(self) -> None:
        for forget in self.on_change:
            forget()


class Plugins:
    """A loaded plugin set: the pluggy manager, what was found, and the model families."""

    def __init__(self, pm: pluggy.PluginManager, infos: list[PluginInfo]) -> None:
        self.pm = pm
        self.infos = infos
        self._families: FamilyRegistry | None = None
        self._providers: dict[str, Provider] | None = None
        self._settings: ConnectionSchema | None = None
        self._operations: OperationTable | None = None
        self._views: dict[str, hookspecs.HeaderView] | None = None
        self._lock = threading.Lock()
        self.kept: dict[tuple[str, str, str, str], Any] = {}
        """Per (provider, family, operation, kind): which answers pass as sent (:mod:`modelyard._kept`)."""
        self.plans = Plans(watched=isinstance(pm, _Manager))
        """Per hook name: how the pipeline calls its implementations (:mod:`modelyard._dispatch`)."""
        if isinstance(pm, _Manager):
            pm.on_change.append(self._forget)
        self.monitored = False
        """Hook calls are monitored (``MODELYARD_TRACE_PLUGINS=1``): pluggy makes every call."""

    def call(self, caller: Any, down: frozenset[Any] | None = None, /, **kwargs: Any) -> Any:
        """``caller(**kwargs)`` for a hook of this set, as pluggy answers it, with less overhead
        (:func:`modelyard._dispatch.call_hook`); ``down``: :meth:`observers`' answer at the
        pipeline call's start, for an observer hook."""
        return call_hook(self.plans, caller, not self.monitored, kwargs, down)

    def _forget(self) -> None:
        """A plugin or a hook specification came or went: what was worked out from them goes."""
        self.plans.clear()
        self.kept.clear()

    def observers(self) -> Observers:
        """Which observers (``on_call_start``, ``on_success``, ``on_failure``) see a pipeline call
        starting now: their argument-free ``active_when`` checks are asked once, for the whole
        call (:func:`modelyard._dispatch.observers`)."""
        hook = self.pm.hook
        return observers(self.plans, (hook.on_call_start, hook.on_success, hook.on_failure), not self.monitored)

    @property
    def hook(self) -> Any:
        """The pluggy hook relay (``plugins.hook.transform_request(...)``)."""
        return self.pm.hook

    @property
    def families(self) -> FamilyRegistry:
        """Every family the loaded plugins register, collected on first use."""
        if self._families is None:
            with self._lock:
                if self._families is None:
                    self._families = self._collect_families()
        return self._families

    @property
    def providers(self) -> dict[str, Provider]:
        """What the loaded plugins declare about each provider (``register_providers``), merged."""
        if self._providers is None:
            with self._lock:
                if self._providers is None:
                    self._providers = self._collect_providers()
        return self._providers

    @property
    def connection_settings(self) -> ConnectionSchema:
        """The connection settings the loaded plugins declare (``register_connection_settings``), merged."""
        if self._settings is None:
            with self._lock:
                if self._settings is None:
                    self._settings = self._collect_settings()
        return self._settings

    @property
    def operations(self) -> OperationTable:
        """The operation rows and proxy paths the loaded plugins contribute (``register_operations``)."""
        if self._operations is None:
            with self._lock:
                if self._operations is None:
                    from .operation_table import collect_operations

                    self._operations = collect_operations(self)
        return self._operations

    @property
    def header_views(self) -> dict[str, hookspecs.HeaderView]:
        """The typed header views the loaded plugins register (``register_header_views``), by attribute name."""
        views = self._views
        if views is None:
            with self._lock:
                if self._views is None:
                    self._views = self._collect_views()
                views = self._views
        return views

    def _collect_views(self) -> dict[str, hookspecs.HeaderView]:
        views: dict[str, hookspecs.HeaderView] = {}
        owners: dict[str, str] = {}
        impls = sorted(self.pm.hook.register_header_views.get_hookimpls(), key=lambda i: i.plugin_name)
        for impl in impls:

            def register(name: str, view: hookspecs.HeaderView, /, _name: str = impl.plugin_name) -> None:
                if not (isinstance(name, str) and name.isidentifier() and not name.startswith("_")):
                    raise PluginError(f"plugin {_name!r} registered a header view named {name!r}: not a public attribute name", plugin=_name)
                if not (callable(getattr(view, "from_headers", None)) and isinstance(getattr(view, "__name__", None), str)):
                    raise PluginError(f"plugin {_name!r} registered {view!r} as header view {name!r}: not a class with from_headers", plugin=_name)
                before = views.get(name)
                if before is not None and before is not view:
                    raise PluginError(
                        f"plugins {owners[name]!r} and {_name!r} both register the header view {name!r}, with different classes",
                        plugin=_name,
                    )  # fmt: skip
                views[name], owners[name] = view, owners.get(name, _name)

            impl.function(register=register)
        return views

    def _collect_settings(self) -> ConnectionSchema:
        declared: list[tuple[str, ConnectionSetting]] = []
        impls = sorted(self.pm.hook.register_connection_settings.get_hookimpls(), key=lambda i: i.plugin_name)
        for impl in impls:

            def register(setting: ConnectionSetting, /, _name: str = impl.plugin_name) -> None:
                if not isinstance(setting, ConnectionSetting):
                    raise PluginError(
                        f"plugin {_name!r} registered {type(setting).__name__}, not a modelyard.connection.ConnectionSetting",
                        plugin=_name,
                    )
                declared.append((_name, setting))

            impl.function(register=register)
        try:
            return ConnectionSchema(declared, not_loaded=self.not_loaded())
        except ValueError as exc:
            raise PluginError(str(exc)) from None

    def _lookup(self, name: str) -> PluginInfo | None:
        """The entry for ``name`` (a loaded one first), or None when nothing installed matches."""
        wanted = _norm(name)
        # A module registered directly (``extra``) is known by its name: its top package counts.
        found = [
            i for i in self.infos
            if wanted in (_norm(i.name), _norm(i.distribution), _norm(i.name.partition(".")[0]))
        ]  # fmt: skip
        return next((i for i in found if i.status == "loaded"), found[0] if found else None)

    def missing(self, name: str) -> str | None:
        """None when the plugin ``name`` (distribution or entry-point name) is loaded, else why not.

        The answer reads like ``"blocked: named in the block list"`` or ``"not installed"``,
        for errors that tell the caller which plugin to install or unblock.
        """
        info = self._lookup(name)
        if info is None:
            return "not installed"
        if info.status == "loaded":
            return None
        return f"{info.status}: {info.reason}" if info.reason else info.status

    def not_loaded(self) -> str:
        """One sentence on the installed plugins that are not loaded and why, or ``""``."""
        parts = [f"{i.name} of {i.distribution} {_PHRASE[i.status]}{i.reason}" for i in self.infos if i.status != "loaded"]
        return f"Installed but not loaded: {'; '.join(parts)}." if parts else ""

    def unserved(self, hook: str, route: Route) -> PluginNotLoadedError:
        """The error for a call that no loaded plugin answers ``hook`` for.

        It names the distribution the provider's plugins declare for ``hook``
        (:class:`~modelyard.families.Provider`), says why it is not loaded, and how to fix that:
        the install line, or the setting to change. Without such a declaration it lists the
        installed plugins that are not loaded (a skipped one, with its reason, is the likely
        cause).
        """
        provider = self.providers.get(route.provider)
        requirement = provider.distribution_for(hook, route.operation) if provider is not None else None
        head = f"{route.operation} on provider {route.provider!r}"
        common: dict[str, Any] = {"provider": route.provider, "model": route.model}
        if requirement is None:
            note = self.not_loaded()
            return PluginNotLoadedError(
                f"{head} needs a plugin that answers {hook}; none is loaded, and no loaded plugin "
                f"declares which distribution does.{' ' + note if note else ''} See `modelyard plugins`.",
                **common,
            )
        name = re.split(r"[\[;<>=!~ ]", requirement, maxsplit=1)[0]
        info = self._lookup(name)
        why = _fix(requirement, info)
        return PluginNotLoadedError(f"{head} needs the plugin {name} (it answers {hook}), {why}", plugin=name, **common)

    def _collect_providers(self) -> dict[str, Provider]:
        merged: dict[str, Provider] = {}
        impls = sorted(self.pm.hook.register_providers.get_hookimpls(), key=lambda i: i.plugin_name)
        for impl in impls:
            found: list[Provider] = []

            def register(provider: Provider, /, _found: list[Provider] = found, _name: str = impl.plugin_name) -> None:
                if not isinstance(provider, Provider):
                    raise PluginError(
                        f"plugin {_name!r} registered {type(provider).__name__}, not a modelyard.families.Provider",
                        plugin=_name,
                    )
                _found.append(provider)

            impl.function(register=register)
            for provider in found:
                before = merged.get(provider.name)
                if before is None:
                    merged[provider.name] = provider
                else:  # the first plugin (by name) to declare a hook wins
                    served = {**provider.served_by, **before.served_by}
                    merged[provider.name] = before.model_copy(update={"served_by": served})
        return merged

    def _collect_families(self) -> FamilyRegistry:
        registry = FamilyRegistry(not_loaded=self.not_loaded())
        by_plugin = {info.name: info for info in self.infos}
        for impl in self.pm.hook.register_families.get_hookimpls():
            found: list[Family] = []

            def register(family: Family, /, _found: list[Family] = found, _name: str = impl.plugin_name) -> None:
                if not isinstance(family, Family):
                    raise PluginError(
                        f"plugin {_name!r} registered {type(family).__name__}, not a modelyard.families.Family",
                        plugin=_name,
                    )
                _found.append(family)

            impl.function(register=register)
            for family in found:
                try:
                    registry.add(family)
                except ValueError as exc:
                    raise PluginError(str(exc), plugin=impl.plugin_name) from None
            if impl.plugin_name in by_plugin:
                by_plugin[impl.plugin_name].families = [f.name for f in found]
        return registry


_PHRASE: dict[str, str] = {
    "blocked": "is blocked: ",
    "not enabled": "is not enabled: ",
    "skipped": "was skipped: ",
    "loaded": "is loaded",
}


def _fix(requirement: str, info: PluginInfo | None) -> str:
    """Why the plugin behind ``requirement`` does not answer, and what to do about it."""
    if info is None:
        line = f"'{requirement}'" if any(c in requirement for c in "[]<>=;! ") else requirement
        return f"which is not installed. Install it: pip install {line}"
    if info.status == "blocked":
        return (
            f"which is blocked ({info.reason}). Remove it from MODELYARD_BLOCK_PLUGINS / "
            "modelyard_settings.block_plugins."
        )
    if info.status == "not enabled":
        return (
            f"which is not enabled ({info.reason}). Add it to MODELYARD_LOAD_PLUGINS / "
            "modelyard_settings.load_plugins."
        )
    if info.status == "skipped":
        return f"which was skipped: {info.reason}."
    return "which is loaded but did not answer for this call. See `modelyard plugins`."


def _suggest(name: str, candidates: Iterable[str]) -> str | None:
    """The installed name closest to a misspelt ``name``, or None.

    Plugin names share long runs of words (``modelyard-azure-``) that make any two of them look
    alike to difflib, so only what follows the words they share is compared: ``azure_o_serie``
    suggests ``azure_o_series``, ``modelyard-azure-batch`` does not suggest ``-auth``.
    """
    wanted = _norm(name).split("-")
    best: tuple[float, str] | None = None
    for candidate in candidates:
        words = _norm(candidate).split("-")
        shared = 0
        while shared < min(len(wanted), len(words)) - 1 and wanted[shared] == words[shared]:
            shared += 1
        ratio = difflib.SequenceMatcher(None, "-".join(wanted[shared:]), "-".join(words[shared:])).ratio()
        if ratio >= 0.75 and (best is None or ratio > best[0]):
            best = (ratio, candidate)
    return best[1] if best is not None else None


def _families_of(ep: metadata.EntryPoint) -> list[str]:
    """The names of the families a not-enabled entry point would register (for a warning)."""
    try:
        module = ep.load()
        if not _compatible(getattr(module, "HOOK_API", None)):
            return []
        found: list[str] = []
        getattr(module, "register_families", lambda register: None)(register=lambda f: found.append(f.name))
        return found
    except Exception:  # only a warning's detail: a broken sibling shows up when it is loaded
        return []


def _warn_siblings(
    eps: Sequence[metadata.EntryPoint], load_names: Sequence[str], wanted: set[str], blocked: set[str], label: str
) -> None:
    """Warn when the load list names an entry point of a distribution but leaves out its siblings."""
    by_dist: dict[str, list[metadata.EntryPoint]] = {}
    for ep in eps:
        by_dist.setdefault(_dist_name(ep), []).append(ep)
    named = {_norm(n) for n in load_names}
    for dist, members in by_dist.items():
        if _norm(dist) in named or len(members) < 2:
            continue
        chosen = [ep.name for ep in members if ep.name in wanted]
        left = [ep for ep in members if ep.name not in wanted and ep.name not in blocked]
        if not chosen or not left:
            continue
        # Their package is imported already (a sibling is loaded): import the left-out modules
        # only to name their families; they are not registered.
        families = [f for ep in left for f in _families_of(ep)]
        what = f"the model families they register ({', '.join(families)}) are" if families else "what they register is"
        log.warning(
            "%s names %s of %s but not its entry points %s, so %s disabled. Name the distribution "
            "(%s) to load all of it, or block the entry points you mean to leave out.",
            label[:1].upper() + label[1:], ", ".join(chosen), dist, ", ".join(ep.name for ep in left), what, dist,
        )  # fmt: skip


def _compatible(plugin_api: Any) -> bool:
    core_major, core_minor = hookspecs.HOOK_API
    return (
        isinstance(plugin_api, tuple)
        and len(plugin_api) == 2
        and plugin_api[0] == core_major
        and plugin_api[1] <= core_minor
    )


def load_plugins(
    *,
    load: str | Sequence[str] | None = None,
    block: str | Sequence[str] | None = None,
    extra: Iterable[ModuleType | object] = (),
    use_environment: bool = True,
) -> Plugins:
    """Discover, filter and load plugins into a fresh manager.

    Args:
        load: names to load (None: all installed). ``MODELYARD_LOAD_PLUGINS`` overrides it.
        block: names never to load. ``MODELYARD_BLOCK_PLUGINS`` overrides it.
        extra: plugin objects registered directly, without discovery (tests, embedding apps).
        use_environment: read the two environment variables.

    Raises:
        ConfigError: a name in ``load`` matches no installed plugin (one in ``block`` only
            warns: a subset install has nothing to block).
        PluginError: a plugin named in ``load`` cannot be imported or is incompatible.
    """
    labels = {"load": "the load list (load_plugins)", "block": "the block list (block_plugins)"}
    if use_environment:
        if "MODELYARD_LOAD_PLUGINS" in os.environ:
            load = os.environ["MODELYARD_LOAD_PLUGINS"]
            labels["load"] = "MODELYARD_LOAD_PLUGINS"
        if "MODELYARD_BLOCK_PLUGINS" in os.environ:
            block = os.environ["MODELYARD_BLOCK_PLUGINS"]
            labels["block"] = "MODELYARD_BLOCK_PLUGINS"
    load_names = _split(load)
    block_names = _split(block) or []

    eps = sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name)
    known: dict[str, set[str]] = {}  # normalised name -> entry-point names it selects
    display: list[str] = []  # the names a misspelt one is compared with
    for ep in eps:
        dist = ep.dist.name if ep.dist is not None else ep.name
        known.setdefault(_norm(dist), set()).add(ep.name)
        known.setdefault(_norm(ep.name), set()).add(ep.name)
        display += [n for n in (dist, ep.name) if n not in display]
    installed = ", ".join(sorted({_dist_name(e) for e in eps})) or "none"
    for source, names in (("load", load_names or []), ("block", block_names)):
        for name in names:
            if _norm(name) in known:
                continue
            close = _suggest(name, display)
            hint = f" (did you mean {close!r}?)" if close else ""
            if source == "block":
                # One config serves every subset: blocking what is absent is already done.
                log.warning(
                    "Plugin %r in %s is not installed%s; nothing to block. Installed: %s.",
                    name, labels[source], hint, installed,
                )  # fmt: skip
                continue
            raise ConfigError(
                f"Plugin {name!r} in {labels[source]} is not installed{hint}; installed: {installed}.",
                key=f"{source}_plugins",
            )
    block_names = [n for n in block_names if _norm(n) in known]
    wanted = None if load_names is None else set().union(*(known[_norm(n)] for n in load_names))
    blocked = set().union(*(known[_norm(n)] for n in block_names)) if block_names else set()
    if wanted is not None and load_names:
        _warn_siblings(eps, load_names, wanted, blocked, labels["load"])

    pm = _Manager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    infos: list[PluginInfo] = []
    for ep in eps:
        info = PluginInfo(name=ep.name, distribution=_dist_name(ep), version=_dist_version(ep), status="loaded")
        infos.append(info)
        if ep.name in blocked:
            info.status, info.reason = "blocked", "named in the block list"
            continue
        if wanted is not None and ep.name not in wanted:
            info.status, info.reason = "not enabled", "not in the load list"
            continue
        explicit = wanted is not None
        try:
            module = ep.load()
        except Exception as exc:  # any import failure of third-party code
            _skip(info, f"import failed: {type(exc).__name__}: {exc}", explicit)
            continue
        api = getattr(module, "HOOK_API", None)
        info.hook_api = api if isinstance(api, tuple) else None
        if not _compatible(api):
            _skip(
                info,
                f"plugin {info.distribution} {info.version} was written for HOOK_API {api}, "
                f"this modelyard provides HOOK_API {hookspecs.HOOK_API}; upgrade whichever is older",
                explicit,
            )
            continue
        pm.register(module, name=ep.name)
        info.hooks = sorted(h.name for h in pm.get_hookcallers(module) or [])
    for obj in extra:
        name = getattr(obj, "__name__", None) or type(obj).__name__
        pm.register(obj, name=name)
        infos.append(
            PluginInfo(
                name=name,
                distribution="(registered directly)",
                version="",
                status="loaded",
                hook_api=getattr(obj, "HOOK_API", None),
                hooks=sorted(h.name for h in pm.get_hookcallers(obj) or []),
            )
        )
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginError(str(exc), plugin=getattr(exc, "plugin", None) and str(exc.plugin)) from None
    plugins = Plugins(pm, infos)
    if os.environ.get("MODELYARD_TRACE_PLUGINS") == "1":
        _enable_tracing(pm)
        plugins.monitored = True
    return plugins


def _dist_name(ep: metadata.EntryPoint) -> str:
    return ep.dist.name if ep.dist is not None else "(unknown)"


def _dist_version(ep: metadata.EntryPoint) -> str:
    return ep.dist.version if ep.dist is not None else ""


def _skip(info: PluginInfo, reason: str, explicit: bool) -> None:
    if explicit:
        raise PluginError(f"Cannot load plugin {info.name!r} ({info.distribution}): {reason}.", plugin=info.name)
    info.status, info.reason = "skipped", reason
    log.warning("skipping plugin %s (%s): %s", info.name, info.distribution, reason)


def _enable_tracing(pm: pluggy.PluginManager) -> None:
    trace = logging.getLogger("modelyard.plugins.trace")

    def before(hook_name: str, hook_impls: Sequence[pluggy.HookImpl], kwargs: Mapping[str, Any]) -> None:
        # Argument names only: values may carry credentials.
        trace.info("call %s(%s) -> %d impls", hook_name, ", ".join(kwargs), len(hook_impls))

    def after(
        outcome: pluggy.Result[Any], hook_name: str, hook_impls: Sequence[pluggy.HookImpl], kwargs: Mapping[str, Any]
    ) -> None:
        exc = outcome.exception
        result = f"raised {type(exc).__name__}" if exc else type(outcome.get_result()).__name__
        trace.info("done %s -> %s", hook_name, result)

    pm.add_hookcall_monitoring(before, after)


_current: Plugins | None = None
_settings: dict[str, Any] = {}
_lock = threading.Lock()


def get_plugins() -> Plugins:
    """The process-wide plugin set, loaded on first use."""
    global _current
    if _current is None:
        with _lock:
            if _current is None:
                _current = load_plugins(**_settings)
    return _current


def reset_plugins(**settings: Any) -> None:
    """Forget the loaded plugins; the next call reloads them with ``settings``.

    ``settings`` are :func:`load_plugins` keywords (``load``, ``block``, ``extra``), used
    for every later reload until the next reset. The proxy calls this with config.yaml's
    ``modelyard_settings``; tests call it to start clean.
    """
    global _current, _settings
    with _lock:
        _current = None
        _settings = dict(settings)
