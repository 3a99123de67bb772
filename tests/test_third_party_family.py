"""A third-party family, installed from tests/plugins/acme_family, routes and transforms with no
core change; blocking its distribution removes it."""

from __future__ import annotations

import modelyard
import pytest
from modelyard import errors
from modelyard.testing import KEY, Emulator


def _call(api_base: str, **kw):
    return modelyard.completion(
        model="acme/gpt-4o", api_base=api_base, api_key=KEY, api_version="2024-10-21",
        messages=[{"role": "user", "content": "hi"}], **kw,
    )  # fmt: skip


def test_family_routes_and_renames(api_base: str, emulator: Emulator) -> None:
    r = _call(api_base, max_tokens=5)
    seen = emulator.requests[-1]
    assert seen.path == "/openai/deployments/gpt-4o/chat/completions"
    assert seen.body == {"messages": [{"role": "user", "content": "hi"}], "max_output": 5}
    assert r.choices[0].message.content


def test_family_rule_refuses_param_before_sending(api_base: str, emulator: Emulator) -> None:
    with pytest.raises(errors.UnsupportedParamsError) as info:
        _call(api_base, seed=3)
    assert info.value.param == "seed" and info.value.family == "acme"
    assert "drop_params" in str(info.value)
    assert emulator.requests == []


def test_drop_params_drops_it(api_base: str, emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    _call(api_base, seed=3, drop_params=True)
    assert "seed" not in emulator.requests[-1].body
    monkeypatch.setattr(modelyard, "drop_params", True)
    _call(api_base, seed=4)
    assert "seed" not in emulator.requests[-1].body


def test_blocking_the_distribution_removes_the_family(api_base: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELYARD_BLOCK_PLUGINS", "modelyard-acme-family")
    with pytest.raises(errors.BadRequestError, match="Unknown model 'acme/gpt-4o'"):
        _call(api_base)
