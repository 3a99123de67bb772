"""The emulator's audio operations: speech, transcriptions and translations.

``POST /openai/deployments/{d}/audio/speech|transcriptions|translations`` and the same under
``/openai/v1/audio/``. As strict as Azure where a client can tell:

* speech takes JSON: ``input`` (a non-empty string of at most 4096 characters) and ``voice``
  are required; ``voice`` and ``response_format`` must be known values, ``speed`` a number from
  0.25 to 4, ``instructions`` a string and only for gpt-4o-mini-tts; each gives Azure's 400
  with ``param``. It exists in the preview api-versions from 2024-02-15-preview (not in the GA
  ones: 404).
* transcriptions and translations take a multipart upload: the ``file`` part is required and
  must be audio (WAV, MP3, FLAC, OGG, M4A/MP4 or WebM by its first bytes, and named with one of
  those extensions, as Azure tells the format by the name) of at most 25 MB
  (413 above, as Azure); ``response_format`` json/text/srt/verbose_json/vtt, ``temperature``
  from 0 to 1, ``timestamp_granularities[]`` word/segment (with ``verbose_json`` only). They
  exist from 2023-09-01-preview (404 before).

A deployment's model decides which it serves (``tts-1``, ``gpt-4o-mini-tts``: speech;
``whisper``, ``gpt-4o-transcribe``: transcriptions and translations); others answer 400
``OperationNotSupported``. Answers are deterministic: speech is a short valid audio file of the
requested format (a real WAV from :mod:`wave`; for the others a small payload with the format's
magic bytes), a transcription the fixed :data:`TRANSCRIPT` (a translation :data:`TRANSLATION`)
in the requested shape, with the duration read from a WAV's header. Quotas (``x-ratelimit-*``,
429) and injected faults apply; ``Faults.drip`` sends the speech audio in ten pieces.

A multipart request is recorded with its form fields (repeated ones as lists) and, for each
file part, ``{"filename", "content_type", "size", "sha256"}``.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import math
import struct
import uuid
import wave
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from . import emulator as _emu
from .families import _OPERATION_HELP, _bad, model_kind

if TYPE_CHECKING:
    from .emulator import Emulator

TRANSCRIPT = "The quick brown fox jumps over the lazy dog."
"""What every transcription says."""
TRANSLATION = "The quick brown fox jumps over the lazy dog (translated)."
"""What every translation says."""
MAX_AUDIO_BYTES = 25 * 1024 * 1024
"""Azure's limit for an audio file (26214400 bytes)."""
VOICES = frozenset({"alloy", "ash", "ballad", "coral", "echo", "fable", "nova", "onyx", "sage", "shimmer", "verse"})
SPEECH_FORMATS = {
    "mp3": "audio/mpeg", "opus": "audio/opus", "aac": "audio/aac",
    "flac": "audio/flac", "wav": "audio/wav", "pcm": "audio/pcm",
}  # fmt: skip
TRANSCRIPTION_FORMATS = ("json", "text", "srt", "verbose_json", "vtt")
AUDIO_EXTENSIONS = frozenset({"flac", "m4a", "mp3", "mp4", "mpeg", "mpga", "oga", "ogg", "wav", "webm"})
"""The file name extensions Azure takes (it tells the format by the name)."""
_NO_TRANSCRIPTION = frozenset({
    "2022-12-01", "2023-05-15", "2022-03-01-preview", "2022-06-01-preview", "2023-03-15-preview",
    "2023-06-01-preview", "2023-07-01-preview", "2023-08-01-preview",
})  # fmt: skip
"""Dated api-versions from before whisper (2023-09-01-preview): no transcriptions or translations."""
_SPEECH_FROM = "2024-02-15-preview"
_SAMPLE_RATE = 24000


def routes(emulator: Emulator) -> list[Route]:
    """The three operations on the classic and the v1 paths."""
    handlers = {"speech": speech, "transcriptions": transcriptions, "translations": transcriptions}
    return [
        Route(f"{base}/audio/{op}", functools.partial(handler, emulator), methods=["POST"])
        for base in ("/openai/deployments/{deployment}", "/openai/v1")
        for op, handler in handlers.items()
    ]


def speech_versions() -> frozenset[str]:
    """The dated api-versions that serve ``audio/speech``: previews from 2024-02-15-preview."""
    return frozenset(v for v in _emu.API_VERSIONS if v.endswith("-preview") and v >= _SPEECH_FROM)


# --------------------------------------------------------------------------- speech


def wav_bytes(seed: str, seconds: float = 0.25, rate: int = _SAMPLE_RATE) -> bytes:
    """A valid mono 16-bit WAV: a tone whose pitch derives from ``seed`` (deterministic)."""
    pitch = 220 + hashlib.sha256(seed.encode()).digest()[0] * 2
    frames = int(seconds * rate)
    samples = struct.pack(f"<{frames}h", *(int(8000 * math.sin(2 * math.pi * pitch * i / rate)) for i in range(frames)))
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples)
    return out.getvalue()


_MAGIC = {
    "mp3": b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\xff\xfb\x90\x64",
    "opus": b"OggS\x00\x02" + b"\x00" * 22 + b"OpusHead",
    "aac": b"\xff\xf1\x50\x80",
    "flac": b"fLaC\x00\x00\x00\x22",
}


def speech_audio(text: str, fmt: str) -> bytes:
    """The emulator's deterministic audio for ``text`` in ``fmt`` (see the module docstring)."""
    wav = wav_bytes(text)
    if fmt == "wav":
        return wav
    samples = wav[44:]
    if fmt == "pcm":
        return samples
    return _MAGIC[fmt] + samples


async def speech(emulator: Emulator, request: Request) -> Response:
    """``POST /openai/deployments/{d}/audio/speech`` and ``/openai/v1/audio/speech``."""
    v1 = "deployment" not in request.path_params
    body, bad = await emulator._record(request)
    denied = emulator._check_auth(request, v1) or emulator._check_version(request, v1)
    if denied is not None:
        return denied
    if not v1 and request.query_params.get("api-version") not in speech_versions():
        return _emu._error(404, "404", "Resource not found")
    if bad is not None:
        return bad
    if not isinstance(body, dict):
        return _emu._error(400, "BadRequest", "The request body must be a JSON object.", type="invalid_request_error")
    name = body.get("model") if v1 else request.path_params["deployment"]
    d = emulator.deployments.get(name) if isinstance(name, str) else None
    if d is None:
        return _emu._deployment_not_found()
    if model_kind(d.model) != "speech":
        return _bad("OperationNotSupported", None,
                    f"The audioSpeech operation does not work with the specified model, {d.model}. {_OPERATION_HELP}")  # fmt: skip
    text = body.get("input")
    if text is None:
        return _bad("missing_required_parameter", "input", "'input' is a required property")
    if not isinstance(text, str) or not text:
        return _bad("invalid_type", "input", "Invalid type for 'input': expected a non-empty string.")
    if len(text) > 4096:
        return _bad("string_above_max_length", "input", "'input' is longer than the maximum of 4096 characters.")
    voice = body.get("voice")
    if voice is None:
        return _bad("missing_required_parameter", "voice", "'voice' is a required property")
    if voice not in VOICES:
        return _bad("invalid_value", "voice", f"Invalid value: {voice!r}. Supported values are: {sorted(VOICES)}.")
    fmt = body.get("response_format", "mp3")
    if fmt not in SPEECH_FORMATS:
        return _bad("invalid_value", "response_format",
                    f"Invalid value: {fmt!r}. Supported values are: {list(SPEECH_FORMATS)}.")  # fmt: skip
    speed = body.get("speed")
    if speed is not None and (isinstance(speed, bool) or not isinstance(speed, int | float) or not 0.25 <= speed <= 4):
        return _bad("invalid_value", "speed", f"Invalid value for 'speed': {speed!r}; expected a number from 0.25 to 4.0.")
    instructions = body.get("instructions")
    if instructions is not None:
        if not isinstance(instructions, str):
            return _bad("invalid_type", "instructions", "Invalid type for 'instructions': expected a string.")
        if d.model.lower().startswith("tts-1"):
            return _bad("invalid_value", "instructions", f"'instructions' is not supported by {d.model}.")
    fault = await emulator._faults(d, request)
    if fault is not None:
        return fault
    limited, rl_headers = emulator._quota(d, _emu._tokens(text))
    if limited is not None:
        return limited
    headers = {"apim-request-id": str(uuid.uuid4()), "x-request-id": str(uuid.uuid4()), "x-ms-region": "East US 2", **rl_headers}
    reply = Response(speech_audio(text, fmt), media_type=SPEECH_FORMATS[fmt], headers=headers)
    if d.faults.drip > 0:
        return _emu._dripped(reply, d.faults.drip)
    return reply


# --------------------------------------------------------------------------- transcriptions


def _is_audio(head: bytes) -> bool:
    return (
        (head[:4] == b"RIFF" and head[8:12] == b"WAVE")
        or head[:3] == b"ID3"
        or head[:2] in (b"\xff\xfb", b"\xff\xf3", b"\xff\xf2")
        or head[:4] in (b"fLaC", b"OggS", b"\x1a\x45\xdf\xa3")
        or head[4:8] == b"ftyp"
    )


def _duration(head: bytes, size: int) -> float:
    """Seconds of audio: from a WAV header's byte rate, else as if 16 kB/s."""
    if head[:4] == b"RIFF" and len(head) >= 32:
        byte_rate: int = struct.unpack("<I", head[28:32])[0]
        if byte_rate:
            return round(max(0, size - 44) / byte_rate, 2)
    return round(size / 16000, 2)


def _stamp(seconds: float, sep: str) -> str:
    ms = round(seconds * 1000)
    return f"{ms // 3600000:02d}:{ms // 60000 % 60:02d}:{ms // 1000 % 60:02d}{sep}{ms % 1000:03d}"


async def _record_form(emulator: Emulator, request: Request) -> tuple[dict[str, Any], dict[str, Any], Response | None]:
    """Parse and record a multipart request: (fields, file parts' info, an error answer or None)."""
    fields: dict[str, Any] = {}
    files: dict[str, Any] = {}
    error: Response | None = None
    ctype = request.headers.get("content-type", "")
    if not ctype.startswith("multipart/form-data"):
        error = _bad("invalid_content_type", None, "The request must be multipart/form-data with a 'file' part.")
    else:
        form = await request.form(max_files=10, max_fields=100)
        for key, value in form.multi_items():
            if isinstance(value, str):
                entry: Any = value
            else:
                digest, size, head = hashlib.sha256(), 0, b""
                while chunk := await value.read(1024 * 1024):
                    if not head:
                        head = chunk[:64]
                    digest.update(chunk)
                    size += len(chunk)
                entry = {"filename": value.filename, "content_type": value.content_type, "size": size,
                         "sha256": digest.hexdigest(), "_head": head}  # fmt: skip
                await value.close()
            target = fields if isinstance(value, str) else files
            if key in target:
                target[key] = [*(target[key] if isinstance(target[key], list) else [target[key]]), entry]
            else:
                target[key] = entry
    public_files = {k: ({x: y for x, y in v.items() if x != "_head"} if isinstance(v, dict) else v) for k, v in files.items()}
    emulator.requests.append(
        _emu.RecordedRequest(
            method=request.method,
            path=request.url.path,
            query=dict(request.query_params),
            headers={k.lower(): v for k, v in request.headers.items()},
            body={**fields, **public_files},
            raw_path=request.scope.get("raw_path", b"").decode("latin-1"),
        )
    )
    return fields, files, error


async def transcriptions(emulator: Emulator, request: Request) -> Response:
    """``POST .../audio/transcriptions`` and ``.../audio/translations`` (classic and v1)."""
    v1 = "deployment" not in request.path_params
    translate = request.url.path.endswith("/translations")
    fields, files, error = await _record_form(emulator, request)
    denied = emulator._check_auth(request, v1) or emulator._check_version(request, v1)
    if denied is not None:
        return denied
    if not v1 and request.query_params.get("api-version") in _NO_TRANSCRIPTION:
        return _emu._error(404, "404", "Resource not found")
    if error is not None:
        return error
    name = fields.get("model") if v1 else request.path_params["deployment"]
    d = emulator.deployments.get(name) if isinstance(name, str) else None
    if d is None:
        return _emu._deployment_not_found()
    if model_kind(d.model) != "transcription":
        what = "audioTranslation" if translate else "audioTranscription"
        return _bad("OperationNotSupported", None,
                    f"The {what} operation does not work with the specified model, {d.model}. {_OPERATION_HELP}")  # fmt: skip
    upload = files.get("file")
    if upload is None:
        return _bad("missing_required_parameter", "file", "'file' is a required property")
    if isinstance(upload, list):
        return _bad("invalid_value", "file", "Send one 'file' part.")
    if upload["size"] > MAX_AUDIO_BYTES:
        return _emu._error(413, "RequestEntityTooLarge", f"Maximum content size limit ({MAX_AUDIO_BYTES}) exceeded.")
    if not _is_audio(upload["_head"]) or str(upload["filename"] or "").rpartition(".")[2].lower() not in AUDIO_EXTENSIONS:
        return _bad("invalid_file_format", "file", "Invalid file format. Supported formats: "
                    "['flac', 'm4a', 'mp3', 'mp4', 'mpeg', 'mpga', 'oga', 'ogg', 'wav', 'webm']")  # fmt: skip
    fmt = fields.get("response_format", "json")
    if fmt not in TRANSCRIPTION_FORMATS:
        return _bad("invalid_value", "response_format", f"Invalid value: {fmt!r}. Supported values are: {list(TRANSCRIPTION_FORMATS)}.")
    temperature = fields.get("temperature")
    if temperature is not None:
        try:
            value = float(temperature)
        except ValueError:
            value = math.nan
        if not 0 <= value <= 1:
            return _bad("invalid_value", "temperature", f"Invalid value for 'temperature': {temperature!r}; expected 0 to 1.")
    granularities = fields.get("timestamp_granularities[]", [])
    granularities = granularities if isinstance(granularities, list) else [granularities]
    for g in granularities:
        if g not in ("word", "segment"):
            return _bad("invalid_value", "timestamp_granularities", f"Invalid value: {g!r}. Supported values are: 'word' and 'segment'.")
    if granularities and fmt != "verbose_json":
        return _bad("invalid_value", "timestamp_granularities", "timestamp_granularities requires response_format 'verbose_json'.")
    for key in ("language", "prompt"):
        if isinstance(fields.get(key), list):
            return _bad("invalid_type", key, f"Invalid type for {key!r}: expected a string.")
    fault = await emulator._faults(d, request)
    if fault is not None:
        return fault
    text = TRANSLATION if translate else TRANSCRIPT
    limited, rl_headers = emulator._quota(d, _emu._tokens(text))
    if limited is not None:
        return limited
    headers = {"apim-request-id": str(uuid.uuid4()), "x-request-id": str(uuid.uuid4()), "x-ms-region": "East US 2", **rl_headers}
    duration = _duration(upload["_head"], upload["size"])
    if fmt == "text":
        return PlainTextResponse(text + "\n", headers=headers)
    if fmt == "srt":
        return PlainTextResponse(f"1\n{_stamp(0, ',')} --> {_stamp(duration, ',')}\n{text}\n\n", headers=headers)
    if fmt == "vtt":
        return PlainTextResponse(f"WEBVTT\n\n{_stamp(0, '.')} --> {_stamp(duration, '.')}\n{text}\n\n", headers=headers)
    if fmt == "json":
        return JSONResponse({"text": text}, headers=headers)
    words = text.split()
    verbose: dict[str, Any] = {
        "task": "translate" if translate else "transcribe",
        "language": "english",
        "duration": duration,
        "text": text,
    }
    if "segment" in granularities or not granularities:
        verbose["segments"] = [{"id": 0, "seek": 0, "start": 0.0, "end": duration, "text": text, "tokens": [],
                                "temperature": 0.0, "avg_logprob": -0.2, "compression_ratio": 1.0,
                                "no_speech_prob": 0.0}]  # fmt: skip
    if "word" in granularities:
        step = duration / len(words)
        verbose["words"] = [{"word": w.strip(".,"), "start": round(i * step, 2), "end": round((i + 1) * step, 2)}
                            for i, w in enumerate(words)]  # fmt: skip
    return Response(json.dumps(verbose), media_type="application/json", headers=headers)
