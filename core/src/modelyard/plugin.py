"""Everything a plugin author may use, in one module: ``from modelyard.plugin import ...``.

A provider plugin answers hooks (:mod:`modelyard.hookspecs`, the contract) with the types
below; anything not exported here is private to the core and may change without notice. The
surface is pinned by a test (``core/tests/test_plugin_surface.py``), and
``docs/plugins/reference.md`` is generated from these docstrings.

The pipeline a call goes through, and the hook (or type) for each step:

1. resolve: the model string to a :class:`Route` through the :class:`Family` objects plugins
   register (``register_families``), with their :class:`ParamRules`;
2. transform: ``transform_request(route, request: ChatRequest, connection: Connection)``
   returns a :class:`ProviderRequest` (an HTTP call, or a ``handler`` performing it in-process);
3. auth: ``resolve_auth`` returns an :class:`Authenticator` (:class:`NoCredential` when the
   upstream needs none);
4. send: the core's transport (retries, timeouts, streaming);
5. normalize: ``normalize_response`` / ``normalize_chunk`` return the operation's response
   model (:class:`ChatCompletion`, :class:`ChatCompletionChunk` ...);
6. errors: ``map_error`` returns an :class:`APIError` subclass;
7. observe: ``on_call_start`` / ``on_success`` / ``on_failure`` get :class:`CallStart` and
   :class:`CallEvent`.

Providers declare their connection settings (:class:`ConnectionSetting`), who serves what
(:class:`Provider`), how the price table names their models (:class:`PriceNames`), typed views
of their response headers (:class:`HeaderView`) and a proxy config from the environment
(:class:`EnvironmentConfig`).
"""

from __future__ import annotations

from .connection import ConnectionSchema, ConnectionSetting, connection_schema
from .errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConfigError,
    ContentFilterError,
    ContextWindowExceededError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    PluginError,
    PluginNotLoadedError,
    RateLimitError,
    ServiceUnavailableError,
    UnprocessableEntityError,
    UnsupportedParamsError,
    error_for_status,
)
from .families import Family, ParamRules, Provider
from .hookspecs import (
    HOOK_API,
    Authenticator,
    CallEvent,
    CallStart,
    EnvironmentConfig,
    HeaderView,
    RegisterCommand,
    RegisterConnectionSetting,
    RegisterFamily,
    RegisterHeaderView,
    RegisterOperation,
    RegisterPriceNames,
    RegisterPrices,
    RegisterProvider,
    active_when,
    answers_for,
    claims_only_with,
    hookimpl,
)
from .operations import OPERATIONS, Operation, OperationRef, ProxyPath, multipart_parts
from .pricing import PriceNames
from .redact import check_header_values, clean_secret, safe_url, scrub
from .types import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatParams,
    ChatRequest,
    Connection,
    EmbeddingResponse,
    ImageResponse,
    ProviderRequest,
    ProviderResponse,
    Route,
    TextCompletion,
    TokenProvider,
    TranscriptionResponse,
    Usage,
)

__all__ = [
    "HOOK_API",
    "OPERATIONS",
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "AuthenticationError",
    "Authenticator",
    "BadRequestError",
    "CallEvent",
    "CallStart",
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChatParams",
    "ChatRequest",
    "ConfigError",
    "Connection",
    "ConnectionSchema",
    "ConnectionSetting",
    "ContentFilterError",
    "ContextWindowExceededError",
    "EmbeddingResponse",
    "EnvironmentConfig",
    "Family",
    "HeaderView",
    "ImageResponse",
    "InternalServerError",
    "NoCredential",
    "NotFoundError",
    "Operation",
    "OperationRef",
    "ParamRules",
    "PermissionDeniedError",
    "PluginError",
    "PluginNotLoadedError",
    "PriceNames",
    "Provider",
    "ProviderRequest",
    "ProviderResponse",
    "ProxyPath",
    "RateLimitError",
    "RegisterCommand",
    "RegisterConnectionSetting",
    "RegisterFamily",
    "RegisterHeaderView",
    "RegisterOperation",
    "RegisterPriceNames",
    "RegisterPrices",
    "RegisterProvider",
    "Route",
    "ServiceUnavailableError",
    "StaticHeaders",
    "TextCompletion",
    "TokenProvider",
    "TranscriptionResponse",
    "UnprocessableEntityError",
    "UnsupportedParamsError",
    "Usage",
    "active_when",
    "answers_for",
    "check_header_values",
    "claims_only_with",
    "clean_secret",
    "connection_schema",
    "error_for_status",
    "hookimpl",
    "multipart_parts",
    "safe_url",
    "scrub",
]


class StaticHeaders:
    """An :class:`Authenticator` adding the same headers to every attempt (an API key).

    Args:
        headers: the credential headers (``{"Authorization": "Bearer <key>"}``); never shown in
            a repr.
    """

    __slots__ = ("_headers",)

    def __init__(self, headers: dict[str, str]) -> None:
        self._headers = dict(headers)

    def headers(self) -> dict[str, str]:
        """The headers, for a sync attempt."""
        return self._headers

    async def aheaders(self) -> dict[str, str]:
        """The headers, for an async attempt."""
        return self._headers

    def invalidate(self) -> bool:
        """Nothing to refresh: a 401 is final."""
        return False

    def __repr__(self) -> str:
        return f"{type(self).__name__}({sorted(self._headers)})"


class NoCredential(StaticHeaders):
    """The :class:`Authenticator` of an upstream that needs no credential (a local model).

    ``resolve_auth`` is required for every provider (the core refuses to send a call no plugin
    authenticated, so a missing auth plugin is an error rather than an anonymous call): return
    ``NoCredential()`` for your provider when it takes none.
    """

    def __init__(self) -> None:
        super().__init__({})
