"""Files and batches against Azure's GA authoring spec (2024-10-21): what the SDK sends, and what
the emulator answers, are what the spec describes."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import modelyard
import pytest
from modelyard.testing import KEY, Emulator, ManualClock, batch_jsonl

SPEC = Path(__file__).parent / "specs" / "authoring-2024-10-21.json"
VERSION = "2024-10-21"


@cache
def _spec() -> dict[str, Any]:
    return json.loads(SPEC.read_text())  # type: ignore[no-any-return]


def _present(value: Any) -> Any:
    # Swagger 2.0 has no null: the service sends null for fields not reached yet, so drop them.
    if isinstance(value, dict):
        return {k: _present(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_present(v) for v in value]
    return value


def _conforms(definition: str, value: dict[str, Any]) -> None:
    present = _present(value)
    root = {"$ref": f"#/definitions/{definition}", "definitions": _spec()["definitions"]}
    errors = list(jsonschema.Draft4Validator(root).iter_errors(present))
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors[:5]]


@pytest.fixture
def fast(emulator: Emulator) -> Iterator[Emulator]:
    service = emulator.batches
    saved = service.step_seconds, service.line_seconds
    service.step_seconds, service.line_seconds = 0.05, 0.005
    yield emulator
    service.step_seconds, service.line_seconds = saved


def test_every_call_uses_a_path_and_method_of_the_spec(fast: Emulator, api_base: str,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setattr(fast.batches, "clock", ManualClock())  # the batch is still running when cancelled
    kw: dict[str, Any] = {"api_base": api_base, "api_key": KEY, "api_version": VERSION}
    file = modelyard.create_file(file=io.BytesIO(batch_jsonl(2)), purpose="batch", **kw)
    modelyard.file_retrieve(file.id, **kw)
    modelyard.file_list(purpose="batch", **kw)
    modelyard.file_content(file.id, **kw)
    batch = modelyard.create_batch(input_file_id=file.id, metadata={"k": "v"}, **kw)
    modelyard.retrieve_batch(batch.id, **kw)
    modelyard.list_batches(limit=5, **kw)
    modelyard.cancel_batch(batch.id, **kw)
    modelyard.file_delete(file.id, **kw)
    paths = _spec()["paths"]
    templates = [(p, p.replace("{file-id}", file.id).replace("{batch-id}", batch.id)) for p in paths]
    for request in fast.requests:
        assert request.query.get("api-version") == VERSION
        relative = request.path.removeprefix("/openai")
        template = next((t for t, concrete in templates if concrete == relative), None)
        assert template is not None, request.path
        operation = paths[template][request.method.lower()]
        names = {p.get("name") for p in operation.get("parameters", []) if p.get("in") == "query"}
        assert set(request.query) - {"api-version"} <= names, (request.path, request.query)
    upload = fast.requests[0].body
    purposes = next(p for p in paths["/files"]["post"]["parameters"] if p.get("name") == "purpose")["enum"]
    assert upload["purpose"] in purposes and set(upload) == {"purpose", "file"}
    create = next(r for r in fast.requests if r.method == "POST" and r.path == "/openai/batches")
    _conforms("BatchCreateRequest", create.body)


def test_the_emulator_answers_in_the_spec_shapes(fast: Emulator, api_base: str) -> None:
    kw: dict[str, Any] = {"api_base": api_base, "api_key": KEY, "api_version": VERSION}
    file = modelyard.create_file(file=io.BytesIO(batch_jsonl(2)), purpose="batch", **kw)
    _conforms("File", file.model_dump())
    _conforms("FileList", modelyard.file_list(**kw).model_dump())
    batch = modelyard.create_batch(input_file_id=file.id, **kw)
    _conforms("Batch", batch.model_dump())
    deadline = time.monotonic() + 20
    while batch.status != "completed" and time.monotonic() < deadline:
        time.sleep(0.02)
        batch = modelyard.retrieve_batch(batch.id, **kw)
    _conforms("Batch", batch.model_dump())
    _conforms("BatchesList", modelyard.list_batches(**kw).model_dump())
    _conforms("FileDelete", modelyard.file_delete(file.id, **kw).model_dump())
