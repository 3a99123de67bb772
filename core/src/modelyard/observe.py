"""What one logical call shares across its pipeline calls: a :class:`CallScope`.

A proxy request, or a Router call, may run the pipeline several times (a retry on another
deployment, a fallback group). The scope is the one object they all see, through a context
variable: the proxy opens one per request (with the ``traceparent`` that came in), the Router
opens one per call when there is none and writes which try this is, and the pipeline adds each
finished call to it. Observers (the ``on_call_start`` / ``on_success`` / ``on_failure`` hooks)
read it as ``call.scope`` / ``event.scope``; the proxy's metrics and access log read it when
the request ends.
"""

from __future__ import annotations

import contextlib
import contextvars
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CallScope", "current_scope", "enter_scope", "leave_scope", "no_scope", "trace_id_of"]

_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}")


@dataclass(eq=False)
class CallScope:
    """One logical call (a proxy request, a Router call) around its pipeline calls.

    Attributes:
        trace_headers: the W3C trace context that came in with the proxy request
            (``traceparent``, ``tracestate``); empty in the SDK.
        model_group: the Router's model group of the current try.
        deployment_id: the Router's deployment id (``model_info.id``) of the current try.
        attempt: the Router's try number in this call, 0 for the first; retries and fallback
            groups count on.
        fallback_from: the model group the call was made for, while the Router tries a
            fallback group (None otherwise).
        trace_id: the trace id of the ``traceparent`` sent upstream (set by the pipeline from
            what ``on_call_start`` returned), else of the one that came in.
        upstream_seconds: the time spent in pipeline calls (sending, waiting, reading).
        retries: the Router's retries in this call (tries after the first, in any group).
        fallbacks: ``(from group, to group)`` per fallback group tried.
        cooldowns: ``(deployment id, until as a UNIX time)`` per deployment cooled down.
        calls: ``(model group, deployment id, CallRecord)`` per finished pipeline call (the
            Router's group and deployment of that try, None outside the Router).
        state: scratch space for plugins, shared by the pipeline calls of this scope: key it
            by your distribution's name.
        forwards_answers: the caller sends a chat answer on as the upstream's bytes, when the
            result keeps them (the proxy's ``/chat/completions``). While no observer hook sees
            the call, such an answer is then validated only for what the pipeline reads (its
            envelope, usage, finish reasons): its messages and filter results stay JSON objects.
    """

    trace_headers: dict[str, str] = field(default_factory=dict)
    model_group: str | None = None
    deployment_id: str | None = None
    attempt: int = 0
    fallback_from: str | None = None
    trace_id: str | None = None
    upstream_seconds: float = 0.0
    retries: int = 0
    fallbacks: list[tuple[str, str]] = field(default_factory=list)
    cooldowns: list[tuple[str, float]] = field(default_factory=list)
    calls: list[tuple[str | None, str | None, Any]] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)
    forwards_answers: bool = False

    def __post_init__(self) -> None:
        if self.trace_id is None:
            self.trace_id = trace_id_of(self.trace_headers.get("traceparent"))


_current: contextvars.ContextVar[CallScope | None] = contextvars.ContextVar("modelyard_call_scope", default=None)


def current_scope() -> CallScope | None:
    """The scope of the logical call running in this context, or None."""
    return _current.get()


def enter_scope(scope: CallScope | None = None) -> tuple[CallScope, contextvars.Token[CallScope | None] | None]:
    """Make ``scope`` (a new one when None) current, unless one already is.

    Returns:
        (the current scope, a token for :func:`leave_scope`; None when an outer scope was kept).
    """
    outer = _current.get()
    if outer is not None:
        return outer, None
    scope = scope if scope is not None else CallScope()
    return scope, _current.set(scope)


def leave_scope(token: contextvars.Token[CallScope | None] | None) -> None:
    """Undo :func:`enter_scope` (nothing when it kept an outer scope)."""
    if token is not None:
        _current.reset(token)


@contextlib.contextmanager
def no_scope() -> Iterator[None]:
    """Run a block outside any scope (calls the proxy makes for itself: ``/health`` probes)."""
    token = _current.set(None)
    try:
        yield
    finally:
        _current.reset(token)


def trace_id_of(traceparent: str | None) -> str | None:
    """The trace id (32 hex digits) of a W3C ``traceparent`` header, or None when it is not one."""
    if not traceparent:
        return None
    match = _TRACEPARENT.match(traceparent.strip().lower())
    if match is None or match.group(1) == "0" * 32:
        return None
    return match.group(1)
