"""Credentials for Azure OpenAI calls (and Claude on Azure AI Foundry): the ``resolve_auth`` hook.

It answers for the ``azure`` provider and for ``azure_anthropic`` (Claude deployments on a
Foundry resource, ``modelyard-azure-anthropic``), where an api key travels as ``x-api-key``
(``AZURE_AI_API_KEY``, then ``AZURE_API_KEY``) and Entra ID tokens are for
``https://ai.azure.com/.default`` unless ``azure_scope`` says otherwise.

Which credential wins, first match (``docs/auth.md`` has the table):

1. ``api-key`` or ``Authorization`` in ``extra_headers``: the caller's header is sent as is;
2. one credential given as a parameter; more than one kind is an error, not a silent choice:
   ``azure_ad_token_provider`` (called per attempt), ``azure_ad_token``, ``api_key``,
   ``client_secret`` (with ``tenant_id``, ``client_id``), ``azure_username``/``azure_password``
   (with ``client_id``), ``client_certificate_path`` (with ``tenant_id``, ``client_id``).
   Identifiers a flow needs and the call lacks come from ``AZURE_TENANT_ID``/``AZURE_CLIENT_ID``;
3. ``AZURE_AD_TOKEN``; then ``AZURE_OPENAI_API_KEY``, then ``AZURE_API_KEY``;
4. ``enable_azure_ad_token_refresh`` (the parameter, else ``modelyard.enable_azure_ad_token_refresh``):
   ``DefaultAzureCredential`` (environment, workload identity, managed identity, Azure CLI ...);
5. an Entra credential in the environment: ``AZURE_CLIENT_SECRET``, then
   ``AZURE_CLIENT_CERTIFICATE_PATH`` (or ``AZURE_CERTIFICATE_PATH``), then ``AZURE_USERNAME`` +
   ``AZURE_PASSWORD``, each with ``AZURE_TENANT_ID``/``AZURE_CLIENT_ID``.

Entra flows (2, 4, 5) get tokens for ``azure_scope`` (else ``AZURE_SCOPE``, else
``https://cognitiveservices.azure.com/.default``) from ``azure_authority_host`` (else
``AZURE_AUTHORITY_HOST``, else the public cloud), cached per credential and scope
(:mod:`modelyard_azure_auth.entra`). With no credential at all, the error names every
parameter and environment variable that would have worked.
"""

from __future__ import annotations

import importlib.util
import inspect
import os
import sys
from typing import TYPE_CHECKING, Any

from modelyard import hookimpl
from modelyard.errors import AuthenticationError, ConfigError, PluginNotLoadedError
from modelyard.redact import check_header_values, clean_secret

if TYPE_CHECKING:
    from modelyard.connection import ConnectionSetting, Kind
    from modelyard.hookspecs import Authenticator, RegisterConnectionSetting
    from modelyard.types import Connection, Route, TokenProvider
    from pydantic import SecretStr

    from .entra import CredentialSpec

HOOK_API = (1, 7)  # declares its connection settings (register_connection_settings)
PROVIDERS = frozenset({"azure", "azure_anthropic"})
KEY_HEADERS = {"azure": "api-key", "azure_anthropic": "x-api-key"}
"""The header an api key travels in, per provider: Azure OpenAI's ``api-key``; Claude on Foundry
takes Anthropic's ``x-api-key`` (what Anthropic's own Foundry client sends)."""
DEFAULT_SCOPES = {"azure_anthropic": "https://ai.azure.com/.default"}
"""The Entra ID scope per provider when neither ``azure_scope`` nor ``AZURE_SCOPE`` is set (else
``https://cognitiveservices.azure.com/.default``): Microsoft's Claude-on-Foundry docs ask for
tokens for ``https://ai.azure.com``, the Foundry data plane's audience."""
KEY_ENV = {"azure": ("AZURE_OPENAI_API_KEY", "AZURE_API_KEY"), "azure_anthropic": ("AZURE_AI_API_KEY", "AZURE_API_KEY")}
"""The environment variables an api key is read from, per provider, first set wins."""


def _settings() -> list[ConnectionSetting]:
    from modelyard.connection import ConnectionSetting

    def one(name: str, kind: Kind = "text", *env: str, credential: bool = False, **kw: Any) -> ConnectionSetting:
        return ConnectionSetting(name=name, provider="azure", kind=kind, env=env, credential=credential, **kw)

    return [
        one("api_key", "secret", "AZURE_OPENAI_API_KEY", "AZURE_API_KEY", credential=True),
        one("api_base", "text", "AZURE_API_BASE", "AZURE_OPENAI_ENDPOINT"),
        one("api_version", "text", "AZURE_API_VERSION", "OPENAI_API_VERSION"),
        one("azure_key", "secret", alias_of="api_key", description="LiteLLM's second name for api_key (module setting)"),
        one("azure_ad_token", "secret", "AZURE_AD_TOKEN", credential=True, description="a Microsoft Entra ID access token"),
        one("azure_ad_token_provider", "callable", credential=True, module_setting=False,
            description="a callable returning an Entra ID token (azure-identity's get_bearer_token_provider)"),
        one("tenant_id", "text", "AZURE_TENANT_ID", description="Entra ID tenant"),
        one("client_id", "text", "AZURE_CLIENT_ID", description="Entra ID application (client) id"),
        one("client_secret", "secret", "AZURE_CLIENT_SECRET", credential=True, description="Entra ID client secret"),
        one("azure_username", "text", "AZURE_USERNAME", credential=True, description="Entra ID user name"),
        one("azure_password", "secret", "AZURE_PASSWORD", credential=True, description="Entra ID password"),
        one("client_certificate_path", "text", "AZURE_CLIENT_CERTIFICATE_PATH", "AZURE_CERTIFICATE_PATH", credential=True,
            description="Entra ID client certificate (PEM or PKCS12)"),
        one("client_certificate_password", "secret", "AZURE_CLIENT_CERTIFICATE_PASSWORD", "AZURE_CERTIFICATE_PASSWORD",
            credential=True, description="the certificate's password"),
        one("azure_scope", "text", "AZURE_SCOPE", description="the Entra ID token scope"),
        one("azure_authority_host", "text", "AZURE_AUTHORITY_HOST", description="the Entra ID authority (sovereign clouds)"),
        one("enable_azure_ad_token_refresh", "flag", default=False,
            description="sign in with DefaultAzureCredential when no credential is given"),
    ]


@hookimpl
def register_connection_settings(register: RegisterConnectionSetting) -> None:
    """Declare Azure's connection settings (Entra ID sign-in, LiteLLM's names); the order above is the docs'."""
    for setting in _settings():
        register(setting)


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
        headers = {"Authorization": f"Bearer {token}"}
        if check_header_values(headers) is not None:
            raise AuthenticationError(
                "azure_ad_token_provider returned a token with a control character (a line break?); "
                "a token must be one line (the token is not shown)."
            )
        return headers

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
    "No credential for Azure OpenAI. Pass api_key=..., azure_ad_token=..., azure_ad_token_provider=..., "
    "tenant_id/client_id/client_secret, client_id/azure_username/azure_password, or "
    "tenant_id/client_id/client_certificate_path; or set AZURE_API_KEY (or AZURE_OPENAI_API_KEY), "
    "AZURE_AD_TOKEN, or AZURE_TENANT_ID/AZURE_CLIENT_ID/AZURE_CLIENT_SECRET; or set "
    "modelyard.enable_azure_ad_token_refresh = True to use DefaultAzureCredential."
)
_DEFAULT_CREDENTIAL_ENV = ("AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_FEDERATED_TOKEN_FILE")
"""The variables that say *who* ``DefaultAzureCredential`` signs in as: a change gives a new credential.
(Read per call, so kept short; after other changes call ``clear_token_cache()``.)"""
_KINDS = {
    "azure_ad_token_provider": "azure_ad_token_provider",
    "azure_ad_token": "azure_ad_token",
    "api_key": "api_key",
    "client_secret": "client_secret",
    "azure_username": "azure_username/azure_password",
    "azure_password": "azure_username/azure_password",
    "client_certificate_path": "client_certificate_path",
}


def _secret(value: SecretStr | None) -> str | None:
    return None if value is None else value.get_secret_value() or None


def _env_secret(*names: str) -> str | None:
    """The first of ``names`` set in the environment, cleaned as a config value is
    (a trailing line break dropped, other control characters refused naming the variable)."""
    for name in names:
        value = os.environ.get(name)
        if value:
            try:
                return clean_secret(value, name) or None
            except ValueError as exc:
                raise ConfigError(f"The environment variable {exc}.", key=name) from None
    return None


def _need(value: str | None, param: str, env: str, flow: str) -> str:
    if not value:
        raise AuthenticationError(f"{flow} needs {param} (or the {env} environment variable).", param=param)
    return value


def _refresh_enabled(connection: Connection) -> bool:
    if connection.get("enable_azure_ad_token_refresh") is not None:
        return bool(connection.get("enable_azure_ad_token_refresh"))
    return bool(getattr(sys.modules.get("modelyard"), "enable_azure_ad_token_refresh", False))


def _entra_spec(kind: str, connection: Connection) -> CredentialSpec:
    """The credential for an Entra flow, each field from the call, else the environment."""
    from .entra import CredentialSpec

    env = os.environ
    tenant = connection.get("tenant_id") or env.get("AZURE_TENANT_ID")
    client = connection.get("client_id") or env.get("AZURE_CLIENT_ID")
    authority = connection.get("azure_authority_host") or env.get("AZURE_AUTHORITY_HOST") or None
    if kind == "client_secret":
        flow = "Entra ID client secret sign-in"
        return CredentialSpec(
            "client_secret",
            tenant_id=_need(tenant, "tenant_id", "AZURE_TENANT_ID", flow),
            client_id=_need(client, "client_id", "AZURE_CLIENT_ID", flow),
            secret=_need(_secret(connection.get("client_secret")) or _env_secret("AZURE_CLIENT_SECRET"), "client_secret", "AZURE_CLIENT_SECRET", flow),
            authority=authority,
        )
    if kind == "certificate":
        flow = "Entra ID certificate sign-in"
        path = connection.get("client_certificate_path") or env.get("AZURE_CLIENT_CERTIFICATE_PATH") or env.get("AZURE_CERTIFICATE_PATH")
        password = _secret(connection.get("client_certificate_password")) or _env_secret("AZURE_CLIENT_CERTIFICATE_PASSWORD", "AZURE_CERTIFICATE_PASSWORD")
        return CredentialSpec(
            "certificate",
            tenant_id=_need(tenant, "tenant_id", "AZURE_TENANT_ID", flow),
            client_id=_need(client, "client_id", "AZURE_CLIENT_ID", flow),
            certificate_path=_need(path, "client_certificate_path", "AZURE_CLIENT_CERTIFICATE_PATH", flow),
            secret=password,
            authority=authority,
        )
    if kind == "username_password":
        flow = "Entra ID username/password sign-in"
        return CredentialSpec(
            "username_password",
            tenant_id=tenant,
            client_id=_need(client, "client_id", "AZURE_CLIENT_ID", flow),
            username=_need(connection.get("azure_username") or env.get("AZURE_USERNAME"), "azure_username", "AZURE_USERNAME", flow),
            secret=_need(_secret(connection.get("azure_password")) or _env_secret("AZURE_PASSWORD"), "azure_password", "AZURE_PASSWORD", flow),
            authority=authority,
        )
    # DefaultAzureCredential reads its own variables; they make the credential's identity. A
    # tenant_id/client_id given in the call picks the user-assigned managed or workload identity.
    seen = tuple((name, value) for name in _DEFAULT_CREDENTIAL_ENV if (value := env.get(name)) is not None)
    return CredentialSpec(
        "default", tenant_id=connection.get("tenant_id"), client_id=connection.get("client_id"), authority=authority, environment=seen
    )


def _entra(kind: str, connection: Connection, timeout: float | None, provider: str = "azure") -> Authenticator:
    from .entra import DEFAULT_SCOPE, EntraToken, token_source

    spec = _entra_spec(kind, connection)
    if not _has_azure_identity():
        raise PluginNotLoadedError(
            f"Entra ID sign-in with {spec.label} needs azure-identity, from the 'entra' extra of modelyard-azure-auth, which is "
            "not installed. Install it: pip install 'modelyard-azure-auth[entra]'",
            plugin="modelyard-azure-auth",
        )
    scope = connection.get("azure_scope") or os.environ.get("AZURE_SCOPE") or DEFAULT_SCOPES.get(provider, DEFAULT_SCOPE)
    return EntraToken(token_source(spec, scope), timeout=timeout)


def _has_azure_identity() -> bool:
    """Whether azure-identity can be imported, without importing it (a 0.3 s import).

    It is the ``entra`` extra: api keys and AD tokens need none of it (docs/auth.md).
    """
    try:
        return importlib.util.find_spec("azure.identity") is not None
    except (ImportError, ValueError):  # no ``azure`` namespace at all
        return False


# A credential read from the connection alone (an api key, a static AD token) is the same for
# every call with that Connection: the core shares one frozen Connection per distinct settings,
# so it is picked once per (connection, provider). The entry holds the connection itself, so its
# id cannot be reused while the entry lives. Credentials from the environment or Entra ID are
# picked per call, as before.
_static: dict[tuple[int, str], tuple[Connection, StaticHeaders]] = {}


def _remember(connection: Connection, provider: str, auth: StaticHeaders) -> StaticHeaders:
    if len(_static) >= 256:
        _static.clear()
    _static[(id(connection), provider)] = (connection, auth)
    return auth


@hookimpl
def resolve_auth(route: Route, connection: Connection, timeout: float | None) -> Authenticator | None:
    """Pick the credential for an Azure call (order in the module docstring).

    An Entra token the call has to wait for is waited for at most ``timeout`` seconds.
    """
    if route.provider not in PROVIDERS:
        return None
    provider = route.provider
    known = _static.get((id(connection), provider))
    if known is not None and known[0] is connection:
        return known[1]
    key_header = KEY_HEADERS[provider]
    extra = connection.extra_headers or {}
    if any(k.lower() in ("api-key", "x-api-key", "authorization") for k in extra):
        return _remember(connection, provider, StaticHeaders({}))
    given = sorted(
        {_KINDS[name] for name in connection.model_fields_set & _KINDS.keys() if connection.get(name) is not None}
    )
    if len(given) > 1:
        raise AuthenticationError(
            f"Pass only one of {' and '.join(given)}: they are different credentials, and modelyard "
            "does not pick one silently."
        )
    if connection.get("azure_ad_token_provider") is not None:
        return ProviderToken(connection.get("azure_ad_token_provider"))
    if (token := connection.get("azure_ad_token")) is not None:
        return _remember(connection, provider, StaticHeaders({"Authorization": f"Bearer {token.get_secret_value()}"}))
    if connection.api_key is not None:
        return _remember(connection, provider, StaticHeaders({key_header: connection.api_key.get_secret_value()}))
    if connection.get("client_secret") is not None:
        return _entra("client_secret", connection, timeout, provider)
    if connection.get("client_certificate_path") is not None:
        return _entra("certificate", connection, timeout, provider)
    if connection.get("azure_username") is not None or connection.get("azure_password") is not None:
        return _entra("username_password", connection, timeout, provider)
    env = os.environ
    if token := _env_secret("AZURE_AD_TOKEN"):
        return StaticHeaders({"Authorization": f"Bearer {token}"})
    if key := _env_secret(*KEY_ENV[provider]):
        return StaticHeaders({key_header: key})
    if _refresh_enabled(connection):
        return _entra("default", connection, timeout, provider)
    if env.get("AZURE_CLIENT_SECRET"):
        return _entra("client_secret", connection, timeout, provider)
    if env.get("AZURE_CLIENT_CERTIFICATE_PATH") or env.get("AZURE_CERTIFICATE_PATH"):
        return _entra("certificate", connection, timeout, provider)
    if env.get("AZURE_USERNAME") and env.get("AZURE_PASSWORD"):
        return _entra("username_password", connection, timeout, provider)
    raise AuthenticationError(_NO_CREDENTIAL, provider=route.provider, model=route.model)
