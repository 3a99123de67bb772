"""The Azure page's "Azure Batches API" section, LiteLLM SDK tab, with only the import changed.

The snippets run against the emulator (AZURE_API_KEY / AZURE_API_BASE / AZURE_API_VERSION point
at it); each test asserts the exact paths and bodies the upstream received, and that the output
lines answer the inputs' custom_ids.
"""

from __future__ import annotations

import asyncio
import gc
import json
import time
from collections.abc import Iterator
from pathlib import Path

import modelyard as litellm  # the only change: `import litellm`
import pytest
from modelyard.testing import Emulator, ManualClock

DEPLOYMENT = "gpt-4o-mini"  # the page's REPLACE-WITH-MODEL-DEPLOYMENT-NAME
# The page passes open(...) and never closes it; only that file's ResourceWarning is tolerated.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <_io.FileIO name=.*mydata.jsonl:pytest.PytestUnraisableExceptionWarning"
)
QUESTIONS = ["When was Microsoft founded?", "When was the first XBOX released?", "What is Altair Basic?"]
SYSTEM = "You are an AI assistant that helps people find information."


@pytest.fixture
def mydata(tmp_path: Path) -> Path:
    """The page's example file, with a real deployment name."""
    path = tmp_path / "mydata.jsonl"
    path.write_text("".join(
        json.dumps({"custom_id": f"task-{i}", "method": "POST", "url": "/chat/completions",
                    "body": {"model": DEPLOYMENT, "messages": [{"role": "system", "content": SYSTEM},
                                                              {"role": "user", "content": q}]}}) + "\n"
        for i, q in enumerate(QUESTIONS)
    ))  # fmt: skip
    return path


@pytest.fixture
def fast_env(azure_env: Emulator) -> Iterator[Emulator]:
    service = azure_env.batches
    saved = service.step_seconds, service.line_seconds
    service.step_seconds, service.line_seconds = 0.05, 0.005
    yield azure_env
    service.step_seconds, service.line_seconds = saved


def _check_upstream(emulator: Emulator, mydata: Path, file_id: str, batch_id: str) -> None:
    version = {"api-version": "2024-10-21"}
    seen = [(r.method, r.path, r.query) for r in emulator.requests]
    assert seen[0] == ("POST", "/openai/files", version)
    assert seen[1] == ("POST", "/openai/batches", version)
    assert ("GET", f"/openai/batches/{batch_id}", version) in seen
    assert ("POST", f"/openai/batches/{batch_id}/cancel", version) in seen
    assert ("GET", "/openai/batches", {**version, "limit": "2"}) in seen
    upload = emulator.requests[0].body
    assert upload["purpose"] == "batch" and upload["file"]["filename"] == "mydata.jsonl"
    assert upload["file"]["content"] == mydata.read_text()
    assert emulator.requests[1].body == {
        "input_file_id": file_id, "endpoint": "/v1/chat/completions", "completion_window": "24h",
        "metadata": {"key1": "value1", "key2": "value2"},
    }  # fmt: skip
    assert all(r.headers["api-key"] for r in emulator.requests)


def _custom_ids(content: bytes) -> list[str]:
    return sorted(json.loads(line)["custom_id"] for line in content.decode().splitlines())


async def test_sdk_tab_async(fast_env: Emulator, mydata: Path) -> None:
    # 1. Create File for Batch Completion
    file_obj = await litellm.acreate_file(
        file=open(mydata, "rb"),  # noqa: SIM115  (as on the page)
        purpose="batch",
        custom_llm_provider="azure",
    )
    batch_input_file_id = file_obj.id

    # 2. Create Batch Request
    create_batch_response = await litellm.acreate_batch(
        completion_window="24h",
        endpoint="/v1/chat/completions",
        input_file_id=batch_input_file_id,
        custom_llm_provider="azure",
        metadata={"key1": "value1", "key2": "value2"},
    )

    # 3. Retrieve Batch (polled until it is done)
    retrieved_batch = await litellm.aretrieve_batch(batch_id=create_batch_response.id, custom_llm_provider="azure")
    deadline = time.monotonic() + 20
    while retrieved_batch.status != "completed" and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
        retrieved_batch = await litellm.aretrieve_batch(batch_id=create_batch_response.id, custom_llm_provider="azure")
    assert retrieved_batch.status == "completed"

    # 4. Get the output file's content
    file_content = await litellm.afile_content(file_id=retrieved_batch.output_file_id, custom_llm_provider="azure")
    assert _custom_ids(file_content.content) == ["task-0", "task-1", "task-2"]

    # 5. Cancel (a finished batch cannot be: Azure refuses, and so does the emulator) and list
    with pytest.raises(litellm.BadRequestError):
        await litellm.acancel_batch(batch_id=create_batch_response.id, custom_llm_provider="azure")
    list_batches_response = await litellm.alist_batches(custom_llm_provider="azure", limit=2)
    assert [b.id for b in list_batches_response.data] == [create_batch_response.id]
    _check_upstream(fast_env, mydata, batch_input_file_id, create_batch_response.id)
    gc.collect()  # finalise the page's unclosed file here, where its warning is expected


def test_sdk_tab_sync(fast_env: Emulator, mydata: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The batch holds still until the test moves the clock, so the cancel below always finds it
    # running (with the real clock, a slow machine could see it completed first).
    clock = ManualClock()
    monkeypatch.setattr(fast_env.batches, "clock", clock)
    file_obj = litellm.create_file(file=open(mydata, "rb"), purpose="batch", custom_llm_provider="azure")  # noqa: SIM115
    create_batch_response = litellm.create_batch(
        completion_window="24h",
        endpoint="/v1/chat/completions",
        input_file_id=file_obj.id,
        custom_llm_provider="azure",
        metadata={"key1": "value1", "key2": "value2"},
    )
    cancelled = litellm.cancel_batch(batch_id=create_batch_response.id, custom_llm_provider="azure")
    assert cancelled.status == "cancelling"
    clock.advance(1)
    retrieved = litellm.retrieve_batch(batch_id=create_batch_response.id, custom_llm_provider="azure")
    assert retrieved.id == create_batch_response.id and retrieved.status == "cancelled"
    batches = litellm.list_batches(custom_llm_provider="azure", limit=2)
    assert batches.data[0].id == create_batch_response.id
    _check_upstream(fast_env, mydata, file_obj.id, create_batch_response.id)
    gc.collect()  # finalise the page's unclosed file here, where its warning is expected
