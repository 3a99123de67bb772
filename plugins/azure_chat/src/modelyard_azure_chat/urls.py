"""Where an Azure call goes: api_base / base_url / api_version to a URL and query."""

from __future__ import annotations

import os
from urllib.parse import quote

from modelyard.errors import ConfigError
from modelyard.types import Connection

DEFAULT_API_VERSION = "2025-04-01-preview"
"""The api-version sent when none is given: the newest dated version, which takes every
parameter modelyard sends (``max_completion_tokens``, ``stream_options``, ``reasoning_effort``,
the ``developer`` role, audio). Pass ``api_version="v1"`` for the version-less v1 API."""

V1_VERSIONS = frozenset({"v1", "latest", "preview"})

OPERATION_PATHS = {
    "chat": "/chat/completions",
    "completions": "/completions",
    "embeddings": "/embeddings",
}


def api_version(connection: Connection) -> str:
    """``api_version``, else ``AZURE_API_VERSION``, else ``OPENAI_API_VERSION``, else the default."""
    return (
        connection.api_version
        or os.environ.get("AZURE_API_VERSION")
        or os.environ.get("OPENAI_API_VERSION")
        or DEFAULT_API_VERSION
    )


def takes_stream_options(version: str) -> bool:
    """Whether an api-version accepts ``stream_options`` (the v1 API, and dated previews from
    ``2024-09-01-preview``; the GA ``2024-10-21`` spec lacks it, older versions answer 400)."""
    if version in V1_VERSIONS:
        return True
    date = version[:10]
    return date >= "2024-09-01" and version != "2024-10-21"


def resource_base(connection: Connection) -> str:
    """The resource endpoint without a trailing ``/`` or ``/openai`` (``https://R.openai.azure.com``).

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
            base = base[: -len(suffix)]
            break
    return base


def build(connection: Connection, deployment: str, operation: str) -> tuple[str, dict[str, str], bool]:
    """The URL, query parameters, and whether the deployment goes in the body (v1 API).

    * ``base_url`` given: used verbatim, the operation path appended
      (``.../deployments/d/extensions`` -> ``.../extensions/chat/completions``);
    * ``api_version`` ``v1`` / ``latest`` / ``preview``: ``{base}/openai/v1/<op>``, model in the body;
    * otherwise the classic ``{base}/openai/deployments/{d}/<op>?api-version=V``.
    """
    path = OPERATION_PATHS[operation]
    version = api_version(connection)
    if connection.base_url:
        query = {} if version in V1_VERSIONS else {"api-version": version}
        return connection.base_url.rstrip("/") + path, query, version in V1_VERSIONS
    base = resource_base(connection)
    if version in V1_VERSIONS:
        query = {"api-version": "preview"} if version == "preview" else {}
        return f"{base}/openai/v1{path}", query, True
    return f"{base}/openai/deployments/{quote(deployment, safe='')}{path}", {"api-version": version}, False
