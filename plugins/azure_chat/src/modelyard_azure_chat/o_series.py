"""The o-series reasoning families (o1, o3, o3-mini, o4-mini and successors), as data.

Entry point ``azure_o_series``: block it (``MODELYARD_BLOCK_PLUGINS=azure_o_series``) and
these deployments fall back to the plain ``azure`` family.

Recognised by:

* the explicit segment ``azure/o_series/<deployment>`` (stripped from the deployment name);
* :data:`O_SERIES_PATTERN` in the deployment name (or in ``base_model`` when one is given);
* ``model_family="o_series"`` or ``"o_series_legacy"``.

o1-mini and o1-preview take neither ``system`` nor ``developer`` messages and cannot stream:
they are the narrower ``o_series_legacy`` family (:data:`O1_LEGACY_PATTERN`), which also
refines ``azure/o_series/<deployment>`` when the deployment name says ``o1-mini``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelyard import hookimpl
from modelyard.families import Family, ParamRules

if TYPE_CHECKING:
    from modelyard.hookspecs import RegisterFamily

HOOK_API = (1, 0)

O_SERIES_PATTERN = r"(?<![a-z0-9])o[1-9](?![0-9])"
"""An ``o`` and one digit 1-9 that is neither preceded by a letter or digit nor followed by a
digit (case-insensitive): ``o1``, ``o3-mini``, ``my-o3-deployment``, ``prod_o4-mini`` match;
``demo1``, ``foo10``, ``gpt-4o``, ``gpt-35-turbo1``, ``o10`` do not."""

O1_LEGACY_PATTERN = r"(?<![a-z0-9])o1-?(?:mini|preview)(?![a-z0-9])"
"""``o1-mini`` / ``o1-preview`` (also ``o1mini``) with the same boundaries as above."""

SAMPLING_PARAMS = frozenset(
    {"top_p", "presence_penalty", "frequency_penalty", "logprobs", "top_logprobs", "logit_bias"}
)
"""Sampling parameters Azure refuses on reasoning models."""

REASONING_RULES = ParamRules(
    rename={"max_tokens": "max_completion_tokens"},
    unsupported=SAMPLING_PARAMS | {"verbosity"},
    fixed={"temperature": 1},
    role_map={"system": "developer"},
)
"""o-series rules: ``max_tokens`` renamed, sampling parameters and GPT-5's ``verbosity``
refused, temperature only 1, ``system`` sent as ``developer``; ``reasoning_effort`` passes."""

LEGACY_RULES = ParamRules(
    rename={"max_tokens": "max_completion_tokens"},
    unsupported=SAMPLING_PARAMS
    | {"verbosity", "tools", "tool_choice", "parallel_tool_calls", "functions", "function_call", "reasoning_effort"},
    fixed={"temperature": 1},
    role_map={"system": "user", "developer": "user"},
    simulate_stream=True,
)
"""o1-mini / o1-preview: as o-series, plus no tools and no ``reasoning_effort``; ``system``
and ``developer`` sent as ``user``; ``stream=True`` simulated from one non-streaming call."""


@hookimpl
def register_families(register: RegisterFamily) -> None:
    """Register ``o_series`` and ``o_series_legacy`` under the ``azure/`` prefix."""
    register(
        Family(
            name="o_series",
            provider="azure",
            prefix="azure/",
            segment="o_series",
            pattern=O_SERIES_PATTERN,
            priority=10,
            rules=REASONING_RULES,
            description="Azure o-series reasoning models (o1, o3, o3-mini, o4-mini ...)",
        )
    )
    register(
        Family(
            name="o_series_legacy",
            provider="azure",
            prefix="azure/",
            pattern=O1_LEGACY_PATTERN,
            priority=30,
            refines="o_series",
            rules=LEGACY_RULES,
            description="o1-mini and o1-preview: no system/developer role, no streaming",
        )
    )
