"""Speech, transcriptions and translations end to end: the SDK (sync, async), the Router, the proxy
driven by the openai SDK (OpenAI and AzureOpenAI shapes), streaming of speech through the proxy,
upload limits and memory, model_info.mode routing, /health probes, and the plugin blocked."""

from __future__ import annotations

import hashlib
import io
import struct
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import modelyard
import openai
import pytest
from modelyard import errors
from modelyard.testing import KEY, MASTER_KEY, Emulator, litellm_params, running_proxy
from modelyard.testing.audio import TRANSCRIPT, TRANSLATION, speech_audio, wav_bytes
from modelyard.testing.emulator import Deployment, Faults

PREVIEW = "2025-04-01-preview"  # speech is in the preview api-versions only
TTS, MINI_TTS, WHISPER = "tts", "mini-tts", "whisper"
AUTH = {"Authorization": f"Bearer {MASTER_KEY}"}
WAV = wav_bytes("sample", seconds=0.5)


@pytest.fixture
def audio(emulator: Emulator) -> Iterator[Emulator]:
    added = [
        Deployment(TTS, model="tts-1"), Deployment("tts-b", model="tts-1"),
        Deployment(MINI_TTS, model="gpt-4o-mini-tts"),
        Deployment(WHISPER, model="whisper"), Deployment("whisper-b", model="whisper"),
    ]  # fmt: skip
    for d in added:
        emulator.add_deployment(d)
    yield emulator
    for d in added:
        emulator.deployments.pop(d.name, None)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def config(api_base: str, **settings: Any) -> dict[str, Any]:
    return {
        "model_list": [
            {"model_name": "gpt-4o", "litellm_params": litellm_params(api_base, "gpt-4o")},
            {"model_name": "tts", "litellm_params": litellm_params(api_base, MINI_TTS, api_version=PREVIEW),
             "model_info": {"mode": "audio_speech"}},
            {"model_name": "whisper", "litellm_params": litellm_params(api_base, WHISPER),
             "model_info": {"mode": "audio_transcription"}},
        ],
        "router_settings": {"num_retries": 0},
        **settings,
    }  # fmt: skip


# ------------------------------------------------------------------------ SDK


def test_speech_sync_streams_the_requested_format(api_base: str, audio: Emulator, tmp_path: Path) -> None:
    r = modelyard.speech(model=f"azure/{MINI_TTS}", input="Hello there", voice="coral", response_format="wav",
                         speed=1.5, instructions="Cheerful.", api_base=api_base, api_key=KEY, api_version=PREVIEW)  # fmt: skip
    r.stream_to_file(tmp_path / "out.wav")
    assert (tmp_path / "out.wav").read_bytes() == speech_audio("Hello there", "wav")
    assert r.content_type == "audio/wav"
    [sent] = audio.requests
    assert (sent.method, sent.path, sent.query) == ("POST", f"/openai/deployments/{MINI_TTS}/audio/speech", {"api-version": PREVIEW})
    assert sent.body == {"input": "Hello there", "voice": "coral", "response_format": "wav", "speed": 1.5, "instructions": "Cheerful."}
    mp3 = modelyard.speech(f"azure/{TTS}", "hi", voice="alloy", api_base=api_base, api_key=KEY, api_version=PREVIEW)
    assert mp3.content.startswith(b"ID3") and mp3.content == speech_audio("hi", "mp3")
    assert audio.requests[-1].body == {"input": "hi", "voice": "alloy"}


async def test_speech_async_on_the_v1_api(api_base: str, audio: Emulator) -> None:
    r = await modelyard.aspeech(model=f"azure/{TTS}", input="x y", voice="nova", response_format="flac",
                                api_base=api_base, api_key=KEY, api_version="v1")  # fmt: skip
    data = b"".join([chunk async for chunk in r.aiter_bytes()])
    assert data == speech_audio("x y", "flac") and data.startswith(b"fLaC")
    [sent] = audio.requests
    assert (sent.method, sent.path, sent.query) == ("POST", "/openai/v1/audio/speech", {})
    assert sent.body == {"input": "x y", "voice": "nova", "response_format": "flac", "model": TTS}


def test_transcription_sync_sends_the_file_and_typed_fields(api_base: str, audio: Emulator, tmp_path: Path) -> None:
    path = tmp_path / "clip.wav"
    path.write_bytes(WAV)
    r = modelyard.transcription(model=f"azure/{WHISPER}", file=path, response_format="verbose_json",
                                timestamp_granularities=["word", "segment"], language="en", prompt="Foxes.",
                                temperature=0.2, api_base=api_base, api_key=KEY, api_version=PREVIEW)  # fmt: skip
    assert isinstance(r, modelyard.TranscriptionResponse)
    assert r.text == TRANSCRIPT and r.duration == 0.5 and [w["word"] for w in r.words][:2] == ["The", "quick"]
    [sent] = audio.requests
    assert (sent.method, sent.path, sent.query) == ("POST", f"/openai/deployments/{WHISPER}/audio/transcriptions", {"api-version": PREVIEW})
    assert sent.body == {
        "response_format": "verbose_json", "timestamp_granularities[]": ["word", "segment"], "language": "en",
        "prompt": "Foxes.", "temperature": "0.2",
        "file": {"filename": "clip.wav", "content_type": "audio/x-wav", "size": len(WAV), "sha256": _sha(WAV)},
    }  # fmt: skip
    assert sent.headers["content-type"].startswith("multipart/form-data")


@pytest.mark.parametrize(("fmt", "expected"), [
    ("json", TRANSCRIPT), ("text", TRANSCRIPT + "\n"),
    ("srt", f"1\n00:00:00,000 --> 00:00:00,500\n{TRANSCRIPT}\n\n"),
    ("vtt", f"WEBVTT\n\n00:00:00.000 --> 00:00:00.500\n{TRANSCRIPT}\n\n"),
])  # fmt: skip
async def test_atranscription_text_formats_keep_the_raw_text(api_base: str, audio: Emulator, fmt: str, expected: str) -> None:
    r = await modelyard.atranscription(f"azure/{WHISPER}", ("a.wav", WAV, "audio/wav"), response_format=fmt,
                                       api_base=api_base, api_key=KEY)  # fmt: skip
    assert r.text == expected
    body = audio.requests[-1].body
    assert body["file"] == {"filename": "a.wav", "content_type": "audio/wav", "size": len(WAV), "sha256": _sha(WAV)}


def test_translation_sync_and_v1(api_base: str, audio: Emulator) -> None:
    r = modelyard.translation(f"azure/{WHISPER}", io.BytesIO(WAV), api_base=api_base, api_key=KEY, api_version="v1")
    assert r.text == TRANSLATION
    [sent] = audio.requests
    assert (sent.method, sent.path, sent.query) == ("POST", "/openai/v1/audio/translations", {})
    # An unnamed upload is named by its first bytes: Azure tells the audio format by the extension.
    assert sent.body == {"model": WHISPER, "file": {"filename": "upload.wav", "content_type": "audio/wav",
                                                     "size": len(WAV), "sha256": _sha(WAV)}}  # fmt: skip


def test_sdk_bad_input_names_the_field_before_sending(api_base: str, audio: Emulator) -> None:
    kw: dict[str, Any] = {"api_base": api_base, "api_key": KEY, "api_version": PREVIEW}
    cases: list[tuple[Any, str]] = [
        (lambda: modelyard.speech(f"azure/{TTS}", voice="alloy", **kw), "input"),
        (lambda: modelyard.speech(f"azure/{TTS}", 3, voice="alloy", **kw), "input"),
        (lambda: modelyard.speech(f"azure/{TTS}", "x", **kw), "voice"),
        (lambda: modelyard.speech(f"azure/{TTS}", "x", voice="alloy", response_format="ogg", **kw), "response_format"),
        (lambda: modelyard.speech(f"azure/{TTS}", "x", voice="alloy", speed="fast", **kw), "speed"),
        (lambda: modelyard.transcription(f"azure/{WHISPER}", **kw), "file"),
        (lambda: modelyard.transcription(f"azure/{WHISPER}", "clip.wav", **kw), "file"),
        (lambda: modelyard.transcription(f"azure/{WHISPER}", WAV, response_format="doc", **kw), "response_format"),
        (lambda: modelyard.transcription(f"azure/{WHISPER}", WAV, temperature="hot", **kw), "temperature"),
        (lambda: modelyard.transcription(f"azure/{WHISPER}", WAV, timestamp_granularities=["char"], **kw), "timestamp_granularities[0]"),
    ]
    for call, param in cases:
        with pytest.raises(errors.BadRequestError) as info:
            call()
        assert info.value.param == param, (param, info.value)
        assert param in str(info.value)
    assert audio.requests == []
    # The emulator refuses like Azure: speech on a GA api-version is 404, a chat model refuses audio.
    with pytest.raises(errors.NotFoundError):
        modelyard.speech(f"azure/{TTS}", "x", voice="alloy", api_base=api_base, api_key=KEY, api_version="2024-10-21")
    with pytest.raises(errors.BadRequestError) as refused:
        modelyard.transcription("azure/gpt-4o", WAV, **kw)
    assert "audioTranscription operation does not work" in str(refused.value)
    assert modelyard.transcription(f"azure/{WHISPER}", WAV, **kw).text == TRANSCRIPT


# ------------------------------------------------------------------------ Router


def test_router_speech_and_transcription_fail_over(api_base: str, audio: Emulator) -> None:
    audio.deployments[TTS].faults = Faults(script=[503])
    audio.deployments[WHISPER].faults = Faults(script=[503])

    def group(name: str, first: str, second: str, version: str) -> list[dict[str, Any]]:
        return [
            {"model_name": name, "litellm_params": litellm_params(api_base, first, api_version=version), "model_info": {"id": f"{name}-a"}, "order": 1},
            {"model_name": name, "litellm_params": litellm_params(api_base, second, api_version=version), "model_info": {"id": f"{name}-b"}, "order": 2},
        ]  # fmt: skip

    router = modelyard.Router(model_list=[*group("t", TTS, "tts-b", PREVIEW), *group("w", WHISPER, "whisper-b", PREVIEW)], num_retries=1)
    speech = router.speech("t", "hi", voice="echo", response_format="wav")
    assert speech.content == speech_audio("hi", "wav")
    text = router.transcription("w", file=("a.wav", WAV), response_format="text")
    assert text.text == TRANSCRIPT + "\n"
    assert [(r.path, r.query) for r in audio.requests] == [
        (f"/openai/deployments/{TTS}/audio/speech", {"api-version": PREVIEW}),
        ("/openai/deployments/tts-b/audio/speech", {"api-version": PREVIEW}),
        (f"/openai/deployments/{WHISPER}/audio/transcriptions", {"api-version": PREVIEW}),
        ("/openai/deployments/whisper-b/audio/transcriptions", {"api-version": PREVIEW}),
    ]
    # The same bytes went to both deployments: the upload is sent again from its start.
    assert audio.requests[2].body["file"] == audio.requests[3].body["file"]
    assert audio.requests[3].body["file"]["sha256"] == _sha(WAV)
    router.close()


async def test_router_async_twins(api_base: str, audio: Emulator) -> None:
    router = modelyard.Router(model_list=[
        {"model_name": "t", "litellm_params": litellm_params(api_base, TTS, api_version=PREVIEW)},
        {"model_name": "w", "litellm_params": litellm_params(api_base, WHISPER)},
    ])  # fmt: skip
    speech = await router.aspeech("t", "async", voice="alloy", response_format="pcm")
    assert await speech.aread() == speech_audio("async", "pcm")
    assert (await router.atranscription("w", WAV)).text == TRANSCRIPT
    assert (await router.atranslation("w", WAV)).text == TRANSLATION
    assert [r.path.rsplit("/", 1)[1] for r in audio.requests] == ["speech", "transcriptions", "translations"]
    assert audio.requests[0].body == {"input": "async", "voice": "alloy", "response_format": "pcm"}
    await router.aclose()


# ------------------------------------------------------------------------ proxy


@pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning")  # openai marks translations.create
def test_proxy_audio_with_the_openai_sdk(api_base: str, audio: Emulator) -> None:
    with running_proxy(config(api_base)) as proxy:
        c = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key=MASTER_KEY, max_retries=0)
        with c.audio.speech.with_streaming_response.create(model="tts", input="Hello", voice="alloy",
                                                           response_format="wav", speed=2.0) as streamed:  # fmt: skip
            spoken = b"".join(streamed.iter_bytes())
            ctype = streamed.headers["content-type"]
        tr = c.audio.transcriptions.create(model="whisper", file=("clip.wav", WAV), response_format="verbose_json",
                                           timestamp_granularities=["word"], temperature=0.3, language="en")  # fmt: skip
        srt = c.audio.transcriptions.create(model="whisper", file=("clip.wav", WAV), response_format="srt")
        tl = c.audio.translations.create(model="whisper", file=("clip.wav", WAV), prompt="English please.")
    assert spoken == speech_audio("Hello", "wav") and ctype == "audio/wav"
    assert tr.text == TRANSCRIPT and tr.words[0].word == "The"  # type: ignore[attr-defined]
    assert srt == f"1\n00:00:00,000 --> 00:00:00,500\n{TRANSCRIPT}\n\n"
    assert tl.text == TRANSLATION
    file_info = {"filename": "clip.wav", "content_type": "audio/x-wav", "size": len(WAV), "sha256": _sha(WAV)}
    assert [(r.method, r.path, r.query, r.body) for r in audio.requests] == [
        ("POST", f"/openai/deployments/{MINI_TTS}/audio/speech", {"api-version": PREVIEW},
         {"input": "Hello", "voice": "alloy", "response_format": "wav", "speed": 2.0}),
        ("POST", f"/openai/deployments/{WHISPER}/audio/transcriptions", {"api-version": "2024-10-21"},
         {"response_format": "verbose_json", "language": "en", "temperature": "0.3", "timestamp_granularities[]": "word",
          "file": file_info}),
        ("POST", f"/openai/deployments/{WHISPER}/audio/transcriptions", {"api-version": "2024-10-21"},
         {"response_format": "srt", "file": file_info}),
        ("POST", f"/openai/deployments/{WHISPER}/audio/translations", {"api-version": "2024-10-21"},
         {"prompt": "English please.", "file": file_info}),
    ]  # fmt: skip
    assert all(r.headers["api-key"] == KEY for r in audio.requests)


@pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning")  # openai marks translations.create
def test_proxy_audio_on_the_azure_route(api_base: str, audio: Emulator) -> None:
    with running_proxy(config(api_base)) as proxy:
        az = openai.AzureOpenAI(azure_endpoint=proxy.url, api_key=MASTER_KEY, api_version="2024-10-21", max_retries=0)
        with az.audio.speech.with_streaming_response.create(model="tts", input="az", voice="shimmer") as streamed:
            spoken = streamed.read()
        tr = az.audio.transcriptions.create(model="whisper", file=("clip.wav", WAV), response_format="text")
        tl = az.audio.translations.create(model="whisper", file=("clip.wav", WAV))
    assert spoken == speech_audio("az", "mp3")
    assert tr == TRANSCRIPT + "\n" and tl.text == TRANSLATION
    file_info = {"filename": "clip.wav", "content_type": "audio/x-wav", "size": len(WAV), "sha256": _sha(WAV)}
    # The client's model (sent in the body too, by AzureOpenAI) names the proxy's model group, not Azure's.
    assert [(r.method, r.path, r.query, r.body) for r in audio.requests] == [
        ("POST", f"/openai/deployments/{MINI_TTS}/audio/speech", {"api-version": PREVIEW}, {"input": "az", "voice": "shimmer"}),
        ("POST", f"/openai/deployments/{WHISPER}/audio/transcriptions", {"api-version": "2024-10-21"},
         {"response_format": "text", "file": file_info}),
        ("POST", f"/openai/deployments/{WHISPER}/audio/translations", {"api-version": "2024-10-21"}, {"file": file_info}),
    ]  # fmt: skip


def test_proxy_streams_speech_as_it_arrives(api_base: str, audio: Emulator) -> None:
    """A slow upstream (the audio in ten pieces over 4 s): the client has the first bytes long
    before the upstream's last; a proxy that read the answer whole would hand it over at once."""
    audio.deployments[MINI_TTS].faults = Faults(drip=4.0)
    expected = speech_audio("A slow answer", "wav")
    with running_proxy(config(api_base)) as proxy:
        c = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key=MASTER_KEY, max_retries=0)
        started = time.monotonic()
        with c.audio.speech.with_streaming_response.create(model="tts", input="A slow answer", voice="alloy",
                                                           response_format="wav") as streamed:  # fmt: skip
            chunks = streamed.iter_bytes()
            first = next(chunks)
            first_at = time.monotonic() - started
            rest = b"".join(chunks)
            done_at = time.monotonic() - started
    print(f"\nspeech through the proxy: first {len(first)} bytes at {first_at:.2f}s, all {len(expected)} at {done_at:.2f}s")
    assert first + rest == expected
    assert len(first) < len(expected)
    assert done_at - first_at > 1.5  # ten pieces 0.4 s apart: the first arrived well before the end


def test_proxy_audio_on_the_aiohttp_backend(api_base: str, audio: Emulator) -> None:
    """Speech streams through aiohttp's reader; uploads go over httpx, which streams them."""
    audio.deployments[MINI_TTS].faults = Faults(drip=2.0)
    with running_proxy(config(api_base, general_settings={"http_backend": "aiohttp"})) as proxy:
        with httpx.stream("POST", f"{proxy.url}/v1/audio/speech", headers=AUTH,
                          json={"model": "tts", "input": "aio", "voice": "alloy", "response_format": "wav"}) as r:  # fmt: skip
            pieces = list(r.iter_raw())
        text = _form(proxy, "/v1/audio/transcriptions", {"model": "whisper", "response_format": "vtt"})
    assert b"".join(pieces) == speech_audio("aio", "wav")
    assert len(pieces) > 1  # passed on piece by piece, not read whole first
    assert text.status_code == 200 and text.headers["content-type"].startswith("text/plain")
    assert text.text == f"WEBVTT\n\n00:00:00.000 --> 00:00:00.500\n{TRANSCRIPT}\n\n"


def _wav_file(path: Path, size: int) -> Path:
    """A WAV file of exactly ``size`` bytes (16 kHz mono silence), written in pieces."""
    header = b"RIFF" + struct.pack("<I", size - 8) + b"WAVEfmt " + struct.pack("<IHHIIHH", 16, 1, 1, 16000, 32000, 2, 16)
    header += b"data" + struct.pack("<I", size - 44)
    with open(path, "wb") as out:
        out.write(header)
        left = size - len(header)
        block = b"\0" * (1024 * 1024)
        while left > 0:
            out.write(block[: min(left, len(block))])
            left -= min(left, len(block))
    return path


def test_proxy_25_mb_upload_in_bounded_memory_and_26_mb_refused(api_base: str, audio: Emulator, tmp_path: Path) -> None:
    big = _wav_file(tmp_path / "big.wav", 25 * 1024 * 1024)
    too_big = _wav_file(tmp_path / "too_big.wav", 26 * 1024 * 1024)
    with running_proxy(config(api_base)) as proxy:
        tracemalloc.start()
        try:
            with open(big, "rb") as f:
                ok = httpx.post(f"{proxy.url}/v1/audio/transcriptions", headers=AUTH, timeout=120,
                                data={"model": "whisper"}, files={"file": ("big.wav", f, "audio/wav")})  # fmt: skip
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        with open(too_big, "rb") as f:
            refused = httpx.post(f"{proxy.url}/v1/audio/transcriptions", headers=AUTH, timeout=120,
                                 data={"model": "whisper"}, files={"file": ("too_big.wav", f, "audio/wav")})  # fmt: skip
        after = httpx.post(f"{proxy.url}/v1/audio/transcriptions", headers=AUTH,
                           data={"model": "whisper"}, files={"file": ("a.wav", WAV)})  # fmt: skip
    print(f"\n25 MB transcription upload through the proxy: peak Python memory {peak / 2**20:.1f} MB")
    assert ok.status_code == 200, ok.text
    assert ok.json() == {"text": TRANSCRIPT}
    assert peak < 40 * 2**20
    assert audio.requests[0].body["file"]["size"] == 25 * 1024 * 1024
    assert refused.status_code == 413, refused.text
    error = refused.json()["error"]
    assert error["code"] == "request_too_large" and "25 MB" in error["message"] and "/audio/transcriptions" in error["message"]
    assert after.status_code == 200
    assert len(audio.requests) == 2  # the refused upload never reached the emulator


def _form(proxy: Any, path: str, fields: dict[str, Any], file: tuple[str, bytes] | None = ("a.wav", WAV)) -> httpx.Response:
    files = {"file": file} if file is not None else {"unused": ("x.txt", b"x")}
    return httpx.post(f"{proxy.url}{path}", headers=AUTH, data=fields, files=files)


def test_proxy_bad_input_names_the_field_and_the_next_request_is_served(api_base: str, audio: Emulator) -> None:
    json_cases = [
        ({"model": "tts", "voice": "alloy"}, "input"),
        ({"model": "tts", "input": 3, "voice": "alloy"}, "input"),
        ({"model": "tts", "input": "x"}, "voice"),
        ({"model": "tts", "input": "x", "voice": "alloy", "response_format": "ogg"}, "response_format"),
        ({"model": "tts", "input": "x", "voice": "alloy", "api_key": "sk-leak"}, "api_key"),
    ]
    form_cases = [
        ({"model": "whisper"}, None, "file"),
        ({"model": "whisper", "response_format": "doc"}, ("a.wav", WAV), "response_format"),
        ({"model": "whisper", "temperature": "hot"}, ("a.wav", WAV), "temperature"),
        ({"model": "whisper", "timestamp_granularities[]": "char"}, ("a.wav", WAV), "timestamp_granularities"),
        ({"model": "whisper", "api_base": "http://evil"}, ("a.wav", WAV), "api_base"),
    ]
    with running_proxy(config(api_base)) as proxy:
        for body, param in json_cases:
            bad = httpx.post(f"{proxy.url}/v1/audio/speech", json=body, headers=AUTH)
            assert bad.status_code == 400, (body, bad.text)
            assert bad.json()["error"]["param"] == param and param in bad.json()["error"]["message"]
        for fields, file, param in form_cases:
            bad = _form(proxy, "/v1/audio/transcriptions", fields, file)
            assert bad.status_code == 400, (fields, bad.text)
            assert bad.json()["error"]["param"] == param and param in bad.json()["error"]["message"], bad.text
        as_json = httpx.post(f"{proxy.url}/v1/audio/transcriptions", json={"model": "whisper", "file": "a.wav"}, headers=AUTH)
        chat_to_tts = httpx.post(f"{proxy.url}/v1/chat/completions", headers=AUTH,
                                 json={"model": "tts", "messages": [{"role": "user", "content": "hi"}]})  # fmt: skip
        speech_to_whisper = httpx.post(f"{proxy.url}/v1/audio/speech", json={"model": "whisper", "input": "x", "voice": "alloy"}, headers=AUTH)
        transcribe_to_chat = _form(proxy, "/v1/audio/transcriptions", {"model": "gpt-4o"})
        good = _form(proxy, "/v1/audio/transcriptions", {"model": "whisper"})
        good_speech = httpx.post(f"{proxy.url}/v1/audio/speech", json={"model": "tts", "input": "ok", "voice": "alloy"}, headers=AUTH)
    assert as_json.status_code == 400 and as_json.json()["error"]["param"] == "file"
    assert "multipart/form-data" in as_json.json()["error"]["message"]
    assert chat_to_tts.status_code == 400 and chat_to_tts.json()["error"]["param"] == "model"
    assert "'audio_speech'" in chat_to_tts.json()["error"]["message"]
    assert speech_to_whisper.status_code == 400 and "'audio_transcription'" in speech_to_whisper.json()["error"]["message"]
    assert transcribe_to_chat.status_code == 400 and "'chat'" in transcribe_to_chat.json()["error"]["message"]
    assert good.status_code == 200 and good.json() == {"text": TRANSCRIPT}
    assert good_speech.status_code == 200 and good_speech.content == speech_audio("ok", "mp3")
    assert [r.path.rsplit("/", 1)[1] for r in audio.requests] == ["transcriptions", "speech"]


def test_health_probes_audio_deployments_with_the_cheapest_calls(api_base: str, audio: Emulator) -> None:
    with running_proxy(config(api_base)) as proxy:
        health = httpx.get(f"{proxy.url}/health", headers=AUTH).json()
    assert health["unhealthy_count"] == 0 and health["healthy_count"] == 3
    by_path = {r.path: r.body for r in audio.requests}
    assert by_path[f"/openai/deployments/{MINI_TTS}/audio/speech"] == {"input": ".", "voice": "alloy", "response_format": "wav"}
    probe = by_path[f"/openai/deployments/{WHISPER}/audio/transcriptions"]
    assert probe["response_format"] == "text" and probe["file"]["filename"] == "probe.wav" and probe["file"]["size"] == 3244


# ------------------------------------------------------------------------ blocked plugin


def test_blocked_audio_plugin_fails_before_sending_and_the_rest_keeps_working(
    api_base: str, audio: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    emb = audio.add_deployment(Deployment("emb-audio-test", model="text-embedding-3-small"))
    cfg = config(api_base, modelyard_settings={"block_plugins": ["modelyard-azure-audio"]})
    cfg["model_list"].append({"model_name": "embed", "litellm_params": litellm_params(api_base, emb.name),
                              "model_info": {"mode": "embedding"}})  # fmt: skip
    try:
        with running_proxy(cfg) as proxy:
            speech = httpx.post(f"{proxy.url}/v1/audio/speech", json={"model": "tts", "input": "x", "voice": "alloy"}, headers=AUTH)
            transcribe = _form(proxy, "/v1/audio/transcriptions", {"model": "whisper"})
            translate = _form(proxy, "/v1/audio/translations", {"model": "whisper"})
            chat = httpx.post(f"{proxy.url}/v1/chat/completions", headers=AUTH,
                              json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]})  # fmt: skip
            embedded = httpx.post(f"{proxy.url}/v1/embeddings", json={"model": "embed", "input": "x"}, headers=AUTH)
    finally:
        audio.deployments.pop(emb.name, None)
    for blocked in (speech, transcribe, translate):
        assert blocked.status_code == 501, blocked.text
        assert blocked.json()["error"]["code"] == "plugin_not_loaded"
        assert "modelyard-azure-audio" in blocked.json()["error"]["message"]
    assert chat.status_code == 200 and embedded.status_code == 200
    assert [r.path for r in audio.requests] == ["/openai/deployments/gpt-4o/chat/completions",
                                                "/openai/deployments/emb-audio-test/embeddings"]  # fmt: skip
    monkeypatch.setenv("MODELYARD_BLOCK_PLUGINS", "modelyard-azure-audio")
    from modelyard.plugins import reset_plugins

    reset_plugins()
    try:
        with pytest.raises(errors.PluginNotLoadedError) as info:
            modelyard.transcription(model=f"azure/{WHISPER}", file=WAV, api_base=api_base, api_key=KEY)
        assert modelyard.completion(model="azure/gpt-4o", messages=[{"role": "user", "content": "hi"}],
                                    api_base=api_base, api_key=KEY).choices  # fmt: skip
    finally:
        monkeypatch.delenv("MODELYARD_BLOCK_PLUGINS")
        reset_plugins()
    assert "modelyard-azure-audio" in str(info.value)
    assert len(audio.requests) == 3


# ------------------------------------------------------------------------ ./dev serve defaults


def test_embedded_defaults_serve_speech_and_transcriptions(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from modelyard.proxy.serve import build
    from modelyard.testing.server import serve_in_thread

    monkeypatch.chdir(tmp_path)
    built = build(dev=True)
    try:
        headers = {"Authorization": f"Bearer {built.master_key}"}
        with serve_in_thread(built.app, lifespan="on") as server:
            c = openai.OpenAI(base_url=f"{server.url}/v1", api_key=built.master_key, max_retries=0)
            with c.audio.speech.with_streaming_response.create(model="gpt-4o-mini-tts", input="hi", voice="alloy") as s:
                spoken = s.read()
            text = c.audio.transcriptions.create(model="whisper", file=("a.wav", WAV)).text
            health = httpx.get(f"{server.url}/health", headers=headers).json()
    finally:
        built.emulator.stop()
    assert spoken == speech_audio("hi", "mp3")
    assert text == TRANSCRIPT
    assert health["unhealthy_count"] == 0, health


def test_proxy_never_reads_a_text_field_as_a_file_on_its_host(api_base: str, audio: Emulator, tmp_path: Path) -> None:
    """A form's text field named like a file part is a path to the SDK: the proxy refuses it."""
    secret = tmp_path / "secret.wav"
    secret.write_bytes(WAV)  # a file the proxy's host could read and upload if it took the path
    with running_proxy(config(api_base)) as proxy:
        sneaky = httpx.post(f"{proxy.url}/v1/audio/transcriptions", headers=AUTH,
                            data={"model": "whisper", "file": str(secret)},
                            files={"unrelated": ("x.txt", b"x", "text/plain")})  # fmt: skip
        good = _form(proxy, "/v1/audio/transcriptions", {"model": "whisper"})
    assert sneaky.status_code == 400, sneaky.text
    assert sneaky.json()["error"]["param"] == "file" and "file part" in sneaky.json()["error"]["message"]
    assert good.status_code == 200
    assert len(audio.requests) == 1  # only the good one went upstream
