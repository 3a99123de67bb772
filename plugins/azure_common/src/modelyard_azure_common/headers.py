"""Azure OpenAI's response headers that callers act on, typed: :class:`AzureHeaders`.

Results of calls read it as ``response.azure_headers`` (streams, binary responses and the
Responses API's results too), and ``from modelyard import AzureHeaders`` gives the class:
``modelyard-azure-chat`` (whose ``azure/`` family every Azure call resolves through) registers it
through ``register_header_views`` (HOOK_API 1.9), so the core names no provider. Import
:func:`register_header_views` into a plugin module to contribute it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from modelyard.plugin import RegisterHeaderView, hookimpl

__all__ = ["ATTRIBUTE", "AzureHeaders", "register_header_views"]

ATTRIBUTE = "azure_headers"
"""The attribute results carry the view under."""


@dataclass(frozen=True, slots=True)
class AzureHeaders:
    """The response headers Azure OpenAI sends that callers act on, typed.

    Read it from a response or a stream: ``completion(...).azure_headers.remaining_tokens``.
    Every field is None when the upstream did not send its header.

    Attributes:
        request_id: ``apim-request-id`` (else ``x-request-id``): quote it to Azure support.
        region: ``x-ms-region``, the region that served the call (``"East US 2"``).
        remaining_requests: ``x-ratelimit-remaining-requests`` in the deployment's current window.
        remaining_tokens: ``x-ratelimit-remaining-tokens`` in the deployment's current window.
        limit_requests: ``x-ratelimit-limit-requests`` (sent on some surfaces only).
        limit_tokens: ``x-ratelimit-limit-tokens`` (sent on some surfaces only).
    """

    request_id: str | None = None
    region: str | None = None
    remaining_requests: int | None = None
    remaining_tokens: int | None = None
    limit_requests: int | None = None
    limit_tokens: int | None = None

    @classmethod
    def from_headers(cls, headers: Mapping[str, str] | None) -> AzureHeaders:
        """Read the fields from a header mapping (case-insensitive when it is ``httpx.Headers``)."""
        if not headers:
            return cls()

        def num(name: str) -> int | None:
            value = headers.get(name)
            try:
                return int(float(value)) if value is not None else None
            except ValueError:
                return None

        return cls(
            request_id=headers.get("apim-request-id") or headers.get("x-request-id"),
            region=headers.get("x-ms-region"),
            remaining_requests=num("x-ratelimit-remaining-requests"),
            remaining_tokens=num("x-ratelimit-remaining-tokens"),
            limit_requests=num("x-ratelimit-limit-requests"),
            limit_tokens=num("x-ratelimit-limit-tokens"),
        )


@hookimpl
def register_header_views(register: RegisterHeaderView) -> None:
    """``response.azure_headers`` and ``modelyard.AzureHeaders`` (HOOK_API 1.9)."""
    register(ATTRIBUTE, AzureHeaders)
