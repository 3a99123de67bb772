"""The GPT-5 families (gpt-5, gpt-5-mini, gpt-5-nano, gpt-5.1 ...), as data.

Entry point ``azure_gpt5``: block it and these deployments fall back to the plain ``azure``
family.

Recognised by the explicit segment ``azure/gpt5_series/<deployment>``, by
:data:`GPT5_PATTERN` in the deployment name (or ``base_model``), or by
``model_family="gpt5"``.

``gpt-5-chat`` deployments are ordinary chat models. They are a family of their own,
``gpt5_chat`` (:data:`GPT5_CHAT_PATTERN`, tried before ``gpt5``), rather than a negative
lookahead in the GPT-5 pattern: that way ``base_model="azure/gpt-5-chat"`` pins a deployment
called ``my-gpt-5-thing`` to chat rules (a lookahead would fall through to the name, which
says ``gpt-5``), and ``model_family="gpt5_chat"`` names it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelyard import hookimpl
from modelyard.families import Family, ParamRules

if TYPE_CHECKING:
    from modelyard.hookspecs import RegisterFamily

HOOK_API = (1, 0)

GPT5_PATTERN = r"gpt-?5(?![0-9])"
"""``gpt-5`` (or ``gpt5``) not followed by a digit: ``gpt-5``, ``gpt-5-mini``, ``gpt-5.1``,
``my-gpt-5-deployment`` match; ``gpt-50`` and ``gpt-4o`` do not."""

GPT5_CHAT_PATTERN = r"gpt-?5(?:\.[0-9]+)?-chat"
"""``gpt-5-chat``, ``gpt-5.1-chat`` ...: ordinary chat models."""

GPT5_RULES = ParamRules(
    rename={"max_tokens": "max_completion_tokens"},
    unsupported=frozenset(
        {"top_p", "presence_penalty", "frequency_penalty", "logprobs", "top_logprobs", "logit_bias"}
    ),
    fixed={"temperature": 1},
)
"""GPT-5 rules: ``max_tokens`` renamed, sampling parameters refused, temperature only 1;
``reasoning_effort`` (minimal / low / medium / high, ``none`` where the model takes it) and
``verbosity`` pass; ``system`` and ``developer`` messages are both accepted, so roles are kept."""

GPT5_CHAT_RULES = ParamRules(rename={"max_tokens": "max_completion_tokens"})
"""gpt-5-chat: every chat parameter passes; ``max_tokens`` is sent under its current name."""


@hookimpl
def register_families(register: RegisterFamily) -> None:
    """Register ``gpt5`` and ``gpt5_chat`` under the ``azure/`` prefix."""
    register(
        Family(
            name="gpt5",
            provider="azure",
            prefix="azure/",
            segment="gpt5_series",
            pattern=GPT5_PATTERN,
            priority=20,
            rules=GPT5_RULES,
            description="Azure GPT-5 reasoning models (gpt-5, gpt-5-mini, gpt-5-nano, gpt-5.1 ...)",
        )
    )
    register(
        Family(
            name="gpt5_chat",
            provider="azure",
            prefix="azure/",
            pattern=GPT5_CHAT_PATTERN,
            priority=40,
            refines="gpt5",
            rules=GPT5_CHAT_RULES,
            description="gpt-5-chat deployments: ordinary chat models",
        )
    )
