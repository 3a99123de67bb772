"""docs/fine_tuning.md: its Python examples run against the emulator as written."""

from __future__ import annotations

import json
import re
from pathlib import Path

import modelyard
import pytest
from modelyard.testing import Emulator, ManualClock

DOC = Path(__file__).resolve().parent.parent / "docs" / "fine_tuning.md"
LINE = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}


def _blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)


def test_the_sdk_example_runs(azure_env: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                              capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(azure_env.batches, "clock", ManualClock())  # the job is still running when cancelled
    (tmp_path / "train.jsonl").write_text((json.dumps(LINE) + "\n") * 3)
    sdk = next(b for b in _blocks() if "create_fine_tuning_job(" in b and "OpenAI(" not in b and "ManualClock" not in b)
    exec(compile(sdk, str(DOC), "exec"), {})
    printed = capsys.readouterr().out
    assert "validating_files" in printed and "Job enqueued" in printed
    job = next(iter(azure_env.fine_tuning.jobs.values()))
    assert job.obj["status"] == "cancelled" and job.obj["suffix"] == "support"
    assert [r.path for r in azure_env.requests][:2] == ["/openai/files", "/openai/fine_tuning/jobs"]


def test_the_emulator_example_runs(azure_env: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(azure_env.batches, "clock", azure_env.batches.clock)
    monkeypatch.setattr(azure_env.fine_tuning, "step_seconds", azure_env.fine_tuning.step_seconds)
    file_id = modelyard.create_file(file=("t.jsonl", json.dumps(LINE).encode()), purpose="fine-tune").id
    example = next(b for b in _blocks() if "ManualClock" in b)
    exec(compile(example, str(DOC), "exec"), {"emulator": azure_env, "modelyard": modelyard, "file_id": file_id})
