"""The emulator's embeddings operation: ``POST /openai/deployments/{d}/embeddings`` and ``/openai/v1/embeddings``.

As strict as Azure where a client can tell: ``input`` is required and must be a string, a
non-empty list of strings, a token list or a list of token lists; ``encoding_format`` is
``float`` or ``base64``; ``dimensions`` is a positive integer, accepted only by
``text-embedding-3`` models and no larger than the model's size; each gives Azure's 400 with
``param``. Api-versions from before embeddings existed answer 404. Chat models refuse the
operation (400 ``OperationNotSupported``), as embedding models refuse chat.

Vectors are deterministic: derived from each input's SHA-256, unit length, ``dimensions`` long
(else the model's size); ``base64`` is the little-endian float32 bytes, as OpenAI sends them.
Quotas (``x-ratelimit-*``, 429) and injected faults apply.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import struct
import uuid
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from . import emulator as _emu
from .families import _OPERATION_HELP, _bad, model_kind

if TYPE_CHECKING:
    from .emulator import Emulator

MODEL_DIMENSIONS = {"text-embedding-3-large": 3072, "text-embedding-3-small": 1536, "text-embedding-ada-002": 1536}
"""Each embedding model's native size (other embedding models: 1536)."""
NOT_SERVED_VERSIONS = frozenset({"2022-03-01-preview", "2022-06-01-preview"})
"""Dated api-versions without the embeddings operation (404, as Azure answers them)."""


def native_dimensions(model: str) -> int:
    """The vector size of ``model`` when no ``dimensions`` is asked for."""
    for name, size in MODEL_DIMENSIONS.items():
        if model.lower().startswith(name):
            return size
    return 1536


def vector(text: str, size: int) -> list[float]:
    """The deterministic unit vector of ``size`` floats for one input (its text or token list as JSON)."""
    out: list[float] = []
    counter = 0
    while len(out) < size:
        digest = hashlib.sha256(f"{counter}:{text}".encode()).digest()
        out.extend((b - 127.5) / 127.5 for b in digest)
        counter += 1
    out = out[:size]
    norm = math.sqrt(sum(v * v for v in out)) or 1.0
    return [round(v / norm, 6) for v in out]


def _inputs(value: Any) -> list[str] | None:
    """Each input as the text its vector derives from; None when ``input`` has a wrong shape."""
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not value:
        return None
    if all(isinstance(v, str) for v in value):
        return list(value)
    if all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return [json.dumps(value)]
    if all(isinstance(v, list) and v and all(isinstance(t, int) and not isinstance(t, bool) for t in v) for v in value):
        return [json.dumps(v) for v in value]
    return None


async def embeddings(emulator: Emulator, request: Request) -> Response:
    """``POST /openai/deployments/{d}/embeddings`` and ``/openai/v1/embeddings``."""
    v1 = "deployment" not in request.path_params
    body, bad = await emulator._record(request)
    denied = emulator._check_auth(request, v1) or emulator._check_version(request, v1)
    if denied is not None:
        return denied
    if not v1 and request.query_params.get("api-version") in NOT_SERVED_VERSIONS:
        return _emu._error(404, "404", "Resource not found")
    if bad is not None:
        return bad
    if not isinstance(body, dict):
        return _emu._error(400, "BadRequest", "The request body must be a JSON object.", type="invalid_request_error")
    name = body.get("model") if v1 else request.path_params["deployment"]
    d = emulator.deployments.get(name) if isinstance(name, str) else None
    if d is None:
        return _emu._deployment_not_found()
    if model_kind(d.model) != "embedding":
        return _bad(
            "OperationNotSupported",
            None,
            f"The embeddings operation does not work with the specified model, {d.model}. {_OPERATION_HELP}",
        )
    if "input" not in body or body["input"] is None:
        return _bad("missing_required_parameter", "input", "'input' is a required property")
    texts = _inputs(body["input"])
    if texts is None:
        return _bad(
            "invalid_type",
            "input",
            "Invalid type for 'input': expected a string, an array of strings, an array of integers "
            "or an array of arrays of integers.",
        )
    encoding = body.get("encoding_format")
    if encoding is not None and encoding not in ("float", "base64"):
        return _bad(
            "invalid_value",
            "encoding_format",
            f"Invalid value: {encoding!r}. Supported values are: 'float' and 'base64'.",
        )
    size = native_dimensions(d.model)
    dimensions = body.get("dimensions")
    if dimensions is not None:
        if isinstance(dimensions, bool) or not isinstance(dimensions, int) or dimensions < 1:
            return _bad("invalid_value", "dimensions", f"Invalid value for 'dimensions': {dimensions!r}; expected a positive integer.")
        if not d.model.lower().startswith("text-embedding-3"):
            return _bad("invalid_value", "dimensions", f"This model does not support specifying dimensions ({d.model}).")
        if dimensions > size:
            return _bad("invalid_value", "dimensions", f"'dimensions' must be at most {size} for {d.model}.")
        size = dimensions
    for key in ("user", "input_type"):
        if key in body and not isinstance(body[key], str):
            return _bad("invalid_type", key, f"Invalid type for {key!r}: expected a string.")
    fault = await emulator._faults(d, request)
    if fault is not None:
        return fault
    tokens = sum(_emu._tokens(t) for t in texts)
    limited, rl_headers = emulator._quota(d, tokens)
    if limited is not None:
        return limited
    data = []
    for i, text in enumerate(texts):
        floats = vector(text, size)
        encoded: Any = floats
        if encoding == "base64":
            encoded = base64.b64encode(struct.pack(f"<{size}f", *floats)).decode()
        data.append({"object": "embedding", "index": i, "embedding": encoded})
    headers = {"apim-request-id": str(uuid.uuid4()), "x-request-id": str(uuid.uuid4()), "x-ms-region": "East US 2", **rl_headers}
    reply = {"object": "list", "data": data, "model": d.model, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
    return JSONResponse(reply, headers=headers)
