"""The Router: one logical model over many deployments.

A call names a model group (``model_name`` in ``model_list``). The Router

1. keeps the group's deployments that may take the call: not cooling down, under their
   ``rpm`` / ``tpm`` for this usage window, not out of quota by Azure's latest
   ``x-ratelimit-remaining-*`` headers, not yet failed for this request (while another is
   left), and in the best priority tier (``order``);
2. lets the routing strategy choose one (:mod:`modelyard.router.strategies`), and reserves a
   request slot for it atomically (so ``rpm`` holds across instances sharing Redis), right
   before the call: the slot is given back when the call ends, however it ends (an error,
   a cancellation, a stream exhausted, closed or dropped unread);
3. calls the SDK pipeline (:func:`modelyard.api.completion`) with the deployment's
   ``litellm_params``; the pipeline's own retries are off, the Router retries on another
   deployment instead;
4. records usage, latency, time to first token and the quota headers; on a failure, counts
   it and cools the deployment down (a 429 at once, other failures past ``allowed_fails`` in
   the window) for ``max(cooldown_time, retry-after)``;
5. when every deployment is unavailable, waits for the first to free up within ``timeout``;
6. after ``num_retries`` retries, tries the fallbacks: ``context_window_fallbacks`` on a
   context-window error, ``content_policy_fallbacks`` on a content-filter error (or a reply
   cut by the filter), else ``fallbacks``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
import types
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .. import api
from .._calls import _retry_on_timeout
from .._ratelimit import remaining
from .._sse import END
from ..api import (
    AsyncChatStream,
    AsyncTextStream,
    ChatStream,
    TextStream,
    acompletion,
    atext_completion,
    completion,
    text_completion,
)
from ..errors import (
    MAX_RETRY_AFTER,
    APIConnectionError,
    APIError,
    BadRequestError,
    ConfigError,
    ContentFilterError,
    ContextWindowExceededError,
    RateLimitError,
    ServiceUnavailableError,
)
from ..observe import CallScope, current_scope, enter_scope, leave_scope
from ..operations import OPERATIONS, Operation
from ..types import ChatCompletion, TextCompletion
from .deployments import Deployment, parse_model_list
from .state import MemoryState, Quota, RedisState, Reservation, RouterState, Snapshot
from .strategies import STRATEGIES, choose

__all__ = ["Router"]

log = logging.getLogger("modelyard.router")

DEFAULT_TIMEOUT = 600.0
_NUMBER = (int, float)
_SYNC_STREAMS = (ChatStream, TextStream)
_ASYNC_STREAMS = (AsyncChatStream, AsyncTextStream)
_ROUTER_KWARGS = ("fallbacks", "context_window_fallbacks", "content_policy_fallbacks", "num_retries", "metadata")
# LiteLLM Router settings that are accepted (so a LiteLLM config loads) but have no effect here.
_IGNORED = frozenset({
    "set_verbose", "debug_level", "cache_responses", "caching_groups", "cache_kwargs", "client_ttl",
    "enable_pre_call_checks", "retry_policy", "model_group_retry_policy", "allowed_fails_policy",
    "default_litellm_params", "default_max_parallel_requests", "retry_after", "polling_interval",
    "enable_loadbalancing_on_batch_endpoints", "router_general_settings", "alerting_config",
    "model_group_alias", "redis_db", "stream_timeout", "assistants_config", "provider_budget_config",
})  # fmt: skip


@dataclass(frozen=True, slots=True)
class _Blocked:
    """Why no deployment of a group can take a call now."""

    soonest: float  # when the first one frees up (epoch seconds)
    cooling: bool  # every one is cooling down after failures (not merely at a limit)
    rate_limited: bool = False  # ... and each of those this process saw cooled by a 429


_NOT_BLOCKED = _Blocked(0.0, False)


@dataclass
class _Request:
    """What one router call carries from try to try."""

    payload: dict[str, Any]  # the operation's own arguments ({"messages": ...})
    kwargs: dict[str, Any]
    num_retries: int
    fallbacks: dict[str, list[str]]
    context_window_fallbacks: dict[str, list[str]]
    content_policy_fallbacks: dict[str, list[str]]
    deadline: float
    estimate: int
    stream: bool
    metadata: dict[str, Any] | None = None
    retry_on_timeout: bool = False
    scope: CallScope | None = None
    tries: int = 0
    fallback_from: str | None = None

    def routed_to(self, d: Deployment) -> None:
        """Tell the caller, through its ``metadata`` dict, and observers, through the
        :class:`~modelyard.observe.CallScope`, which deployment this try uses."""
        if self.metadata is not None:
            self.metadata["model_group"] = d.model_name
            self.metadata["model_id"] = d.id
            self.metadata["deployment"] = d.model
        scope = self.scope
        if scope is not None:
            scope.model_group, scope.deployment_id = d.model_name, d.id
            scope.attempt, scope.fallback_from = self.tries, self.fallback_from
        self.tries += 1

    def retrying(self) -> None:
        """Count a retry of the Router (another try in the same group)."""
        if self.scope is not None:
            self.scope.retries += 1

    def falling_back(self, group: str, fallback: str) -> None:
        """Count a fallback from ``group`` to ``fallback``; the next tries are the fallback's."""
        self.fallback_from = group
        if self.scope is not None:
            self.scope.fallbacks.append((group, fallback))


def _fallback_map(value: Any, name: str) -> dict[str, list[str]]:
    """``[{"gpt-4": ["gpt-35"]}]`` (LiteLLM's shape) or ``{"gpt-4": [...]}`` -> a dict."""
    if value is None:
        return {}
    items = [value] if isinstance(value, Mapping) else value
    if not isinstance(items, list | tuple):
        raise ConfigError(f"{name} must be a list of {{model_group: [fallback groups]}} mappings.", key=name)
    out: dict[str, list[str]] = {}
    for i, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise ConfigError(f"{name}[{i}] must be a mapping {{model_group: [fallback groups]}}.", key=f"{name}[{i}]")
        for group, targets in item.items():
            targets = [targets] if isinstance(targets, str) else targets
            if not isinstance(targets, list | tuple) or not all(isinstance(t, str) for t in targets):
                raise ConfigError(f"{name}[{i}].{group} must be a list of model group names.", key=f"{name}[{i}].{group}")
            out.setdefault(str(group), []).extend(targets)
    return out


def _call_fallbacks(value: Any, name: str) -> dict[str, list[str]]:
    """Per-call fallbacks: LiteLLM's mappings, or a plain list of groups for this call's group."""
    if isinstance(value, list | tuple) and value and all(isinstance(v, str) for v in value):
        return {"*": list(value)}
    return _fallback_map(value, name)


def _estimate_tokens(messages: Any, kwargs: Mapping[str, Any]) -> int:
    """A cheap upper-ish estimate of what Azure counts against TPM: prompt plus max_tokens."""
    chars = 0
    count = 0
    if isinstance(messages, str):
        chars, count = len(messages), 1
    elif isinstance(messages, list):
        for m in messages:
            if isinstance(m, str):  # a list of prompts
                chars += len(m)
                count += 1
                continue
            count += 1
            content = m.get("content") if isinstance(m, dict) else None
            if isinstance(content, str):
                chars += len(content)
            elif isinstance(content, list):
                chars += sum(len(str(p.get("text", ""))) for p in content if isinstance(p, dict))
    limit = kwargs.get("max_tokens") or kwargs.get("max_completion_tokens") or 0
    try:
        limit = int(limit)
    except (TypeError, ValueError):
        limit = 0
    return chars // 4 + 4 * count + max(0, limit)


def _quota(headers: Any) -> Quota | None:
    requests, tokens = remaining(headers)
    if requests is None and tokens is None:
        return None

    def num(v: Any) -> int | None:
        try:
            return int(float(v)) if v is not None else None
        except ValueError:
            return None

    return Quota(num(requests), num(tokens), time.time())


def _headers(result: Any) -> Any:
    """The upstream's response headers kept on a pipeline result (None when there are none)."""
    private = getattr(result, "__pydantic_private__", None)  # skips pydantic's slow __getattr__
    if private is not None:
        return private.get("_response_headers")
    return getattr(result, "_response_headers", None)


def _retryable(err: APIError) -> bool:
    """Worth another deployment: rate limits, 5xx, no response, and deployment faults (401/403/404/408/409)."""
    if isinstance(err, RateLimitError | APIConnectionError):
        return True
    return err.status_code >= 500 or err.status_code in (401, 403, 404, 408, 409)


def _may_retry(err: APIError, req: _Request) -> bool:
    """Worth another try (:func:`_retryable`), unless the upstream may already be running it.

    A call that timed out or lost its connection after sending may be running (and billed)
    upstream: another try, on any deployment, could run it twice. Only ``retry_on_timeout``.
    """
    if isinstance(err, APIConnectionError) and err.request_sent and not req.retry_on_timeout:
        return False
    return _retryable(err)


def _filtered(result: Any) -> bool:
    """A 200 whose output Azure's content filter cut (or emptied)."""
    choices = getattr(result, "choices", None)
    if choices is None:
        return False
    return not choices or any(getattr(c, "finish_reason", None) == "content_filter" for c in choices)


class _Lease:
    """A reserved request slot that is given back exactly once, whoever gets there first.

    The call that reserved it, the stream that took it over, and that stream's finalizer
    may all try; only the first counts. Lock-free (``list.pop`` is atomic), so the finalizer
    can run anywhere.
    """

    __slots__ = ("_slot", "_state")

    def __init__(self, state: RouterState, slot: Reservation) -> None:
        self._state = state
        self._slot = [slot]

    @property
    def held(self) -> bool:
        """Whether the slot is still to be given back."""
        return bool(self._slot)

    def _take(self) -> Reservation | None:
        try:
            return self._slot.pop()
        except IndexError:
            return None

    def release(self, **stats: Any) -> None:
        slot = self._take()
        if slot is not None:
            self._state.release(slot, **stats)

    async def arelease(self, **stats: Any) -> None:
        slot = self._take()
        if slot is not None:
            await self._state.arelease(slot, **stats)

    def abandon(self) -> None:
        slot = self._take()
        if slot is not None:
            self._state.abandon(slot)


def _backoff(attempt: int, err: APIError | None) -> float:
    retry_after = getattr(err, "retry_after", None)
    if isinstance(retry_after, int | float) and 0 <= retry_after <= 60:
        return float(retry_after)
    return min(0.5 * 2.0**attempt, 8.0) * (0.75 + random.random() / 4)


def _result_stats(result: Any, started: float, estimate: int) -> dict[str, Any]:
    """What a finished (not streamed) call reports when it gives its slot back."""
    usage = getattr(result, "usage", None)
    return {
        "tokens": getattr(usage, "total_tokens", None) or estimate,
        "latency": time.perf_counter() - started, "quota": _quota(_headers(result)),
    }  # fmt: skip


def _operation_method(op: Operation, *, asynchronous: bool = False) -> Callable[..., Any]:
    """A Router method for an operation row: its SDK function, load-balanced over ``model``'s group.

    ``router.embedding(model, input, **kwargs)`` takes what :func:`modelyard.embedding` takes
    (the call's own values win over the deployment's ``litellm_params``) plus per-call
    ``num_retries`` and ``fallbacks``.
    """

    def split(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, dict[str, Any], dict[str, Any]]:
        # Positional arguments in the SDK function's order (``op.signature``: model first, or
        # LiteLLM's ``image_generation(prompt, model)``).
        model, kwargs = api._bind(op, args, dict(kwargs))
        return model, {name: kwargs.pop(name) for name in op.payload if name in kwargs}, kwargs

    if asynchronous:

        async def amethod(self: Router, /, *args: Any, **kwargs: Any) -> Any:
            model, payload, rest = split(args, kwargs)
            return await self._aroute(model, self._request(payload, rest), getattr(api, op.async_sdk))

        amethod.__name__ = amethod.__qualname__ = op.async_sdk
        amethod.__doc__ = f"The async twin of :meth:`{op.sdk}`."
        return amethod

    def method(self: Router, /, *args: Any, **kwargs: Any) -> Any:
        model, payload, rest = split(args, kwargs)
        return self._route(model, self._request(payload, rest), getattr(api, op.sdk))

    method.__name__ = method.__qualname__ = op.sdk
    method.__doc__ = (
        f"{op.description.capitalize()} (:func:`modelyard.{op.sdk}`) from one deployment of the model group "
        "``model``, with the Router's strategy, cooldowns, retries and fallbacks."
    )
    return method


def _contributed_method(router: Router, name: str) -> Any:
    """The method ``name`` of an operation row a loaded plugin contributes, bound to ``router``.

    Raises:
        AttributeError: no loaded plugin's row gives ``name`` (naming the plugin that would,
            when a loaded sibling says so).
    """
    if not name.startswith("_"):
        from ..plugins import get_plugins

        plugins = get_plugins()
        table = plugins.operations
        found = table.by_sdk.get(name)
        if found is not None:
            op, asynchronous = found
            method = table.cached(f"Router.{name}", lambda: _operation_method(op, asynchronous=asynchronous))
            return types.MethodType(method, router)
        missing = table.missing(name, plugins)
        if missing is not None:
            raise AttributeError(missing, name=name, obj=router)
    raise AttributeError(f"{type(router).__name__!r} object has no attribute {name!r}", name=name, obj=router)


class Router:
    """Load-balance calls over the deployments of ``model_list``, as LiteLLM's ``Router``.

    Args:
        model_list: deployments: ``{"model_name", "litellm_params": {"model": "azure/<dep>", ...},
            "model_info"?, "tpm"?, "rpm"?}``; ``weight``, ``order`` (or ``priority``),
            ``cooldown_time`` and ``allowed_fails`` may be set per deployment too.
        routing_strategy: one of :data:`~modelyard.router.strategies.STRATEGIES`.
        routing_strategy_args: strategy options (``lowest_latency_buffer``).
        num_retries: retries after the first try, each on another deployment when one is left.
        timeout: seconds per upstream call, and the most a call waits for a deployment to free up.
        fallbacks: ``[{"group": ["other-group", ...]}]``; ``"*"`` applies to every group.
        context_window_fallbacks: the same, used on ``ContextWindowExceededError``.
        content_policy_fallbacks: the same, used on ``ContentFilterError`` and filtered replies.
        default_fallbacks: groups tried after any group's own fallbacks.
        max_fallbacks: the most fallback groups one call tries.
        allowed_fails: failures a deployment may have in a usage window before it cools down.
        cooldown_time: seconds a deployment cools down (a longer ``retry-after`` wins).
        disable_cooldowns: never cool a deployment down.
        retry_on_timeout: also retry (and fall back) after a timeout or a connection lost once
            the request was sent: the upstream may be running it, so it may run and be billed
            twice. Default False, or ``MODELYARD_RETRY_ON_TIMEOUT``; per call too.
        redis_url, redis_host, redis_port, redis_password: share state through Redis.
        usage_window: seconds over which ``rpm`` / ``tpm`` and failures are counted (60).
        quota_ttl: seconds an ``x-ratelimit-remaining-*`` reading is trusted (10).
        state: a :class:`~modelyard.router.state.RouterState` to use instead (tests, custom stores).
        **kwargs: other LiteLLM Router settings are accepted and ignored with a warning.

    Raises:
        ConfigError: a bad setting or ``model_list`` entry (the message names it).
    """

    def __init__(
        self,
        model_list: list[dict[str, Any]] | None = None,
        *,
        routing_strategy: str = "simple-shuffle",
        routing_strategy_args: Mapping[str, Any] | None = None,
        num_retries: int | None = None,
        timeout: float | None = None,
        fallbacks: Any = None,
        context_window_fallbacks: Any = None,
        content_policy_fallbacks: Any = None,
        default_fallbacks: list[str] | None = None,
        max_fallbacks: int = 5,
        allowed_fails: int | None = None,
        cooldown_time: float | None = None,
        disable_cooldowns: bool = False,
        redis_url: str | None = None,
        redis_host: str | None = None,
        redis_port: int | str | None = None,
        redis_password: str | None = None,
        usage_window: float = 60.0,
        quota_ttl: float = 10.0,
        state: RouterState | None = None,
        retry_on_timeout: bool | None = None,
        **kwargs: Any,
    ) -> None:
        for key in kwargs:
            if key not in _IGNORED:
                raise ConfigError(f"Router got an unknown setting {key!r}.", key=key)
            log.warning("Router setting %r is accepted for LiteLLM compatibility and has no effect.", key)
        if routing_strategy not in STRATEGIES:
            raise ConfigError(
                f"Unknown routing_strategy {routing_strategy!r}; use one of: {', '.join(STRATEGIES)}.",
                key="routing_strategy",
            )
        self.routing_strategy = routing_strategy
        try:
            self.retry_on_timeout = _retry_on_timeout({"retry_on_timeout": retry_on_timeout})
        except BadRequestError as exc:
            raise ConfigError(exc.message, key="retry_on_timeout") from None
        self.routing_strategy_args = dict(routing_strategy_args or {})
        self.num_retries = self._count(num_retries, 2, "num_retries")
        self.allowed_fails = self._count(allowed_fails, 3, "allowed_fails")
        self.max_fallbacks = self._count(max_fallbacks, 5, "max_fallbacks")
        self.disable_cooldowns = bool(disable_cooldowns)
        self.cooldown_time = 0.0 if disable_cooldowns else self._seconds(cooldown_time, 5.0, "cooldown_time")
        self.timeout = self._seconds(timeout, DEFAULT_TIMEOUT, "timeout")
        self._per_call_timeout = timeout
        self.quota_ttl = self._seconds(quota_ttl, 10.0, "quota_ttl")
        self.fallbacks = _fallback_map(fallbacks, "fallbacks")
        if default_fallbacks:
            self.fallbacks.setdefault("*", []).extend(default_fallbacks)
        self.context_window_fallbacks = _fallback_map(context_window_fallbacks, "context_window_fallbacks")
        self.content_policy_fallbacks = _fallback_map(content_policy_fallbacks, "content_policy_fallbacks")
        window = self._seconds(usage_window, 60.0, "usage_window")
        if window <= 0:
            raise ConfigError("usage_window must be positive.", key="usage_window")
        self.model_list = list(model_list or [])
        self.deployments = self._usable(parse_model_list(self.model_list))
        self._groups: dict[str, list[Deployment]] = {}
        for d in self.deployments:
            self._groups.setdefault(d.model_name, []).append(d)
        self._ids = {group: [d.id for d in deps] for group, deps in self._groups.items()}  # what each pick reads
        if state is not None:
            self.state = state
        elif redis_url or redis_host:
            port = None
            if redis_port not in (None, ""):
                try:
                    port = int(redis_port)
                except (TypeError, ValueError):
                    raise ConfigError(f"redis_port must be a port number, got {redis_port!r}.", key="redis_port") from None
            self.state = RedisState(redis_url, host=redis_host, port=port, password=redis_password, window=window)
        else:
            self.state = MemoryState(window)
        self._rng = random.Random()
        # Deployment id -> whether its last cooldown seen here followed a 429: a call that finds
        # the whole group cooling answers 429 then, else 503 (another instance's cooldown: 503).
        self._cooled_by_429: dict[str, bool] = {}

    # ------------------------------------------------------------------ configuration

    @staticmethod
    def _count(value: Any, default: int, name: str) -> int:
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(f"{name} must be a non-negative integer, got {value!r}.", key=name)
        return value

    @staticmethod
    def _seconds(value: Any, default: float, name: str) -> float:
        if value is None:
            return default
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{name} must be a number of seconds, got {value!r}.", key=name) from None
        if not math.isfinite(seconds) or seconds < 0:
            raise ConfigError(f"{name} must be a non-negative number of seconds, got {value!r}.", key=name)
        return seconds

    @staticmethod
    def _usable(deployments: list[Deployment]) -> list[Deployment]:
        """Drop, with a warning, deployments whose provider no installed plugin serves."""
        from ..plugins import get_plugins

        families = get_plugins().families
        out = []
        for d in deployments:
            try:
                families.resolve(d.model)
            except BadRequestError as exc:
                log.warning("Router skips deployment %r of model group %r: %s", d.model, d.model_name, exc)
                continue
            out.append(d)
        if not out:
            raise ConfigError(
                "No deployment in model_list can be served by the installed plugins "
                "(see the warnings, and `modelyard plugins`).",
                key="model_list",
            )
        return out

    @property
    def model_names(self) -> list[str]:
        """The model groups callers can name."""
        return list(self._groups)

    def get_model_list(self) -> list[dict[str, Any]]:
        """The ``model_list`` the Router was built from (as given)."""
        return list(self.model_list)

    def __repr__(self) -> str:
        return (
            f"Router(groups={self.model_names}, deployments={len(self.deployments)}, "
            f"routing_strategy={self.routing_strategy!r}, state={type(self.state).__name__})"
        )

    def close(self) -> None:
        """Close the Redis connection, if any."""
        self.state.close()

    async def aclose(self) -> None:
        """Close the running loop's Redis connection, if any."""
        await self.state.aclose()

    # ------------------------------------------------------------------ picking

    def _group(self, model: str) -> list[Deployment]:
        deps = self._groups.get(model)
        if deps is None:
            raise BadRequestError(
                f"The Router has no model group {model!r}; it serves: {', '.join(self.model_names)}.",
                param="model",
                model=model,
            )
        return deps

    def _request(self, payload: dict[str, Any], kwargs: dict[str, Any]) -> _Request:
        own = {k: kwargs.pop(k) for k in _ROUTER_KWARGS if k in kwargs} if not kwargs.keys().isdisjoint(_ROUTER_KWARGS) else {}
        timeout = kwargs.get("timeout", self._per_call_timeout)
        # an httpx.Timeout (per phase) does not bound the whole call: wait up to the Router's
        total = float(timeout) if isinstance(timeout, _NUMBER) and not isinstance(timeout, bool) else self.timeout
        retries = own.get("num_retries", self.num_retries)
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise BadRequestError(f"num_retries must be a non-negative integer, got {retries!r}.", param="num_retries")
        fallbacks, window_fallbacks, policy_fallbacks = self.fallbacks, self.context_window_fallbacks, self.content_policy_fallbacks
        if own:
            try:  # per call, a malformed list is the caller's bad request, not a config error
                if "fallbacks" in own:
                    fallbacks = _call_fallbacks(own["fallbacks"], "fallbacks")
                if "context_window_fallbacks" in own:
                    window_fallbacks = _call_fallbacks(own["context_window_fallbacks"], "context_window_fallbacks")
                if "content_policy_fallbacks" in own:
                    policy_fallbacks = _call_fallbacks(own["content_policy_fallbacks"], "content_policy_fallbacks")
            except ConfigError as exc:
                raise BadRequestError(str(exc), param=exc.key) from None
        return _Request(
            payload=payload,
            kwargs=kwargs,
            num_retries=retries,
            fallbacks=fallbacks,
            context_window_fallbacks=window_fallbacks,
            content_policy_fallbacks=policy_fallbacks,
            deadline=time.monotonic() + total,
            estimate=_estimate_tokens(payload.get("messages", payload.get("prompt", payload.get("input"))), kwargs),
            stream=bool(kwargs.get("stream")),
            metadata=own["metadata"] if isinstance(own.get("metadata"), dict) else None,
            retry_on_timeout=(
                self.retry_on_timeout if kwargs.get("retry_on_timeout") is None else _retry_on_timeout(kwargs)
            ),
        )

    def _blocked_until(self, d: Deployment, s: Snapshot, now: float, estimate: int) -> float:
        """When ``d`` may take a call again (0: now)."""
        if s.cooldown_until > now:
            return s.cooldown_until
        if (d.rpm is not None and s.requests >= d.rpm) or (d.tpm is not None and s.tokens > 0 and s.tokens + estimate > d.tpm):
            return (self.state.window_index(now) + 1) * self.state.window  # the next window
        q = s.quota
        if q is not None and now - q.at < self.quota_ttl:
            out_of_requests = q.remaining_requests is not None and q.remaining_requests <= 0
            out_of_tokens = q.remaining_tokens is not None and q.remaining_tokens < estimate
            if out_of_requests or out_of_tokens:
                return q.at + self.quota_ttl
        return 0.0

    def _select(
        self, deps: Sequence[Deployment], snaps: Mapping[str, Snapshot], tried: set[str], req: _Request
    ) -> tuple[Deployment | None, _Blocked]:
        now = time.time()
        available: list[Deployment] = []
        soonest = math.inf
        cooling = True  # every blocked deployment is cooling down (not at a limit or out of quota)
        for d in deps:
            until = self._blocked_until(d, snaps[d.id], now, req.estimate)
            if until > now:
                soonest = min(soonest, until)
                cooling = cooling and snaps[d.id].cooldown_until > now
            else:
                available.append(d)
        if not available:
            return None, _Blocked(soonest, cooling, all(self._cooled_by_429.get(d.id, False) for d in deps))
        fresh = ([d for d in available if d.id not in tried] or available) if tried else available
        if len(fresh) > 1 and any(d.order is not None for d in fresh):  # one is chosen whatever its order
            best = min(d.order if d.order is not None else math.inf for d in fresh)
            fresh = [d for d in fresh if (d.order if d.order is not None else math.inf) == best]
        chosen = choose(
            self.routing_strategy, fresh, snaps, stream=req.stream, rng=self._rng, now=now,
            quota_ttl=self.quota_ttl, args=self.routing_strategy_args,
        )  # fmt: skip
        return chosen, _NOT_BLOCKED

    def _unavailable(self, group: str, wait: float) -> RateLimitError:
        return RateLimitError(
            f"No deployment of model group {group!r} is available: all are cooling down, at their "
            f"rpm/tpm limits or out of quota; the first frees up in {wait:.1f}s, past the timeout.",
            retry_after=round(wait, 3),
            model=group,
        )

    def _wait(self, group: str, blocked: _Blocked, req: _Request, last: APIError | None) -> float:
        """Seconds to sleep before looking again, or the error to give up with.

        When every deployment is cooling down, the group is failing: the call gives up at once
        rather than sleep through the cooldown into more failures. It raises the call's own last
        error (a deployment failed it just now), else a 429 when every cooldown this process saw
        followed a 429, else a 503; in each case with ``retry_after`` set to when the first
        cooldown ends, so clients come back when there is a chance. A deployment at its ``rpm`` /
        ``tpm`` or out of quota is waited for, within the call's timeout.
        """
        wait = max(0.0, blocked.soonest - time.time())
        if blocked.cooling:
            if last is None:
                cls = RateLimitError if blocked.rate_limited else ServiceUnavailableError
                last = cls(
                    f"No deployment of model group {group!r} is available: all are cooling down after "
                    f"{'rate limits' if blocked.rate_limited else 'failures'}; the first is back in {wait:.1f}s.",
                    model=group,
                )
            raise self._come_back(last, blocked)
        if time.monotonic() + wait > req.deadline:
            raise self._unavailable(group, wait)
        return min(max(wait, 0.005), 1.0)

    @staticmethod
    def _come_back(err: APIError, blocked: _Blocked) -> APIError:
        """``err``, telling when to come back if every deployment of the group is cooling down."""
        if blocked.cooling:
            wait = round(min(max(0.0, blocked.soonest - time.time()), MAX_RETRY_AFTER), 3)
            err.retry_after = max(wait, err.retry_after or 0.0)
        return err

    @staticmethod
    def _backoff_due(chosen: Deployment, tried: set[str], cooled: set[str], delay: float | None) -> bool:
        """Whether to back off before calling ``chosen``: it failed already and nothing else is left."""
        return delay is not None and chosen.id in tried and chosen.id not in cooled

    def _pick(
        self, group: str, deps: Sequence[Deployment], tried: set[str], cooled: set[str], req: _Request,
        delay: float | None, last: APIError | None,
    ) -> tuple[Deployment, _Lease] | None:  # fmt: skip
        """Choose a deployment and reserve its slot; None when the backoff would pass the deadline.

        Nothing is reserved before the backoff sleep, so a call abandoned there holds no slot.
        A group of one deployment without an ``rpm`` is looked at and reserved in one go (see
        :meth:`_apick`).
        """
        ids = self._ids.get(group) or [d.id for d in deps]
        if delay is None and len(deps) == 1 and deps[0].rpm is None:
            snaps, slot = self.state.snapshot_reserve(ids, deps[0].id, None)
            if slot is not None:
                if self._select(deps, snaps, tried, req)[0] is not None:
                    return deps[0], _Lease(self.state, slot)
                self.state.release(slot)
        while True:
            chosen, blocked = self._select(deps, self.state.snapshot(ids), tried, req)
            if chosen is None:
                time.sleep(self._wait(group, blocked, req, last))
            elif self._backoff_due(chosen, tried, cooled, delay):
                assert delay is not None
                if time.monotonic() + delay > req.deadline:
                    return None
                time.sleep(delay)
                delay = None  # then look again: another deployment may have freed up meanwhile
            else:
                slot = self.state.reserve(chosen.id, chosen.rpm)
                if slot is not None:
                    return chosen, _Lease(self.state, slot)
                # else another caller took the window's last request slot: look again

    async def _apick(
        self, group: str, deps: Sequence[Deployment], tried: set[str], cooled: set[str], req: _Request,
        delay: float | None, last: APIError | None,
    ) -> tuple[Deployment, _Lease] | None:  # fmt: skip
        """The async twin of :meth:`_pick`.

        A group of one deployment without an ``rpm`` (the common case) is looked at and reserved
        in one go (one round trip to Redis, not two): the slot is given back if the look says the
        deployment is blocked (out of quota, at its ``tpm``), and the loop below waits as usual.
        """
        ids = self._ids.get(group) or [d.id for d in deps]
        if delay is None and len(deps) == 1 and deps[0].rpm is None:
            snaps, slot = await self.state.asnapshot_reserve(ids, deps[0].id, None)
            if slot is not None:
                if self._select(deps, snaps, tried, req)[0] is not None:
                    return deps[0], _Lease(self.state, slot)
                await self.state.arelease(slot)
        while True:
            chosen, blocked = self._select(deps, await self.state.asnapshot(ids), tried, req)
            if chosen is None:
                await asyncio.sleep(self._wait(group, blocked, req, last))
            elif self._backoff_due(chosen, tried, cooled, delay):
                assert delay is not None
                if time.monotonic() + delay > req.deadline:
                    return None
                await asyncio.sleep(delay)
                delay = None
            else:
                slot = await self.state.areserve(chosen.id, chosen.rpm)
                if slot is not None:
                    return chosen, _Lease(self.state, slot)

    # ------------------------------------------------------------------ failures

    def _cooldown_for(self, d: Deployment, err: APIError, failures: int, group_size: int) -> float:
        """Seconds to cool ``d`` down after ``err`` (0: not at all)."""
        if self.disable_cooldowns or group_size < 2 or not _retryable(err):
            return 0.0  # a lone deployment is retried with backoff instead; nothing to steer to
        base = d.cooldown_time if d.cooldown_time is not None else self.cooldown_time
        if base <= 0:
            return 0.0
        allowed = d.allowed_fails if d.allowed_fails is not None else self.allowed_fails
        if isinstance(err, RateLimitError) or failures > allowed:
            retry_after = getattr(err, "retry_after", None) or 0.0
            return max(base, float(retry_after))
        return 0.0

    def _cooled(self, d: Deployment, err: APIError, seconds: float) -> None:
        scope = current_scope()
        if scope is not None:
            scope.cooldowns.append((d.id, time.time() + seconds))
        self._cooled_by_429[d.id] = isinstance(err, RateLimitError)
        log.info(
            "Router cools deployment %s (%s) down for %.1fs after %s %s.",
            d.id, d.model, seconds, type(err).__name__, err.status_code,
        )  # fmt: skip

    def _call_kwargs(self, d: Deployment, req: _Request) -> dict[str, Any]:
        own = d.call_kwargs()
        kw = {**own, **req.kwargs}
        if own.get("extra_headers") and req.kwargs.get("extra_headers"):
            # A call's headers (those a proxy client may pass on) join the deployment's, which win.
            kw["extra_headers"] = {**req.kwargs["extra_headers"], **own["extra_headers"]}
        if "num_retries" not in d.params and "max_retries" not in d.params:
            kw["num_retries"] = 0  # the Router retries, on another deployment when it can
        kw["retry_on_timeout"] = req.retry_on_timeout  # the same policy for a deployment's own retries
        if req.stream and d.stream_timeout is not None and "timeout" not in req.kwargs:
            kw["timeout"] = d.stream_timeout
        if kw.get("timeout") is None and self._per_call_timeout is not None:
            kw["timeout"] = self._per_call_timeout
        return kw

    # ------------------------------------------------------------------ table-driven operations
    # One line per operation of modelyard.operations beyond chat and completions: the methods
    # come from its row, and run through the same _route / _aroute (strategies, cooldowns,
    # retries, fallbacks) as completion().

    embedding = _operation_method(OPERATIONS["embeddings"])
    aembedding = _operation_method(OPERATIONS["embeddings"], asynchronous=True)
    image_generation = _operation_method(OPERATIONS["image_generation"])
    aimage_generation = _operation_method(OPERATIONS["image_generation"], asynchronous=True)
    image_edit = _operation_method(OPERATIONS["image_edit"])
    aimage_edit = _operation_method(OPERATIONS["image_edit"], asynchronous=True)
    speech = _operation_method(OPERATIONS["speech"])
    aspeech = _operation_method(OPERATIONS["speech"], asynchronous=True)
    transcription = _operation_method(OPERATIONS["transcriptions"])
    atranscription = _operation_method(OPERATIONS["transcriptions"], asynchronous=True)
    translation = _operation_method(OPERATIONS["translations"])
    atranslation = _operation_method(OPERATIONS["translations"], asynchronous=True)
    responses = _operation_method(OPERATIONS["responses"])
    aresponses = _operation_method(OPERATIONS["responses"], asynchronous=True)

    if not TYPE_CHECKING:  # mypy keeps checking the names above; the plugins' rows add theirs at run time

        def __getattr__(self, name: str) -> Any:
            return _contributed_method(self, name)

    # ------------------------------------------------------------------ sync
    # ``self`` is positional-only in the public calls: a client's request body becomes
    # ``**kwargs`` (the proxy), and a key named ``self`` is an unknown parameter, not a clash.

    def completion(
        self, /, model: str, messages: list[dict[str, Any]], **kwargs: Any
    ) -> ChatCompletion | ChatStream:
        """A chat completion from one deployment of the model group ``model``.

        Takes everything :func:`modelyard.completion` takes (the call's own values win over the
        deployment's ``litellm_params``) plus per-call ``num_retries``, ``fallbacks``,
        ``context_window_fallbacks`` and ``content_policy_fallbacks``.

        Raises:
            BadRequestError: unknown model group, or a request no deployment would take.
            RateLimitError: no deployment freed up within ``timeout``.
            APIError: the last upstream error, once retries and fallbacks are spent.
        """
        req = self._request({"messages": messages}, dict(kwargs))
        return self._route(model, req, completion)  # type: ignore[no-any-return]

    def text_completion(self, /, model: str, prompt: Any, **kwargs: Any) -> TextCompletion | TextStream:
        """A legacy text completion (:func:`modelyard.text_completion`) from the group ``model``."""
        req = self._request({"prompt": prompt}, dict(kwargs))
        return self._route(model, req, text_completion)  # type: ignore[no-any-return]

    def _route(self, model: str, req: _Request, operation: Callable[..., Any]) -> Any:
        """Run one call of ``operation`` (an SDK pipeline function) with retries and fallbacks."""
        req.scope, token = enter_scope()
        try:
            return self._run_group(model, req, operation)
        except APIError as err:
            for group in self._fallback_groups(model, err, req):
                try:
                    log.info("Router falls back from %r to %r after %s.", model, group, type(err).__name__)
                    req.falling_back(model, group)
                    return self._run_group(group, req, operation)
                except APIError as later:
                    err.add_note(f"fallback {group!r} failed too: {type(later).__name__}: {later}")
            raise
        finally:
            leave_scope(token)

    def _run_group(self, group: str, req: _Request, operation: Callable[..., Any]) -> Any:
        deps = self._group(group)
        tried: set[str] = set()
        cooled: set[str] = set()  # waiting out their cooldown already honoured retry-after
        last: APIError | None = None
        for attempt in range(req.num_retries + 1):
            picked = self._pick(group, deps, tried, cooled, req, _backoff(attempt - 1, last) if attempt else None, last)
            if picked is None:
                break
            if attempt:
                req.retrying()
            d, lease = picked
            try:
                return self._checked(group, req, self._call(d, lease, req, operation, len(deps)))
            except APIError as err:
                last = err
                if self._failed(d, err, len(deps)):
                    cooled.add(d.id)
                if not _may_retry(err, req):
                    raise
                tried.add(d.id)
        assert last is not None
        # retries spent: if the group is cooling down meanwhile, say when it is back
        raise self._come_back(last, self._select(deps, self.state.snapshot([d.id for d in deps]), tried, req)[1])

    def _checked(self, group: str, req: _Request, result: Any) -> Any:
        if req.content_policy_fallbacks and self._targets(req.content_policy_fallbacks, group) and _filtered(result):
            raise ContentFilterError("Response output was blocked by the content filter.", model=group)
        return result

    def _call(
        self, d: Deployment, lease: _Lease, req: _Request, operation: Callable[..., Any], group_size: int
    ) -> Any:
        """Call ``d`` holding ``lease``, which is given back when this returns (a stream takes it over).

        A stream that breaks off later counts as a failure of ``d`` (see :meth:`_failed`).
        """
        req.routed_to(d)
        started = time.perf_counter()
        stats: dict[str, Any] = {}
        streamed = False
        try:
            result = operation(model=d.model, **req.payload, **self._call_kwargs(d, req))
            if isinstance(result, _SYNC_STREAMS):
                routed = _routed_stream(
                    result, d, started, req.estimate, lease, lambda err: self._failed(d, err, group_size)
                )
                streamed = True  # from here the stream holds the slot until it ends
                return routed
            stats = _result_stats(result, started, req.estimate)
            return result
        except APIConnectionError:
            stats = {"latency": time.perf_counter() - started}
            raise
        finally:
            if not streamed:
                lease.release(**stats)

    def _failed(self, d: Deployment, err: APIError, group_size: int) -> bool:
        """Count a failure; cool ``d`` down when it is due. True when it was cooled down."""
        if not _retryable(err):
            return False
        failures = self.state.add_failure(d.id)
        seconds = self._cooldown_for(d, err, failures, group_size)
        if seconds > 0:
            self.state.cool_down(d.id, time.time() + seconds)
            self._cooled(d, err, seconds)
        return seconds > 0

    # ------------------------------------------------------------------ async

    async def acompletion(
        self, /, model: str, messages: list[dict[str, Any]], **kwargs: Any
    ) -> ChatCompletion | AsyncChatStream:
        """The async twin of :meth:`completion`."""
        req = self._request({"messages": messages}, dict(kwargs))
        return await self._aroute(model, req, acompletion)  # type: ignore[no-any-return]

    async def atext_completion(self, /, model: str, prompt: Any, **kwargs: Any) -> TextCompletion | AsyncTextStream:
        """The async twin of :meth:`text_completion`."""
        req = self._request({"prompt": prompt}, dict(kwargs))
        return await self._aroute(model, req, atext_completion)  # type: ignore[no-any-return]

    async def _aroute(self, model: str, req: _Request, operation: Callable[..., Awaitable[Any]]) -> Any:
        """The async twin of :meth:`_route`."""
        req.scope, token = enter_scope()
        try:
            return await self._arun_group(model, req, operation)
        except APIError as err:
            for group in self._fallback_groups(model, err, req):
                try:
                    log.info("Router falls back from %r to %r after %s.", model, group, type(err).__name__)
                    req.falling_back(model, group)
                    return await self._arun_group(group, req, operation)
                except APIError as later:
                    err.add_note(f"fallback {group!r} failed too: {type(later).__name__}: {later}")
            raise
        finally:
            leave_scope(token)

    async def _arun_group(self, group: str, req: _Request, operation: Callable[..., Awaitable[Any]]) -> Any:
        deps = self._group(group)
        tried: set[str] = set()
        cooled: set[str] = set()  # waiting out their cooldown already honoured retry-after
        last: APIError | None = None
        for attempt in range(req.num_retries + 1):
            delay = _backoff(attempt - 1, last) if attempt else None
            picked = await self._apick(group, deps, tried, cooled, req, delay, last)
            if picked is None:
                break
            if attempt:
                req.retrying()
            d, lease = picked
            try:
                return self._checked(group, req, await self._acall(d, lease, req, operation, len(deps)))
            except APIError as err:
                last = err
                if await self._afailed(d, err, len(deps)):
                    cooled.add(d.id)
                if not _may_retry(err, req):
                    raise
                tried.add(d.id)
        assert last is not None
        snaps = await self.state.asnapshot([d.id for d in deps])
        raise self._come_back(last, self._select(deps, snaps, tried, req)[1])

    async def _acall(
        self, d: Deployment, lease: _Lease, req: _Request, operation: Callable[..., Awaitable[Any]], group_size: int
    ) -> Any:
        """The async twin of :meth:`_call` (the lease is given back on cancellation too)."""
        req.routed_to(d)
        started = time.perf_counter()
        stats: dict[str, Any] = {}
        streamed = False
        try:
            result = await operation(model=d.model, **req.payload, **self._call_kwargs(d, req))
            if isinstance(result, _ASYNC_STREAMS):
                routed = _routed_stream(
                    result, d, started, req.estimate, lease, lambda err: self._afailed(d, err, group_size)
                )
                streamed = True  # from here the stream holds the slot until it ends
                return routed
            stats = _result_stats(result, started, req.estimate)
            return result
        except APIConnectionError:
            stats = {"latency": time.perf_counter() - started}
            raise
        finally:
            if not streamed:
                await lease.arelease(**stats)

    async def _afailed(self, d: Deployment, err: APIError, group_size: int) -> bool:
        """Count a failure; cool ``d`` down when it is due. True when it was cooled down."""
        if not _retryable(err):
            return False
        failures = await self.state.aadd_failure(d.id)
        seconds = self._cooldown_for(d, err, failures, group_size)
        if seconds > 0:
            await self.state.acool_down(d.id, time.time() + seconds)
            self._cooled(d, err, seconds)
        return seconds > 0

    # ------------------------------------------------------------------ fallbacks

    @staticmethod
    def _targets(mapping: Mapping[str, list[str]], group: str) -> list[str]:
        return list(mapping.get(group, [])) + [g for g in mapping.get("*", []) if g != group]

    def _fallback_groups(self, group: str, err: APIError, req: _Request) -> Iterator[str]:
        if isinstance(err, ContextWindowExceededError) and self._targets(req.context_window_fallbacks, group):
            targets = self._targets(req.context_window_fallbacks, group)
        elif isinstance(err, ContentFilterError) and self._targets(req.content_policy_fallbacks, group):
            targets = self._targets(req.content_policy_fallbacks, group)
        elif _may_retry(err, req) or isinstance(err, ContextWindowExceededError | ContentFilterError):
            targets = self._targets(req.fallbacks, group)
        else:
            targets = []  # a malformed request fails the same way everywhere
        seen = {group}
        tried = 0
        for target in targets:
            if target in seen or tried >= self.max_fallbacks:
                continue
            seen.add(target)
            tried += 1
            yield target


# ---------------------------------------------------------------------- streams
# A routed stream is the pipeline's stream (a subclass, same attributes) that also tells the
# Router when it ends: in-flight count, time to first token, tokens.


def _stream_tokens(stream: Any, estimate: int) -> int:
    usage = stream._assembler.usage
    return (usage.total_tokens if usage is not None else None) or estimate


class _Routed:
    """Routing bookkeeping for a stream: set by :func:`_routed_stream`."""

    _lease: _Lease
    _deployment: Deployment
    _started: float
    _estimate: int
    _first: float | None
    _quota: Quota | None
    _on_failure: Callable[[APIError], Any]  # counts a break-off against the deployment (async: awaitable)

    def _release_kwargs(self) -> dict[str, Any]:
        return {
            "tokens": _stream_tokens(self, self._estimate), "ttft": self._first,
            "latency": time.perf_counter() - self._started, "quota": self._quota,
        }  # fmt: skip


class _RoutedSync(_Routed):
    def _end(self) -> None:
        if self._lease.held:  # ended once already (the read's end, then close)
            self._lease.release(**self._release_kwargs())

    def __iter__(self) -> Iterator[Any]:
        try:
            for chunk in super().__iter__():  # type: ignore[misc]  # the stream class after this mixin
                if self._first is None:
                    self._first = time.perf_counter() - self._started
                yield chunk
        except APIError as err:
            # A deployment that keeps cutting streams after the first byte is failing like one
            # that answers 5xx: counted, and cooled down past allowed_fails (only _retryable ones).
            self._on_failure(err)
            raise
        finally:
            self._end()

    def close(self) -> None:
        super().close()  # type: ignore[misc]
        self._end()


class _RoutedAsync(_Routed):
    async def _end(self) -> None:
        if self._lease.held:  # ended once already (the last send, then the read's end, then aclose)
            await self._lease.arelease(**self._release_kwargs())

    def __aiter__(self) -> AsyncIterator[Any]:
        items = getattr(super(), "_items", None)  # the pipeline's streams: the base's, not ours again
        return self._routed(items(False) if items is not None else super().__aiter__())  # type: ignore[misc]

    def _wire_items(self) -> AsyncIterator[Any]:
        """The pipeline stream's ``_wire_items`` (chunks, or kept events' JSON), routed; other
        streams' chunks."""
        items = getattr(super(), "_items", None)
        return self._routed(items(True) if items is not None else super().__aiter__())  # type: ignore[misc]

    async def _routed(self, chunks: AsyncIterator[Any]) -> AsyncIterator[Any]:
        try:
            async for chunk in chunks:
                if self._first is None:
                    self._first = time.perf_counter() - self._started
                if type(chunk) is list and chunk and chunk[-1] is END:  # the proxy's last send: slot back first
                    await self._end()
                yield chunk
        except APIError as err:
            await self._on_failure(err)  # as in _RoutedSync.__iter__
            raise
        finally:
            await self._end()

    async def aclose(self) -> None:
        await super().aclose()  # type: ignore[misc]
        await self._end()


_ROUTED_CLASSES: dict[type, type] = {}


def _routed_stream(
    stream: Any, d: Deployment, started: float, estimate: int, lease: _Lease, on_failure: Callable[[APIError], Any]
) -> Any:
    """The pipeline's stream, as a subclass of its own class that also reports to the Router.

    The result is still a ``ChatStream`` (``TextStream`` ...) with the same attributes; when
    it ends (exhausted, closed, or broken) the Router gets its in-flight slot back, its
    tokens, its latency and its time to first token; when it breaks off with an error,
    ``on_failure`` counts it against ``d``. A stream dropped without being read or
    closed gives the slot back when it is garbage-collected (a finalizer, no report).

    The slot is held from the send, not from the first read: the upstream is already
    generating, and the ``rpm`` slot had to be taken before the request went out.
    """
    base = type(stream)
    cls = _ROUTED_CLASSES.get(base)
    if cls is None:
        mixin = _RoutedAsync if hasattr(stream, "__aiter__") else _RoutedSync
        cls = _ROUTED_CLASSES[base] = type(f"Routed{base.__name__}", (mixin, base), {})
    routed: Any = object.__new__(cls)
    routed.__dict__.update(stream.__dict__)  # take the open stream over as is
    routed._lease, routed._deployment, routed._started, routed._estimate = lease, d, started, estimate
    routed._first, routed._quota, routed._on_failure = None, _quota(stream.headers), on_failure
    # The finalizer holds the lease, not the stream; once the stream has ended it does nothing.
    weakref.finalize(routed, lease.abandon).atexit = False
    return routed
