"""Connection settings: what the provider plugins declare, merged.

The core knows four connection settings of its own, which every provider shares: ``api_base``,
``base_url``, ``api_version`` and ``api_key`` (plus ``extra_headers``, which only code passes).
Everything else a provider needs to reach its upstream (a token, a tenant, an organization ...)
its plugin declares through the ``register_connection_settings`` hook, as
:class:`ConnectionSetting` rows. The union of what the loaded plugins declare is used:

* by the SDK, to tell connection keywords from request parameters, to check their values
  (a secret becomes a ``SecretStr``, one line, never shown) and to fill them from the module
  settings (``modelyard.<name> = ...``, as LiteLLM's ``litellm.<name>``);
* by the proxy's config parser, which accepts them in ``litellm_params`` (and
  ``litellm_settings``) and masks the secret ones in every repr and log line;
* by the proxy's rule that a client may not send a connection setting.

A blocked plugin's settings are unknown: a config that still uses them fails at start-up naming
the field and the plugins that are installed but not loaded.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, SecretStr

from .redact import clean_secret

__all__ = ["CORE_SETTINGS", "ConnectionSchema", "ConnectionSetting", "Kind", "connection_schema", "loaded_schema"]

Kind = Literal["text", "secret", "flag", "callable"]


class ConnectionSetting(BaseModel):
    """One connection setting a provider plugin declares (``register_connection_settings``).

    Attributes:
        name: the keyword (``completion(..., name=...)``), the ``litellm_params`` key and the
            module setting (``modelyard.<name>``).
        provider: the provider it belongs to (``route.provider``).
        kind: ``text`` (a string), ``secret`` (a string that is never shown: it arrives as a
            ``SecretStr``), ``flag`` (true or false) or ``callable`` (only code can pass it:
            a token provider).
        env: environment variables read, in order, when the call leaves it unset
            (:meth:`ConnectionSchema.resolve`); listed in ``modelyard plugins``.
        credential: it is (part of) a credential: a call that passes any credential takes
            none from the module settings, so two credentials are never mixed.
        module_setting: also a module-wide setting ``modelyard.<name>`` (not for callables).
        default: the module setting's value while nobody set it.
        alias_of: another name for the setting ``alias_of`` (LiteLLM's second names): the
            module setting of this name fills ``alias_of`` when that is unset.
        description: one line for ``modelyard plugins`` and the docs.
    """

    model_config = ConfigDict(frozen=True)

    name: str
    provider: str
    kind: Kind = "text"
    env: tuple[str, ...] = ()
    credential: bool = False
    module_setting: bool = True
    default: bool | str | None = None
    alias_of: str | None = None
    description: str = ""


# The settings every provider shares; a plugin may declare them again for its provider, to add
# environment fallbacks (its own ``*_API_KEY``), with the same kind.
CORE_SETTINGS: dict[str, ConnectionSetting] = {
    s.name: s
    for s in (
        ConnectionSetting(name="api_base", provider="", description="the upstream's base URL"),
        ConnectionSetting(name="base_url", provider="", description="another name for api_base"),
        ConnectionSetting(name="api_version", provider="", description="the upstream API's version"),
        ConnectionSetting(name="api_key", provider="", kind="secret", credential=True, description="the API key"),
    )
}


class ConnectionSchema:
    """The connection settings of a set of plugins, merged by name.

    Args:
        declared: ``(plugin name, setting)`` pairs, in the order the plugins registered them.

    Raises:
        ValueError: two plugins declare one name with different kinds, or a plugin redeclares a
            core setting with another kind (the message names both).
    """

    def __init__(self, declared: Iterable[tuple[str, ConnectionSetting]] = (), not_loaded: str = "") -> None:
        self._by_name: dict[str, list[tuple[str, ConnectionSetting]]] = {}
        self.not_loaded = not_loaded
        for plugin, setting in declared:
            first = CORE_SETTINGS.get(setting.name)
            first_plugin = "modelyard"
            if first is None and setting.name in self._by_name:
                first_plugin, first = self._by_name[setting.name][0]
            if first is not None and first.kind != setting.kind:
                raise ValueError(
                    f"connection setting {setting.name!r} is declared as {setting.kind} by {plugin} "
                    f"but as {first.kind} by {first_plugin}"
                )
            self._by_name.setdefault(setting.name, []).append((plugin, setting))
        extra = [n for n in self._by_name if n not in CORE_SETTINGS]
        self.names: frozenset[str] = frozenset(extra)
        """The declared names beyond the core's (``azure_ad_token`` ...)."""
        self.all_names: frozenset[str] = self.names | CORE_SETTINGS.keys() | {"extra_headers"}
        """Every connection keyword: the core's and the declared ones."""
        self.secrets: frozenset[str] = frozenset(n for n in self.names if self._first(n).kind == "secret")
        self.credentials: frozenset[str] = frozenset(
            n for n in self.names if any(s.credential for _, s in self._by_name[n])
        ) | {"api_key"}
        self.module_settings: dict[str, ConnectionSetting] = {
            n: self._first(n) for n in self.names if self._first(n).module_setting and self._first(n).kind != "callable"
        }
        self.aliases: dict[str, list[str]] = {}
        for name, setting in self.module_settings.items():
            if setting.alias_of:
                self.aliases.setdefault(setting.alias_of, []).append(name)
        self.alias_names: frozenset[str] = frozenset(a for names in self.aliases.values() for a in names)
        """The second names (``alias_of``): each fills the setting it names, never itself."""
        self.filled: tuple[str, ...] = (*CORE_SETTINGS, *self.module_settings)
        """The names a call's unset settings are filled for from the module settings, in order."""
        self.lookups: tuple[str, ...] = tuple(dict.fromkeys((*self.filled, *sorted(self.alias_names))))
        """Every module setting a call may be filled from (``filled`` and the second names)."""

    def _first(self, name: str) -> ConnectionSetting:
        return self._by_name[name][0][1]

    def kind(self, name: str) -> Kind | None:
        """The kind of ``name``, or None when no loaded plugin (nor the core) declares it."""
        core = CORE_SETTINGS.get(name)
        if core is not None:
            return core.kind
        found = self._by_name.get(name)
        return found[0][1].kind if found else None

    def plugins_of(self, name: str) -> list[str]:
        """The plugins that declare ``name``."""
        return [plugin for plugin, _ in self._by_name.get(name, ())]

    def declared(self) -> list[tuple[str, ConnectionSetting]]:
        """Every ``(plugin, setting)`` pair, as registered."""
        return [pair for pairs in self._by_name.values() for pair in pairs]

    def unknown(self, name: str, where: str | None = None) -> str:
        """The message for a setting no loaded plugin declares, naming the plugins not loaded."""
        head = f"{where or name} is not a connection setting of any loaded provider plugin"
        return f"{head}. {self.not_loaded}" if self.not_loaded else f"{head}."

    def check(self, name: str, value: Any) -> Any:
        """``value`` checked for the kind of setting ``name`` (a secret as a one-line ``SecretStr``).

        Raises:
            ValueError: an undeclared name, or a value of the wrong type; the message names the
                setting and never shows the value.
        """
        if name == "extra_headers":
            return value
        kind = self.kind(name)
        if kind is None:
            raise ValueError(self.unknown(name))
        if kind == "secret":
            raw = value.get_secret_value() if isinstance(value, SecretStr) else value
            if not isinstance(raw, str):
                raise ValueError(f"{name} must be a string, got {type(raw).__name__}")
            cleaned = clean_secret(raw, name)
            return value if isinstance(value, SecretStr) and cleaned == raw else SecretStr(cleaned)
        if kind == "flag":
            if not isinstance(value, bool):
                raise ValueError(f"{name} must be true or false, got {type(value).__name__}")
            return value
        if kind == "callable":
            if not callable(value):
                raise ValueError(f"{name} must be callable, got {type(value).__name__}")
            return value
        if not isinstance(value, str):
            raise ValueError(f"{name} must be a string, got {type(value).__name__}")
        return value

    def env(self, provider: str, name: str) -> tuple[str, ...]:
        """The environment variables ``provider``'s plugins read for ``name``, in order."""
        return tuple(v for _, s in self._by_name.get(name, ()) if s.provider == provider for v in s.env)

    def resolve(self, provider: str, name: str, value: Any = None) -> Any:
        """``value`` when set, else the first of ``provider``'s environment variables for ``name``.

        A secret read from the environment is cleaned as a config value is (one trailing line
        break dropped) and returned as a ``SecretStr``.

        Raises:
            ValueError: a secret variable holding another control character (names the variable).
        """
        if value is not None:
            return value
        for var in self.env(provider, name):
            found = os.environ.get(var)
            if found:
                if self.kind(name) == "secret":
                    return SecretStr(clean_secret(found, var))
                if self.kind(name) == "flag":
                    return found.strip().lower() in ("1", "true", "yes", "on")
                return found
        return None


def connection_schema() -> ConnectionSchema:
    """The connection settings of the process's plugin set (loading it on first use)."""
    from .plugins import get_plugins

    return get_plugins().connection_settings


def loaded_schema() -> ConnectionSchema | None:
    """The connection settings of the process's plugin set if it is loaded, else None (never loads)."""
    from . import plugins

    current = plugins._current
    return current.connection_settings if current is not None else None
