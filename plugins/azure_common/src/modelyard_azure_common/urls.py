"""Where an Azure OpenAI call goes: ``api_base`` / ``base_url`` / ``api_version`` to a URL and query.

Written once for every Azure plugin. Two kinds of operation:

* deployment-scoped (chat, completions, embeddings, images, audio):
  ``{base}/openai/deployments/{d}/<op>?api-version=V`` (classic), or ``{base}/openai/v1/<op>``
  with the deployment as ``model`` in the body (v1) -- :func:`deployment_url`;
* resource-scoped (files, batches): ``{base}/openai/<op>?api-version=V`` or
  ``{base}/openai/v1/<op>`` -- :func:`resource_url`.
"""

from __future__ import annotations

import os
from urllib.parse import quote

from modelyard.errors import ConfigError
from modelyard.types import Connection

__all__ = ["DEFAULT_API_VERSION", "V1_VERSIONS", "api_version", "deployment_url", "resource_base", "resource_url"]

DEFAULT_API_VERSION = "2025-04-01-preview"
"""The api-version sent when none is given: the newest dated version, which takes every
parameter modelyard sends (``max_completion_tokens``, ``stream_options``, ``reasoning_effort``,
the ``developer`` role, audio, ``dimensions``) and serves files and batches. Pass
``api_version="v1"`` for the version-less v1 API."""

V1_VERSIONS = frozenset({"v1", "latest", "preview"})
"""The api_version values that mean the v1 API (``/openai/v1/...``)."""


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
    return version[:10] >= "2024-09-01" and version != "2024-10-21"


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


def _v1_query(version: str) -> dict[str, str]:
    return {"api-version": "preview"} if version == "preview" else {}


def deployment_url(connection: Connection, deployment: str, path: str) -> tuple[str, dict[str, str], bool]:
    """The URL, query parameters, and whether the deployment goes in the body (v1 API).

    Args:
        connection: the call's connection settings.
        deployment: the deployment name (percent-encoded into a classic path).
        path: the operation's path, with a leading ``/`` (``/embeddings``, ``/chat/completions``).

    * ``base_url`` given: used verbatim, ``path`` appended
      (``.../deployments/d/extensions`` -> ``.../extensions/chat/completions``);
    * ``api_version`` ``v1`` / ``latest`` / ``preview``: ``{base}/openai/v1<path>``, model in the body;
    * otherwise the classic ``{base}/openai/deployments/{d}<path>?api-version=V``.

    Raises:
        ConfigError: no endpoint (see :func:`resource_base`).
    """
    version = api_version(connection)
    base_url = connection.base_url
    # What the answer depends on, the environment's endpoint included: the same call settings
    # give the same URL, worked out once (quoting and suffix stripping cost µs on every call).
    endpoint = None if base_url else (connection.api_base or os.environ.get("AZURE_API_BASE")
                                      or os.environ.get("AZURE_OPENAI_ENDPOINT"))  # fmt: skip
    key = (version, base_url, endpoint, deployment, path)
    found = _deployment_urls.get(key)
    if found is None:
        found = _deployment_url(connection, version, deployment, path)
        if len(_deployment_urls) > 1024:
            _deployment_urls.clear()
        _deployment_urls[key] = found
    url, query, v1 = found
    return url, dict(query), v1  # the caller's own query dict


_deployment_urls: dict[tuple[str | None, ...], tuple[str, dict[str, str], bool]] = {}


def _deployment_url(connection: Connection, version: str, deployment: str, path: str) -> tuple[str, dict[str, str], bool]:
    v1 = version in V1_VERSIONS
    if connection.base_url:
        query = {} if v1 else {"api-version": version}
        return connection.base_url.rstrip("/") + path, query, v1
    base = resource_base(connection)
    if v1:
        return f"{base}/openai/v1{path}", _v1_query(version), True
    return f"{base}/openai/deployments/{quote(deployment, safe='')}{path}", {"api-version": version}, False


def resource_url(connection: Connection, path: str) -> tuple[str, dict[str, str]]:
    """The URL and query for a resource-scoped ``path`` (``/files``, ``/batches/{id}`` ...).

    * ``base_url`` given: used as the API root (a ``/deployments/<d>`` tail is dropped: files
      and batches are resource-scoped);
    * ``api_version`` ``v1`` / ``latest`` / ``preview``: ``{base}/openai/v1<path>``;
    * otherwise ``{base}/openai<path>?api-version=V``.

    Raises:
        ConfigError: no endpoint (see :func:`resource_base`).
    """
    version = api_version(connection)
    v1 = version in V1_VERSIONS
    query = _v1_query(version) if v1 else {"api-version": version}
    if connection.base_url:
        root = connection.base_url.rstrip("/")
        cut = root.find("/deployments/")
        if cut >= 0:
            root = root[:cut]
        return root + path, query
    base = resource_base(connection)
    return (f"{base}/openai/v1{path}" if v1 else f"{base}/openai{path}"), query
