"""The azure_audio plugin against the emulator: URLs, bodies and forms, answers, errors."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import modelyard
import pytest
from modelyard import errors
from modelyard.testing import KEY, Emulator
from modelyard.testing.audio import TRANSCRIPT, speech_audio, wav_bytes
from modelyard.testing.emulator import Deployment, Faults

WAV = wav_bytes("plugin")


@pytest.fixture
def audio(emulator: Emulator) -> Iterator[Emulator]:
    emulator.add_deployment(Deployment("p-tts", model="tts-1-hd"))
    emulator.add_deployment(Deployment("p-whisper", model="gpt-4o-transcribe"))
    yield emulator
    emulator.deployments.pop("p-tts", None)
    emulator.deployments.pop("p-whisper", None)


def _kw(api_base: str, **kw: Any) -> dict[str, Any]:
    return {"api_key": KEY, "api_base": api_base, "api_version": "2025-04-01-preview", **kw}


def test_speech_url_body_and_stream(api_base: str, audio: Emulator) -> None:
    r = modelyard.speech("azure/p-tts", "plug", voice="onyx", response_format="aac", **_kw(api_base))
    assert b"".join(r.iter_bytes()) == speech_audio("plug", "aac")
    [seen] = audio.requests
    assert (seen.method, seen.path, seen.query) == ("POST", "/openai/deployments/p-tts/audio/speech", {"api-version": "2025-04-01-preview"})
    assert seen.body == {"input": "plug", "voice": "onyx", "response_format": "aac"}


def test_base_url_is_used_verbatim(api_base: str, audio: Emulator) -> None:
    base = f"{api_base}/openai/deployments/p-whisper"
    r = modelyard.transcription("azure/ignored", ("a.wav", WAV), api_key=KEY, base_url=base, api_version="2024-10-21")
    assert r.text == TRANSCRIPT
    assert audio.requests[-1].path == "/openai/deployments/p-whisper/audio/transcriptions"


def test_form_fields_are_encoded_as_openai_reads_them(api_base: str, audio: Emulator) -> None:
    modelyard.transcription("azure/p-whisper", ("a.wav", WAV), response_format="verbose_json", temperature=0,
                            timestamp_granularities=["segment"], **_kw(api_base))  # fmt: skip
    body = audio.requests[-1].body
    assert body["temperature"] == "0.0" and body["timestamp_granularities[]"] == "segment"


def test_azure_errors_are_mapped_with_param(api_base: str, audio: Emulator) -> None:
    with pytest.raises(errors.BadRequestError) as info:
        modelyard.speech("azure/p-tts", "x", voice="alloy", instructions="Calm.", **_kw(api_base))
    assert info.value.param == "instructions"
    with pytest.raises(errors.BadRequestError) as bad_file:
        modelyard.transcription("azure/p-whisper", ("notes.txt", b"not audio"), **_kw(api_base))
    assert bad_file.value.param == "file"
    with pytest.raises(errors.BadRequestError) as misnamed:  # Azure tells the format by the name
        modelyard.transcription("azure/p-whisper", ("clip.txt", WAV), **_kw(api_base))
    assert misnamed.value.param == "file"
    audio.deployments["p-whisper"].faults = Faults(script=[429], retry_after=0)
    with pytest.raises(errors.RateLimitError):
        modelyard.transcription("azure/p-whisper", WAV, num_retries=0, **_kw(api_base))
    with pytest.raises(errors.NotFoundError):
        modelyard.translation("azure/p-whisper", WAV, **_kw(api_base, api_version="2023-05-15"))


@pytest.mark.parametrize(("content", "name"), [(WAV, "upload.wav"), (b"ID3\x04" + bytes(64), "upload.mp3"),
                                              (b"fLaC" + bytes(64), "upload.flac"), (b"OggS" + bytes(64), "upload.ogg")])  # fmt: skip
def test_an_unnamed_upload_is_named_by_its_first_bytes(api_base: str, audio: Emulator, content: bytes, name: str) -> None:
    assert modelyard.transcription("azure/p-whisper", content, **_kw(api_base)).text == TRANSCRIPT
    assert audio.requests[-1].body["file"]["filename"] == name
