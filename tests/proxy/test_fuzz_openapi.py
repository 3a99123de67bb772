"""Schemathesis against the proxy's own OpenAPI document (issue 18).

The default ``modelyard serve`` (the emulator embedded, files and batches endpoints on) is
fuzzed through every operation of ``GET /openapi.json``, with schema-valid and invalid input:
every answer must be a documented status with a body of the documented shape (OpenAI's error
JSON for every failure), never a 5xx of the proxy's own, a hang or a dropped connection, and
the server logs no traceback. ``MODELYARD_FUZZ_EXAMPLES`` sets the examples per operation
(CI: a few; ``./dev fuzz`` more).
"""

from __future__ import annotations

import os
import re
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from .test_lifecycle import read_banner, serve

EXAMPLES = int(os.environ.get("MODELYARD_FUZZ_EXAMPLES", "6"))


@pytest.fixture(scope="module")
def fuzzed_serve() -> Iterator[tuple[str, dict[str, str], list[str]]]:
    with serve("--no-access-log") as (proc, url):
        key = re.search(r"master key \(generated for this run\): (sk-\S+)", read_banner(proc))
        assert key is not None and proc.stderr is not None
        log: list[str] = []  # drained all along: a full pipe would block the server
        threading.Thread(target=lambda: log.extend(proc.stderr or ()), daemon=True).start()
        yield url, {"Authorization": f"Bearer {key.group(1)}"}, log


def test_the_document_lists_every_operation_of_the_table_with_its_request_model(
    fuzzed_serve: tuple[str, dict[str, str], list[str]],
) -> None:
    from modelyard.operations import OPERATIONS

    url, auth, _ = fuzzed_serve
    assert httpx.get(f"{url}/openapi.json").status_code == 401  # it names the model groups: key only
    doc = httpx.get(f"{url}/openapi.json", headers=auth).json()
    for op in OPERATIONS.values():
        for path in op.paths:
            body = doc["paths"][f"/v1{path}"]["post"]["requestBody"]["content"]["application/json"]["schema"]
            name = body["$ref"].rsplit("/", 1)[1]
            schema = doc["components"]["schemas"][name]
            assert {"model", *op.payload} <= set(schema["required"])
            assert set(op.request.model_fields) <= set(schema["properties"])  # the model that validates
    from modelyard.plugins import get_plugins

    templated = [p for p in get_plugins().operations.paths if p.model_in_path]  # the plugins' (ProxyPath)
    assert "/openai/deployments/{model}/chat/completions" in [p.template for p in templated]
    for extra in templated:
        azure = doc["paths"][extra.template]["post"]
        assert "model" not in azure["requestBody"]["content"]["application/json"]["schema"]["required"]
    chat = doc["components"]["schemas"]["ChatRequest"]["properties"]
    models = httpx.get(f"{url}/v1/models", headers=auth).json()["data"]
    assert chat["model"]["enum"] == [m["id"] for m in models]  # the configured groups
    assert chat["n"]["anyOf"][0]["maximum"] == 128  # the spec's ranges travel with the model
    for path in ("/v1/files", "/v1/batches", "/v1/batches/{batch_id}", "/v1/files/{file_id}/content"):
        assert path in doc["paths"]


def test_schemathesis_finds_no_500_no_undocumented_answer_no_dropped_connection(
    fuzzed_serve: tuple[str, dict[str, str], list[str]],
) -> None:
    url, auth, log = fuzzed_serve
    schema = schemathesis.openapi.from_dict(httpx.get(f"{url}/openapi.json", headers=auth).json())
    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    statuses: Counter[int] = Counter()
    failures: list[str] = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result  # the document is valid OpenAPI
        operation = result.ok()
        if operation.path.startswith(("/chat", "/completions", "/embeddings", "/files", "/batches", "/models")):
            continue  # the same handlers as their /v1 twins

        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):  # valid input, and invalid

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
            def run(case: Any) -> None:
                # a hang is a timeout here, a dropped connection an exception: both fail the test
                response = case.call_and_validate(base_url=url, headers=auth, checks=checks, timeout=60)
                statuses[response.status_code] += 1

            try:
                run()
            except Unsatisfiable:
                pass  # nothing invalid to send (no parameters, no body)
            except Exception as exc:  # collect every operation's finding, then fail once
                failures.append(f"{mode.value} {operation.method.upper()} {operation.path}: {type(exc).__name__}: {str(exc)[:2000]}")
    print(f"\nschemathesis: {sum(statuses.values())} requests, statuses {dict(sorted(statuses.items()))}")
    assert not failures, "\n\n".join(failures)
    assert not [line for line in log if "Traceback" in line], "".join(log)[-5000:]
