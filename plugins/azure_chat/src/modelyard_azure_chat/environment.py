"""``modelyard serve`` without a config: one Azure deployment per name, from the environment.

``AZURE_API_KEY`` and ``AZURE_API_BASE`` set (``AZURE_API_VERSION`` if set): one model per name
in ``MODELYARD_DEPLOYMENTS`` (comma-separated, default ``gpt-4o,gpt-4o-mini``), each
``azure/<name>`` reading the key, base and version from the environment (``os.environ/NAME``:
the secret's value is never copied into the config).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modelyard.plugin import EnvironmentConfig, hookimpl

__all__ = ["DEFAULT_DEPLOYMENTS", "default_config"]

DEFAULT_DEPLOYMENTS = "gpt-4o,gpt-4o-mini"
"""The deployments served when ``MODELYARD_DEPLOYMENTS`` is unset."""


@hookimpl
def default_config(environ: Mapping[str, str]) -> EnvironmentConfig | None:
    """The proxy config for ``AZURE_API_KEY`` + ``AZURE_API_BASE``, or None when either is unset (HOOK_API 1.9)."""
    if not (environ.get("AZURE_API_KEY") and environ.get("AZURE_API_BASE")):
        return None
    names = [n.strip() for n in environ.get("MODELYARD_DEPLOYMENTS", DEFAULT_DEPLOYMENTS).split(",") if n.strip()]
    params: dict[str, Any] = {"api_key": "os.environ/AZURE_API_KEY", "api_base": "os.environ/AZURE_API_BASE"}
    if environ.get("AZURE_API_VERSION"):
        params["api_version"] = "os.environ/AZURE_API_VERSION"
    models = [{"model_name": n, "litellm_params": {"model": f"azure/{n}", **params}} for n in names]
    return EnvironmentConfig(config={"model_list": models}, source="AZURE_API_BASE")
