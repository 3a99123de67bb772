"""The `ext/` provider: chat to ``{api_base}/openai/v1/chat/completions`` (model in the body).

Written only against :mod:`modelyard.plugin`, from the docs, as a third party would.
"""

from __future__ import annotations

from typing import Any

from modelyard.plugin import (
    AuthenticationError,
    ChatCompletion,
    ChatCompletionChunk,
    ChatRequest,
    ConfigError,
    Connection,
    ConnectionSetting,
    Family,
    ProviderRequest,
    ProviderResponse,
    RegisterConnectionSetting,
    RegisterFamily,
    Route,
    StaticHeaders,
    connection_schema,
    hookimpl,
)

HOOK_API = (1, 7)


@hookimpl
def register_families(register: RegisterFamily) -> None:
    register(Family(name="ext", provider="ext", prefix="ext/"))


@hookimpl
def register_connection_settings(register: RegisterConnectionSetting) -> None:
    register(ConnectionSetting(name="api_key", provider="ext", kind="secret", env=("EXT_API_KEY",), credential=True))
    register(ConnectionSetting(name="ext_tenant", provider="ext", description="sent as x-ext-tenant"))


@hookimpl
def transform_request(route: Route, request: ChatRequest, connection: Connection) -> ProviderRequest | None:
    if route.provider != "ext" or route.operation != "chat":
        return None
    if not connection.api_base:
        raise ConfigError("ext needs api_base", key="api_base")
    body: dict[str, Any] = {"model": route.deployment, "messages": request.messages, **request.params}
    if request.stream:
        body["stream"] = True
    headers = {"x-ext-tenant": str(connection.get("ext_tenant", "none"))}
    url = connection.api_base.rstrip("/") + "/openai/v1/chat/completions"
    return ProviderRequest(url=url, headers=headers, json_body=body, stream=request.stream)


@hookimpl
def resolve_auth(route: Route, connection: Connection, timeout: float | None) -> StaticHeaders | None:
    if route.provider != "ext":
        return None
    key = connection_schema().resolve("ext", "api_key", connection.api_key)
    if key is None:
        raise AuthenticationError("ext needs api_key or EXT_API_KEY")
    return StaticHeaders({"Authorization": f"Bearer {key.get_secret_value()}"})


@hookimpl
def normalize_response(route: Route, response: ProviderResponse) -> Any:
    return ChatCompletion.model_validate_json(response.content) if route.provider == "ext" else None


@hookimpl
def normalize_chunk(route: Route, chunk: dict[str, Any]) -> Any:
    return ChatCompletionChunk.model_validate(chunk) if route.provider == "ext" else None
