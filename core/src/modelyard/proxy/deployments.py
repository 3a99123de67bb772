"""The deployments behind each public model name, and the Router that picks among them.

:class:`Deployments` is the proxy's registry: the public model names (``/models``), each
deployment's fixed call arguments and its secret-free description (``/health``, logs). Picking
a deployment for a request, retries, failover, cooldowns, fallbacks and shared state are the
:class:`modelyard.Router`'s job: :meth:`Deployments.router_model_list` hands it the same
deployments, and :func:`build_router` maps ``router_settings`` onto it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..redact import safe_url
from .config import ModelEntry, ProxyConfig

if TYPE_CHECKING:
    from ..router import Router

__all__ = ["Deployment", "Deployments", "build_router"]


@dataclass(frozen=True)
class Deployment:
    """One upstream deployment, ready to call.

    Attributes:
        id: ``model_info.id`` or a stable hash (never derived from a secret).
        model_name: the public name clients send.
        model: the SDK model string (``azure/<deployment>``).
        kwargs: fixed keyword arguments for :func:`modelyard.acompletion` (connection, timeout,
            drop_params ...); secrets stay ``SecretStr``.
        defaults: default request parameters from ``litellm_params`` (the client's win).
        weight: its share of the traffic among its model name's deployments.
        num_retries: retries of this deployment inside one attempt (None: none; the proxy fails
            over instead).
        mode: ``model_info.mode`` (``chat`` when unset).
        routing: the Router's per-deployment numbers (``tpm``, ``rpm``, ``weight``, ``order``,
            ``cooldown_time``, ``allowed_fails``, ``stream_timeout``), from the entry's top level,
            ``litellm_params`` or ``model_info``.
    """

    id: str
    model_name: str
    model: str
    kwargs: dict[str, Any] = field(repr=False)
    defaults: dict[str, Any] = field(repr=False)
    weight: float = 1.0
    num_retries: int | None = None
    mode: str = "chat"
    routing: dict[str, Any] = field(default_factory=dict)
    declared_mode: str | None = None
    """``model_info.mode`` as written (None when unset): the SDK bridges chat and Responses by it."""

    def describe(self) -> dict[str, Any]:
        """A public, secret-free description (for ``/health`` and logs)."""
        out: dict[str, Any] = {"id": self.id, "model_name": self.model_name, "model": self.model}
        for key in ("api_base", "base_url"):
            if self.kwargs.get(key):
                out[key] = safe_url(self.kwargs[key])  # never a user:password@ part
        if self.kwargs.get("api_version"):
            out["api_version"] = self.kwargs["api_version"]
        return out


DEFAULT_NUM_RETRIES = 2
_BRIDGED_MODES = frozenset({"chat", "responses"})
"""Modes the SDK reads from ``model_info`` to bridge chat and Responses (docs/responses.md)."""
_ROUTING = ("tpm", "rpm", "weight", "order", "priority", "cooldown_time", "allowed_fails", "stream_timeout")


def _weight(entry: ModelEntry) -> float:
    p = entry.litellm_params
    for value in (p.weight, p.rpm, entry.rpm, p.tpm, entry.tpm):
        if value is not None:
            return float(value)
    return 1.0


def _routing(entry: ModelEntry) -> dict[str, Any]:
    """The Router's numbers for ``entry``: the top level wins over litellm_params over model_info."""
    out: dict[str, Any] = {}
    info = entry.model_info.model_extra or {}
    for source in (info, entry.litellm_params.model_dump(include=set(_ROUTING)), entry.model_dump(include={"tpm", "rpm"})):
        for key in _ROUTING:
            if source.get(key) is not None:
                out[key] = source[key]
    return out


class Deployments:
    """Every deployment of a config, grouped by public model name.

    Args:
        config: the parsed config.
    """

    def __init__(self, config: ProxyConfig) -> None:
        self._groups: dict[str, list[Deployment]] = {}
        for index, entry in enumerate(config.model_list):
            fixed, defaults = config.deployment_kwargs(entry)
            p = entry.litellm_params
            retries = p.num_retries if p.num_retries is not None else p.max_retries
            deployment = Deployment(
                id=entry.deployment_id(index),
                model_name=entry.model_name,
                model=p.model,
                kwargs=fixed,
                defaults=defaults,
                weight=_weight(entry),
                num_retries=retries,
                mode=entry.model_info.mode or "chat",
                routing=_routing(entry),
                declared_mode=entry.model_info.mode,
            )
            self._groups.setdefault(entry.model_name, []).append(deployment)

    def __iter__(self) -> Iterator[Deployment]:
        for group in self._groups.values():
            yield from group

    def __len__(self) -> int:
        return sum(len(g) for g in self._groups.values())

    def model_names(self) -> list[str]:
        """The public model names, in config order."""
        return list(self._groups)

    def get(self, model_name: str) -> list[Deployment]:
        """The deployments of ``model_name`` (empty when unknown)."""
        return self._groups.get(model_name, [])

    def router_model_list(self) -> list[dict[str, Any]]:
        """The deployments as a :class:`modelyard.Router` ``model_list``.

        Each entry keeps the proxy's deployment id (``model_info.id``, else a stable hash that
        is the same in every proxy instance, so Redis keys line up), its fixed call arguments
        and its default request parameters. The client's parameters win over the defaults;
        the fixed arguments (connection, credentials, timeout, retries, drop_params, family
        pins) are ones a client is not allowed to send.
        """
        out = []
        for d in self:
            params: dict[str, Any] = {"model": d.model, **d.defaults, **d.kwargs}
            params.pop("num_retries", None)
            if d.num_retries:
                params["num_retries"] = d.num_retries  # retries of this deployment inside one try
            routing = dict(d.routing)
            if "stream_timeout" in routing:
                params["stream_timeout"] = routing.pop("stream_timeout")
            info = {"id": d.id, "mode": d.declared_mode} if d.declared_mode in _BRIDGED_MODES else {"id": d.id}
            out.append({"model_name": d.model_name, "litellm_params": params, "model_info": info, **routing})
        return out


def build_router(config: ProxyConfig, deployments: Deployments) -> Router:
    """The :class:`modelyard.Router` for ``config``: ``router_settings`` (and LiteLLM's
    ``litellm_settings`` fallbacks for what it leaves unset) mapped onto ``Router(...)``.

    Raises:
        ConfigError: a setting the Router refuses (the message names it).
    """
    from ..router import Router

    rs, ls = config.router_settings, config.litellm_settings
    kwargs: dict[str, Any] = rs.model_dump(exclude_none=True, exclude=set(rs.model_extra or ()))
    for name in ("redis_url", "redis_password"):
        secret = getattr(rs, name)
        if secret is not None:
            kwargs[name] = secret.get_secret_value()
    if rs.num_retries is None:
        kwargs["num_retries"] = ls.num_retries if ls.num_retries is not None else DEFAULT_NUM_RETRIES
    if rs.timeout is None and ls.request_timeout is not None:
        kwargs["timeout"] = ls.request_timeout
    for name in ("fallbacks", "context_window_fallbacks", "content_policy_fallbacks", "default_fallbacks"):
        if name not in kwargs and getattr(ls, name) is not None:
            kwargs[name] = getattr(ls, name)
    return Router(model_list=deployments.router_model_list(), **kwargs)

