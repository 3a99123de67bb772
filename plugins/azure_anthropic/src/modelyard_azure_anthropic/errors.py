"""Anthropic's error bodies (``{"type": "error", "error": {"type", "message"}}``) to modelyard's error tree.

| Anthropic ``error.type`` (status) | modelyard error |
|---|---|
| ``invalid_request_error`` (400) | ``BadRequestError``; ``ContextWindowExceededError`` when the prompt is too long |
| ``authentication_error`` (401) | ``AuthenticationError`` |
| ``permission_error`` (403) | ``PermissionDeniedError`` |
| ``not_found_error`` (404) | ``NotFoundError`` |
| ``request_too_large`` (413) | ``BadRequestError`` (status 413) |
| ``rate_limit_error`` (429) | ``RateLimitError`` with ``retry_after`` |
| ``api_error`` (500) | ``InternalServerError`` |
| ``overloaded_error`` (529) | ``ServiceUnavailableError`` (status 529; retried with backoff by the transport) |

Azure's own gateway errors (its ``{"error": {"code", "message"}}`` shape, a 401 from the
resource) are read too. The error's ``code`` is Anthropic's ``error.type``.
"""

from __future__ import annotations

from typing import Any

from modelyard.errors import (
    APIError,
    BadRequestError,
    ContextWindowExceededError,
    RateLimitError,
    ServiceUnavailableError,
    error_for_status,
)

__all__ = ["error_from_body"]


def error_from_body(status: int, body: Any, headers: Any = None, **common: Any) -> APIError:
    """The :class:`APIError` for an Anthropic (or Azure) error body answered with ``status``."""
    detail: dict[str, Any] = {}
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        detail = body["error"]
    kind = detail.get("type") or detail.get("code")
    message = str(detail.get("message") or f"Claude on Azure AI Foundry answered HTTP {status}.")
    kw: dict[str, Any] = {"status_code": status, "code": str(kind) if kind else None, "body": body, **common}
    if kind == "overloaded_error" or status == 529:
        return ServiceUnavailableError(message, **kw)
    if status == 429 or kind == "rate_limit_error":
        from modelyard.transport import parse_retry_after

        return RateLimitError(message, retry_after=parse_retry_after(headers) if headers is not None else None, **kw)
    if status == 400 and ("prompt is too long" in message or "context window" in message):
        return ContextWindowExceededError(message, **kw)
    if status == 413:
        return BadRequestError(message, **kw)
    return error_for_status(status)(message, **kw)
