"""Declarative model families: how a model string is recognised, and which parameter rules apply.

A plugin returns :class:`Family` objects from its ``register_families`` hook; the core does the
rest. Recognition, most specific first:

1. the provider **prefix** (``azure/``, ``azure_text/``): the longest registered prefix wins;
2. an explicit **segment** after the prefix (``azure/o_series/<deployment>``), stripped from
   the deployment name;
3. a family **pinned** by the caller (``model_family="o_series"``, exactly that family) or
   found from ``base_model`` (``azure/o3-mini``), for deployments whose names say nothing.
   When ``base_model`` is given it is the only name the patterns see: it says what the
   deployment is, so the deployment's own name is not sniffed;
4. a **pattern** matched against the deployment name (``o3`` in ``my-o3-deployment``), higher
   ``priority`` first;
5. the prefix's default family (the one with neither segment nor pattern).

A family chosen by its segment is then **refined**: a family declaring ``refines=<that
family>`` whose pattern matches the deployment name (or ``base_model``) replaces it, so
``azure/o_series/my-o1-mini`` gets the stricter o1-mini rules.

Parameter rules are applied by :func:`apply_rules`; a plugin writes code only for what these
rules cannot say.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from .errors import BadRequestError, UnsupportedParamsError
from .types import Route

__all__ = ["Family", "FamilyRegistry", "ParamRules", "Provider", "apply_rules", "check_needed_plugins"]


class ParamRules(BaseModel):
    """What a family does to the caller's parameters before the request is built.

    Attributes:
        rename: parameter renames, e.g. ``{"max_tokens": "max_completion_tokens"}``.
        unsupported: parameters the family refuses; dropped under ``drop_params``, else an error.
        fixed: parameters that only take one value (``{"temperature": 1}``); that value passes,
            any other is treated as unsupported.
        role_map: message role rewrites, e.g. ``{"system": "developer"}``.
        simulate_stream: the upstream cannot stream; ``stream=True`` is served from one
            non-streaming call, replayed as chunks.
        defaults: parameters added when the caller did not set them.
        needs_plugin: parameters only a further plugin can honour, mapped to that plugin's
            distribution (or entry-point) name, e.g. ``{"enhancements": "modelyard-x"}``. When
            that plugin is not loaded (not installed, blocked, or skipped) a call that sets the
            parameter fails before anything is sent, naming the plugin; ``drop_params`` does not
            drop it, since the call would silently lose what the caller asked for.
    """

    model_config = ConfigDict(frozen=True)

    rename: dict[str, str] = Field(default_factory=dict)
    unsupported: frozenset[str] = frozenset()
    fixed: dict[str, Any] = Field(default_factory=dict)
    role_map: dict[str, str] = Field(default_factory=dict)
    simulate_stream: bool = False
    defaults: dict[str, Any] = Field(default_factory=dict)
    needs_plugin: dict[str, str] = Field(default_factory=dict)


class Family(BaseModel):
    """A model family, declared as data.

    Attributes:
        name: unique name, used in errors and to pin a family (``model_family="o_series"``).
        provider: the key transform/auth/normalize hooks answer for (``azure``).
        prefix: the model-string prefix that selects the provider (``azure/``). An empty
            prefix makes a **bare-name** family (LiteLLM reads ``gpt-4o`` as OpenAI's): it is
            matched by ``pattern`` alone, only when no other prefix matches, against the whole
            model string, which is then the deployment. Since HOOK_API 1.7.
        segment: an explicit routing segment after the prefix (``o_series``), or None.
        pattern: a regular expression searched (case-insensitively) in the deployment name
            and in ``base_model``, or None.
        priority: among pattern families, higher is tried first.
        refines: the name of a broader family this one narrows; when that family is chosen by
            its segment, this one is used instead if its pattern matches.
        operation: the upstream operation (``chat``, ``completions`` ...).
        rules: the parameter rules.
        description: one line for ``modelyard plugins`` and the docs.
    """

    model_config = ConfigDict(frozen=True)

    name: str
    provider: str
    prefix: str
    segment: str | None = None
    pattern: str | None = None
    priority: int = 0
    refines: str | None = None
    operation: str = "chat"
    rules: ParamRules = Field(default_factory=ParamRules)
    description: str = ""

    def matches(self, name: str) -> bool:
        """Whether ``pattern`` occurs in ``name`` (case-insensitive)."""
        return self.pattern is not None and re.search(self.pattern, name, re.IGNORECASE) is not None


class Provider(BaseModel):
    """A provider as its plugins declare it (``register_providers``): who serves what.

    The core knows no provider and names no plugin. When no loaded plugin answers a hook for
    a provider (no ``transform_files_request`` for ``azure`` because the batch plugin is not
    installed), the error names the distribution this declaration gives for that hook, and
    says why it is not loaded and how to fix that.

    Attributes:
        name: the provider key, as in ``Family.provider`` and ``Route.provider`` (``azure``).
        served_by: hook name -> the distribution whose plugin answers it for this provider,
            e.g. ``{"transform_files_request": "modelyard-azure-batch"}``. A key may name one
            operation, ``"<hook>:<operation>"`` (``"transform_request:embeddings"``), which
            wins over the bare hook name for that operation. A value may carry an extra
            (``"modelyard-azure-auth[entra]"``): the install line uses it as given.
        description: one line for the docs.
    """

    model_config = ConfigDict(frozen=True)

    name: str
    served_by: dict[str, str] = Field(default_factory=dict)
    description: str = ""

    def distribution_for(self, hook: str, operation: str | None = None) -> str | None:
        """The distribution declared for ``hook`` (on ``operation`` first), or None."""
        if operation is not None and f"{hook}:{operation}" in self.served_by:
            return self.served_by[f"{hook}:{operation}"]
        return self.served_by.get(hook)


class FamilyRegistry:
    """Every registered family, indexed for :meth:`resolve`.

    ``not_loaded`` is a sentence about installed plugins that are not loaded (skipped with
    the reason, blocked, not enabled); it is appended to the errors of a model string that
    no family matches, since such a plugin is the likely cause.
    """

    def __init__(self, families: Iterable[Family] = (), *, not_loaded: str = "") -> None:
        self.not_loaded = not_loaded
        self._by_name: dict[str, Family] = {}
        self._prefixes: list[str] = []
        self._resolved: dict[tuple[str, str | None, str | None], tuple[Route, Family]] = {}
        for family in families:
            self.add(family)

    def add(self, family: Family) -> None:
        """Register one family; a second family with the same name is an error."""
        if family.name in self._by_name:
            raise ValueError(f"two plugins register a model family named {family.name!r}")
        self._by_name[family.name] = family
        self._prefixes = sorted({f.prefix for f in self._by_name.values()}, key=len, reverse=True)
        self._resolved.clear()

    def __iter__(self) -> Any:
        return iter(self._by_name.values())

    def _example(self) -> str:
        # The prefix most families share (the main provider's), as an example model string.
        counts = Counter(f.prefix for f in self._by_name.values())
        first = min((p for p in self._prefixes if p), key=lambda p: (-counts[p], len(p), p), default="<provider>/")
        return f"'{first}<deployment>'"

    def _note(self) -> str:
        return f" {self.not_loaded}" if self.not_loaded else ""

    def get(self, name: str) -> Family | None:
        """The family called ``name``, or None."""
        return self._by_name.get(name)

    def resolve(
        self, model: str, *, family: str | None = None, base_model: str | None = None
    ) -> tuple[Route, Family]:
        """Turn a model string into a :class:`Route` and the :class:`Family` whose rules apply.

        Args:
            model: ``<prefix><deployment>`` or ``<prefix><segment>/<deployment>``.
            family: a family name that pins the family whatever the deployment is called.
            base_model: the deployment's underlying model (``azure/o3-mini``); when given, the
                family patterns are matched against it instead of the deployment name.

        Raises:
            BadRequestError: no registered prefix matches, or ``family`` is unknown.
        """
        # Resolution is pure for a given registry, and a process sees few distinct model
        # strings: remember the answers (bounded) instead of matching patterns on every call.
        key = (model, family, base_model)
        hit = self._resolved.get(key)
        if hit is None:
            hit = self._resolve(model, family=family, base_model=base_model)
            if len(self._resolved) >= 4096:
                self._resolved.clear()
            self._resolved[key] = hit
        return hit

    def _resolve(self, model: str, *, family: str | None, base_model: str | None) -> tuple[Route, Family]:
        prefix = next((p for p in self._prefixes if p and model.startswith(p)), None)
        if prefix is None and "" in self._prefixes and any(
            f.prefix == "" and f.matches(model) for f in self._by_name.values()
        ):
            prefix = ""  # a bare name (``gpt-4o``) a family without prefix recognises by pattern
        if prefix is None:
            known = ", ".join(p for p in self._prefixes if p) or "none (no model-family plugin is loaded)"
            raise BadRequestError(
                f"Unknown model {model!r}: it must start with a registered provider prefix "
                f"({known}), e.g. {self._example()}.{self._note()}",
                param="model",
                model=model,
            )
        candidates = [f for f in self._by_name.values() if f.prefix == prefix]
        rest = model[len(prefix) :]
        chosen: Family | None = None

        patterned = sorted((f for f in candidates if f.pattern), key=lambda f: -f.priority)
        bare = base_model.split("/", 1)[1] if base_model and "/" in base_model else base_model
        head, sep, tail = rest.partition("/")
        if sep:
            chosen = next((f for f in candidates if f.segment == head), None)
            if chosen is not None:
                rest = tail
                parent = chosen.name
                chosen = next(
                    (f for f in patterned if f.refines == parent and f.matches(bare or tail)), chosen
                )
        if not rest:
            raise BadRequestError(
                f"Model {model!r} names no deployment: use '{prefix}<deployment>'.",
                param="model",
                model=model,
            )
        if chosen is None and family is not None:
            chosen = self._by_name.get(family)
            if chosen is None or chosen.prefix != prefix:
                names = ", ".join(sorted(f.name for f in candidates))
                raise BadRequestError(
                    f"Unknown model family {family!r} for {model!r}; families for {prefix!r}: {names}.",
                    param="model_family",
                    model=model,
                )
        if chosen is None:
            chosen = next((f for f in patterned if f.matches(bare or rest)), None)
        if chosen is None:
            chosen = next((f for f in candidates if f.segment is None and f.pattern is None), None)
        if chosen is None:
            raise BadRequestError(
                f"No model family of {prefix!r} matches {model!r}.{self._note()}", param="model", model=model
            )
        route = Route(
            model=model,
            provider=chosen.provider,
            family=chosen.name,
            deployment=rest,
            operation=chosen.operation,
        )
        return route, chosen


_DROP_HINT = (
    "Remove it, or pass drop_params=True (per call, per deployment, or modelyard.drop_params = True) "
    "to drop unsupported parameters."
)


def apply_rules(
    family: Family,
    messages: list[dict[str, Any]],
    params: dict[str, Any],
    *,
    drop_params: bool,
    model: str,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Apply a family's parameter rules; return new ``(messages, params)`` (inputs untouched).

    Raises:
        UnsupportedParamsError: a parameter the family refuses, unless ``drop_params``.
    """
    rules = family.rules
    out: dict[str, Any] = {}
    for key, value in params.items():
        if key in rules.unsupported or (key in rules.fixed and value != rules.fixed[key]):
            if value is None or drop_params:
                continue
            allowed = (
                f" (got {value!r}; only {rules.fixed[key]!r} is allowed)" if key in rules.fixed else ""
            )
            raise UnsupportedParamsError(
                f"{family.name} models do not support {key!r}{allowed}. {_DROP_HINT}",
                param=key,
                family=family.name,
                model=model,
            )
        target = rules.rename.get(key, key)
        if target != key and params.get(target) is not None:
            continue  # the caller also set the new name: that one wins
        out[target] = value
    for key, value in rules.defaults.items():
        out.setdefault(key, value)
    if rules.role_map:
        messages = [
            {**m, "role": rules.role_map[m["role"]]} if m.get("role") in rules.role_map else m
            for m in messages
        ]
    return messages, out


def check_needed_plugins(
    family: Family,
    params: dict[str, Any],
    *,
    missing: Callable[[str], str | None],
    model: str,
) -> None:
    """Refuse a parameter whose plugin (``ParamRules.needs_plugin``) is not loaded.

    Args:
        family: the resolved family.
        params: the caller's parameters (before or after :func:`apply_rules`).
        missing: returns None when the named plugin is loaded, else why it is not
            (``"blocked: named in the block list"``); see ``Plugins.missing``.
        model: the model string, for the error.

    Raises:
        BadRequestError: ``code == "plugin_not_loaded"``, ``param`` naming the parameter.
    """
    for key, plugin in family.rules.needs_plugin.items():
        if params.get(key) is None:
            continue
        why = missing(plugin)
        if why is not None:
            raise BadRequestError(
                f"{key!r} needs the plugin {plugin!r}, which is not loaded ({why}). "
                f"{_remedy(plugin, why)}, or leave out {key!r}. See `modelyard plugins`.",
                param=key,
                code="plugin_not_loaded",
                model=model,
            )


def _remedy(plugin: str, why: str) -> str:
    """What to do about a plugin that is not loaded, from ``Plugins.missing``'s reason."""
    if why == "not installed":
        return f"Install it (pip install {plugin})"
    if why.startswith("blocked"):
        return "Remove it from MODELYARD_BLOCK_PLUGINS / modelyard_settings.block_plugins"
    if why.startswith("not enabled"):
        return "Add it to MODELYARD_LOAD_PLUGINS / modelyard_settings.load_plugins"
    return "Fix what made it skip"
