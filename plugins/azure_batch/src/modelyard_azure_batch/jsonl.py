"""Batch input files: validation before upload, and rewriting each line's model.

Azure checks a batch file only after the upload and the batch creation, and reports the
first problems minutes later. :func:`validate_batch_file` checks the same rules locally, in one
streaming pass, and names the line of every problem: each line is a JSON object with
``custom_id``, ``method``, ``url`` and ``body.model``; ``custom_id`` values are unique; every
line names the same model and the same url; at most 100,000 lines and 200 MB (Azure's limits).
The SDK's ``create_file(purpose="batch")``, the ``modelyard batch`` command and the proxy all
call it, so nothing is uploaded when any line is invalid.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from modelyard.errors import BadRequestError

__all__ = [
    "MAX_BYTES",
    "MAX_LINES",
    "BatchFileReport",
    "LineError",
    "rewrite_model",
    "validate_batch_file",
]

MAX_LINES = 100_000
"""Azure's limit on requests per batch file."""
MAX_BYTES = 200 * 1024 * 1024
"""Azure's limit on the size of a batch input file (200 MB)."""
_SPOOL_IN_MEMORY = 8 * 1024 * 1024


@dataclass(frozen=True)
class LineError:
    """One problem in a batch file: the 1-based line, Azure's error code, and what is wrong."""

    line: int
    code: str
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}" if self.line else self.message


@dataclass
class BatchFileReport:
    """What :func:`validate_batch_file` found.

    Attributes:
        lines: the number of request lines.
        bytes: the file size.
        model: the model (deployment or model group) every line names, when they agree.
        url: the url every line names (``/chat/completions`` ...).
        errors: the problems, in line order (at most ``max_errors`` of them are kept).
        error_count: how many problems there were in all.
    """

    lines: int = 0
    bytes: int = 0
    model: str | None = None
    url: str | None = None
    errors: list[LineError] = field(default_factory=list)
    error_count: int = 0
    what = "batch file"

    @property
    def ok(self) -> bool:
        """True when the file may be uploaded."""
        return self.error_count == 0

    def raise_for_errors(self) -> None:
        """Raise ``BadRequestError`` listing the problems (each with its line), if any.

        Raises:
            BadRequestError: ``param`` is ``file``; ``code`` is the first problem's code.
        """
        if self.ok:
            return
        shown = "; ".join(str(e) for e in self.errors)
        more = self.error_count - len(self.errors)
        tail = f"; and {more} more" if more > 0 else ""
        raise BadRequestError(
            f"Invalid {self.what} ({self.error_count} problem{'s' if self.error_count != 1 else ''}), "
            f"nothing was uploaded: {shown}{tail}.",
            param="file",
            code=self.errors[0].code,
        )


class _NonFinite(ValueError):
    pass


def _refuse_constant(name: str) -> Any:
    # Python's json reads NaN and Infinity; Azure's JSON parser does not.
    raise _NonFinite(name)


def _normalize_url(url: str) -> str:
    return url[3:] if url.startswith("/v1/") else url


def _lines(file: IO[bytes]) -> Iterator[bytes]:
    # Iterating a binary file reads it in buffered chunks: the file is never held whole.
    yield from file


def json_lines(stream: IO[bytes], report: BatchFileReport, problem: Callable[[int, str, str], None],
               unit: str) -> Iterator[tuple[int, Any]]:
    """The JSON value of each line of a JSONL file, with its 1-based line number, in one pass.

    What every JSONL upload shares is checked here and reported through ``problem``: blank lines
    before the end (``unit`` names what a line holds), a byte-order mark, lines that are not
    UTF-8 JSON (NaN and Infinity included, which Azure's parser refuses). ``report.bytes`` and
    ``report.lines`` are counted. The stream is read from the start and rewound afterwards.
    """
    pending_blank: list[int] = []
    stream.seek(0)
    try:
        number = 0
        for raw in _lines(stream):
            number += 1
            report.bytes += len(raw)
            text = raw.strip()
            if not text:
                pending_blank.append(number)  # blank lines are fine only at the end
                continue
            for blank in pending_blank:
                problem(blank, "invalid_json_line", f"empty line; every line must hold one {unit}")
            pending_blank.clear()
            report.lines += 1
            if number == 1 and text.startswith(b"\xef\xbb\xbf"):
                problem(number, "invalid_json_line", "the file starts with a byte-order mark; save it as UTF-8 without BOM")
                continue
            try:
                obj: Any = json.loads(text, parse_constant=_refuse_constant)
            except _NonFinite as exc:
                problem(number, "invalid_json_line", f"not valid JSON ({exc} is not a JSON number)")
                continue
            except UnicodeDecodeError:
                problem(number, "invalid_json_line", "not UTF-8 text")
                continue
            except json.JSONDecodeError as exc:
                problem(number, "invalid_json_line", f"not valid JSON ({exc.msg} at column {exc.colno})")
                continue
            except RecursionError:
                problem(number, "invalid_json_line", "not valid JSON: nested too deeply")
                continue
            yield number, obj
    finally:
        stream.seek(0)


def validate_batch_file(file: IO[bytes] | bytes, *, max_errors: int = 20) -> BatchFileReport:
    """Check a batch input file line by line, in one pass, without holding it in memory.

    Args:
        file: a seekable binary file object (read from the start and rewound afterwards) or bytes.
        max_errors: how many problems to keep in the report (all are counted).

    Returns:
        A :class:`BatchFileReport`; call ``raise_for_errors()`` to turn problems into an error.
    """
    import io

    stream: IO[bytes] = io.BytesIO(file) if isinstance(file, bytes) else file
    report = BatchFileReport()
    seen: dict[str, int] = {}
    model_line = url_line = 0

    def problem(line: int, code: str, message: str) -> None:
        report.error_count += 1
        if len(report.errors) < max_errors:
            report.errors.append(LineError(line, code, message))

    for number, obj in json_lines(stream, report, problem, "request"):
        if not isinstance(obj, dict):
            problem(number, "invalid_json_line", f"expected a JSON object, got {type(obj).__name__}")
            continue
        custom_id = obj.get("custom_id")
        if not isinstance(custom_id, str) or not custom_id:
            problem(number, "invalid_request", "'custom_id' is missing or not a non-empty string")
        elif custom_id in seen:
            problem(number, "duplicate_custom_id", f"custom_id {custom_id!r} repeats line {seen[custom_id]}")
        else:
            seen[custom_id] = number
        if obj.get("method") != "POST":
            problem(number, "invalid_request", f"'method' must be \"POST\", got {obj.get('method')!r}")
        url = obj.get("url")
        if not isinstance(url, str) or not url.startswith("/"):
            problem(number, "invalid_request", "'url' is missing or not a path such as \"/chat/completions\"")
        elif report.url is None:
            report.url, url_line = url, number
        elif _normalize_url(url) != _normalize_url(report.url):
            problem(number, "url_mismatch", f"'url' is {url!r} but line {url_line} has {report.url!r}; one url per file")
        body = obj.get("body")
        model = body.get("model") if isinstance(body, dict) else None
        if not isinstance(body, dict):
            problem(number, "invalid_request", "'body' is missing or not an object")
        elif not isinstance(model, str) or not model:
            problem(number, "invalid_request", "'body.model' is missing or not a non-empty string")
        elif report.model is None:
            report.model, model_line = model, number
        elif model != report.model:
            problem(number, "model_mismatch",
                    f"'body.model' is {model!r} but line {model_line} has {report.model!r}; one model per file")  # fmt: skip
    if report.lines == 0:
        problem(0, "empty_file", "the batch file holds no requests")
    if report.lines > MAX_LINES:
        problem(0, "too_many_tasks", f"the file has {report.lines} requests; Azure accepts at most {MAX_LINES:,}")
    if report.bytes > MAX_BYTES:
        problem(0, "invalid_request", f"the file is {report.bytes:,} bytes; Azure accepts at most {MAX_BYTES:,} (200 MB)")
    return report


def rewrite_model(file: IO[bytes], model: str) -> IO[bytes]:
    """A copy of a (valid) batch file in which every line's ``body.model`` is ``model``.

    The copy is spooled (in memory up to 8 MB, then on disk) and rewound; the caller closes it.
    The input is read from the start and rewound afterwards.
    """
    out = tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY)  # noqa: SIM115  (the caller closes it)
    file.seek(0)
    try:
        for raw in _lines(file):
            if not raw.strip():
                continue
            obj = json.loads(raw)
            obj["body"]["model"] = model
            out.write(json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n")
    finally:
        file.seek(0)
    out.seek(0)
    return out

