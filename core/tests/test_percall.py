"""What a call no longer rebuilds each time (modelyard._percall), and that it is never stale."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import modelyard
import pytest
from modelyard._calls import _connection, _module_settings
from modelyard.errors import BadRequestError
from modelyard.plugins import get_plugins, reset_plugins
from modelyard.testing import KEY, Emulator

HELLO = [{"role": "user", "content": "hi"}]


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """``modelyard`` with the module settings this file changes put back after the test."""
    for name in ("api_key", "azure_key", "api_base", "api_version", "enable_azure_ad_token_refresh"):
        monkeypatch.setattr(modelyard, name, getattr(modelyard, name, None), raising=False)
    yield modelyard


def _conn(**kw: Any) -> Any:
    return _connection(dict(kw), _module_settings(), "azure/x")


def test_the_same_settings_share_one_connection() -> None:
    first = _conn(api_base="http://a", api_key="k1", api_version="2024-10-21")
    assert _conn(api_base="http://a", api_key="k1", api_version="2024-10-21") is first
    other = _conn(api_base="http://a", api_key="k2", api_version="2024-10-21")
    assert other is not first and other.api_key is not None and other.api_key.get_secret_value() == "k2"
    assert first.api_key is not None and first.api_key.get_secret_value() == "k1"


def test_a_module_setting_changed_at_run_time_is_used_by_the_next_call(settings: Any) -> None:
    settings.api_version = "2024-06-01"
    before = _conn(api_base="http://a", api_key="k")
    settings.api_version = "2024-10-21"
    after = _conn(api_base="http://a", api_key="k")
    assert (before.api_version, after.api_version) == ("2024-06-01", "2024-10-21")
    settings.api_key = "module-key"
    assert _conn(api_base="http://a").api_key.get_secret_value() == "module-key"  # type: ignore[union-attr]
    settings.api_key = "another-key"
    assert _conn(api_base="http://a").api_key.get_secret_value() == "another-key"  # type: ignore[union-attr]


def test_a_second_name_or_a_false_module_setting_alone_is_still_filled(settings: Any) -> None:
    # With no module setting set, filling is skipped (issue 17); one set under LiteLLM's second
    # name only, or set to False, must still be seen.
    assert _conn(api_base="http://a").api_key is None
    settings.azure_key = "second-name-key"
    assert _conn(api_base="http://a").api_key.get_secret_value() == "second-name-key"  # type: ignore[union-attr]
    settings.azure_key = None
    settings.enable_azure_ad_token_refresh = False
    assert _conn(api_base="http://a").get("enable_azure_ad_token_refresh") is False


def test_a_value_of_the_wrong_type_is_refused_after_a_valid_equal_one(settings: Any) -> None:
    # True == 1 and hash(True) == hash(1): the cache must not hand 1 the connection True made.
    assert _conn(api_base="http://a", enable_azure_ad_token_refresh=True).get("enable_azure_ad_token_refresh") is True
    with pytest.raises(BadRequestError, match="enable_azure_ad_token_refresh"):
        _conn(api_base="http://a", enable_azure_ad_token_refresh=1)
    # and a wrong module setting is still named as one, after the same call succeeded
    _conn(api_base="http://a", api_key="k")
    settings.api_version = 20241021
    with pytest.raises(BadRequestError) as bad:
        _conn(api_base="http://a", api_key="k")
    assert bad.value.param == "modelyard.api_version"


def test_unhashable_settings_are_built_per_call() -> None:
    a = _conn(api_base="http://a", api_key="k", extra_headers={"x-one": "1"})
    b = _conn(api_base="http://a", api_key="k", extra_headers={"x-one": "2"})
    assert a is not b and dict(b.extra_headers or {}) == {"x-one": "2"}


def test_another_plugin_set_gets_its_own_connection() -> None:
    first = _conn(api_base="http://a", api_key="k")
    schema = get_plugins().connection_settings
    reset_plugins()
    try:
        assert get_plugins().connection_settings is not schema
        assert _conn(api_base="http://a", api_key="k") is not first
    finally:
        reset_plugins()


def test_calls_after_a_module_setting_changes_reach_the_upstream_with_it(
    settings: Any, api_base: str, emulator: Emulator
) -> None:
    settings.api_base, settings.api_version = api_base, "2024-10-21"
    modelyard.completion(model="azure/gpt-4o", messages=HELLO, api_key=KEY)
    assert emulator.requests[-1].query["api-version"] == "2024-10-21"
    settings.api_version = "2024-06-01"
    modelyard.completion(model="azure/gpt-4o", messages=HELLO, api_key=KEY)
    assert emulator.requests[-1].query["api-version"] == "2024-06-01"
    settings.api_key = KEY
    modelyard.completion(model="azure/gpt-4o", messages=HELLO)
    assert emulator.requests[-1].headers["api-key"] == KEY


def test_a_kept_answer_parses_as_before_even_where_the_fast_parser_refuses() -> None:
    # With a plugin checking answers (azure_vision, in this workspace), the answer is parsed
    # once for the check: by pydantic-core's parser, else json.loads (a lone surrogate escape).
    import httpx
    from modelyard import api
    from modelyard._kept import kept_checks

    call = api._prepare("azure/gpt-4o", HELLO, False, {"api_base": "http://a", "api_key": "k"})
    assert kept_checks(call.plugins, call.route, "response"), "needs a plugin with a check (azure_vision)"
    body = ('{"id": "c1", "object": "chat.completion", "created": 1, "model": "gpt-4o", "choices": [{"index": 0, '
            '"finish_reason": "stop", "message": {"role": "assistant", "content": "%s"}}]}')  # fmt: skip
    for content, expected in (("plain", "plain"), ("\\ud800", "\ud800")):
        raw = (body % content).encode()
        result = api._kept_response(call, httpx.Response(200, content=raw))
        assert result is not None and result.choices[0].message.content == expected
        assert result._upstream is not None and result._upstream[1] == raw


def test_the_environment_read_per_call_sees_changes_made_at_run_time(monkeypatch: pytest.MonkeyPatch) -> None:
    # MODELYARD_RETRY_ON_TIMEOUT is read where os.environ keeps its values (issue 17): a change
    # made after start-up is seen by the next call, as with os.environ.get.
    from modelyard._calls import _environ, _retry_on_timeout

    monkeypatch.delenv("MODELYARD_RETRY_ON_TIMEOUT", raising=False)
    assert _retry_on_timeout({}) is False and _environ("MODELYARD_RETRY_ON_TIMEOUT") is None
    monkeypatch.setenv("MODELYARD_RETRY_ON_TIMEOUT", " Yes ")
    assert _retry_on_timeout({}) is True
    assert _retry_on_timeout({"retry_on_timeout": False}) is False
    monkeypatch.setenv("MODELYARD_RETRY_ON_TIMEOUT", "0")
    assert _retry_on_timeout({}) is False
    monkeypatch.setenv("MODELYARD_TEST_VALUE", "héllo")
    assert _environ("MODELYARD_TEST_VALUE") == "héllo"
    monkeypatch.setattr("os.environ", {"MODELYARD_RETRY_ON_TIMEOUT": "true"})  # a stand-in mapping
    assert _retry_on_timeout({}) is True
