"""Fine-tuning through the SDK against the emulator: training-file checks, jobs on a manual clock, Azure's 400s."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import modelyard
import pytest
from modelyard.testing import KEY, Emulator, ManualClock
from modelyard.testing.batches import StoredFile
from modelyard_azure_batch.training import validate_training_file

BASE = "gpt-4o-mini-2024-07-18"


def example(i: int, **extra: Any) -> dict[str, Any]:
    return {"messages": [{"role": "system", "content": "You are terse."},
                         {"role": "user", "content": f"question {i}"},
                         {"role": "assistant", "content": f"answer {i}", "weight": 1}], **extra}  # fmt: skip


def training(n: int) -> bytes:
    return "".join(json.dumps(example(i)) + "\n" for i in range(n)).encode()


@pytest.fixture
def clock(emulator: Emulator) -> Iterator[ManualClock]:
    """Jobs (and batches) move only when the test advances this clock; step 1 s."""
    saved = emulator.batches.clock, emulator.fine_tuning.step_seconds
    manual = ManualClock()
    emulator.batches.clock, emulator.fine_tuning.step_seconds = manual, 1.0
    yield manual
    emulator.batches.clock, emulator.fine_tuning.step_seconds = saved


def conn(api_base: str, version: str = "2024-10-21") -> dict[str, Any]:
    return {"api_base": api_base, "api_key": KEY, "api_version": version}


# --------------------------------------------------------------------------- training files


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ({"messages": [{"role": "user", "content": "hi"}]}, "no assistant message"),
        ({"messages": [{"role": "robot", "content": "hi"}, {"role": "assistant", "content": "x"}]}, "messages[0].role is 'robot'"),
        ({"messages": []}, "'messages' must be a non-empty list"),
        ({"prompt": "p", "completion": "c"}, "this line is in the completion format but the file is chat"),
        ({"messages": [{"role": "user", "content": "q", "weight": 1}, {"role": "assistant", "content": "a"}]},
         "messages[0].weight is only allowed on assistant messages"),
        ({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a", "weight": 2}]},
         "messages[1].weight must be 0 or 1"),
        ({"messages": [{"role": "user"}, {"role": "assistant", "content": "a"}]}, "messages[0] (user) has no 'content'"),
        ({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], "tools": {}}, "'tools' must be a list"),
        ({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], "labels": 1}, "unknown key 'labels'"),
        ({"text": "hello"}, "'messages' is missing"),
    ],
)  # fmt: skip
def test_each_problem_names_its_line(line: dict[str, Any], expected: str) -> None:
    lines = [json.dumps(example(i)) for i in range(5)]
    lines[3] = json.dumps(line)
    report = validate_training_file("\n".join(lines).encode())
    assert [(e.line, expected in e.message) for e in report.errors] == [(4, True)], report.errors
    with pytest.raises(modelyard.BadRequestError) as info:
        report.raise_for_errors()
    assert "line 4:" in str(info.value) and "fine-tuning training file" in str(info.value)
    assert info.value.param == "file"


def test_valid_files_pass_chat_with_tools_and_completion_format() -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    call = {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}
    chat = {"messages": [{"role": "user", "content": [{"type": "text", "text": "q"}]}, call,
                         {"role": "tool", "tool_call_id": "c1", "content": "42"}, {"role": "assistant", "content": "42"}],
            "tools": tools, "parallel_tool_calls": False}  # fmt: skip
    assert validate_training_file((json.dumps(chat) + "\n\n").encode()).ok
    report = validate_training_file(b'{"prompt": "a", "completion": "b"}\n{"prompt": "c", "completion": "d"}\n')
    assert report.ok and report.format == "completion" and report.lines == 2


def test_broken_json_blank_lines_and_empty_files_are_named() -> None:
    report = validate_training_file(training(2) + b"\n{not json\n" + training(1))
    assert [(e.line, e.code) for e in report.errors] == [(3, "invalid_json_line"), (4, "invalid_json_line")]
    assert [e.code for e in validate_training_file(b"").errors] == ["empty_file"]


def test_an_invalid_training_file_is_refused_and_nothing_is_uploaded(emulator: Emulator, api_base: str) -> None:
    lines = training(6).decode().splitlines()
    lines[4] = json.dumps({"messages": [{"role": "user", "content": "no answer"}]})
    with pytest.raises(modelyard.BadRequestError) as info:
        modelyard.create_file(file=("train.jsonl", "\n".join(lines).encode()), purpose="fine-tune", **conn(api_base))
    assert "line 5:" in str(info.value) and "no assistant message" in str(info.value)
    assert "line 4" not in str(info.value) and "line 6" not in str(info.value)
    assert emulator.requests == [] and emulator.batches.files == {}


# --------------------------------------------------------------------------- jobs


@pytest.mark.parametrize(("version", "root"), [("2024-10-21", "/openai"), ("v1", "/openai/v1")])
def test_create_progress_events_checkpoints_list(emulator: Emulator, api_base: str, clock: ManualClock,
                                                 version: str, root: str) -> None:  # fmt: skip
    kw = conn(api_base, version)
    query = {"api-version": version} if version != "v1" else {}
    uploaded = modelyard.create_file(file=("train.jsonl", training(4)), purpose="fine-tune", **kw)
    upload = emulator.requests[-1]
    assert (upload.method, upload.path, upload.query) == ("POST", f"{root}/files", query)
    assert upload.body["purpose"] == "fine-tune" and upload.body["file"]["content"] == training(4).decode()
    job = modelyard.create_fine_tuning_job(model=BASE, training_file=uploaded.id, suffix="terse", seed=7,
                                           hyperparameters={"n_epochs": 2, "batch_size": 2}, **kw)  # fmt: skip
    create = emulator.requests[-1]
    assert (create.method, create.path, create.query) == ("POST", f"{root}/fine_tuning/jobs", query)
    assert create.body == {"model": BASE, "training_file": uploaded.id, "suffix": "terse", "seed": 7,
                           "hyperparameters": {"n_epochs": 2, "batch_size": 2}}  # fmt: skip
    assert create.headers["api-key"] == KEY
    assert job.status == "validating_files" and job.id.startswith("ftjob-") and job.training_file == uploaded.id

    seen = []
    for _ in range(5):
        seen.append(modelyard.retrieve_fine_tuning_job(job.id, **kw).status)
        clock.advance(1.0)
    assert seen == ["validating_files", "queued", "running", "running", "succeeded"]
    get = emulator.requests[-1]
    assert (get.method, get.path, get.query, get.body) == ("GET", f"{root}/fine_tuning/jobs/{job.id}", query, None)
    done = modelyard.retrieve_fine_tuning_job(job.id, **kw)
    assert done.fine_tuned_model == f"{BASE}.ft-{job.id.removeprefix('ftjob-')}-terse"
    assert done.result_files and emulator.batches.files[done.result_files[0]].purpose == "fine-tune-results"

    events = modelyard.list_fine_tuning_job_events(job.id, limit=3, **kw)
    assert (emulator.requests[-1].path, emulator.requests[-1].query) == (f"{root}/fine_tuning/jobs/{job.id}/events",
                                                                          {**query, "limit": "3"})  # fmt: skip
    assert len(events.data) == 3 and events.data[0].message == "The job has successfully completed." and events.has_more
    older = modelyard.list_fine_tuning_job_events(job.id, after=events.data[-1].id, **kw)
    assert emulator.requests[-1].query == {**query, "after": events.data[-1].id}
    assert older.data[-1].message.startswith("Job enqueued") and not older.has_more
    assert {e.type for e in older.data} == {"message", "metrics"}

    checkpoints = modelyard.list_fine_tuning_job_checkpoints(job.id, **kw)
    assert emulator.requests[-1].path == f"{root}/fine_tuning/jobs/{job.id}/checkpoints"
    assert [c.step_number for c in checkpoints.data] == [4, 2]  # 4 examples / batch 2 = 2 steps per epoch
    assert checkpoints.data[0].fine_tuned_model_checkpoint == f"{done.fine_tuned_model}:ckpt-step-4"
    assert checkpoints.data[0].metrics["train_loss"] < checkpoints.data[1].metrics["train_loss"]

    second = modelyard.create_fine_tuning_job(model=BASE, training_file=uploaded.id, **kw)
    page = modelyard.list_fine_tuning_jobs(limit=1, **kw)
    assert (emulator.requests[-1].path, emulator.requests[-1].query) == (f"{root}/fine_tuning/jobs", {**query, "limit": "1"})
    assert [j.id for j in page.data] == [second.id] and page.has_more
    assert [j.id for j in modelyard.list_fine_tuning_jobs(after=second.id, **kw).data] == [job.id]

    cancelled = modelyard.cancel_fine_tuning_job(second.id, **kw)
    assert (emulator.requests[-1].method, emulator.requests[-1].path) == ("POST", f"{root}/fine_tuning/jobs/{second.id}/cancel")
    assert cancelled.status == "cancelled"
    clock.advance(10)
    assert modelyard.retrieve_fine_tuning_job(second.id, **kw).status == "cancelled"


def test_async_twins(emulator: Emulator, api_base: str, clock: ManualClock) -> None:
    kw = conn(api_base)

    async def run() -> None:
        uploaded = await modelyard.acreate_file(file=("t.jsonl", training(2)), purpose="fine-tune", **kw)
        job = await modelyard.acreate_fine_tuning_job(BASE, uploaded.id, hyperparameters={"n_epochs": 1}, **kw)
        assert emulator.requests[-1].body == {"model": BASE, "training_file": uploaded.id, "hyperparameters": {"n_epochs": 1}}
        clock.advance(3.0)
        done = await modelyard.aretrieve_fine_tuning_job(job.id, **kw)
        assert done.status == "succeeded" and done.trained_tokens
        assert [c.step_number for c in (await modelyard.alist_fine_tuning_job_checkpoints(job.id, **kw)).data] == [2]
        events = await modelyard.alist_fine_tuning_job_events(job.id, **kw)
        assert events.data[0].message == "The job has successfully completed."
        listed = await modelyard.alist_fine_tuning_jobs(**kw)
        assert [j.id for j in listed.data] == [job.id]
        other = await modelyard.acreate_fine_tuning_job(BASE, uploaded.id, **kw)
        assert (await modelyard.acancel_fine_tuning_job(other.id, **kw)).status == "cancelled"
        assert emulator.requests[-1].path == f"/openai/fine_tuning/jobs/{other.id}/cancel"

    asyncio.run(run())


def test_a_training_file_azure_refuses_fails_the_job_with_the_line(emulator: Emulator, api_base: str,
                                                                   clock: ManualClock) -> None:  # fmt: skip
    kw = conn(api_base)
    bad = training(2) + json.dumps({"messages": [{"role": "user", "content": "?"}]}).encode() + b"\n"
    emulator.batches.files["file-uploaded-elsewhere"] = StoredFile("file-uploaded-elsewhere", "t.jsonl", "fine-tune", bad)
    job = modelyard.create_fine_tuning_job(model=BASE, training_file="file-uploaded-elsewhere", **kw)
    clock.advance(1.0)
    failed = modelyard.retrieve_fine_tuning_job(job.id, **kw)
    assert failed.status == "failed" and failed.fine_tuned_model is None and failed.finished_at
    assert failed.error is not None and "line 3: no assistant message" in failed.error["message"]
    events = modelyard.list_fine_tuning_job_events(job.id, **kw).data
    assert events[0].level == "error" and "line 3" in events[0].message
    assert modelyard.list_fine_tuning_job_checkpoints(job.id, **kw).data == []
    with pytest.raises(modelyard.BadRequestError, match="failed and cannot be cancelled"):
        modelyard.cancel_fine_tuning_job(job.id, **kw)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"training_file": "file-does-not-exist"}, "training file 'file-does-not-exist' does not exist"),
        ({"model": "gpt-4o-mini"}, "'gpt-4o-mini' does not support fine-tuning"),
        ({"hyperparameters": {"n_epochs": 51}}, "hyperparameters.n_epochs must be 'auto' or a int from 1 to 50"),
        ({"hyperparameters": {"learning_rate_multiplier": 11}}, "learning_rate_multiplier must be 'auto'"),
        ({"suffix": "has spaces"}, "The suffix must be up to 40 characters"),
        ({"extra_body": {"warmup": 3}}, "The property 'warmup' is not supported"),
    ],
)  # fmt: skip
def test_azure_400s_reach_the_caller_and_the_next_call_is_served(emulator: Emulator, api_base: str,
                                                                  change: dict[str, Any], message: str) -> None:  # fmt: skip
    kw = conn(api_base)
    uploaded = modelyard.create_file(file=("t.jsonl", training(2)), purpose="fine-tune", **kw)
    args: dict[str, Any] = {"model": BASE, "training_file": uploaded.id, **change}
    with pytest.raises(modelyard.BadRequestError) as info:
        modelyard.create_fine_tuning_job(**args, **kw)
    assert info.value.status_code == 400 and message in str(info.value)
    assert emulator.requests[-1].path == "/openai/fine_tuning/jobs"  # it was the upstream's answer
    assert modelyard.create_fine_tuning_job(model=BASE, training_file=uploaded.id, **kw).status == "validating_files"


def test_unknown_job_is_404(emulator: Emulator, api_base: str) -> None:
    with pytest.raises(modelyard.NotFoundError):
        modelyard.retrieve_fine_tuning_job("ftjob-nope", **conn(api_base))


@pytest.mark.parametrize(
    ("args", "param"),
    [
        ({"model": "", "training_file": "file-1"}, "model"),
        ({"model": BASE, "training_file": "../files"}, "training_file"),
        ({"model": BASE, "training_file": "file-1", "hyperparameters": {"n_epochs": -1}}, "hyperparameters.n_epochs"),
        ({"model": BASE, "training_file": "file-1", "hyperparameters": {"epochs": 2}}, "hyperparameters.epochs"),
        ({"model": BASE, "training_file": "file-1", "seed": "7"}, "seed"),
    ],
)  # fmt: skip
def test_arguments_checked_before_sending_name_the_field(emulator: Emulator, api_base: str, args: dict[str, Any],
                                                         param: str) -> None:  # fmt: skip
    with pytest.raises(modelyard.BadRequestError) as info:
        modelyard.create_fine_tuning_job(**args, **conn(api_base))
    assert info.value.param == param
    assert emulator.requests == []


def test_ids_cannot_leave_their_path_segment(emulator: Emulator, api_base: str) -> None:
    with pytest.raises(modelyard.BadRequestError):
        modelyard.retrieve_fine_tuning_job("..", **conn(api_base))
    with pytest.raises(modelyard.NotFoundError):
        modelyard.list_fine_tuning_job_events("a?b#c", **conn(api_base))
    assert emulator.requests[-1].raw_path == "/openai/fine_tuning/jobs/a%3Fb%23c/events"
