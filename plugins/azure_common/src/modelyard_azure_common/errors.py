"""Azure's error bodies to modelyard's error tree, for every Azure operation."""

from __future__ import annotations

from typing import Any

from modelyard.errors import (
    APIError,
    ContentFilterError,
    ContextWindowExceededError,
    RateLimitError,
    error_for_status,
)
from modelyard.transport import parse_retry_after
from modelyard.types import ProviderResponse, Route

__all__ = ["map_azure_error"]


def map_azure_error(route: Route, response: ProviderResponse, provider: str = "azure") -> APIError:
    """The :class:`APIError` for an Azure error response (both the ``error`` wrapper and the bare shape).

    ``content_filter`` (and the images operations' ``content_policy_violation`` /
    ``contentFilter``) -> :class:`ContentFilterError` (with the filter results),
    ``context_length_exceeded`` -> :class:`ContextWindowExceededError`, 429 ->
    :class:`RateLimitError` with ``retry_after``; otherwise the class for the status code.
    ``param`` (the field Azure names) is kept.
    """
    body = response.json_body()
    detail: dict[str, Any] = {}
    if isinstance(body, dict):
        detail = body["error"] if isinstance(body.get("error"), dict) else body
    code = detail.get("code")
    code = str(code) if code is not None else None
    message = str(detail.get("message") or f"Azure OpenAI answered HTTP {response.status_code}.")
    common: dict[str, Any] = {
        "status_code": response.status_code,
        "code": code,
        "param": detail.get("param"),
        "provider": provider,
        "model": route.model,
        "deployment": route.deployment,
        "request_id": response.request_id,
        "body": body,
    }
    # Chat's shape is ``content_filter`` + ``innererror.content_filter_result``; the images
    # operations' (``dalleErrorResponse``) is ``content_policy_violation`` + ``inner_error.
    # content_filter_results``, and the older ``contentFilter`` with no details.
    if code in ("content_filter", "content_policy_violation", "contentFilter"):
        inner = detail.get("innererror") or detail.get("inner_error") or {}
        result = inner.get("content_filter_result") or inner.get("content_filter_results") or {}
        return ContentFilterError(message, content_filter_result=result, **common)
    if code == "context_length_exceeded":
        return ContextWindowExceededError(message, **common)
    if response.status_code == 429:
        return RateLimitError(message, retry_after=parse_retry_after(response.headers), **common)
    if code == "DeploymentNotFound":
        message = f"{message} (deployment {route.deployment!r})"
    return error_for_status(response.status_code)(message, **common)
