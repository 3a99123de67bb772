"""Parameters validated once per shape (issue 17, round five): the same answers, fewer pydantic runs.

A call's parameters made of plain scalars (``temperature``, ``max_tokens``, ``user``) are
validated by pydantic the first time and remembered per (schema, values with their types);
every call still gets its own dict, a value of another type is validated on its own, and what
fails validation fails every time.
"""

from __future__ import annotations

import modelyard
import pytest
from modelyard import BadRequestError, api
from modelyard.testing import KEY, Emulator
from modelyard.types import ChatParams
from pydantic import BaseModel, ConfigDict, field_validator


def test_scalar_parameters_are_validated_once_and_each_call_gets_its_own_dict() -> None:
    api._VALIDATED.clear()
    params = {"temperature": 1, "max_tokens": 16, "user": "u-1", "custom_flag": True}
    first = api._validate_params(dict(params))
    assert first == {"temperature": 1.0, "max_tokens": 16, "user": "u-1", "custom_flag": True}
    assert len(api._VALIDATED) == 1  # kept
    first["max_tokens"] = 99  # a caller's (or the family rules') change stays its own
    second = api._validate_params(dict(params))
    assert second == {"temperature": 1.0, "max_tokens": 16, "user": "u-1", "custom_flag": True}
    assert second is not first and len(api._VALIDATED) == 1
    assert type(second["temperature"]) is float


def test_a_value_of_another_type_is_validated_on_its_own() -> None:
    # True == 1 and hash alike: an unknown parameter is sent as given, so each keeps its type.
    api._VALIDATED.clear()
    assert api._validate_params({"custom_flag": True}) == {"custom_flag": True}
    again = api._validate_params({"custom_flag": 1})
    assert again == {"custom_flag": 1} and type(again["custom_flag"]) is int
    assert type(api._validate_params({"custom_flag": True})["custom_flag"]) is bool
    assert api._validate_params({"n": True}) == {"n": 1} and api._validate_params({"n": 2}) == {"n": 2}


def test_what_fails_fails_every_time_and_long_strings_or_containers_are_not_kept() -> None:
    api._VALIDATED.clear()
    assert api._validate_params({"temperature": 1.5}) == {"temperature": 1.5}
    for _ in range(2):
        with pytest.raises(BadRequestError, match="temperature"):
            api._validate_params({"temperature": 3.0})
        with pytest.raises(BadRequestError, match="user"):
            api._validate_params({"user": 5})
    kept = len(api._VALIDATED)
    api._validate_params({"user": "x" * 500})
    api._validate_params({"stream_options": {"include_usage": True}, "max_tokens": 5})
    assert len(api._VALIDATED) == kept
    assert api._validate_params({"temperature": 0.5}, ChatParams) == {"temperature": 0.5}


SEEN: list[int] = []


class PluginParams(BaseModel):
    """A plugin's request model: its validator runs on every call (it may do more than check)."""

    model_config = ConfigDict(extra="allow")
    size: int

    @field_validator("size")
    @classmethod
    def _count(cls, value: int) -> int:
        SEEN.append(value)
        return value


def test_a_plugins_request_model_is_validated_on_every_call() -> None:
    SEEN.clear()
    for _ in range(3):
        assert api._validate_params({"size": 2}, PluginParams) == {"size": 2}
    assert SEEN == [2, 2, 2]


def test_calls_with_the_same_parameters_send_them_each_time(api_base: str, emulator: Emulator) -> None:
    settings = {"api_base": api_base, "api_key": KEY, "api_version": "2024-10-21"}
    for temperature in (0.2, 0.2, 1, 0.2):
        modelyard.completion(model="azure/gpt-4o", messages=[{"role": "user", "content": "hi"}],
                             temperature=temperature, max_tokens=7, **settings)  # fmt: skip
    sent = [(r.body["temperature"], r.body["max_tokens"]) for r in emulator.requests]
    assert sent == [(0.2, 7), (0.2, 7), (1.0, 7), (0.2, 7)]
