"""Azure's ``/extensions/chat/completions`` call: vision enhancements (OCR, grounding) and ``dataSources``.

A chat call becomes an extension call when it sets ``enhancements`` or ``dataSources``, or when
its ``base_url`` ends in ``/extensions`` (the Azure page's recipe). It then goes to
``{api_base}/openai/deployments/{d}/extensions/chat/completions?api-version=V``: the URL the
azure_chat plugin built gets ``/extensions`` before its ``/chat/completions`` (a ``base_url``
already ending in ``/extensions`` is left as it is).

The extensions path exists only on the 2023-06-01-preview ... 2023-12-01-preview api-versions,
and vision enhancements only on 2023-12-01-preview (Azure removed both later; the GA successor
of ``dataSources`` is ``data_sources`` on the ordinary ``/chat/completions``, which needs no
plugin). So the api-version of an extension call is:

* ``api_version`` passed with the call: used when the extensions path takes it, else a
  ``BadRequestError`` before sending (Azure would answer 404 "Resource not found");
* otherwise ``AZURE_API_VERSION`` / ``OPENAI_API_VERSION`` when the extensions path takes it;
* otherwise 2023-12-01-preview (a global default meant for ordinary chat does not break it).

``data_sources`` (snake_case) with ``enhancements`` or a ``/extensions`` base_url is sent as the
``dataSources`` the extensions API reads. Keys inside ``dataSources`` are credentials of another
resource: no error of this module shows a value, and modelyard's reprs mask them.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from modelyard.errors import BadRequestError
from modelyard.types import Connection, ProviderRequest

from .images import ImagePart

__all__ = [
    "DEFAULT_API_VERSION",
    "ENHANCEMENT_API_VERSIONS",
    "EXTENSION_API_VERSIONS",
    "ExtensionCall",
    "plan",
]

EXTENSION_API_VERSIONS = frozenset(
    {
        "2023-06-01-preview",
        "2023-07-01-preview",
        "2023-08-01-preview",
        "2023-09-01-preview",
        "2023-10-01-preview",
        "2023-12-01-preview",
    }
)
"""The api-versions that serve ``/extensions/chat/completions``."""
ENHANCEMENT_API_VERSIONS = frozenset({"2023-12-01-preview"})
"""The api-versions that take ``enhancements``."""
DEFAULT_API_VERSION = "2023-12-01-preview"
"""The api-version of an extension call when none that fits is configured."""

_CHAT_PATH = "/chat/completions"
_EXTENSIONS_PATH = "/extensions/chat/completions"
_VISION_SOURCE = "AzureComputerVision"


@dataclass(frozen=True)
class ExtensionCall:
    """What an extension call changes in the request azure_chat builds.

    Attributes:
        api_version: the api-version to send.
        rename_data_sources: send ``data_sources`` as ``dataSources``.
    """

    api_version: str
    rename_data_sources: bool

    def apply(self, request: ProviderRequest, *, model: str) -> ProviderRequest:
        """The request sent to the extensions path, with this api-version.

        Raises:
            BadRequestError: the request targets the v1 API, which has no extensions path.
        """
        parts = urlsplit(request.url)
        path = parts.path.rstrip("/")
        if "/openai/v1/" in path + "/":
            raise BadRequestError(
                "Vision enhancements and dataSources use the deployment path "
                "(/openai/deployments/<d>/extensions/chat/completions), which the v1 API does not "
                f"have. Pass api_version={DEFAULT_API_VERSION!r} with api_base, or a base_url ending "
                "in /openai/deployments/<deployment>/extensions.",
                param="api_version",
                model=model,
            )
        if not path.endswith(_EXTENSIONS_PATH) and path.endswith(_CHAT_PATH):
            path = path[: -len(_CHAT_PATH)] + _EXTENSIONS_PATH
        url = parts._replace(path=path).geturl()
        body = dict(request.json_body or {})
        if self.rename_data_sources:
            body["dataSources"] = body.pop("data_sources")
        params = {**request.params, "api-version": self.api_version}
        return request.model_copy(update={"url": url, "params": params, "json_body": body})


def wanted(params: dict[str, Any], connection: Connection) -> bool:
    """Whether the call asks for the extensions path: ``enhancements`` or ``dataSources`` in
    ``params``, or a base URL ending in ``/extensions``."""
    return (
        params.get("enhancements") is not None
        or params.get("dataSources") is not None
        or (bool(connection.base_url) and _is_extensions_url(connection.base_url or ""))
    )


@functools.lru_cache(maxsize=64)
def _is_extensions_url(base_url: str) -> bool:
    return urlsplit(base_url).path.rstrip("/").endswith("/extensions")


def enabled_enhancements(params: dict[str, Any]) -> list[str]:
    """The names of the enhancements switched on (``{"ocr": {"enabled": True}}`` -> ``["ocr"]``)."""
    enhancements = params.get("enhancements")
    if not isinstance(enhancements, dict):
        return []
    return [k for k, v in enhancements.items() if isinstance(v, dict) and v.get("enabled") is True]


def plan(
    params: dict[str, Any], connection: Connection, images: list[ImagePart], *, model: str
) -> ExtensionCall | None:
    """Decide whether this is an extension call, check its parameters, choose its api-version.

    Args:
        params: the call's parameters, after the family's rules.
        connection: the call's connection (``base_url``, ``api_version``).
        images: the request's images, from :func:`~modelyard_azure_vision.images.find_images`.
        model: the model string, for errors.

    Returns:
        None for an ordinary chat call, else the :class:`ExtensionCall` to apply.

    Raises:
        BadRequestError: malformed ``enhancements`` / ``dataSources``, enhancements without
            their Computer Vision data source or on more than one image, both ``dataSources``
            and ``data_sources``, or an ``api_version`` the extensions path does not take.
    """
    if not wanted(params, connection):
        return None
    if params.get("dataSources") is not None and params.get("data_sources") is not None:
        raise BadRequestError(
            "Pass either dataSources or data_sources, not both: on an extension call both are "
            "sent as dataSources.",
            param="data_sources",
            model=model,
        )
    rename = params.get("data_sources") is not None
    sources_key = "data_sources" if rename else "dataSources"
    sources = _check_sources(params.get(sources_key), sources_key, model)
    enabled = _check_enhancements(params.get("enhancements"), model)
    if enabled:
        if not any(str(s.get("type", "")).startswith(_VISION_SOURCE) for s in sources):
            raise BadRequestError(
                f"Vision enhancements ({', '.join(enabled)}) need your Azure AI Vision resource: add "
                f'{sources_key}=[{{"type": "{_VISION_SOURCE}", "parameters": {{"endpoint": "https://'
                '<vision-resource>.cognitiveservices.azure.com/", "key": "..."}}]. ',
                param=sources_key,
                model=model,
            )
        if len(images) > 1:
            raise BadRequestError(
                f"{images[1].where}: Azure applies vision enhancements to one image per chat call; "
                f"this request has {len(images)}. Send one image, or leave out enhancements.",
                param=images[1].where,
                code="too_many_images",
                model=model,
            )
    return ExtensionCall(_api_version(connection, bool(enabled), model), rename)


def _check_enhancements(value: Any, model: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, dict):
        raise BadRequestError(
            f'enhancements must be an object such as {{"ocr": {{"enabled": true}}, "grounding": '
            f'{{"enabled": true}}}}, got {type(value).__name__}.',
            param="enhancements",
            model=model,
        )
    for name, feature in value.items():
        if not isinstance(feature, dict) or not isinstance(feature.get("enabled", False), bool):
            raise BadRequestError(
                f'enhancements.{name} must be an object {{"enabled": true|false}}.',
                param=f"enhancements.{name}",
                model=model,
            )
    return enabled_enhancements({"enhancements": value})


def _check_sources(value: Any, key: str, model: str) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise BadRequestError(
            f"{key} must be a list of data sources, got {type(value).__name__}.", param=key, model=model
        )
    for i, source in enumerate(value):
        where = f"{key}[{i}]"
        if not isinstance(source, dict):
            raise BadRequestError(f"{where} must be an object.", param=where, model=model)
        if not isinstance(source.get("type"), str) or not source["type"]:
            raise BadRequestError(
                f'{where}.type is required (e.g. "{_VISION_SOURCE}").', param=f"{where}.type", model=model
            )
        parameters = source.get("parameters")
        if parameters is not None and not isinstance(parameters, dict):
            raise BadRequestError(f"{where}.parameters must be an object.", param=f"{where}.parameters", model=model)
        if source["type"] == _VISION_SOURCE:
            endpoint = (parameters or {}).get("endpoint")
            if not isinstance(endpoint, str) or not urlsplit(endpoint).hostname:
                raise BadRequestError(
                    f"{where}.parameters.endpoint must be your Azure AI Vision endpoint "
                    "(https://<resource>.cognitiveservices.azure.com/).",
                    param=f"{where}.parameters.endpoint",
                    model=model,
                )
            key_value = (parameters or {}).get("key")
            if key_value is not None and not isinstance(key_value, str):
                # The value is a credential: name its type, never the value.
                raise BadRequestError(
                    f"{where}.parameters.key must be a string, got {type(key_value).__name__}.",
                    param=f"{where}.parameters.key",
                    model=model,
                )
    return value


def _api_version(connection: Connection, enhancements: bool, model: str) -> str:
    allowed = ENHANCEMENT_API_VERSIONS if enhancements else EXTENSION_API_VERSIONS
    what = "vision enhancements" if enhancements else "the extensions endpoint"
    if connection.api_version:
        if connection.api_version in allowed:
            return connection.api_version
        raise BadRequestError(
            f"api_version {connection.api_version!r} does not serve {what}; Azure serves them on "
            f"{', '.join(sorted(allowed))}. Pass api_version={DEFAULT_API_VERSION!r} (or leave it out).",
            param="api_version",
            model=model,
        )
    for name in ("AZURE_API_VERSION", "OPENAI_API_VERSION"):
        value = os.environ.get(name)
        if value:
            return value if value in allowed else DEFAULT_API_VERSION
    return DEFAULT_API_VERSION
