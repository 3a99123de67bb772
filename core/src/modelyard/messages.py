"""The request and answer models of the ``messages`` operation (Anthropic's Messages API, native).

The ``messages`` row of :data:`modelyard.operations.OPERATIONS` carries a Messages API body as
Anthropic's SDKs and Claude Code send it, to a provider that speaks it, and streams the
upstream's answer (JSON, or its server-sent events) back unchanged. These models type only
what the pipeline must read; every other field is kept and sent on as it came.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

__all__ = ["MessagesParams", "MessagesResponse"]


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
