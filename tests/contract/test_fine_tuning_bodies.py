"""Fine-tuning against Microsoft's specs: the create bodies the SDK sends (GA 2024-10-21 and v1,
refusing undeclared keys), the paths and query parameters it uses, and the emulator's answers (v1 shapes)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import modelyard
import pytest
from modelyard.testing import KEY, Emulator, ManualClock

from .test_request_bodies import _nullable, assert_conforms, validator

SPECS = Path(__file__).parent / "specs"
GA = "2024-10-21"
V1_SPEC = "azure-v1-v1-generated.json"
BASE = "gpt-4o-mini-2024-07-18"
TRAINING = b'{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}\n' * 3


@cache
def _ga() -> dict[str, Any]:
    return json.loads((SPECS / "authoring-2024-10-21.json").read_text())  # type: ignore[no-any-return]


def _closed(node: Any) -> Any:
    """Swagger 2.0 definitions with ``additionalProperties: false`` on every object with properties."""
    if isinstance(node, list):
        return [_closed(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _closed(v) for k, v in node.items()}
    if "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out


def _ga_errors(definition: str, value: dict[str, Any]) -> list[str]:
    root = {"$ref": f"#/definitions/{definition}", "definitions": _closed(_ga()["definitions"])}
    return [f"{list(e.path)}: {e.message}" for e in jsonschema.Draft4Validator(root).iter_errors(value)]


@pytest.fixture
def clock(emulator: Emulator) -> Iterator[ManualClock]:
    manual = ManualClock()
    saved = emulator.batches.clock
    emulator.batches.clock = manual
    yield manual
    emulator.batches.clock = saved


FULL: dict[str, Any] = {"hyperparameters": {"n_epochs": 2, "batch_size": 1, "learning_rate_multiplier": 0.1},
                        "suffix": "contract", "seed": 42}  # fmt: skip


def test_ga_create_body_and_every_path_are_the_specs(emulator: Emulator, api_base: str, clock: ManualClock) -> None:
    kw: dict[str, Any] = {"api_base": api_base, "api_key": KEY, "api_version": GA}
    training = modelyard.create_file(file=("t.jsonl", TRAINING), purpose="fine-tune", **kw)
    validation = modelyard.create_file(file=("v.jsonl", TRAINING), purpose="fine-tune", **kw)
    job = modelyard.create_fine_tuning_job(model=BASE, training_file=training.id, validation_file=validation.id, **FULL, **kw)
    modelyard.retrieve_fine_tuning_job(job.id, **kw)
    modelyard.list_fine_tuning_jobs(after=job.id, limit=2, **kw)
    modelyard.list_fine_tuning_job_events(job.id, limit=5, **kw)
    modelyard.list_fine_tuning_job_checkpoints(job.id, limit=5, **kw)
    modelyard.cancel_fine_tuning_job(job.id, **kw)
    create = next(r for r in emulator.requests if r.method == "POST" and r.path == "/openai/fine_tuning/jobs")
    assert set(create.body) == {"model", "training_file", "validation_file", "hyperparameters", "suffix", "seed"}
    assert _ga_errors("FineTuningJobCreation", create.body) == []
    paths = _ga()["paths"]
    for request in emulator.requests:
        if "/fine_tuning/" not in request.path:
            continue
        assert request.query.get("api-version") == GA
        relative = request.path.removeprefix("/openai")
        template = next(t for t in paths if t.replace("{fine-tuning-job-id}", job.id) == relative)
        operation = paths[template][request.method.lower()]
        names = {p.get("name") for p in operation.get("parameters", []) if isinstance(p, dict) and p.get("in") == "query"}
        assert set(request.query) - {"api-version"} <= names, (request.path, request.query)


def test_v1_create_body_conforms_strictly(emulator: Emulator, api_base: str, clock: ManualClock) -> None:
    kw: dict[str, Any] = {"api_base": api_base, "api_key": KEY, "api_version": "v1"}
    training = modelyard.create_file(file=("t.jsonl", TRAINING), purpose="fine-tune", **kw)
    modelyard.create_fine_tuning_job(model=BASE, training_file=training.id, **FULL, **kw)
    create = emulator.requests[-1]
    assert (create.method, create.path) == ("POST", "/openai/v1/fine_tuning/jobs")
    assert_conforms("v1", create.body, "OpenAI.CreateFineTuningJobRequest", V1_SPEC)


@pytest.mark.parametrize("leak", [{"api_key": "x"}, {"custom_llm_provider": "azure"}, {"hyperparameters": {"epochs": 1}}])
def test_the_validators_refuse_undeclared_keys(leak: dict[str, Any]) -> None:
    body = {"model": BASE, "training_file": "file-1", **leak}
    assert _ga_errors("FineTuningJobCreation", body)
    assert list(validator("v1", "OpenAI.CreateFineTuningJobRequest", V1_SPEC).iter_errors(body))


def _timestamps(node: Any) -> Any:
    """Erratum: the v1 spec writes nullable unix times as ``{"type": "integer", "anyOf": [date-time
    string, null]}``, which no value satisfies but a date-time integer; the service sends an integer or null."""
    if isinstance(node, list):
        return [_timestamps(n) for n in node]
    if not isinstance(node, dict):
        return node
    if node.get("type") == "integer" and node.get("format") == "unixTimestamp" and "anyOf" in node:
        return {"type": ["integer", "null"]}
    return {k: _timestamps(v) for k, v in node.items()}


def _v1_errors(schema: str, value: dict[str, Any]) -> list[str]:
    spec = json.loads((SPECS / V1_SPEC).read_text())
    schemas = _timestamps(_nullable(spec["components"]["schemas"]))
    root = {"$ref": f"#/components/schemas/{schema}", "components": {"schemas": schemas}}
    return [f"{list(e.path)}: {e.message}" for e in jsonschema.Draft202012Validator(root).iter_errors(value)]


def test_the_emulator_answers_in_the_v1_shapes(emulator: Emulator, api_base: str, clock: ManualClock) -> None:
    headers = {"api-key": KEY}
    with httpx.Client(base_url=f"{api_base}/openai/v1", headers=headers) as http:
        up = http.post("/files", files={"file": ("t.jsonl", TRAINING)}, data={"purpose": "fine-tune"})
        job = http.post("/fine_tuning/jobs", json={"model": BASE, "training_file": up.json()["id"], **FULL})
        assert job.status_code == 200 and _v1_errors("OpenAI.FineTuningJob", job.json()) == []
        clock.advance(10.0)
        done = http.get(f"/fine_tuning/jobs/{job.json()['id']}").json()
        assert done["status"] == "succeeded" and _v1_errors("OpenAI.FineTuningJob", done) == []
        listed = http.get("/fine_tuning/jobs").json()
        assert _v1_errors("OpenAI.ListPaginatedFineTuningJobsResponse", listed) == []
        events = http.get(f"/fine_tuning/jobs/{done['id']}/events").json()
        assert _v1_errors("OpenAI.ListFineTuningJobEventsResponse", events) == []
        checkpoints = http.get(f"/fine_tuning/jobs/{done['id']}/checkpoints").json()
        assert checkpoints["data"] and _v1_errors("OpenAI.ListFineTuningJobCheckpointsResponse", checkpoints) == []
        classic = httpx.post(f"{api_base}/openai/fine_tuning/jobs", params={"api-version": GA}, headers=headers,
                             json={"model": BASE, "training_file": up.json()["id"]})  # fmt: skip
        assert classic.status_code == 201  # the GA spec's answer to a create
