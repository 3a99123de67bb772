"""The body of a legacy ``/completions`` call, from a chat request or a native prompt.

The prompt rule (documented in docs/families.md):

* ``text_completion(prompt=...)`` sends its prompt unchanged (a string or a list of strings);
* chat messages become one string: each message's text, in order, joined by a blank line
  (``"\\n\\n"``); roles are not written into the prompt. A message's text is its ``content``
  string, or its text parts joined by ``"\\n"``; a message with no text (an assistant turn
  holding only tool calls) adds nothing. So one user message is sent exactly as written.
* a non-text part (an image, audio) cannot be said in a prompt: ``BadRequestError`` naming
  the part, rather than silently dropping it.

Chat's ``logprobs=True`` + ``top_logprobs=k`` becomes the completions API's integer
``logprobs=k`` (``0`` when ``top_logprobs`` is not given).
"""

from __future__ import annotations

from typing import Any

from modelyard.errors import BadRequestError
from modelyard.types import ChatRequest

__all__ = ["completions_body", "prompt_from_messages"]


def _message_text(i: int, content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for j, part in enumerate(content):
            if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
                texts.append(part["text"])
            else:
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                raise BadRequestError(
                    f"messages[{i}].content[{j}] is a {kind!r} part; an instruct (completions) model "
                    "takes text only. Send text parts, or use a chat deployment.",
                    param=f"messages[{i}].content[{j}]",
                )
        return "\n".join(texts)
    raise BadRequestError(
        f"messages[{i}].content must be a string or a list of parts.", param=f"messages[{i}].content"
    )


def prompt_from_messages(messages: list[dict[str, Any]]) -> str:
    """Join the messages' texts, in order, with a blank line; roles are not written."""
    texts = (_message_text(i, m.get("content")) for i, m in enumerate(messages))
    return "\n\n".join(t for t in texts if t)


def completions_body(request: ChatRequest) -> dict[str, Any]:
    """The JSON body for ``/completions``: ``prompt`` plus the (already rule-checked) params."""
    params = dict(request.params)
    if "prompt" not in params:
        params["prompt"] = prompt_from_messages(request.messages)
    logprobs = params.get("logprobs")
    top = params.pop("top_logprobs", None)
    if isinstance(logprobs, bool):
        if logprobs:
            params["logprobs"] = int(top or 0)
        else:
            del params["logprobs"]
    return params
