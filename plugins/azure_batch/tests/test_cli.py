"""``modelyard batch submit`` / ``validate``: the command line over the SDK and the emulator."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from modelyard.cli import main
from modelyard.testing import Emulator, batch_jsonl


def test_submit_waits_with_progress_and_downloads(
    fast: Emulator, azure_env: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "requests.jsonl"
    source.write_bytes(batch_jsonl(6, model="placeholder"))
    out = tmp_path / "out.jsonl"
    fast.batches.file_seconds = 0.1  # Azure imports uploads asynchronously: submit must wait
    status = main(["batch", "submit", str(source), "--model", "gpt-4o-mini", "--wait", "--output", str(out),
                   "--poll", "0.02", "--metadata", "team=search"])  # fmt: skip
    captured = capsys.readouterr()
    assert status == 0, captured.err
    batch_id = captured.out.strip()
    assert batch_id.startswith("batch_")
    assert "completed 6  failed 0" in captured.err and "6/6" in captured.err
    answers = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(a["custom_id"] for a in answers) == [f"task-{i}" for i in range(6)]
    upload = fast.requests[0]
    assert upload.path == "/openai/files" and upload.query == {"api-version": "2024-10-21"}
    sent = [json.loads(line) for line in upload.body["file"]["content"].splitlines()]
    assert {s["body"]["model"] for s in sent} == {"gpt-4o-mini"}  # --model replaced the placeholder
    create = next(r.body for r in fast.requests if r.path == "/openai/batches")
    file_id = create["input_file_id"]
    assert create["metadata"] == {"team": "search"}
    assert any(r.method == "GET" and r.path == f"/openai/files/{file_id}" for r in fast.requests)


def test_submit_refuses_an_invalid_file_and_uploads_nothing(
    fast: Emulator, azure_env: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = batch_jsonl(10).decode().splitlines()
    lines[6] = lines[6].replace('"method": "POST"', '"method": "PUT"')
    source = tmp_path / "bad.jsonl"
    source.write_text("\n".join(lines))
    assert main(["batch", "submit", str(source), "--model", "gpt-4o-mini", "--wait"]) == 2
    err = capsys.readouterr().err
    assert f"{source}:line 7: 'method' must be \"POST\"" in err and "line 6" not in err
    assert fast.requests == []


def test_validate_only_checks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "ok.jsonl"
    source.write_bytes(batch_jsonl(3))
    assert main(["batch", "validate", str(source)]) == 0
    assert "3 requests for model 'gpt-4o-mini'" in capsys.readouterr().out
    assert main(["batch", "validate", str(tmp_path / "missing.jsonl")]) == 2


def test_the_plugin_registers_the_batch_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "batch" in capsys.readouterr().out
