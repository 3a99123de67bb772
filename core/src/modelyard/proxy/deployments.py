"""The deployments behind each public model name, and the one seam that picks among them.

This is deliberately small: a weighted shuffle (``weight``, else ``rpm``, else ``tpm``, else
equal) and failover that avoids deployments already tried for the request. The proxy calls
only :meth:`Deployments.pick` and :meth:`Deployments.get`, so a fuller router (cooldowns,
usage-based strategies, shared state) can replace this class without touching the app.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .config import ModelEntry, ProxyConfig

__all__ = ["Deployment", "Deployments"]


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
    """

    id: str
    model_name: str
    model: str
    kwargs: dict[str, Any] = field(repr=False)
    defaults: dict[str, Any] = field(repr=False)
    weight: float = 1.0
    num_retries: int | None = None
    mode: str = "chat"

    def describe(self) -> dict[str, Any]:
        """A public, secret-free description (for ``/health`` and logs)."""
        out: dict[str, Any] = {"id": self.id, "model_name": self.model_name, "model": self.model}
        for key in ("api_base", "base_url", "api_version"):
            if self.kwargs.get(key):
                out[key] = self.kwargs[key]
        return out


def _weight(entry: ModelEntry) -> float:
    p = entry.litellm_params
    for value in (p.weight, p.rpm, entry.rpm, p.tpm, entry.tpm):
        if value is not None:
            return float(value)
    return 1.0


class Deployments:
    """Every deployment of a config, grouped by public model name.

    Args:
        config: the parsed config.
        rng: the random source for the shuffle (seed it in tests).
    """

    def __init__(self, config: ProxyConfig, *, rng: random.Random | None = None) -> None:
        self._rng = rng or random.Random()
        self._groups: dict[str, list[Deployment]] = {}
        self._weights: dict[str, list[float]] = {}
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
            )
            self._groups.setdefault(entry.model_name, []).append(deployment)
        for name, group in self._groups.items():
            weights = [d.weight for d in group]
            self._weights[name] = weights if sum(weights) > 0 else [1.0] * len(group)

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

    def pick(self, model_name: str, exclude: Iterable[str] = ()) -> Deployment | None:
        """A deployment of ``model_name`` by weighted shuffle, avoiding the ids in ``exclude``.

        When every deployment is excluded, the choice is made among all of them again (a
        single-deployment model retries the same one).

        Returns:
            None when ``model_name`` is unknown.
        """
        group = self._groups.get(model_name)
        if not group:
            return None
        if len(group) == 1:
            return group[0]
        weights = self._weights[model_name]
        excluded = set(exclude)
        if excluded:
            pairs = [(d, w) for d, w in zip(group, weights, strict=True) if d.id not in excluded]
            if pairs and sum(w for _, w in pairs) > 0:
                return self._rng.choices([d for d, _ in pairs], [w for _, w in pairs])[0]
            if pairs:
                return self._rng.choice([d for d, _ in pairs])
        return self._rng.choices(group, weights)[0]
