"""A credential read from the connection alone is picked once per connection; the rest per call."""

from __future__ import annotations

import contextlib

import pytest
from modelyard import completion
from modelyard._calls import _connection, _module_settings
from modelyard.errors import AuthenticationError
from modelyard.plugins import get_plugins
from modelyard.testing import KEY, Emulator
from modelyard.types import Route

MESSAGES = [{"role": "user", "content": "hello"}]
ROUTE = Route(provider="azure", family="gpt", deployment="gpt-4o", model="azure/gpt-4o")


def _auth(route: Route = ROUTE, **kw: object) -> object:
    connection = _connection(dict(kw), _module_settings(), route.model)
    return get_plugins().hook.resolve_auth(route=route, connection=connection, timeout=None)


def test_an_api_key_is_picked_once_per_connection() -> None:
    first = _auth(api_base="http://a", api_key="k1")
    assert _auth(api_base="http://a", api_key="k1") is first
    other = _auth(api_base="http://a", api_key="k2")
    assert other is not first and other.headers() == {"api-key": "k2"}  # type: ignore[attr-defined]
    claude = _auth(Route(provider="azure_anthropic", family="claude", deployment="c", model="azure/claude-x"),
                   api_base="http://a", api_key="k1")  # fmt: skip
    assert claude.headers() == {"x-api-key": "k1"}  # type: ignore[attr-defined]  # the same connection, another provider


def test_a_credential_from_the_environment_is_still_read_per_call(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_API_KEY", "env-one")
    assert _auth(api_base="http://a").headers() == {"api-key": "env-one"}  # type: ignore[attr-defined]
    monkeypatch.setenv("AZURE_API_KEY", "env-two")
    assert _auth(api_base="http://a").headers() == {"api-key": "env-two"}  # type: ignore[attr-defined]


def test_each_key_reaches_the_upstream(emulator: Emulator, api_base: str) -> None:
    for key in (KEY, "wrong-key", KEY):
        with contextlib.suppress(AuthenticationError):  # the emulator refuses the wrong key
            completion(model="azure/gpt-4o", api_base=api_base, api_version="2024-10-21", messages=MESSAGES,
                       api_key=key, num_retries=0)  # fmt: skip
        assert emulator.requests[-1].headers["api-key"] == key
