"""Fine-tuning training files: validation before upload, naming the line of every problem.

Azure checks a training file only after the upload, when a job starts (``validating_files``),
and fails the job minutes later. :func:`validate_training_file` checks the chat format locally,
in one streaming pass: each line is a JSON object with ``messages``, a non-empty list of
messages whose ``role`` is ``system``, ``developer``, ``user``, ``assistant``, ``tool`` or
``function``, with at least one ``assistant`` message; ``content`` is a string or a list of parts
(an assistant message may carry ``tool_calls`` or ``function_call`` instead); ``weight`` (0 or 1)
only on assistant messages; optional ``tools`` / ``functions`` lists and ``parallel_tool_calls``.
The older completion format (``prompt`` and ``completion`` strings, for ``babbage-002`` and
``davinci-002``) is accepted too, one format per file. ``create_file(purpose="fine-tune")`` and
the proxy's ``POST /files`` call it through the plugin, so nothing is uploaded when a line is invalid.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import IO, Any

from .jsonl import BatchFileReport, LineError, json_lines

__all__ = ["MAX_TRAINING_BYTES", "TrainingFileReport", "validate_training_file"]

MAX_TRAINING_BYTES = 512 * 1024 * 1024
"""Azure's limit on the size of a training file (512 MB)."""
ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
_CHAT_KEYS = frozenset({"messages", "tools", "functions", "parallel_tool_calls"})
_COMPLETION_KEYS = frozenset({"prompt", "completion"})


@dataclass
class TrainingFileReport(BatchFileReport):
    """What :func:`validate_training_file` found; ``model`` and ``url`` stay None.

    ``format`` is ``chat`` or ``completion`` (from the first valid line).
    """

    format: str | None = None
    what = "fine-tuning training file"


def _check_message(number: int, index: int, message: Any, problem: Any) -> bool:
    """Check one message; True when it is an assistant message."""
    where = f"messages[{index}]"
    if not isinstance(message, dict):
        problem(number, "invalid_message", f"{where} is not an object")
        return False
    role = message.get("role")
    if role not in ROLES:
        problem(number, "invalid_role", f"{where}.role is {role!r}; use one of {', '.join(sorted(ROLES))}")
        return False
    content = message.get("content")
    calls = message.get("tool_calls") is not None or message.get("function_call") is not None
    if content is None and not (role == "assistant" and calls):
        problem(number, "missing_content", f"{where} ({role}) has no 'content'")
    elif content is not None and not isinstance(content, str | list):
        problem(number, "invalid_content", f"{where}.content must be a string or a list of parts")
    if "weight" in message:
        if role != "assistant":
            problem(number, "invalid_weight", f"{where}.weight is only allowed on assistant messages")
        elif message["weight"] not in (0, 1) or isinstance(message["weight"], bool):
            problem(number, "invalid_weight", f"{where}.weight must be 0 or 1, got {message['weight']!r}")
    if "tool_calls" in message and not isinstance(message["tool_calls"], list):
        problem(number, "invalid_message", f"{where}.tool_calls must be a list")
    return bool(role == "assistant")


def _check_line(number: int, obj: Any, report: TrainingFileReport, problem: Any) -> None:
    if not isinstance(obj, dict):
        problem(number, "invalid_json_line", f"expected a JSON object, got {type(obj).__name__}")
        return
    kind = "chat" if "messages" in obj else "completion" if _COMPLETION_KEYS & set(obj) else None
    if kind is None:
        problem(number, "missing_messages", "'messages' is missing: each line holds {\"messages\": [...]}")
        return
    if report.format is None:
        report.format = kind
    elif kind != report.format:
        problem(number, "format_mismatch", f"this line is in the {kind} format but the file is {report.format}; one format per file")
        return
    allowed = _CHAT_KEYS if kind == "chat" else _COMPLETION_KEYS
    for key in obj:
        if key not in allowed:
            problem(number, "unknown_key", f"unknown key {key!r}; a {kind} line holds {', '.join(sorted(allowed))}")
    if kind == "completion":
        for key in sorted(_COMPLETION_KEYS):
            if not isinstance(obj.get(key), str):
                problem(number, "invalid_example", f"{key!r} is missing or not a string")
        return
    messages = obj["messages"]
    if not isinstance(messages, list) or not messages:
        problem(number, "missing_messages", "'messages' must be a non-empty list")
        return
    assistants = [_check_message(number, i, m, problem) for i, m in enumerate(messages)]
    if not any(assistants):
        problem(number, "missing_assistant_message", "no assistant message; each example needs at least one to learn from")
    for key in ("tools", "functions"):
        if key in obj and not isinstance(obj[key], list):
            problem(number, "invalid_tools", f"{key!r} must be a list")
    if "parallel_tool_calls" in obj and not isinstance(obj["parallel_tool_calls"], bool):
        problem(number, "invalid_tools", "'parallel_tool_calls' must be true or false")


def validate_training_file(file: IO[bytes] | bytes, *, max_errors: int = 20) -> TrainingFileReport:
    """Check a fine-tuning training file line by line, in one pass, without holding it in memory.

    Args:
        file: a seekable binary file object (read from the start and rewound afterwards) or bytes.
        max_errors: how many problems to keep in the report (all are counted).

    Returns:
        A :class:`TrainingFileReport`; ``raise_for_errors()`` raises ``BadRequestError`` naming
        each line (``param`` is ``file``).
    """
    stream: IO[bytes] = io.BytesIO(file) if isinstance(file, bytes) else file
    report = TrainingFileReport()

    def problem(line: int, code: str, message: str) -> None:
        report.error_count += 1
        if len(report.errors) < max_errors:
            report.errors.append(LineError(line, code, message))

    for number, obj in json_lines(stream, report, problem, "example"):
        _check_line(number, obj, report, problem)
    if report.lines == 0:
        problem(0, "empty_file", "the training file holds no examples")
    if report.bytes > MAX_TRAINING_BYTES:
        problem(0, "file_too_large", f"the file is {report.bytes:,} bytes; Azure accepts at most {MAX_TRAINING_BYTES:,} (512 MB)")
    return report
