"""One entry of a Router's ``model_list``, parsed and checked.

LiteLLM's shape is kept: ``{"model_name": <group>, "litellm_params": {...}, "model_info": {...},
"tpm": ..., "rpm": ...}``. ``params`` is accepted for ``litellm_params``. The routing numbers
(``tpm``, ``rpm``, ``weight``, ``order`` / ``priority``, ``cooldown_time``, ``allowed_fails``)
may sit at the top level, in ``litellm_params`` or in ``model_info``; they never reach the
upstream call.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError

__all__ = ["Deployment", "parse_model_list"]

_ROUTING_KEYS = ("tpm", "rpm", "weight", "order", "priority", "cooldown_time", "allowed_fails")
_ENV_PREFIX = "os.environ/"
# LiteLLM settings that live in litellm_params but are about the deployment, not the request:
# they must not reach the upstream body (upstreams refuse unknown fields). Prices
# (input_cost_per_token ...) do go to the pipeline, which prices the call with them and never
# sends them upstream (docs/spend.md).
_METADATA_KEYS = frozenset({
    "region_name", "max_budget", "budget_duration", "tags", "max_parallel_requests",
    "use_in_pass_through", "configurable_clientside_auth_params", "stream_timeout",
})  # fmt: skip


@dataclass(frozen=True)
class Deployment:
    """A deployment the Router can send a call to.

    Attributes:
        id: ``model_info.id`` when given, else a stable hash of the deployment's settings
            (the same in every process, so Redis keys line up across instances).
        model_name: the model group callers name (``router.completion(model=<model_name>)``).
        model: the pipeline model string (``azure/<deployment>``).
        tpm, rpm: limits per usage window (None: no limit).
        weight: the share of traffic under simple-shuffle.
        order: the priority tier (1 is filled first; None sorts after every number).
        cooldown_time, allowed_fails: per-deployment overrides of the Router's settings.
        stream_timeout: the timeout for streaming calls (``litellm_params.stream_timeout``).
        params: everything else of ``litellm_params``, passed to the pipeline (never shown).
        model_info: the deployment's ``model_info`` (``base_model`` ...).
    """

    id: str
    model_name: str
    model: str
    tpm: int | None = None
    rpm: int | None = None
    weight: float | None = None
    order: int | None = None
    cooldown_time: float | None = None
    allowed_fails: int | None = None
    stream_timeout: float | None = None
    params: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)
    model_info: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)
    # call_kwargs() once and for all when no value is read from the environment (the proxy's
    # case: it resolved os.environ/ at start-up); None when it must be built per call.
    _static: dict[str, Any] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not any(isinstance(v, str) and v.startswith(_ENV_PREFIX) for v in self.params.values()):
            object.__setattr__(self, "_static", self._build_kwargs())

    def call_kwargs(self) -> dict[str, Any]:
        """The pipeline keyword arguments: ``params`` with ``os.environ/NAME`` values resolved
        (read at call time, so a rotated variable is picked up)."""
        if self._static is not None:
            return dict(self._static)
        return self._build_kwargs()

    def _build_kwargs(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in self.params.items():
            if isinstance(value, str) and value.startswith(_ENV_PREFIX):
                value = os.environ.get(value[len(_ENV_PREFIX) :])
            out[key] = value
        if self.model_info:
            out.setdefault("model_info", dict(self.model_info))
        return out


def _number(value: Any, where: str, kind: type[int] | type[float]) -> Any:
    if value is None:
        return None
    if isinstance(value, bool):
        raise ConfigError(f"{where} must be a number, got {value!r}.", key=where)
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where} must be a number, got {value!r}.", key=where) from None
    if (isinstance(number, float) and not math.isfinite(number)) or number < 0:
        raise ConfigError(f"{where} must be a non-negative number, got {value!r}.", key=where)
    return number


def _stable_id(model_name: str, params: Mapping[str, Any]) -> str:
    # Hash of the settings (secrets included, only as part of a sha256): the same deployment
    # gets the same id in every process, so shared state in Redis lines up.
    blob = json.dumps([model_name, params], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _parse_one(i: int, entry: Any) -> Deployment:
    where = f"model_list[{i}]"
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{where} must be a mapping with model_name and litellm_params.", key=where)
    name = entry.get("model_name")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{where}.model_name must be a non-empty string.", key=f"{where}.model_name")
    params_key = "litellm_params" if "litellm_params" in entry else "params"
    raw = entry.get(params_key)
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}.litellm_params must be a mapping.", key=f"{where}.litellm_params")
    model = raw.get("model")
    if not isinstance(model, str) or not model:
        raise ConfigError(
            f"{where}.{params_key}.model must be a model string such as '<provider>/<deployment>'.",
            key=f"{where}.{params_key}.model",
        )
    info = entry.get("model_info") or {}
    if not isinstance(info, Mapping):
        raise ConfigError(f"{where}.model_info must be a mapping.", key=f"{where}.model_info")
    routing: dict[str, Any] = {}
    for source, label in ((info, "model_info"), (raw, params_key), (entry, None)):
        for key in _ROUTING_KEYS:
            if source.get(key) is not None:
                routing[key] = (source[key], f"{where}.{label}.{key}" if label else f"{where}.{key}")
    got = {k: _number(v, w, float if k in ("weight", "cooldown_time") else int) for k, (v, w) in routing.items()}
    order = got.get("order", got.get("priority"))
    params = {k: v for k, v in raw.items() if k not in _ROUTING_KEYS and k not in _METADATA_KEYS and k != "model"}
    stream_timeout = _number(raw.get("stream_timeout"), f"{where}.{params_key}.stream_timeout", float)
    ident = info.get("id")
    return Deployment(
        id=str(ident) if ident is not None else _stable_id(name, raw),
        model_name=name,
        model=model,
        tpm=got.get("tpm"),
        rpm=got.get("rpm"),
        weight=got.get("weight"),
        order=order,
        cooldown_time=got.get("cooldown_time"),
        allowed_fails=got.get("allowed_fails"),
        stream_timeout=stream_timeout,
        params=params,
        model_info={k: v for k, v in info.items() if k not in _ROUTING_KEYS and k != "id"},
    )


def parse_model_list(model_list: Any) -> list[Deployment]:
    """Parse and check a ``model_list``.

    Raises:
        ConfigError: an entry is malformed (the message names it, e.g. ``model_list[2].rpm``),
            or two entries share an ``id``.
    """
    if not isinstance(model_list, list | tuple) or not model_list:
        raise ConfigError("model_list must be a non-empty list of deployments.", key="model_list")
    out = [_parse_one(i, entry) for i, entry in enumerate(model_list)]
    seen: dict[str, int] = {}
    for i, d in enumerate(out):
        if d.id in seen:
            raise ConfigError(
                f"model_list[{i}] has the same id as model_list[{seen[d.id]}] ({d.id!r}); "
                "give each deployment its own model_info.id.",
                key=f"model_list[{i}].model_info.id",
            )
        seen[d.id] = i
    return out
