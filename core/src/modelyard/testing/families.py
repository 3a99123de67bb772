"""What each Azure model family accepts, enforced by the emulator from a deployment's ``model``.

Azure checks parameters against the model behind a deployment, not against its name, and so
does the emulator: ``Deployment("my-o3-deployment", model="o3-mini")`` behaves like an o3-mini
deployment whatever it is called. Kinds, from the model name:

* ``o_series`` (``o1``, ``o3``, ``o3-mini``, ``o4-mini`` ...) and ``gpt5`` (``gpt-5``,
  ``gpt-5-mini``, ``gpt-5.1`` ...): reasoning models. ``max_tokens`` gets 400
  ``unsupported_parameter`` ("use max_completion_tokens"), ``temperature`` other than 1 gets
  400 ``unsupported_value``, ``top_p``, penalties, ``logprobs``, ``top_logprobs`` and
  ``logit_bias`` get 400 ``unsupported_parameter``; ``reasoning_effort`` is checked against
  the model's levels; the usage reports ``completion_tokens_details.reasoning_tokens`` > 0.
* ``o1_legacy`` (``o1-mini``, ``o1-preview``): as o-series, and also no ``system`` or
  ``developer`` message, no ``stream``, no tools, no ``reasoning_effort``.
* ``gpt-5-chat``: an ordinary chat model.
* any model: a ``developer`` message on a dated api-version older than ``2024-12-01-preview``
  gets 400 ``invalid_value`` (those specs have no such role).
* ``instruct`` (``gpt-35-turbo-instruct``, ``davinci-002``, ``babbage-002``): serves only
  ``/completions``; chat on it is 400 ``OperationNotSupported``, as completions on a chat
  model is.
* ``embedding`` (``text-embedding-3-small`` ...): serves only ``/embeddings``
  (:mod:`modelyard.testing.embeddings`); chat on it is 400 ``OperationNotSupported``.
* ``image`` (``dall-e-3``, ``gpt-image-1``): serves only ``/images/*``
  (:mod:`modelyard.testing.images`); chat on it is 400 ``OperationNotSupported``.
* ``speech`` (``tts-1``, ``gpt-4o-mini-tts``) and ``transcription`` (``whisper``,
  ``gpt-4o-transcribe``): serve only ``/audio/...`` (:mod:`modelyard.testing.audio`); chat on
  them is 400 ``OperationNotSupported``.
* ``audio`` (``gpt-4o-audio-preview`` ...): ``modalities: ["text", "audio"]`` needs ``audio``
  ``{voice, format}`` and answers with ``message.audio`` {id, data (base64 WAV), transcript,
  expires_at} (``delta.audio`` in streams); other models refuse audio output.

The messages follow the wording Azure relays from the model service.
"""

from __future__ import annotations

import base64
import json
import re
import struct
import time
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from . import _schema
from . import emulator as _emu

if TYPE_CHECKING:
    from .emulator import Deployment, Emulator

__all__ = ["audio_pieces", "check_chat", "completions", "decorate", "model_kind"]

REASONING_KINDS = frozenset({"o_series", "o1_legacy", "gpt5"})
SAMPLING_PARAMS = ("top_p", "presence_penalty", "frequency_penalty", "logprobs", "top_logprobs", "logit_bias")
REASONING_TOKENS = {"none": 0, "minimal": 8, "low": 32, "medium": 64, "high": 128}
VOICES = frozenset({"alloy", "ash", "ballad", "coral", "echo", "sage", "shimmer", "verse"})
AUDIO_FORMATS = frozenset({"wav", "mp3", "flac", "opus", "pcm16"})
DEVELOPER_ROLE_SINCE = "2024-12-01"
"""The first api-version (``2024-12-01-preview``) whose spec has the ``developer`` role."""
COMPLETIONS_DEFAULT_MAX_TOKENS = 16
"""Azure's (and OpenAI's) default ``max_tokens`` on ``/completions``."""

_OPERATION_HELP = (
    "Please choose different model and try again. You can learn more about which models can be "
    "used with each operation here: https://go.microsoft.com/fwlink/?linkid=2197993."
)


def model_kind(model: str) -> str:
    """The kind of an underlying model name: see the module docstring."""
    m = model.lower()
    if re.match(r"o1-?(mini|preview)", m):
        return "o1_legacy"
    if re.match(r"o[1-9](?![0-9])", m):
        return "o_series"
    if re.match(r"gpt-5(\.[0-9]+)?-chat", m):
        return "chat"
    if re.match(r"gpt-5(?![0-9])", m):
        return "gpt5"
    if "instruct" in m or m.startswith(("davinci", "babbage")):
        return "instruct"
    if m.startswith("tts") or "-tts" in m:
        return "speech"
    if "whisper" in m or "transcribe" in m:
        return "transcription"
    if "audio" in m:
        return "audio"
    if "embedding" in m:
        return "embedding"
    if m.startswith(("dall-e", "gpt-image")):
        return "image"
    return "chat"


def _effort_levels(model: str, kind: str) -> tuple[str, ...]:
    if kind == "gpt5":
        newer = re.match(r"gpt-5\.[1-9]", model.lower()) is not None
        return ("none", "low", "medium", "high") if newer else ("minimal", "low", "medium", "high")
    return ("low", "medium", "high")


def _bad(code: str, param: str | None, message: str) -> JSONResponse:
    return JSONResponse(
        {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}},
        status_code=400,
    )


def _unsupported_parameter(param: str, hint: str = "") -> JSONResponse:
    return _bad(
        "unsupported_parameter", param, f"Unsupported parameter: '{param}' is not supported with this model.{hint}"
    )


def _unsupported_value(param: str, value: Any, allowed: str) -> JSONResponse:
    shown = json.dumps(value) if isinstance(value, bool) else value
    return _bad(
        "unsupported_value", param, f"Unsupported value: '{param}' does not support {shown} with this model. {allowed}"
    )


def _levels(levels: tuple[str, ...]) -> str:
    quoted = [f"'{x}'" for x in levels]
    return ", ".join(quoted[:-1]) + f", and {quoted[-1]}"


def check_chat(d: Deployment, body: dict[str, Any], api_version: str | None = None) -> Response | None:
    """Refuse a chat request the deployment's model (or the api-version) would refuse; None when it passes."""
    kind = model_kind(d.model)
    if api_version is not None and api_version[:10] < DEVELOPER_ROLE_SINCE:
        for i, m in enumerate(body.get("messages") or []):
            if isinstance(m, dict) and m.get("role") == "developer":
                return _bad(
                    "invalid_value",
                    f"messages[{i}].role",
                    "Invalid value: 'developer'. Supported values are: 'system', 'assistant', 'user', "
                    f"'function', and 'tool'. (The developer role needs api-version {DEVELOPER_ROLE_SINCE}-preview "
                    "or later.)",
                )
    if kind in ("instruct", "embedding", "image", "speech", "transcription"):
        return _bad(
            "OperationNotSupported",
            None,
            f"The chatCompletion operation does not work with the specified model, {d.model}. {_OPERATION_HELP}",
        )
    modalities = body.get("modalities") or []
    if "audio" in modalities:
        if kind != "audio":
            return _bad("invalid_value", "modalities", f"This model does not support audio output ({d.model}).")
        audio = body.get("audio")
        if not isinstance(audio, dict):
            return _bad("missing_required_parameter", "audio", "Missing required parameter: 'audio'.")
        if audio.get("voice") not in VOICES:
            return _bad("invalid_value", "audio.voice", f"Invalid value: {audio.get('voice')!r}. Supported values are: {sorted(VOICES)}.")
        if audio.get("format") not in AUDIO_FORMATS:
            return _bad("invalid_value", "audio.format", f"Invalid value: {audio.get('format')!r}. Supported values are: {sorted(AUDIO_FORMATS)}.")
    if kind not in REASONING_KINDS:
        return None
    if "max_tokens" in body:
        return _unsupported_parameter("max_tokens", " Use 'max_completion_tokens' instead.")
    for param in SAMPLING_PARAMS:
        if param in body:
            return _unsupported_parameter(param)
    if "temperature" in body and body["temperature"] != 1:
        return _unsupported_value("temperature", body["temperature"], "Only the default (1) value is supported.")
    if "verbosity" in body and kind != "gpt5":
        return _unsupported_parameter("verbosity")
    if kind == "o1_legacy":
        for i, m in enumerate(body.get("messages") or []):
            role = m.get("role") if isinstance(m, dict) else None
            if role in ("system", "developer"):
                return _bad(
                    "unsupported_value",
                    f"messages[{i}].role",
                    f"Unsupported value: 'messages[{i}].role' does not support '{role}' with this model.",
                )
        if body.get("stream"):
            return _unsupported_value("stream", True, "Only the default (false) value is supported.")
        for param in ("tools", "functions", "reasoning_effort"):
            if param in body:
                return _unsupported_parameter(param)
        return None
    effort = body.get("reasoning_effort")
    levels = _effort_levels(d.model, kind)
    if effort is not None and effort not in levels:
        return _unsupported_value(
            "reasoning_effort", f"'{effort}'", f"Supported values are: {_levels(levels)}."
        )
    return None


def _wav(seconds: float, rate: int = 24_000) -> bytes:
    """A mono 16-bit PCM WAV of silence: small, valid, deterministic."""
    frames = int(seconds * rate)
    data = b"\x00\x00" * frames
    header = struct.pack("<4sI4s4sIHHIIHH4sI", b"RIFF", 36 + len(data), b"WAVE", b"fmt ", 16, 1, 1, rate,
                         rate * 2, 2, 16, b"data", len(data))  # fmt: skip
    return header + data


def decorate(d: Deployment, body: dict[str, Any], completion: dict[str, Any]) -> None:
    """Add what the model kind reports: reasoning tokens, audio output."""
    kind = model_kind(d.model)
    usage = completion["usage"]
    n = len(completion["choices"])
    if kind in REASONING_KINDS:
        reasoning = REASONING_TOKENS.get(str(body.get("reasoning_effort", "medium")), 64) * n
        usage["completion_tokens"] += reasoning
        usage["total_tokens"] += reasoning
        usage["completion_tokens_details"]["reasoning_tokens"] = reasoning
    if kind == "audio" and "audio" in (body.get("modalities") or []):
        audio_tokens = 0
        for choice in completion["choices"]:
            message = choice["message"]
            transcript = message.get("content") or ""
            words = len(transcript.split())
            message["audio"] = {
                "id": f"audio_{uuid.uuid4().hex[:24]}",
                "data": base64.b64encode(_wav(0.01 * words)).decode(),
                "expires_at": completion["created"] + 3600,
                "transcript": transcript,
            }
            message["content"] = None
            audio_tokens += 10 * words
        usage["completion_tokens_details"]["audio_tokens"] = audio_tokens
        usage["completion_tokens"] += audio_tokens
        usage["total_tokens"] += audio_tokens


def audio_pieces(audio: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``delta.audio`` pieces of a streamed audio reply: id, transcript, data, expiry."""
    words = re.findall(r"\S+\s*", audio.get("transcript") or "")
    pieces: list[dict[str, Any]] = [{"audio": {"id": audio["id"], "transcript": ""}}]
    pieces += [{"audio": {"transcript": w}} for w in words]
    data = audio.get("data") or ""
    pieces += [{"audio": {"data": data[i : i + 4096]}} for i in range(0, len(data), 4096)]
    pieces.append({"audio": {"id": audio["id"], "expires_at": audio["expires_at"]}})
    return pieces


# --------------------------------------------------------------------------- /completions


def _logprobs(text: str, k: int) -> dict[str, Any]:
    tokens = re.findall(r"\s*\S+", text)
    offsets, at = [], 0
    for t in tokens:
        offsets.append(at)
        at += len(t)
    return {
        "tokens": tokens,
        "token_logprobs": [-0.25] * len(tokens),
        "top_logprobs": [{t: -0.25} for t in tokens] if k else None,
        "text_offset": offsets,
    }


async def completions(emulator: Emulator, request: Request) -> Response:
    """``POST /openai/deployments/{d}/completions`` and ``/openai/v1/completions``."""
    v1 = "deployment" not in request.path_params
    body, bad = await emulator._record(request)
    denied = emulator._check_auth(request, v1) or emulator._check_version(request, v1)
    if denied is not None:
        return denied
    if bad is not None:
        return bad
    if not isinstance(body, dict):
        return _emu._error(400, "BadRequest", "The request body must be a JSON object.", type="invalid_request_error")
    name = body.get("model") if v1 else request.path_params["deployment"]
    d = emulator.deployments.get(name) if isinstance(name, str) else None
    if d is None:
        return _emu._deployment_not_found()
    if model_kind(d.model) != "instruct":
        return _bad(
            "OperationNotSupported",
            None,
            f"The completion operation does not work with the specified model, {d.model}. {_OPERATION_HELP}",
        )
    invalid = _schema.first_error("createCompletionRequest", body)  # as Azure: a 400 naming the field
    if invalid is not None:
        return _emu._error(400, None, invalid.message, type="invalid_request_error", param=invalid.param)
    prompt = body.get("prompt")
    prompts = [prompt] if isinstance(prompt, str) else prompt
    if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) for p in prompts):
        return _bad("invalid_value", "prompt", "'prompt' must be a string or an array of strings.")
    for param in ("messages", "tools", "tool_choice", "response_format", "functions"):
        if param in body:
            return _bad("unrecognized_argument", param, f"Unrecognized request argument supplied: {param}")
    logprobs = body.get("logprobs")
    if logprobs is not None and (isinstance(logprobs, bool) or not isinstance(logprobs, int) or not 0 <= logprobs <= 5):
        return _bad("invalid_value", "logprobs", f"Invalid value for 'logprobs': {logprobs!r}; expected an integer 0-5.")
    fault = await emulator._faults(d, request)
    if fault is not None:
        return fault
    prompt_tokens = sum(_emu._tokens(p) for p in prompts)
    max_tokens = int(body.get("max_tokens") or COMPLETIONS_DEFAULT_MAX_TOKENS)
    limited, rl_headers = emulator._quota(d, prompt_tokens + max_tokens)
    if limited is not None:
        return limited
    headers = {"apim-request-id": str(uuid.uuid4()), "x-request-id": str(uuid.uuid4()), **rl_headers}
    if any(_emu.FILTER_PROMPT_TRIGGER in p for p in prompts):
        return JSONResponse(
            {"error": {"message": "The response was filtered due to the prompt triggering Azure OpenAI's content "
                       "management policy. Please modify your prompt and retry.", "type": None, "param": "prompt",
                       "code": "content_filter", "status": 400,
                       "innererror": {"code": "ResponsibleAIPolicyViolation",
                                      "content_filter_result": _emu._BLOCKED_RESULTS}}},
            status_code=400,
            headers=headers,
        )  # fmt: skip
    n = int(body.get("n") or 1)
    choices = []
    completion_tokens = 0
    for i, p in enumerate(prompts):
        reply = f" This is {d.name} on the modelyard emulator. You said: {p}"
        words = reply.split(" ")
        finish = "stop"
        if _emu._tokens(reply) > max_tokens:
            while words and _emu._tokens(" ".join(words)) > max_tokens:
                words.pop()
            reply, finish = " ".join(words), "length"
        text = (p + reply) if body.get("echo") else reply
        for j in range(n):
            choices.append({"text": text, "index": i * n + j, "finish_reason": finish,
                            "logprobs": _logprobs(text, logprobs) if logprobs is not None else None,
                            "content_filter_results": dict(_emu._SAFE_RESULTS)})  # fmt: skip
            completion_tokens += _emu._tokens(reply)
    completion = {
        "id": f"cmpl-{uuid.uuid4().hex[:29]}",
        "object": "text_completion",
        "created": int(time.time()),
        "model": d.model,
        "prompt_filter_results": [{"prompt_index": i, "content_filter_results": _emu._PROMPT_RESULTS}
                                  for i in range(len(prompts))],
        "choices": choices,
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }  # fmt: skip
    if body.get("stream"):
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        return StreamingResponse(
            _stream(completion, include_usage),
            media_type="text/event-stream",
            headers={**headers, "cache-control": "no-cache, must-revalidate", "x-accel-buffering": "no"},
        )
    return JSONResponse(completion, headers=headers)


async def _stream(completion: dict[str, Any], include_usage: bool) -> AsyncIterator[bytes]:
    def event(obj: dict[str, Any]) -> bytes:
        return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"

    head = {"id": completion["id"], "object": "text_completion", "created": completion["created"],
            "model": completion["model"]}  # fmt: skip
    yield event({"id": "", "object": "", "created": 0, "model": "", "choices": [],
                 "prompt_filter_results": completion["prompt_filter_results"]})  # fmt: skip
    for choice in completion["choices"]:
        for piece in re.findall(r"\s*\S+", choice["text"]):
            yield event({**head, "choices": [{"text": piece, "index": choice["index"], "logprobs": None,
                                              "finish_reason": None,
                                              "content_filter_results": choice["content_filter_results"]}]})  # fmt: skip
        yield event({**head, "choices": [{"text": "", "index": choice["index"], "logprobs": None,
                                          "finish_reason": choice["finish_reason"]}]})  # fmt: skip
    if include_usage:
        yield event({**head, "choices": [], "usage": completion["usage"]})
    yield b"data: [DONE]\n\n"
