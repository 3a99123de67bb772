"""The instruct family: ``azure_text/<deployment>`` on the legacy ``/completions`` operation.

Entry point ``azure_instruct``: block it and the ``azure_text/`` prefix is gone.

Only data: the family names the ``completions`` operation, and the Azure transform
(``modelyard_azure_chat.plugin``) builds a ``/completions`` call for any family that does,
turning chat messages into one prompt (:func:`modelyard_azure_chat.text.prompt_from_messages`).
The core hands ``completion()`` callers the chat shape and ``text_completion()`` callers the
native text completion.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelyard import hookimpl
from modelyard.families import Family, ParamRules

if TYPE_CHECKING:
    from modelyard.hookspecs import RegisterFamily

HOOK_API = (1, 0)

CHAT_ONLY_PARAMS = frozenset(
    {
        "tools", "tool_choice", "parallel_tool_calls", "functions", "function_call",
        "response_format", "reasoning_effort", "verbosity", "modalities", "audio",
        "prediction", "store", "metadata",
    }
)  # fmt: skip
"""Chat parameters the completions operation does not take."""


@hookimpl
def register_families(register: RegisterFamily) -> None:
    """Register ``azure_text`` (prefix ``azure_text/``, operation ``completions``)."""
    register(
        Family(
            name="azure_text",
            provider="azure",
            prefix="azure_text/",
            operation="completions",
            rules=ParamRules(
                rename={"max_completion_tokens": "max_tokens"}, unsupported=CHAT_ONLY_PARAMS
            ),
            description="Azure instruct models on /completions (gpt-35-turbo-instruct ...)",
        )
    )
