"""``modelyard.plugin`` is the plugin author's whole API: its surface is pinned, each name documented."""

from __future__ import annotations

import inspect
from pathlib import Path

import modelyard.plugin as plugin

ROOT = Path(__file__).resolve().parents[2]

SURFACE = [
    "HOOK_API", "OPERATIONS", "APIConnectionError", "APIError", "APITimeoutError", "AuthenticationError",
    "Authenticator", "BadRequestError", "CallEvent", "CallStart", "ChatCompletion", "ChatCompletionChunk",
    "ChatParams", "ChatRequest", "ConfigError", "Connection", "ConnectionSchema", "ConnectionSetting",
    "ContentFilterError", "ContextWindowExceededError", "EmbeddingResponse", "Family", "ImageResponse",
    "InternalServerError", "NoCredential", "NotFoundError", "Operation", "OperationRef", "ParamRules", "PermissionDeniedError",
    "PluginError", "PluginNotLoadedError", "Provider", "ProviderRequest", "ProviderResponse", "ProxyPath", "RateLimitError",
    "RegisterCommand", "RegisterConnectionSetting", "RegisterFamily", "RegisterOperation", "RegisterPrices", "RegisterProvider", "Route",
    "EnvironmentConfig", "HeaderView", "PriceNames", "RegisterHeaderView", "RegisterPriceNames",
    "ServiceUnavailableError", "StaticHeaders", "TextCompletion", "TokenProvider", "TranscriptionResponse",
    "UnprocessableEntityError", "UnsupportedParamsError", "Usage", "active_when", "answers_for", "check_header_values", "claims_only_with", "clean_secret",
    "connection_schema", "error_for_status", "hookimpl", "multipart_parts", "safe_url", "scrub",
]  # fmt: skip


def test_the_plugin_surface_is_pinned() -> None:
    assert sorted(plugin.__all__) == sorted(SURFACE)
    for name in plugin.__all__:
        getattr(plugin, name)


def test_every_class_and_function_of_it_has_a_docstring() -> None:
    for name in plugin.__all__:
        value = getattr(plugin, name)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert (value.__doc__ or "").strip(), name


def test_the_reference_page_renders_the_module() -> None:
    text = (ROOT / "docs" / "plugins" / "reference.md").read_text()
    assert "::: modelyard.plugin" in text


def test_no_credential_authenticates_with_nothing() -> None:
    auth = plugin.NoCredential()
    assert auth.headers() == {} and auth.invalidate() is False
    assert "secret" not in repr(plugin.StaticHeaders({"Authorization": "Bearer secret"}))
