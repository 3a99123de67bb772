"""Fine-tuning through the proxy, driven by the official openai SDK (sync and async).

The provider's settings come from the environment (``azure_env``: AZURE_API_BASE ... pointing at
the emulator), as for ``/files``; each test asserts the exact method, path, query and body the
emulator received. Jobs move only when the test advances a :class:`ManualClock`.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from modelyard.testing import KEY, Emulator, ManualClock

from .conftest import MASTER_KEY, azure, running_proxy

BASE = "gpt-4o-mini-2024-07-18"
AZ = {"extra_headers": {"custom-llm-provider": "azure"}}
CLASSIC = {"api-version": "2024-10-21"}


def training(n: int) -> bytes:
    return "".join(json.dumps({"messages": [{"role": "user", "content": f"q{i}"},
                                            {"role": "assistant", "content": f"a{i}"}]}) + "\n"
                   for i in range(n)).encode()  # fmt: skip


@pytest.fixture
def clock(azure_env: Emulator) -> Iterator[ManualClock]:
    manual = ManualClock()
    saved = azure_env.batches.clock, azure_env.fine_tuning.step_seconds
    azure_env.batches.clock, azure_env.fine_tuning.step_seconds = manual, 1.0
    yield manual
    azure_env.batches.clock, azure_env.fine_tuning.step_seconds = saved


def plain_config(api_base: str, tmp_path: Path) -> dict[str, Any]:
    return {"model_list": [{"model_name": "gpt-4o", "litellm_params": azure(api_base, "gpt-4o")}],
            "modelyard_settings": {"store_path": str(tmp_path / "store.db")}}  # fmt: skip


@pytest.fixture
def plain_proxy(azure_env: Emulator, api_base: str, tmp_path: Path) -> Iterator[Any]:
    """A proxy whose fine-tuning calls go to AZURE_API_BASE (the emulator)."""
    with running_proxy(plain_config(api_base, tmp_path)) as proxy:
        yield proxy


def last(emulator: Emulator) -> tuple[str, str, dict[str, str], Any]:
    r = emulator.requests[-1]
    return r.method, r.path, r.query, r.body


@pytest.mark.parametrize("v1", [True, False], ids=["v1", "no-v1"])
def test_openai_sdk_drives_every_fine_tuning_call(plain_proxy: Any, azure_env: Emulator, clock: ManualClock,
                                                  v1: bool) -> None:  # fmt: skip
    with openai.OpenAI(base_url=plain_proxy.url + ("/v1" if v1 else ""), api_key=MASTER_KEY, max_retries=0) as c:
        uploaded = c.files.create(file=("train.jsonl", io.BytesIO(training(4))), purpose="fine-tune", **AZ)
        method, path, query, body = last(azure_env)
        assert (method, path, query, body["purpose"]) == ("POST", "/openai/files", CLASSIC, "fine-tune")
        assert body["file"]["content"] == training(4).decode()

        job = c.fine_tuning.jobs.create(model=BASE, training_file=uploaded.id, suffix="px", seed=3,
                                        hyperparameters={"n_epochs": 2, "batch_size": 4}, **AZ)  # fmt: skip
        assert last(azure_env) == ("POST", "/openai/fine_tuning/jobs", CLASSIC, {
            "model": BASE, "training_file": uploaded.id, "suffix": "px", "seed": 3,
            "hyperparameters": {"n_epochs": 2, "batch_size": 4}})  # fmt: skip
        assert job.status == "validating_files" and job.id in azure_env.fine_tuning.jobs

        statuses = []
        for _ in range(5):
            statuses.append(c.fine_tuning.jobs.retrieve(job.id, **AZ).status)
            clock.advance(1.0)
        assert statuses == ["validating_files", "queued", "running", "running", "succeeded"]
        assert last(azure_env) == ("GET", f"/openai/fine_tuning/jobs/{job.id}", CLASSIC, None)

        events = c.fine_tuning.jobs.list_events(job.id, limit=2, **AZ)
        assert last(azure_env) == ("GET", f"/openai/fine_tuning/jobs/{job.id}/events", {**CLASSIC, "limit": "2"}, None)
        assert len(events.data) == 2 and events.data[0].message == "The job has successfully completed." and events.has_more
        checkpoints = c.fine_tuning.jobs.checkpoints.list(job.id, **AZ)
        assert last(azure_env) == ("GET", f"/openai/fine_tuning/jobs/{job.id}/checkpoints", CLASSIC, None)
        assert [(p.step_number, p.fine_tuning_job_id) for p in checkpoints.data] == [(2, job.id), (1, job.id)]

        other = c.fine_tuning.jobs.create(model=BASE, training_file=uploaded.id, **AZ)
        listed = c.fine_tuning.jobs.list(limit=5, **AZ)
        assert last(azure_env) == ("GET", "/openai/fine_tuning/jobs", {**CLASSIC, "limit": "5"}, None)
        assert [j.id for j in listed.data] == [other.id, job.id]
        cancelled = c.fine_tuning.jobs.cancel(other.id, **AZ)
        assert last(azure_env) == ("POST", f"/openai/fine_tuning/jobs/{other.id}/cancel", CLASSIC, None)
        assert cancelled.status == "cancelled"
    assert all(r.headers["api-key"] == KEY for r in azure_env.requests)


def test_async_openai_sdk(plain_proxy: Any, azure_env: Emulator, clock: ManualClock) -> None:
    async def run() -> None:
        async with openai.AsyncOpenAI(base_url=plain_proxy.url + "/v1", api_key=MASTER_KEY, max_retries=0) as c:
            uploaded = await c.files.create(file=("t.jsonl", io.BytesIO(training(2))), purpose="fine-tune", **AZ)
            job = await c.fine_tuning.jobs.create(model=BASE, training_file=uploaded.id,
                                                  hyperparameters={"n_epochs": 1}, **AZ)  # fmt: skip
            assert last(azure_env) == ("POST", "/openai/fine_tuning/jobs", CLASSIC,
                                       {"model": BASE, "training_file": uploaded.id, "hyperparameters": {"n_epochs": 1}})  # fmt: skip
            clock.advance(3.0)
            done = await c.fine_tuning.jobs.retrieve(job.id, **AZ)
            assert done.status == "succeeded" and done.fine_tuned_model
            events = await c.fine_tuning.jobs.list_events(job.id, **AZ)
            assert events.data[-1].message.startswith("Job enqueued")
            assert [p.step_number async for p in c.fine_tuning.jobs.checkpoints.list(job.id, **AZ)] == [2]
            assert [j.id async for j in c.fine_tuning.jobs.list(**AZ)] == [job.id]
            other = await c.fine_tuning.jobs.create(model=BASE, training_file=uploaded.id, **AZ)
            assert (await c.fine_tuning.jobs.cancel(other.id, **AZ)).status == "cancelled"
            assert last(azure_env)[:2] == ("POST", f"/openai/fine_tuning/jobs/{other.id}/cancel")

    asyncio.run(run())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"training_file": "file-nope"}, "training file 'file-nope' does not exist"),
        ({"model": "gpt-4o"}, "'gpt-4o' does not support fine-tuning"),
        ({"hyperparameters": {"n_epochs": 51}}, "hyperparameters.n_epochs must be 'auto'"),
        ({"extra_body": {"warmup_steps": 5}}, "The property 'warmup_steps' is not supported"),
    ],
)  # fmt: skip
def test_upstream_400s_pass_through_and_the_next_request_is_served(plain_proxy: Any, azure_env: Emulator,
                                                                  change: dict[str, Any], message: str) -> None:  # fmt: skip
    with openai.OpenAI(base_url=plain_proxy.url + "/v1", api_key=MASTER_KEY, max_retries=0) as c:
        uploaded = c.files.create(file=("t.jsonl", io.BytesIO(training(2))), purpose="fine-tune", **AZ)
        args: dict[str, Any] = {"model": BASE, "training_file": uploaded.id, **change}
        with pytest.raises(openai.BadRequestError) as info:
            c.fine_tuning.jobs.create(**args, **AZ)
        assert message in str(info.value)
        assert last(azure_env)[:2] == ("POST", "/openai/fine_tuning/jobs")  # the upstream said so
        assert c.fine_tuning.jobs.create(model=BASE, training_file=uploaded.id, **AZ).status == "validating_files"


def test_an_invalid_training_file_names_its_line_and_nothing_is_uploaded(plain_proxy: Any, azure_env: Emulator) -> None:
    lines = training(5).decode().splitlines()
    lines[2] = json.dumps({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a", "weight": 3}]})
    with openai.OpenAI(base_url=plain_proxy.url + "/v1", api_key=MASTER_KEY, max_retries=0) as c:
        with pytest.raises(openai.BadRequestError) as info:
            c.files.create(file=("t.jsonl", io.BytesIO("\n".join(lines).encode())), purpose="fine-tune", **AZ)
        assert "line 3: messages[1].weight must be 0 or 1" in str(info.value)
        assert info.value.body["param"] == "file"  # type: ignore[index]
    assert azure_env.requests == [] and azure_env.batches.files == {}


def test_proxy_checks_and_unknown_ids(plain_proxy: Any, azure_env: Emulator) -> None:
    auth = {"Authorization": f"Bearer {MASTER_KEY}"}
    with httpx.Client(base_url=plain_proxy.url, headers=auth) as http:
        r = http.post("/v1/fine_tuning/jobs", json={"model": BASE})
        assert r.status_code == 400 and r.json()["error"]["param"] == "training_file"
        r = http.post("/fine_tuning/jobs", json={"training_file": "file-1"})  # found by Schemathesis: it was a 500
        assert r.status_code == 400 and r.json()["error"]["param"] == "model"
        r = http.post("/fine_tuning/jobs", json={"model": BASE, "training_file": "file-1", "hyperparameters": [1]})
        assert r.status_code == 400 and r.json()["error"]["param"] == "hyperparameters"
        r = http.get("/fine_tuning/jobs", params={"limit": "many"})
        assert r.status_code == 400 and r.json()["error"]["param"] == "limit"
        assert http.put("/v1/fine_tuning/jobs/ftjob-1/cancel").status_code == 405
        assert http.get("/v1/fine_tuning/jobs", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert azure_env.requests == []
        r = http.get("/v1/fine_tuning/jobs/ftjob-unknown")
        assert r.status_code == 404 and set(r.json()["error"]) >= {"message", "type", "param", "code"}
        assert last(azure_env)[:2] == ("GET", "/openai/fine_tuning/jobs/ftjob-unknown")


# --------------------------------------------------------------------------- the store


@pytest.fixture(params=["sqlite", "postgresql"])
def store_settings(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    if request.param == "sqlite":
        return {"modelyard_settings": {"store_path": str(tmp_path / "store.db")}}
    return {"general_settings": {"database_url": request.getfixturevalue("postgres_url")}}


def test_a_job_is_found_after_a_restart_without_naming_the_provider(
    azure_env: Emulator, api_base: str, clock: ManualClock, store_settings: dict[str, Any]
) -> None:
    """With batch load balancing on, ids the proxy does not know need a provider (404 otherwise);
    a job the proxy created is recorded, so after a restart it is reached without one."""
    config: dict[str, Any] = {
        "model_list": [{"model_name": "batch-group", "litellm_params": azure(api_base, "gpt-4o-mini"),
                        "model_info": {"id": "one", "mode": "batch"}}],
        "litellm_settings": {"enable_loadbalancing_on_batch_endpoints": True},
        **store_settings,
    }  # fmt: skip
    with running_proxy(config) as proxy, openai.OpenAI(base_url=proxy.url + "/v1", api_key=MASTER_KEY, max_retries=0) as c:
        uploaded = c.files.create(file=("t.jsonl", io.BytesIO(training(2))), purpose="fine-tune", **AZ)
        job = c.fine_tuning.jobs.create(model=BASE, training_file=uploaded.id, **AZ)
        from modelyard.store.fine_tuning import get_fine_tuning_job

        record = get_fine_tuning_job(proxy.app.store, job.id)
        assert record is not None and record.provider == "azure"
    clock.advance(10.0)
    with running_proxy(config) as proxy, openai.OpenAI(base_url=proxy.url + "/v1", api_key=MASTER_KEY, max_retries=0) as c:
        done = c.fine_tuning.jobs.retrieve(job.id)  # no custom-llm-provider: the store says where
        assert done.status == "succeeded" and done.id == job.id
        assert last(azure_env)[:2] == ("GET", f"/openai/fine_tuning/jobs/{job.id}")
        assert c.fine_tuning.jobs.list_events(job.id).data
        assert c.fine_tuning.jobs.checkpoints.list(job.id).data
        with pytest.raises(openai.BadRequestError, match="cannot be cancelled"):
            c.fine_tuning.jobs.cancel(job.id)
        seen = len(azure_env.requests)
        with pytest.raises(openai.NotFoundError, match="custom-llm-provider"):
            c.fine_tuning.jobs.retrieve("ftjob-never-made-here")
        assert len(azure_env.requests) == seen  # refused by the proxy, not sent



def test_a_job_the_store_cannot_record_is_still_answered(azure_env: Emulator, api_base: str, tmp_path: Path,
                                                         caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    """The job exists upstream once created: a failing store write is logged, the client gets the job."""
    import sqlite3

    with running_proxy(plain_config(api_base, tmp_path)) as proxy, \
            openai.OpenAI(base_url=proxy.url + "/v1", api_key=MASTER_KEY, max_retries=0) as c:  # fmt: skip
        with pytest.raises(openai.NotFoundError):
            c.fine_tuning.jobs.retrieve("ftjob-unknown")  # opens the store (no provider named: it is asked)
        with sqlite3.connect(tmp_path / "store.db") as db:
            db.execute("DROP TABLE modelyard_fine_tuning_jobs")  # every write now fails
        uploaded = c.files.create(file=("t.jsonl", io.BytesIO(training(2))), purpose="fine-tune", **AZ)
        job = c.fine_tuning.jobs.create(model=BASE, training_file=uploaded.id, **AZ)
        assert job.id in azure_env.fine_tuning.jobs
        assert c.fine_tuning.jobs.retrieve(job.id, **AZ).id == job.id
        assert c.fine_tuning.jobs.retrieve(job.id).id == job.id  # unreadable store: the default provider
    assert f"fine-tuning job {job.id} was created but not recorded" in caplog.text
    assert f"the store could not be read for fine-tuning job {job.id}" in caplog.text
