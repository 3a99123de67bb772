"""Batch file validation names every problem's line; rewriting sets every line's model."""

from __future__ import annotations

import io
import json

import pytest
from modelyard.errors import BadRequestError
from modelyard.testing import batch_jsonl
from modelyard_azure_batch import jsonl as batchfile
from modelyard_azure_batch.jsonl import rewrite_model, validate_batch_file


def _lines(n: int = 4) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(line) for line in batch_jsonl(n).decode().splitlines()]


def _file(objs: list[object]) -> bytes:
    return "\n".join(o if isinstance(o, str) else json.dumps(o) for o in objs).encode()


def test_a_valid_file_reports_its_model_url_and_size() -> None:
    data = batch_jsonl(4)
    stream = io.BytesIO(data)
    stream.seek(5)
    report = validate_batch_file(stream)
    assert report.ok and report.lines == 4 and report.bytes == len(data)
    assert report.model == "gpt-4o-mini" and report.url == "/chat/completions"
    assert stream.tell() == 0  # rewound for the upload
    report.raise_for_errors()


def test_every_rule_names_its_line_and_code() -> None:
    lines: list[object] = _lines(9)
    lines[1] = "{oops"  # 2: not JSON
    lines[2] = "[1, 2]"  # 3: not an object
    del lines[3]["custom_id"]  # type: ignore[index]  # 4
    lines[4]["custom_id"] = "task-0"  # type: ignore[index]  # 5: duplicate of line 1
    lines[5]["method"] = "GET"  # type: ignore[index]  # 6
    lines[6]["url"] = "/embeddings"  # type: ignore[index]  # 7
    lines[7]["body"]["model"] = "other"  # type: ignore[index]  # 8
    del lines[8]["body"]["model"]  # type: ignore[index]  # 9
    report = validate_batch_file(_file(lines))
    found = [(e.line, e.code) for e in report.errors]
    assert found == [(2, "invalid_json_line"), (3, "invalid_json_line"), (4, "invalid_request"),
                     (5, "duplicate_custom_id"), (6, "invalid_request"), (7, "url_mismatch"),
                     (8, "model_mismatch"), (9, "invalid_request")]  # fmt: skip
    assert "repeats line 1" in str(report.errors[3]) and "line 1 has 'gpt-4o-mini'" in str(report.errors[6])


def test_v1_urls_match_classic_ones_and_trailing_blank_lines_are_fine() -> None:
    lines = _lines(2)
    lines[1]["url"] = "/v1/chat/completions"
    assert validate_batch_file(_file(lines) + b"\n\n").ok
    middle = validate_batch_file(_file([lines[0], "", lines[1]]))
    assert [(e.line, e.code) for e in middle.errors] == [(2, "invalid_json_line")]


def test_empty_bom_and_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    assert [e.code for e in validate_batch_file(b"").errors] == ["empty_file"]
    bom = validate_batch_file(b"\xef\xbb\xbf" + batch_jsonl(1))
    assert bom.errors[0].line == 1 and "byte-order mark" in bom.errors[0].message
    monkeypatch.setattr(batchfile, "MAX_LINES", 3)
    monkeypatch.setattr(batchfile, "MAX_BYTES", 100)
    over = validate_batch_file(batch_jsonl(4))
    assert {e.code for e in over.errors} == {"too_many_tasks", "invalid_request"}
    assert any("at most 3" in e.message for e in over.errors)


def test_raise_for_errors_lists_them_and_counts_the_rest() -> None:
    lines: list[object] = ["nope"] * 30
    report = validate_batch_file(_file(lines), max_errors=3)
    assert report.error_count == 30 and len(report.errors) == 3
    with pytest.raises(BadRequestError) as info:
        report.raise_for_errors()
    message = str(info.value)
    assert "30 problems" in message and "line 1:" in message and "line 3:" in message and "27 more" in message
    assert info.value.param == "file" and info.value.code == "invalid_json_line"


def test_rewrite_model_sets_every_line_and_keeps_the_rest() -> None:
    source = io.BytesIO(batch_jsonl(3, model="group"))
    with rewrite_model(source, "east-deployment") as out:
        rewritten = [json.loads(line) for line in out.read().decode().splitlines()]
    assert [r["body"]["model"] for r in rewritten] == ["east-deployment"] * 3
    assert [r["custom_id"] for r in rewritten] == ["task-0", "task-1", "task-2"]
    assert rewritten[0]["body"]["messages"] == [{"role": "user", "content": "question 0"}]
    assert source.tell() == 0


def test_deeply_nested_batch_line_is_400() -> None:
    deep = b"[" * 200_000 + b"]" * 200_000
    line = b'{"custom_id": "deep", "method": "POST", "url": "/chat/completions", "body": ' + deep + b"}\n"
    report = validate_batch_file(batch_jsonl(1) + line)
    assert [(e.line, e.code) for e in report.errors] == [(2, "invalid_json_line")]
    assert "nested too deeply" in report.errors[0].message
    with pytest.raises(BadRequestError, match="line 2"):
        report.raise_for_errors()


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_nan_in_a_batch_line_is_refused(literal: str) -> None:
    line = json.dumps({"custom_id": "t", "method": "POST", "url": "/chat/completions",
                       "body": {"model": "m", "messages": [], "temperature": 0.5}}).replace("0.5", literal)  # fmt: skip
    report = validate_batch_file((line + "\n").encode())
    assert [(e.line, e.code) for e in report.errors] == [(1, "invalid_json_line")]
    assert literal in report.errors[0].message
