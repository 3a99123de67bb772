"""Family parameter rules and ``drop_params`` on the table-driven operations, as for chat.

An inline family (``strict/<deployment>``, Azure) refuses ``user``, fixes ``encoding_format``,
renames ``dims`` to ``dimensions``, adds a default and names a plugin ``widgets`` needs; each
rule applies to ``embedding()`` (JSON) and ``transcription()`` (multipart) before sending.
"""

from __future__ import annotations

from collections.abc import Iterator

import modelyard
import pytest
from modelyard import BadRequestError, UnsupportedParamsError, hookimpl
from modelyard.families import Family, ParamRules
from modelyard.plugins import reset_plugins
from modelyard.testing import KEY, Emulator
from modelyard.testing.audio import wav_bytes
from modelyard.testing.emulator import Deployment

EMB, WHISPER = "text-embedding-3-small", "whisper"


class StrictFamily:
    """``strict/<deployment>``: Azure, with a rule of each kind."""

    HOOK_API = (1, 0)

    @hookimpl
    def register_families(self, register):  # type: ignore[no-untyped-def]
        register(Family(name="strict", provider="azure", prefix="strict/", rules=ParamRules(
            unsupported=frozenset({"user", "temperature"}), fixed={"encoding_format": "float"},
            rename={"dims": "dimensions"}, defaults={"dimensions": 4}, needs_plugin={"widgets": "modelyard-widgets"},
        )))  # fmt: skip


@pytest.fixture
def strict(emulator: Emulator, api_base: str) -> Iterator[Emulator]:
    reset_plugins(extra=[StrictFamily()])
    emulator.add_deployment(Deployment(EMB, model="text-embedding-3-small"))
    emulator.add_deployment(Deployment(WHISPER, model="whisper"))
    yield emulator
    emulator.deployments.pop(EMB, None)
    emulator.deployments.pop(WHISPER, None)


def _kw(api_base: str, **kw: object) -> dict[str, object]:
    return {"api_key": KEY, "api_base": api_base, "api_version": "2024-10-21", **kw}


def test_a_parameter_the_family_refuses_is_refused_for_embeddings_before_sending(api_base: str, strict: Emulator) -> None:
    with pytest.raises(UnsupportedParamsError) as info:
        modelyard.embedding(f"strict/{EMB}", "hi", user="u1", **_kw(api_base))
    assert info.value.param == "user" and "strict models do not support 'user'" in info.value.message
    with pytest.raises(UnsupportedParamsError) as fixed:
        modelyard.embedding(f"strict/{EMB}", "hi", encoding_format="base64", **_kw(api_base))
    assert fixed.value.param == "encoding_format" and "only 'float' is allowed" in fixed.value.message
    assert strict.requests == []


def test_drop_params_drops_them_and_renames_and_defaults_apply(api_base: str, strict: Emulator) -> None:
    modelyard.embedding(f"strict/{EMB}", "hi", user="u1", encoding_format="base64", **_kw(api_base, drop_params=True))
    assert strict.requests[-1].body == {"input": "hi", "dimensions": 4}  # refused ones dropped; the default added
    modelyard.embedding(f"strict/{EMB}", "hi", dims=8, **_kw(api_base))
    assert strict.requests[-1].body == {"input": "hi", "dimensions": 8}  # renamed; the caller's value wins
    modelyard.embedding(f"azure/{EMB}", "hi", user="u1", **_kw(api_base))
    assert strict.requests[-1].body == {"input": "hi", "user": "u1"}  # another family: no rules


def test_module_level_drop_params_applies_too(api_base: str, strict: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(modelyard, "drop_params", True, raising=False)
    modelyard.embedding(f"strict/{EMB}", "hi", user="u1", **_kw(api_base))
    assert strict.requests[-1].body == {"input": "hi", "dimensions": 4}


async def test_rules_apply_to_a_multipart_operation(api_base: str, strict: Emulator) -> None:
    wav = wav_bytes("rules", seconds=0.2)
    with pytest.raises(UnsupportedParamsError) as info:
        await modelyard.atranscription(f"strict/{WHISPER}", ("a.wav", wav), temperature=0.5, **_kw(api_base))
    assert info.value.param == "temperature"
    assert strict.requests == []
    await modelyard.atranscription(f"strict/{WHISPER}", ("a.wav", wav), temperature=0.5, language="en",
                                   **_kw(api_base, drop_params=True))  # fmt: skip
    sent = strict.requests[-1].body
    assert "temperature" not in sent and sent["language"] == "en" and sent["file"]["filename"] == "a.wav"


def test_a_parameter_whose_plugin_is_not_loaded_fails_before_sending(api_base: str, strict: Emulator) -> None:
    with pytest.raises(BadRequestError) as info:
        modelyard.embedding(f"strict/{EMB}", "hi", widgets=1, **_kw(api_base))
    assert info.value.param == "widgets" and info.value.code == "plugin_not_loaded"
    assert strict.requests == []
