"""The ``messages`` operation (Anthropic's Messages API, native): its row and its models.

The ``messages`` row (contributed through ``register_operations``) carries a Messages API body as
Anthropic's SDKs and Claude Code send it, to a provider that speaks it, and streams the
upstream's answer (JSON, or its server-sent events) back unchanged. These models type only
what the pipeline must read; every other field is kept and sent on as it came.
"""

from __future__ import annotations

from typing import Any

from modelyard.plugin import Operation, ProxyPath
from pydantic import BaseModel, ConfigDict

__all__ = ["MESSAGES", "MESSAGES_PATHS", "MessagesParams", "MessagesResponse"]


class MessagesParams(BaseModel):
    """A Messages API request body (without ``model``, which names the deployment).

    ``max_tokens`` is not required here: the upstream's own 400 says so in its error shape.
    """

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)

    messages: list[dict[str, Any]]
    max_tokens: int | None = None
    system: str | list[dict[str, Any]] | None = None
    stream: bool | None = None


class MessagesResponse(BaseModel):
    """A Messages API answer (``type == "message"``); the proxy passes the upstream's bytes on."""

    model_config = ConfigDict(extra="allow")

    id: str = ""
    type: str = "message"
    role: str = "assistant"
    content: list[dict[str, Any]] = []
    model: str = ""
    stop_reason: str | None = None
    usage: dict[str, Any] | None = None


MESSAGES = Operation(
    name="messages",
    sdk="anthropic_messages",
    request=MessagesParams,
    response=MessagesResponse,  # unused: the answer is passed through (streams_through)
    answer="binary",
    payload=("messages",),
    paths=("/messages",),
    modes=frozenset({"chat"}),
    description="Anthropic Messages API, native (for Anthropic's SDKs and Claude Code)",
    streams_through=True,
    forward_headers=("anthropic-beta",),
)
"""The row: ``modelyard.anthropic_messages`` / ``aanthropic_messages``, the Router's methods of
those names, and the proxy's ``POST /messages`` and ``/v1/messages``."""

MESSAGES_PATHS = (ProxyPath("/anthropic/v1/messages", "messages", description="(the path of Anthropic's Foundry clients)"),)
"""Where Anthropic's clients pointed at a Foundry resource's ``/anthropic`` send it (model in the body)."""
