"""The emulator's images operations: generations (JSON) and edits (multipart), classic and v1.

``POST /openai/deployments/{d}/images/generations`` and ``/openai/v1/images/generations``;
``POST /openai/deployments/{d}/images/edits`` and ``/openai/v1/images/edits``. As strict as
Azure where a client can tell: ``prompt`` is required and a non-empty string; ``n``, ``size``,
``quality``, ``style``, ``response_format``, ``background``, ``output_format`` and
``output_compression`` are checked against the deployment's model (dall-e-3: ``n`` is 1, sizes
``1024x1024``/``1792x1024``/``1024x1792``, ``standard``/``hd``, ``vivid``/``natural``, no
gpt-image-1 fields; gpt-image-1: ``n`` up to 10, sizes ``1024x1024``/``1536x1024``/
``1024x1536``/``auto``, ``low``...``auto``, always base64); each gives Azure's 400 with ``param``.
Api-versions before images (generations: ``2023-12-01-preview``; edits: ``2025-04-01-preview``)
answer 404; chat models refuse the operation (400 ``OperationNotSupported``).

Images are a deterministic 1x1 PNG whose colour derives from the prompt, as ``b64_json`` or as a
URL the emulator itself serves (``GET /emulator/images/{id}.png``). A prompt containing
``emulator:filter-prompt`` is refused as Azure's safety system refuses it: 400
``content_policy_violation`` with ``inner_error.content_filter_results``. Quotas
(``x-ratelimit-*``, 429) and injected faults apply. Edits are recorded with their form fields,
and each file as ``{"filename", "content_type", "size"}``.
"""

from __future__ import annotations

import base64
import hashlib
import struct
import time
import uuid
import zlib
from typing import TYPE_CHECKING, Any

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from . import emulator as _emu
from .families import _OPERATION_HELP, _bad, model_kind

if TYPE_CHECKING:
    from .emulator import Deployment, Emulator

GENERATIONS_SINCE = "2023-12-01"
"""The first dated api-version (``2023-12-01-preview``) with synchronous image generation."""
EDITS_SINCE = "2025-04-01"
"""The first dated api-version (``2025-04-01-preview``) with image edits."""

DALLE3 = {
    "size": ("1024x1024", "1792x1024", "1024x1792"),
    "quality": ("standard", "hd"),
    "style": ("vivid", "natural"),
    "response_format": ("url", "b64_json"),
}
GPT_IMAGE = {
    "size": ("1024x1024", "1536x1024", "1024x1536", "auto"),
    "quality": ("low", "medium", "high", "auto"),
    "output_format": ("png", "jpeg", "webp"),
    "background": ("transparent", "opaque", "auto"),
    "response_format": ("b64_json",),
}
_IMAGE_SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"RIFF")


def png(seed: str) -> bytes:
    """A valid 1x1 RGB PNG whose colour derives from ``seed``."""
    r, g, b = hashlib.sha256(seed.encode()).digest()[:3]

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(bytes([0, r, g, b]))) + chunk(b"IEND", b"")


def _levels(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{v}'" for v in values)


def _check(d: Deployment, body: dict[str, Any], edit: bool) -> Response | None:
    """Azure's 400 for the first field the model refuses; None when the body passes."""
    prompt = body.get("prompt")
    if prompt is None:
        return _bad("missing_required_parameter", "prompt", "'prompt' is a required property")
    if not isinstance(prompt, str):
        return _bad("invalid_type", "prompt", "Invalid type for 'prompt': expected a string.")
    if not prompt:
        return _bad("invalid_value", "prompt", "'prompt' must not be empty.")
    gpt_image = model_kind(d.model) == "image" and d.model.lower().startswith("gpt-image")
    rules = GPT_IMAGE if gpt_image else DALLE3
    n = body.get("n", 1)
    if isinstance(n, str) and edit and n.isdigit():
        n = int(n)
    if isinstance(n, bool) or not isinstance(n, int):
        return _bad("invalid_type", "n", "Invalid type for 'n': expected an integer.")
    top = 10 if gpt_image else 1
    if not 1 <= n <= top:
        return _bad("invalid_value", "n", f"Invalid value for 'n': {n}; {d.model} supports 1 to {top}.")
    for field in ("size", "quality", "style", "response_format", "background", "output_format", "output_compression", "user"):
        if field not in body or body[field] is None:
            continue
        value = body[field]
        if field == "user":
            if not isinstance(value, str):
                return _bad("invalid_type", field, "Invalid type for 'user': expected a string.")
            continue
        if field == "output_compression":
            if not gpt_image:
                return _bad("unsupported_parameter", field, f"Unsupported parameter: 'output_compression' is not supported with {d.model}.")
            if isinstance(value, str) and edit and value.isdigit():
                value = int(value)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
                return _bad("invalid_value", field, "Invalid value for 'output_compression': expected an integer from 0 to 100.")
            continue
        allowed = rules.get(field)
        if allowed is None:
            return _bad("unsupported_parameter", field, f"Unsupported parameter: '{field}' is not supported with {d.model}.")
        if not isinstance(value, str) or value not in allowed:
            return _bad("invalid_value", field, f"Invalid value: {value!r}. Supported values for '{field}' with {d.model} are: {_levels(allowed)}.")
    return None


def _refused(headers: dict[str, str]) -> JSONResponse:
    """Azure's answer to an image prompt its safety system refuses (``dalleErrorResponse``)."""
    return JSONResponse(
        {
            "error": {
                "code": "content_policy_violation",
                "message": "Your request was rejected as a result of our safety system. Your prompt may "
                "contain text that is not allowed by our safety system.",
                "param": None,
                "type": "invalid_request_error",
                "inner_error": {
                    "code": "ResponsibleAIPolicyViolation",
                    "content_filter_results": _emu._BLOCKED_RESULTS,
                },
            }
        },
        status_code=400,
        headers=headers,
    )


async def _answer(emulator: Emulator, request: Request, d: Deployment, body: dict[str, Any], edit: bool) -> Response:
    # An injected fault is the service failing, before it reads the body (so /health's probe,
    # which Azure refuses for its size, still sees a deployment that is down).
    fault = await emulator._faults(d, request)
    if fault is not None:
        return fault
    refused = _check(d, body, edit)
    if refused is not None:
        return refused
    prompt: str = body["prompt"]
    tokens = _emu._tokens(prompt)
    limited, rl_headers = emulator._quota(d, tokens)
    if limited is not None:
        return limited
    headers = {"apim-request-id": str(uuid.uuid4()), "x-request-id": str(uuid.uuid4()), "x-ms-region": "East US 2", **rl_headers}
    if _emu.FILTER_PROMPT_TRIGGER in prompt:
        return _refused(headers)
    gpt_image = d.model.lower().startswith("gpt-image")
    n = int(body.get("n") or 1)
    as_url = not gpt_image and body.get("response_format", "url") == "url"
    data: list[dict[str, Any]] = []
    for i in range(n):
        image = png(f"{i}:{prompt}")
        item: dict[str, Any] = {}
        if as_url:
            image_id = hashlib.sha256(image).hexdigest()[:16]
            emulator_images(emulator)[image_id] = image
            item["url"] = f"{str(request.base_url).rstrip('/')}/emulator/images/{image_id}.png"
        else:
            item["b64_json"] = base64.b64encode(image).decode()
        if not gpt_image:
            item["revised_prompt"] = f"A detailed picture of {prompt}"
        item["content_filter_results"] = _emu._SAFE_RESULTS
        item["prompt_filter_results"] = _emu._PROMPT_RESULTS
        data.append(item)
    reply: dict[str, Any] = {"created": int(time.time()), "data": data}
    if gpt_image:
        out = 272 * n
        reply["usage"] = {"input_tokens": tokens, "output_tokens": out, "total_tokens": tokens + out,
                          "input_tokens_details": {"text_tokens": tokens, "image_tokens": 0}}  # fmt: skip
    return JSONResponse(reply, headers=headers)


def emulator_images(emulator: Emulator) -> dict[str, bytes]:
    """The images served by URL, by id (kept on the emulator instance)."""
    images: dict[str, bytes] | None = getattr(emulator, "_images", None)
    if images is None:
        images = {}
        emulator._images = images  # type: ignore[attr-defined]
    return images


def _deployment(emulator: Emulator, request: Request, name: Any, since: str, operation: str) -> tuple[Deployment | None, Response | None]:
    v1 = "deployment" not in request.path_params
    denied = emulator._check_auth(request, v1) or emulator._check_version(request, v1)
    if denied is not None:
        return None, denied
    if not v1 and (request.query_params.get("api-version") or "")[:10] < since:
        return None, _emu._error(404, "404", "Resource not found")
    d = emulator.deployments.get(name) if isinstance(name, str) else None
    if d is None:
        return None, _emu._deployment_not_found()
    if model_kind(d.model) != "image":
        return None, _bad(
            "OperationNotSupported",
            None,
            f"The {operation} operation does not work with the specified model, {d.model}. {_OPERATION_HELP}",
        )
    return d, None


async def generations(emulator: Emulator, request: Request) -> Response:
    """``POST /openai/deployments/{d}/images/generations`` and ``/openai/v1/images/generations``."""
    v1 = "deployment" not in request.path_params
    body, bad = await emulator._record(request)
    if bad is not None:
        return bad
    if not isinstance(body, dict):
        return _emu._error(400, "BadRequest", "The request body must be a JSON object.", type="invalid_request_error")
    name = body.get("model") if v1 else request.path_params["deployment"]
    d, refused = _deployment(emulator, request, name, GENERATIONS_SINCE, "imagesGenerations")
    if refused is not None or d is None:
        return refused or Response(status_code=500)
    return await _answer(emulator, request, d, body, edit=False)


def _describe(upload: UploadFile, head: bytes) -> dict[str, Any]:
    return {"filename": upload.filename, "content_type": upload.content_type, "size": upload.size, "head": head[:8].hex()}


async def edits(emulator: Emulator, request: Request) -> Response:
    """``POST /openai/deployments/{d}/images/edits`` and ``/openai/v1/images/edits`` (multipart)."""
    try:
        return await _edits(emulator, request)
    finally:
        form = getattr(request, "_form", None)
        if form is not None:
            await form.close()  # the spooled uploads


async def _edits(emulator: Emulator, request: Request) -> Response:
    v1 = "deployment" not in request.path_params
    recorded: dict[str, Any] = {}
    uploads: dict[str, list[UploadFile]] = {}
    try:
        form = await request.form()
    except Exception:  # not multipart, or a broken one: Azure's 400
        form = None
    if form is not None:
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                head = await value.read(8)
                await value.seek(0)
                uploads.setdefault(key, []).append(value)
                entry: Any = _describe(value, head)
            else:
                entry = value
            if key in recorded:
                prior = recorded[key]
                recorded[key] = [*(prior if isinstance(prior, list) else [prior]), entry]
            else:
                recorded[key] = [entry] if key.endswith("[]") else entry
    emulator.requests.append(
        _emu.RecordedRequest(
            method=request.method,
            path=request.url.path,
            query=dict(request.query_params),
            headers={k.lower(): v for k, v in request.headers.items()},
            body=recorded,
            raw_path=request.scope.get("raw_path", b"").decode("latin-1"),
        )
    )
    if form is None:
        return _emu._error(400, "BadRequest", "The request body must be multipart/form-data.", type="invalid_request_error")
    name = recorded.get("model") if v1 else request.path_params["deployment"]
    d, refused = _deployment(emulator, request, name, EDITS_SINCE, "imagesEdits")
    if refused is not None or d is None:
        return refused or Response(status_code=500)
    images = uploads.get("image", []) + uploads.get("image[]", [])
    if not images:
        return _bad("missing_required_parameter", "image", "'image' is a required property")
    for field, files in (("image", images), ("mask", uploads.get("mask", []))):
        for upload in files:
            head = await upload.read(8)
            await upload.seek(0)
            if not head.startswith(_IMAGE_SIGNATURES):
                return _bad("invalid_image", field, f"Invalid image file for '{field}': expected a PNG, JPEG or WEBP image.")
    body = {k: v for k, v in recorded.items() if k not in ("image", "image[]", "mask", "model")}
    return await _answer(emulator, request, d, body, edit=True)


async def image_file(emulator: Emulator, request: Request) -> Response:
    """``GET /emulator/images/{id}.png``: an image answered by URL."""
    image = emulator_images(emulator).get(request.path_params["image"])
    if image is None:
        return _emu._error(404, "404", "Resource not found")
    return Response(image, media_type="image/png")
