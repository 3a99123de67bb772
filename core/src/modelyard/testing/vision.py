"""Vision in the emulator: Azure's checks of image parts, and the legacy ``/extensions`` endpoint.

Image parts (``{"type": "image_url", "image_url": {"url", "detail"}}``) are checked on every chat
path as Azure does, with 400 answers naming the part (``messages[0].content[1].image_url.url``):
images only in user messages and only for vision-capable models (not gpt-35-turbo / instruct),
http(s) URLs or base64 ``data:`` URIs of JPEG, PNG, GIF or WEBP, at most 20 MB each and 10 per
request. URLs are not fetched.

``POST /openai/deployments/{d}/extensions/chat/completions`` serves the 2023-06-01-preview ...
2023-12-01-preview api-versions (404 on any other, as Azure). It takes camelCase ``dataSources``
and, on 2023-12-01-preview, ``enhancements``; OCR and grounding need an ``AzureComputerVision``
data source with ``endpoint`` and ``key`` and apply to one image. The reply is an
``extensions.chat.completion``: with OCR its text quotes :data:`OCR_TEXT`; with grounding each
choice carries ``enhancements.grounding.lines[].spans[]`` with a polygon; another data source
adds ``message.context`` with a tool message of citations. Deployments of a ``*vision-preview``
model answer with ``finish_details`` instead of ``finish_reason``, as gpt-4-vision-preview did.

Keys in ``dataSources`` are never echoed.
"""

from __future__ import annotations

import binascii
import json
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

if TYPE_CHECKING:
    from .emulator import Deployment, Emulator

__all__ = [
    "ENHANCEMENT_API_VERSIONS",
    "EXTENSION_API_VERSIONS",
    "MAX_IMAGES",
    "MAX_IMAGE_BYTES",
    "OCR_TEXT",
    "check_chat",
    "extensions_route",
    "shape_extension_reply",
]

EXTENSION_API_VERSIONS = frozenset(
    {"2023-06-01-preview", "2023-07-01-preview", "2023-08-01-preview", "2023-09-01-preview",
     "2023-10-01-preview", "2023-12-01-preview"}
)  # fmt: skip
"""The api-versions that serve ``/extensions/chat/completions``."""
ENHANCEMENT_API_VERSIONS = frozenset({"2023-12-01-preview"})
"""The api-versions that take ``enhancements``."""
MAX_IMAGE_BYTES = 20 * 1024 * 1024
MAX_IMAGES = 10
OCR_TEXT = "MODELYARD EMULATOR 42"
"""The text the emulated OCR enhancement "reads" in any image."""

_MEDIA_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
_NO_VISION = re.compile(r"gpt-35|gpt-3\.5|instruct|davinci|babbage", re.IGNORECASE)
_SPACE = re.compile(r"\s+")
_GROUNDED = "the main object"
_POLYGON = [{"x": 0.1211, "y": 0.2046}, {"x": 0.8789, "y": 0.2046}, {"x": 0.8789, "y": 0.7954}, {"x": 0.1211, "y": 0.7954}]


def _bad(message: str, *, param: str | None = None, code: str | None = None) -> JSONResponse:
    return JSONResponse(
        {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}},
        status_code=400,
    )


def _unrecognized(name: str) -> JSONResponse:
    return _bad(f"Unrecognized request argument supplied: {name}")


# ---------------------------------------------------------------------------- image parts


def _images(messages: list[Any]) -> tuple[list[tuple[str, dict[str, Any]]], Response | None]:
    found: list[tuple[str, dict[str, Any]]] = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("content"), list):
            continue
        for j, part in enumerate(message["content"]):
            if not isinstance(part, dict) or part.get("type") != "image_url":
                continue
            where = f"messages[{i}].content[{j}]"
            if message.get("role") != "user":
                return found, _bad(
                    f"Image inputs are accepted in messages with role 'user' only; {where} is in a "
                    f"message with role {message.get('role')!r}.",
                    param=where,
                    code="invalid_image_role",
                )
            image = part.get("image_url")
            if not isinstance(image, dict):
                return found, _bad(f"{where}.image_url is a required object.", param=f"{where}.image_url")
            if image.get("detail") is not None and image["detail"] not in ("auto", "low", "high"):
                return found, _bad(
                    f"Invalid value for {where}.image_url.detail: expected 'auto', 'low' or 'high'.",
                    param=f"{where}.image_url.detail",
                    code="invalid_value",
                )
            bad = _check_url(image.get("url"), f"{where}.image_url.url")
            if bad is not None:
                return found, bad
            found.append((where, image))
            if len(found) > MAX_IMAGES:
                return found, _bad(
                    f"Too many images in the request: at most {MAX_IMAGES} are accepted.",
                    param=where,
                    code="too_many_images",
                )
    return found, None


def _check_url(url: Any, where: str) -> Response | None:
    if not isinstance(url, str) or not url:
        return _bad(f"{where} is a required string.", param=where, code="invalid_image_url")
    scheme = url.split(":", 1)[0].lower()
    if scheme in ("http", "https"):
        return None if urlsplit(url).hostname else _bad(f"Invalid image URL at {where}.", param=where, code="invalid_image_url")
    if scheme != "data":
        return _bad(
            f"Invalid image URL at {where}: expected an http(s) URL or a base64 data URL.",
            param=where,
            code="invalid_image_url",
        )
    head, sep, data = url[5:].partition(",")
    media_type, *attrs = head.split(";")
    if not sep or "base64" not in [a.lower() for a in attrs]:
        return _bad(
            f"Invalid image URL at {where}: expected a base64-encoded data URL (data:image/png;base64,...).",
            param=where,
            code="invalid_image_url",
        )
    if media_type.lower() not in _MEDIA_TYPES:
        return _bad(
            f"Invalid image at {where}: unsupported MIME type {media_type[:40]!r}; use image/jpeg, "
            "image/png, image/gif or image/webp.",
            param=where,
            code="invalid_image_format",
        )
    raw = _b64decode(data)
    if not raw:
        return _bad(f"Invalid image data at {where}: the base64 data cannot be decoded.", param=where, code="invalid_image_format")
    if len(raw) > MAX_IMAGE_BYTES:
        return _bad(
            f"Image at {where} is {len(raw)} bytes; the maximum image size is {MAX_IMAGE_BYTES} bytes.",
            param=where,
            code="image_too_large",
        )
    if not (raw.startswith((b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a")) or raw[8:12] == b"WEBP"):
        return _bad(f"Invalid image data at {where}: not a JPEG, PNG, GIF or WEBP image.", param=where, code="invalid_image_format")
    return None


def _b64decode(data: str) -> bytes:
    try:
        return binascii.a2b_base64(data, strict_mode=True)
    except (binascii.Error, ValueError):
        pass
    if not _SPACE.search(data):  # scan for line breaks only when needed: a regex over MBs is slow
        return b""
    try:
        return binascii.a2b_base64(_SPACE.sub("", data), strict_mode=True)
    except (binascii.Error, ValueError):
        return b""


# ---------------------------------------------------------------------------- requests


def check_chat(body: dict[str, Any], d: Deployment, version: str | None, *, extension: bool) -> Response | None:
    """Azure's answer to a chat body whose images or extension fields it refuses, else None.

    Args:
        body: the parsed request body (``messages`` already checked to be a non-empty list).
        d: the deployment.
        version: the ``api-version`` query parameter.
        extension: the request came in on ``/extensions/chat/completions``.
    """
    images, bad = _images(body["messages"])
    if bad is not None:
        return bad
    if images and _NO_VISION.search(d.model):
        return _bad(
            "Invalid content type. image_url is only supported by certain models.",
            param="messages",
            code="BadRequest",
        )
    if not extension:
        for name in ("enhancements", "dataSources"):
            if name in body:
                return _unrecognized(name)
        return None
    if "data_sources" in body:
        return _unrecognized("data_sources")
    if "enhancements" in body and version not in ENHANCEMENT_API_VERSIONS:
        return _unrecognized("enhancements")
    sources = body.get("dataSources") or []
    if not isinstance(sources, list) or not all(isinstance(s, dict) for s in sources):
        return _bad("dataSources must be an array of objects.", param="dataSources")
    for i, source in enumerate(sources):
        params = source.get("parameters")
        if source.get("type") == "AzureComputerVision" and not (
            isinstance(params, dict) and params.get("endpoint") and params.get("key")
        ):
            return _bad(
                f"dataSources[{i}]: an AzureComputerVision data source needs parameters.endpoint and parameters.key.",
                param=f"dataSources[{i}].parameters",
            )
    enabled = _enabled(body)
    if enabled:
        if not any(s.get("type") == "AzureComputerVision" for s in sources):
            return _bad(
                "Vision enhancements require a dataSources entry of type AzureComputerVision.",
                param="dataSources",
            )
        if len(images) > 1:
            return _bad("Enhancements can be applied to one image per chat call.", param=images[1][0])
    return None


def _enabled(body: dict[str, Any]) -> list[str]:
    enhancements = body.get("enhancements")
    if not isinstance(enhancements, dict):
        return []
    return [k for k, v in enhancements.items() if isinstance(v, dict) and v.get("enabled") is True]


def shape_extension_reply(completion: dict[str, Any], body: dict[str, Any], d: Deployment) -> dict[str, Any]:
    """Turn an ordinary emulated completion into what ``/extensions`` answers for ``body``."""
    enabled = _enabled(body)
    sources = [s for s in body.get("dataSources") or [] if s.get("type") != "AzureComputerVision"]
    choices = []
    for choice in completion["choices"]:
        message = dict(choice["message"])
        choice = {**choice, "message": message}
        if message.get("content") is not None:
            if "ocr" in enabled:
                message["content"] += f' The image reads "{OCR_TEXT}".'
            if "grounding" in enabled:
                message["content"] += f" It shows {_GROUNDED}."
                offset = message["content"].rindex(_GROUNDED)
                choice["enhancements"] = {
                    "grounding": {
                        "lines": [
                            {
                                "text": message["content"],
                                "spans": [
                                    {"text": _GROUNDED, "length": len(_GROUNDED), "offset": offset, "polygon": _POLYGON}
                                ],
                            }
                        ],
                        "status": "Success",
                    }
                }
        if sources:
            citations = [
                {"content": "Emulated passage.", "title": f"{s['type']} document", "url": None,
                 "filepath": "emulator.md", "chunk_id": "0"}
                for s in sources
            ]  # fmt: skip
            message["end_turn"] = True
            message["context"] = {
                "messages": [
                    {"role": "tool", "content": json.dumps({"citations": citations, "intent": "[]"}), "end_turn": False}
                ]
            }
        if "vision-preview" in d.model and not body.get("stream"):
            kind = "max_tokens" if choice.get("finish_reason") == "length" else "stop"
            choice["finish_details"] = {"type": kind, "stop": "<|fim_suffix|>"} if kind == "stop" else {"type": kind}
            choice.pop("finish_reason", None)
        choices.append(choice)
    return {**completion, "object": "extensions.chat.completion", "choices": choices}


def extensions_route(emulator: Emulator) -> Route:
    """The ``/extensions/chat/completions`` route, served by ``emulator``."""

    async def extensions_chat(request: Request) -> Response:
        version = request.query_params.get("api-version")
        if version is not None and version not in EXTENSION_API_VERSIONS:
            await emulator._record(request)
            return emulator._check_auth(request, False) or JSONResponse(
                {"error": {"code": "404", "message": "Resource not found"}}, status_code=404
            )
        return await emulator._chat(request, request.path_params["deployment"], v1=False, extension=True)

    return Route("/openai/deployments/{deployment}/extensions/chat/completions", extensions_chat, methods=["POST"])
