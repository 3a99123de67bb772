"""Credentials for Azure OpenAI calls: the ``resolve_auth`` hook.

Which credential wins, first match:

1. ``api-key`` or ``Authorization`` in ``extra_headers``: the caller's header is sent as is;
2. ``azure_ad_token_provider``: ``Authorization: Bearer <provider()>``, called per attempt;
3. ``azure_ad_token``: ``Authorization: Bearer <token>``;
4. ``api_key``: ``api-key: <key>``;
5. environment: ``AZURE_AD_TOKEN`` then ``AZURE_OPENAI_API_KEY`` then ``AZURE_API_KEY``.

Passing more than one of ``api_key``, ``azure_ad_token`` and ``azure_ad_token_provider`` is an
error, not a silent choice. With no credential at all, the error names every parameter and
environment variable that would have worked.
"""

from __future__ import annotations

import inspect
import os
from typing import TYPE_CHECKING

from modelyard import hookimpl
from modelyard.errors import AuthenticationError

if TYPE_CHECKING:
    from modelyard.hookspecs import Authenticator
    from modelyard.types import Connection, Route, TokenProvider

HOOK_API = (1, 0)
PROVIDERS = frozenset({"azure"})


class StaticHeaders:
    """A credential that does not change: an api key or a static AD token."""

    __slots__ = ("_headers",)

    def __init__(self, headers: dict[str, str]) -> None:
        self._headers = headers

    def headers(self) -> dict[str, str]:
        return self._headers

    async def aheaders(self) -> dict[str, str]:
        return self._headers

    def invalidate(self) -> bool:
        return False

    def __repr__(self) -> str:
        return f"StaticHeaders({sorted(self._headers)})"


class ProviderToken:
    """A bearer token from a caller's provider, asked for on every attempt.

    The provider owns caching (azure-identity's ``get_bearer_token_provider`` caches and
    refreshes); asking per attempt means a retry after a 401 gets a fresh token.
    """

    __slots__ = ("_provider",)

    def __init__(self, provider: TokenProvider) -> None:
        self._provider = provider

    def _check(self, token: object) -> dict[str, str]:
        if not isinstance(token, str) or not token:
            raise AuthenticationError(
                f"azure_ad_token_provider returned {type(token).__name__}, expected a non-empty token string."
            )
        return {"Authorization": f"Bearer {token}"}

    def headers(self) -> dict[str, str]:
        token = self._provider()
        if inspect.isawaitable(token):
            close = getattr(token, "close", None)
            if close is not None:
                close()
            raise AuthenticationError(
                "azure_ad_token_provider is async; use acompletion(), or pass a sync provider."
            )
        return self._check(token)

    async def aheaders(self) -> dict[str, str]:
        token = self._provider()
        if inspect.isawaitable(token):
            token = await token
        return self._check(token)

    def invalidate(self) -> bool:
        return True  # the provider may hand out a newer token next time

    def __repr__(self) -> str:
        return "ProviderToken(<provider>)"


_NO_CREDENTIAL = (
    "No credential for Azure OpenAI. Pass api_key=..., azure_ad_token=... or "
    "azure_ad_token_provider=..., or set AZURE_API_KEY (or AZURE_OPENAI_API_KEY) or AZURE_AD_TOKEN."
)


@hookimpl
def resolve_auth(route: Route, connection: Connection) -> Authenticator | None:
    """Pick the credential for an Azure call (order in the module docstring)."""
    if route.provider not in PROVIDERS:
        return None
    extra = connection.extra_headers or {}
    if any(k.lower() in ("api-key", "authorization") for k in extra):
        return StaticHeaders({})
    given = [
        name
        for name in ("api_key", "azure_ad_token", "azure_ad_token_provider")
        if getattr(connection, name) is not None
    ]
    if len(given) > 1:
        raise AuthenticationError(
            f"Pass only one of api_key, azure_ad_token and azure_ad_token_provider (got {', '.join(given)})."
        )
    if connection.azure_ad_token_provider is not None:
        return ProviderToken(connection.azure_ad_token_provider)
    if connection.azure_ad_token is not None:
        return StaticHeaders({"Authorization": f"Bearer {connection.azure_ad_token.get_secret_value()}"})
    if connection.api_key is not None:
        return StaticHeaders({"api-key": connection.api_key.get_secret_value()})
    env = os.environ
    if token := env.get("AZURE_AD_TOKEN"):
        return StaticHeaders({"Authorization": f"Bearer {token}"})
    if key := env.get("AZURE_OPENAI_API_KEY") or env.get("AZURE_API_KEY"):
        return StaticHeaders({"api-key": key})
    raise AuthenticationError(_NO_CREDENTIAL, provider=route.provider, model=route.model)
