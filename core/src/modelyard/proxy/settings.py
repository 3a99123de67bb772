"""The config's connection settings against what the loaded provider plugins declare.

``litellm_params`` and ``litellm_settings`` take, besides the core's keys, every connection
setting a loaded provider plugin declares (``register_connection_settings``): the deployment's
call gets them, ``litellm_settings`` sets them module-wide. When some installed plugins are not
loaded (blocked, not enabled, skipped), a key no loaded plugin knows is likely one of theirs:
the start fails naming the key and those plugins, rather than dropping a credential silently.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ..connection import CORE_SETTINGS, connection_schema
from ..errors import ConfigError

if TYPE_CHECKING:
    from .config import LiteLLMSettings, ProxyConfig

__all__ = ["check_settings", "module_settings"]

log = logging.getLogger("modelyard.proxy")

# The module-wide settings litellm_settings sets besides the providers' declared ones.
_CORE_MODULE_SETTINGS = ("drop_params", "api_base", "api_key", "api_version")


def check_settings(config: ProxyConfig) -> None:
    """Refuse keys of ``litellm_params`` that may belong to a plugin not loaded.

    (``litellm_settings`` holds many LiteLLM keys modelyard does not use: its unknown keys are
    only warned about.)

    Raises:
        ConfigError: names the key's path and the installed plugins that are not loaded.
    """
    from ..pricing import PRICE_KEYS
    from .config import _DEFAULT_PARAMS, _LITELLM_ONLY_PARAMS

    schema = connection_schema()
    ms = config.modelyard_settings
    own_set = ms.load_plugins is not None or ms.block_plugins is not None
    known = schema.all_names | _DEFAULT_PARAMS | _LITELLM_ONLY_PARAMS | PRICE_KEYS
    for index, entry in enumerate(config.model_list):
        for name in entry.litellm_params.model_extra or {}:
            if name in known:
                continue
            if schema.not_loaded:
                where = f"model_list (model_name {entry.model_name!r}).litellm_params.{name}"
                raise ConfigError(schema.unknown(name, where), key=where)
            if own_set:  # parse_config left these to us
                log.warning("config: unknown key %r in config is ignored", f"model_list[{index}].litellm_params.{name}")
    if own_set:
        for name in config.litellm_settings.model_extra or {}:
            if name not in schema.names:
                log.warning("config: unknown key %r in config is ignored", f"litellm_settings.{name}")


def module_settings(settings: LiteLLMSettings) -> Iterator[tuple[str, Any]]:
    """``(name, value)`` of the module-wide settings ``litellm_settings`` sets (declared ones checked).

    Raises:
        ConfigError: a declared setting with a value of the wrong kind, naming it.
    """
    for name in _CORE_MODULE_SETTINGS:
        yield name, getattr(settings, name)
    schema = connection_schema()
    for name, value in (settings.model_extra or {}).items():
        if name in schema.module_settings and name not in CORE_SETTINGS:
            try:
                yield name, schema.check(name, value)
            except ValueError as exc:
                raise ConfigError(f"litellm_settings.{name}: {exc}.", key=f"litellm_settings.{name}") from None
