"""Where an Azure files or batches call goes: resource-scoped, classic or v1.

Files and batches live under the resource, not under a deployment:
``{endpoint}/openai/files?api-version=V`` (classic) or ``{endpoint}/openai/v1/files`` (v1).
"""

from __future__ import annotations

import os

from modelyard.errors import ConfigError
from modelyard.types import Connection

DEFAULT_API_VERSION = "2025-04-01-preview"
"""The api-version sent when none is given (files and batches are in every version since
2024-07-01-preview; 2024-10-21 is the GA one)."""

V1_VERSIONS = frozenset({"v1", "latest", "preview"})


def api_version(connection: Connection) -> str:
    """``api_version``, else ``AZURE_API_VERSION``, else ``OPENAI_API_VERSION``, else the default."""
    return (
        connection.api_version
        or os.environ.get("AZURE_API_VERSION")
        or os.environ.get("OPENAI_API_VERSION")
        or DEFAULT_API_VERSION
    )


def resource_base(connection: Connection) -> str:
    """The resource endpoint without a trailing ``/``, ``/openai`` or ``/openai/v1``.

    Raises:
        ConfigError: no ``api_base`` and no ``AZURE_API_BASE`` / ``AZURE_OPENAI_ENDPOINT``.
    """
    base = connection.api_base or os.environ.get("AZURE_API_BASE") or os.environ.get("AZURE_OPENAI_ENDPOINT")
    if not base:
        raise ConfigError(
            "No Azure endpoint: pass api_base='https://<resource>.openai.azure.com' "
            "or set AZURE_API_BASE (or AZURE_OPENAI_ENDPOINT).",
            key="api_base",
        )
    base = base.strip().rstrip("/")
    for suffix in ("/openai/v1", "/openai"):
        if base.endswith(suffix):
            return base[: -len(suffix)]
    return base


def build(connection: Connection, path: str) -> tuple[str, dict[str, str]]:
    """The URL and query for OpenAI's ``path`` (``/files``, ``/batches/{id}`` ...) on Azure.

    * ``base_url`` given: used as the API root (a ``/deployments/<d>`` tail is dropped: files
      and batches are resource-scoped);
    * ``api_version`` ``v1`` / ``latest`` / ``preview``: ``{base}/openai/v1<path>``;
    * otherwise ``{base}/openai<path>?api-version=V``.
    """
    version = api_version(connection)
    v1 = version in V1_VERSIONS
    query = ({"api-version": "preview"} if version == "preview" else {}) if v1 else {"api-version": version}
    if connection.base_url:
        root = connection.base_url.rstrip("/")
        cut = root.find("/deployments/")
        if cut >= 0:
            root = root[:cut]
        return root + path, query
    base = resource_base(connection)
    return (f"{base}/openai/v1{path}" if v1 else f"{base}/openai{path}"), query
