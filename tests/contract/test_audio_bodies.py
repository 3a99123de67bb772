"""Every audio request the SDK and the proxy send validates, strictly, against Microsoft's specs.

* speech: the JSON body against ``createSpeechRequest`` of the 2025-04-01-preview spec (speech
  is preview-only on the dated api-versions; that spec wrongly files the body under
  multipart/form-data, the schema is the JSON one Azure takes), and on the v1 API against the
  inline schema of ``/audio/speech`` in the v1 preview spec;
* transcriptions and translations: the multipart form the emulator received, each field
  against the request's form schema (``createTranscriptionRequest`` /
  ``createTranslationRequest``, text values read as the schema's types, ``file`` a file part),
  and on the v1 API the field names against the v1 preview spec.

Keys a spec does not declare fail (see ``test_request_bodies._strict``), so a leaked ``api_key``,
``base_model`` or ``drop_params`` in a body or a form fails these tests.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cache
from typing import Any

import jsonschema
import modelyard
import pytest
from modelyard.testing import KEY, MASTER_KEY, Emulator, litellm_params, running_proxy
from modelyard.testing.audio import wav_bytes
from modelyard.testing.emulator import Deployment

from .test_request_bodies import SPEC_FILES, SPECS, _nullable, _strict, assert_conforms

TTS, WHISPER = "contract-tts", "contract-whisper"
PREVIEW = "2025-04-01-preview"
V1_PREVIEW_SPEC = "azure-v1-preview-generated.json"
WAV = wav_bytes("contract")
# Control and connection settings that must never reach a body.
LEAKS = {"drop_params": True, "base_model": "azure/whisper", "num_retries": 0, "timeout": 30}


@pytest.fixture
def audio(emulator: Emulator) -> Iterator[Emulator]:
    emulator.add_deployment(Deployment(TTS, model="gpt-4o-mini-tts"))
    emulator.add_deployment(Deployment(WHISPER, model="whisper"))
    yield emulator
    emulator.deployments.pop(TTS, None)
    emulator.deployments.pop(WHISPER, None)


# ------------------------------------------------------------------------ validators


def assert_speech_classic(body: dict[str, Any]) -> None:
    assert_conforms(PREVIEW, body, "createSpeechRequest")


@cache
def _v1_preview() -> dict[str, Any]:
    return json.loads((SPECS / V1_PREVIEW_SPEC).read_text())  # type: ignore[no-any-return]


def _open_enums(node: Any) -> Any:
    """The generated v1 specs write an open enum as ``oneOf: [{enum}, {type: string}]``; a known
    value matches both, which ``oneOf`` refuses: read it as ``anyOf``, as the spec means."""
    if isinstance(node, list):
        return [_open_enums(n) for n in node]
    if not isinstance(node, dict):
        return node
    return {("anyOf" if k == "oneOf" else k): _open_enums(v) for k, v in node.items()}


@cache
def _v1_speech_validator() -> jsonschema.Validator:
    spec = _open_enums(_v1_preview())
    schemas = _nullable(spec["components"]["schemas"])
    body = spec["paths"]["/audio/speech"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    root = {**_strict(_nullable(body), schemas), "components": {"schemas": {k: _strict(v, schemas) for k, v in schemas.items()}}}
    return jsonschema.Draft202012Validator(root)


def assert_speech_v1(body: dict[str, Any]) -> None:
    errors = [f"{list(e.path)}: {e.message}" for e in _v1_speech_validator().iter_errors(body)]
    assert not errors, errors


def _typed(value: Any, schema: dict[str, Any]) -> Any:
    """A form field's text read as its schema's type (``temperature`` "0.2" -> 0.2)."""
    kind = schema.get("type")
    if kind == "array":
        return [_typed(v, schema.get("items", {})) for v in (value if isinstance(value, list) else [value])]
    if kind in ("number", "integer") and isinstance(value, str):
        try:
            return float(value) if kind == "number" else int(value)
        except ValueError:
            return value
    return value


def assert_form_classic(api_version: str, schema_name: str, form: dict[str, Any]) -> None:
    """Each form field against ``schema_name`` of the dated spec: declared, of its type; ``file`` a file part."""
    spec = json.loads((SPECS / SPEC_FILES[api_version]).read_text())
    schemas = _nullable(spec["components"]["schemas"])
    schema = _strict(schemas[schema_name], schemas)
    assert isinstance(schema, dict)
    props = schema["properties"]
    body: dict[str, Any] = {}
    for name, value in form.items():
        assert name in props, f"{name!r} is not a field of {schema_name} ({api_version})"
        if props[name].get("format") == "binary":
            assert isinstance(value, dict) and value["size"] > 0, f"{name!r} must be a file part"
            body[name] = "<binary>"
        else:
            assert isinstance(value, str | list), f"{name!r} must be a form field"
            body[name] = _typed(value, props[name])
    root = {**schema, "components": {"schemas": {k: _strict(v, schemas) for k, v in schemas.items()}}}
    errors = [f"{list(e.path)}: {e.message}" for e in jsonschema.Draft202012Validator(root).iter_errors(body)]
    assert not errors, errors


def assert_form_v1(path: str, form: dict[str, Any]) -> None:
    """The v1 preview spec types these fields loosely: every name declared, the required ones present."""
    schema = _v1_preview()["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
    names = {k.removesuffix("[]") for k in form}
    assert names <= set(schema["properties"]), names - set(schema["properties"])
    assert set(schema["required"]) <= names


# ------------------------------------------------------------------------ speech

SPEECH = {
    "minimal": {"input": "Hello", "voice": "alloy"},
    "all": {"input": "Hello", "voice": "nova", "response_format": "wav", "speed": 1.25, "instructions": "Calm."},
    "opus": {"input": "x", "voice": "echo", "response_format": "opus"},
}


@pytest.mark.parametrize("case", sorted(SPEECH))
def test_classic_speech_body_conforms(api_base: str, audio: Emulator, case: str) -> None:
    params = dict(SPEECH[case])
    modelyard.speech(f"azure/{TTS}", params.pop("input"), api_base=api_base, api_key=KEY, api_version=PREVIEW,
                     **params, **LEAKS).read()  # fmt: skip
    [seen] = audio.requests
    assert seen.path == f"/openai/deployments/{TTS}/audio/speech"
    assert seen.body == SPEECH[case]
    assert_speech_classic(seen.body)


@pytest.mark.parametrize("case", sorted(SPEECH))
def test_v1_speech_body_conforms(api_base: str, audio: Emulator, case: str) -> None:
    params = dict(SPEECH[case])
    modelyard.speech(f"azure/{TTS}", api_base=api_base, api_key=KEY, api_version="v1", **params, **LEAKS).read()
    [seen] = audio.requests
    assert seen.path == "/openai/v1/audio/speech"
    assert seen.body == {**SPEECH[case], "model": TTS}
    assert_speech_v1(seen.body)


def test_proxy_speech_body_conforms(api_base: str, audio: Emulator) -> None:
    import openai

    model_list = [{"model_name": "tts", "litellm_params": litellm_params(api_base, TTS, api_version=PREVIEW),
                   "model_info": {"mode": "audio_speech"}}]  # fmt: skip
    with running_proxy({"model_list": model_list}) as proxy:
        c = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key=MASTER_KEY, max_retries=0)
        with c.audio.speech.with_streaming_response.create(model="tts", **SPEECH["all"]) as r:  # type: ignore[arg-type]
            r.read()
    [seen] = audio.requests
    assert seen.body == SPEECH["all"]
    assert_speech_classic(seen.body)


# ------------------------------------------------------------------------ transcriptions, translations

GA_TRANSCRIPTION = {
    "minimal": {},
    "all": {"response_format": "verbose_json", "language": "en", "prompt": "Foxes.", "temperature": 0.2},
    "srt": {"response_format": "srt"},
}
PREVIEW_TRANSCRIPTION = {**GA_TRANSCRIPTION, "granularities": {"response_format": "verbose_json", "timestamp_granularities": ["word", "segment"]}}
TRANSLATION = {"minimal": {}, "all": {"response_format": "json", "prompt": "In English.", "temperature": 0.5}}


@pytest.mark.parametrize(("api_version", "case"), [
    *(("2024-10-21", c) for c in sorted(GA_TRANSCRIPTION)), *((PREVIEW, c) for c in sorted(PREVIEW_TRANSCRIPTION)),
])  # fmt: skip
def test_classic_transcription_form_conforms(api_base: str, audio: Emulator, api_version: str, case: str) -> None:
    modelyard.transcription(f"azure/{WHISPER}", ("clip.wav", WAV), api_base=api_base, api_key=KEY,
                            api_version=api_version, **PREVIEW_TRANSCRIPTION[case], **LEAKS)  # fmt: skip
    [seen] = audio.requests
    assert seen.path == f"/openai/deployments/{WHISPER}/audio/transcriptions"
    assert seen.headers["content-type"].startswith("multipart/form-data; boundary=")
    assert_form_classic(api_version, "createTranscriptionRequest", seen.body)


@pytest.mark.parametrize("api_version", sorted(SPEC_FILES))
@pytest.mark.parametrize("case", sorted(TRANSLATION))
def test_classic_translation_form_conforms(api_base: str, audio: Emulator, api_version: str, case: str) -> None:
    modelyard.translation(f"azure/{WHISPER}", ("clip.wav", WAV), api_base=api_base, api_key=KEY,
                          api_version=api_version, **TRANSLATION[case], **LEAKS)  # fmt: skip
    [seen] = audio.requests
    assert seen.path == f"/openai/deployments/{WHISPER}/audio/translations"
    assert_form_classic(api_version, "createTranslationRequest", seen.body)


@pytest.mark.parametrize("case", sorted(PREVIEW_TRANSCRIPTION))
def test_v1_transcription_and_translation_forms_conform(api_base: str, audio: Emulator, case: str) -> None:
    modelyard.transcription(f"azure/{WHISPER}", WAV, api_base=api_base, api_key=KEY, api_version="v1",
                            **PREVIEW_TRANSCRIPTION[case], **LEAKS)  # fmt: skip
    modelyard.translation(f"azure/{WHISPER}", WAV, api_base=api_base, api_key=KEY, api_version="v1", **LEAKS)
    transcribed, translated = audio.requests
    assert (transcribed.path, translated.path) == ("/openai/v1/audio/transcriptions", "/openai/v1/audio/translations")
    assert transcribed.body["model"] == translated.body["model"] == WHISPER
    assert_form_v1("/audio/transcriptions", transcribed.body)
    assert_form_v1("/audio/translations", translated.body)


def test_proxy_transcription_form_conforms(api_base: str, audio: Emulator) -> None:
    import openai

    model_list = [{"model_name": "w", "litellm_params": litellm_params(api_base, WHISPER, api_version=PREVIEW),
                   "model_info": {"mode": "audio_transcription"}}]  # fmt: skip
    with running_proxy({"model_list": model_list}) as proxy:
        c = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key=MASTER_KEY, max_retries=0)
        c.audio.transcriptions.create(model="w", file=("clip.wav", WAV), response_format="verbose_json",
                                      timestamp_granularities=["word"], temperature=0.1, language="de")  # fmt: skip
    [seen] = audio.requests
    assert_form_classic(PREVIEW, "createTranscriptionRequest", seen.body)


@pytest.mark.parametrize("form", [
    {"file": {"size": 1}, "api_key": "sk-leaked"},
    {"file": {"size": 1}, "drop_params": "true"},
    {"file": {"size": 1}, "temperature": "warm"},
    {"file": {"size": 1}, "response_format": "doc"},
    {"file": {"size": 1}, "timestamp_granularities[]": "word"},  # not in the GA spec
])  # fmt: skip
def test_strict_form_validator_refuses_what_the_spec_does_not_declare(form: dict[str, Any]) -> None:
    with pytest.raises(AssertionError):
        assert_form_classic("2024-10-21", "createTranscriptionRequest", form)


@pytest.mark.parametrize("body", [
    {"input": "x", "voice": "alloy", "api_key": "sk-leaked"},
    {"input": "x", "voice": "alloy", "base_model": "azure/x"},
    {"input": "x", "voice": "alloy", "speed": 9},
    {"voice": "alloy"},
])  # fmt: skip
def test_strict_speech_validators_refuse_what_the_spec_does_not_declare(body: dict[str, Any]) -> None:
    with pytest.raises(AssertionError):
        assert_speech_classic(body)
    with pytest.raises(AssertionError):
        assert_speech_v1({**body, "model": TTS})
