"""The emulator's files and batches, over raw HTTP: Azure's shapes, status machine, real runs."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from modelyard.testing import FILTER_PROMPT_TRIGGER, KEY, Emulator

VERSION = {"api-version": "2024-10-21"}


@pytest.fixture
def fast(emulator: Emulator) -> Iterator[Emulator]:
    """The session emulator with batches that finish in a fraction of a second."""
    service = emulator.batches
    saved = service.step_seconds, service.line_seconds, service.file_seconds, service.clock
    service.step_seconds, service.line_seconds = 0.05, 0.005
    yield emulator
    service.step_seconds, service.line_seconds, service.file_seconds, service.clock = saved


class ManualClock:
    """A clock the test moves by hand, so that every phase is seen without timing."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def http(api_base: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api_base, headers={"api-key": KEY}) as client:
        yield client


def _line(i: int, model: str = "gpt-4o-mini", content: str | None = None) -> str:
    return json.dumps({"custom_id": f"task-{i}", "method": "POST", "url": "/chat/completions",
                       "body": {"model": model, "messages": [{"role": "user", "content": content or f"q{i}"}]}})  # fmt: skip


def _upload(http: httpx.Client, lines: list[str], path: str = "/openai/files", params: Any = VERSION) -> httpx.Response:
    return http.post(path, params=params, data={"purpose": "batch"},
                     files={"file": ("in.jsonl", "\n".join(lines).encode(), "application/jsonl")})  # fmt: skip


def _wait(http: httpx.Client, batch_id: str, seen: list[str] | None = None) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        batch = http.get(f"/openai/batches/{batch_id}", params=VERSION).json()
        if seen is not None and (not seen or seen[-1] != batch["status"]):
            seen.append(batch["status"])
        if batch["status"] in ("completed", "failed", "cancelled", "expired"):
            return batch  # type: ignore[no-any-return]
        time.sleep(0.01)
    raise AssertionError(f"batch {batch_id} did not finish")


def test_upload_answers_201_with_location_and_the_file_can_be_read_back(fast: Emulator, http: httpx.Client) -> None:
    lines = [_line(i) for i in range(3)]
    r = _upload(http, lines)
    assert r.status_code == 201
    file = r.json()
    assert file["object"] == "file" and file["purpose"] == "batch" and file["status"] == "processed"
    assert file["id"].startswith("file-") and file["bytes"] == len("\n".join(lines))
    assert r.headers["location"].endswith(f"/openai/files/{file['id']}")
    assert http.get(f"/openai/files/{file['id']}", params=VERSION).json() == file
    assert http.get(f"/openai/files/{file['id']}/content", params=VERSION).content == "\n".join(lines).encode()
    listed = http.get("/openai/files", params={**VERSION, "purpose": "batch"}).json()
    assert listed["object"] == "list" and [f["id"] for f in listed["data"]] == [file["id"]]
    assert http.delete(f"/openai/files/{file['id']}", params=VERSION).json() == {
        "object": "file", "id": file["id"], "deleted": True}  # fmt: skip
    missing = http.get(f"/openai/files/{file['id']}", params=VERSION)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "notFound"
    recorded = fast.requests[0]
    assert recorded.body["purpose"] == "batch" and recorded.body["file"]["content"] == "\n".join(lines)


def test_a_batch_runs_through_every_status_and_answers_each_line(fast: Emulator, http: httpx.Client) -> None:
    clock = fast.batches.clock = ManualClock()
    lines = [_line(i) for i in range(8)] + [_line(8, content=f"please {FILTER_PROMPT_TRIGGER}")]
    file_id = _upload(http, lines).json()["id"]
    created = http.post("/openai/batches", params=VERSION, json={
        "input_file_id": file_id, "endpoint": "/v1/chat/completions", "completion_window": "24h",
        "metadata": {"job": "nightly"}})  # fmt: skip
    assert created.status_code == 200  # classic GA answers 200
    batch = created.json()
    assert batch["status"] == "validating" and batch["object"] == "batch" and batch["id"].startswith("batch_")
    assert batch["metadata"] == {"job": "nightly"} and batch["expires_at"] == batch["created_at"] + 86_400

    def look(at: float) -> dict[str, Any]:
        clock.now = 1000.0 + at
        return http.get(f"/openai/batches/{batch['id']}", params=VERSION).json()  # type: ignore[no-any-return]

    assert look(0.04)["status"] == "validating"
    running = look(0.07)  # validating took 0.05 s; 0.02 s of the 0.05 s run: 3 of 9 lines answered
    assert running["status"] == "in_progress" and running["in_progress_at"] is not None
    assert running["request_counts"] == {"total": 9, "completed": 3, "failed": 0}
    finalizing = look(0.11)
    assert finalizing["status"] == "finalizing" and finalizing["request_counts"]["failed"] == 1
    assert finalizing["output_file_id"] is None
    done = look(0.16)
    assert done["status"] == "completed"
    assert done["request_counts"] == {"total": 9, "completed": 8, "failed": 1}
    for stamp in ("in_progress_at", "finalizing_at", "completed_at"):
        assert done[stamp] >= done["created_at"]
    output = http.get(f"/openai/files/{done['output_file_id']}/content", params=VERSION).text.splitlines()
    answers = [json.loads(line) for line in output]
    assert sorted(a["custom_id"] for a in answers) == [f"task-{i}" for i in range(8)]
    first = answers[0]
    assert first["response"]["status_code"] == 200 and first["error"] is None
    assert first["response"]["body"]["object"] == "chat.completion"
    assert "You said: q" in first["response"]["body"]["choices"][0]["message"]["content"]
    errors = http.get(f"/openai/files/{done['error_file_id']}/content", params=VERSION).text.splitlines()
    failed = json.loads(errors[0])
    assert failed["custom_id"] == "task-8" and failed["error"]["code"] == "content_filter"
    assert failed["response"]["status_code"] == 400
    out_file = http.get(f"/openai/files/{done['output_file_id']}", params=VERSION).json()
    assert out_file["purpose"] == "batch_output"


def test_cancel_moves_through_cancelling_to_cancelled(fast: Emulator, http: httpx.Client) -> None:
    clock = fast.batches.clock = ManualClock()
    file_id = _upload(http, [_line(i) for i in range(3)]).json()["id"]
    batch = http.post("/openai/batches", params=VERSION, json={
        "input_file_id": file_id, "endpoint": "/chat/completions", "completion_window": "24h"}).json()  # fmt: skip
    clock.now += 0.06  # in progress
    cancelling = http.post(f"/openai/batches/{batch['id']}/cancel", params=VERSION).json()
    assert cancelling["status"] == "cancelling" and cancelling["cancelling_at"] is not None
    assert http.get(f"/openai/batches/{batch['id']}", params=VERSION).json()["status"] == "cancelling"
    clock.now += 0.06
    done = http.get(f"/openai/batches/{batch['id']}", params=VERSION).json()
    assert done["status"] == "cancelled" and done["cancelled_at"] is not None
    again = http.post(f"/openai/batches/{batch['id']}/cancel", params=VERSION)
    assert again.status_code == 400 and again.json()["error"]["code"] == "unexpectedEntityState"


def test_validation_fails_the_batch_naming_the_line(fast: Emulator, http: httpx.Client) -> None:
    lines = [_line(0), "{not json", _line(2, model="no-such-deployment"), _line(0)]
    file_id = _upload(http, lines).json()["id"]
    batch = http.post("/openai/batches", params=VERSION, json={
        "input_file_id": file_id, "endpoint": "/chat/completions", "completion_window": "24h"}).json()  # fmt: skip
    done = _wait(http, batch["id"])
    assert done["status"] == "failed" and done["failed_at"] is not None
    problems = {(e["code"], e["line"]) for e in done["errors"]["data"]}
    assert problems == {("invalid_json_line", "2"), ("model_not_found", "3"), ("duplicate_custom_id", "4")}
    assert done["output_file_id"] is None


def test_create_checks_its_arguments(fast: Emulator, http: httpx.Client) -> None:
    file_id = _upload(http, [_line(0)]).json()["id"]
    base = {"input_file_id": file_id, "endpoint": "/chat/completions", "completion_window": "24h"}
    for change, target in (({"completion_window": "48h"}, "completion_window"), ({"endpoint": "/v1/images"}, "endpoint"),
                           ({"input_file_id": "file-missing"}, "file_id")):  # fmt: skip
        r = http.post("/openai/batches", params=VERSION, json={**base, **change})
        assert r.status_code in (400, 404) and r.json()["error"]["target"] == target
    old = http.post("/openai/batches", params={"api-version": "2024-06-01"}, json=base)
    assert old.status_code == 404  # batches arrived with 2024-07-01-preview
    denied = http.get("/openai/batches", params=VERSION, headers={"api-key": "wrong"})
    assert denied.status_code == 401


def test_v1_paths_answer_201_and_page_with_after_and_limit(fast: Emulator, http: httpx.Client) -> None:
    file_id = _upload(http, [_line(0)], "/openai/v1/files", params={}).json()["id"]
    ids = []
    for _ in range(3):
        r = http.post("/openai/v1/batches", json={"input_file_id": file_id, "endpoint": "/v1/chat/completions",
                                                   "completion_window": "24h"})  # fmt: skip
        assert r.status_code == 201
        ids.append(r.json()["id"])
    page = http.get("/openai/v1/batches", params={"limit": 2}).json()
    assert [b["id"] for b in page["data"]] == [ids[2], ids[1]] and page["has_more"] is True
    assert page["first_id"] == ids[2] and page["last_id"] == ids[1]
    rest = http.get("/openai/v1/batches", params={"limit": 2, "after": page["last_id"]}).json()
    assert [b["id"] for b in rest["data"]] == [ids[0]] and rest["has_more"] is False


def test_an_upload_is_pending_until_processed_and_batches_wait_for_it(fast: Emulator, http: httpx.Client) -> None:
    clock = fast.batches.clock = ManualClock()
    fast.batches.file_seconds = 1.0
    file = _upload(http, [_line(0)]).json()
    assert file["status"] == "pending"
    body = {"input_file_id": file["id"], "endpoint": "/chat/completions", "completion_window": "24h"}
    early = http.post("/openai/batches", params=VERSION, json=body)
    assert early.status_code == 400 and "not processed" in early.json()["error"]["message"]
    clock.now += 1.0
    assert http.get(f"/openai/files/{file['id']}", params=VERSION).json()["status"] == "processed"
    assert http.post("/openai/batches", params=VERSION, json=body).status_code == 200


def test_the_ga_file_list_returns_every_file_and_v1_pages(fast: Emulator, http: httpx.Client) -> None:
    ids = [_upload(http, [_line(0)]).json()["id"] for _ in range(22)]
    everything = http.get("/openai/files", params=VERSION).json()
    assert set(everything) == {"object", "data"} and len(everything["data"]) == 22
    page = http.get("/openai/v1/files", params={"limit": 20}).json()
    assert len(page["data"]) == 20 and page["has_more"] is True and page["first_id"] == ids[-1]
