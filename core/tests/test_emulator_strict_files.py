"""The emulator is as strict as Azure for legacy completions, files and batches too (issue 18).

Completions are checked against the inference spec's ``createCompletionRequest``, batch creation
against the authoring spec's ``BatchCreateRequest``: each kind of wrong value is a 400 naming
the field (``param`` for completions, the authoring API's ``target`` for files and batches),
never a 200 or a 500.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from modelyard.testing import KEY, Deployment, Emulator, batch_jsonl

VERSION = {"api-version": "2024-10-21"}


@pytest.fixture
def client(api_base: str, emulator: Emulator) -> Iterator[httpx.Client]:
    emulator.add_deployment(Deployment("my-instruct", model="gpt-35-turbo-instruct"))
    with httpx.Client(base_url=api_base, timeout=30, headers={"api-key": KEY}) as c:
        yield c


COMPLETIONS_WRONG = [
    # (body over a valid one, param, words in the message)
    ({"max_tokens": "ten"}, "max_tokens", "'integer'"),
    ({"max_tokens": -1}, "max_tokens", "minimum of 0"),
    ({"n": "two"}, "n", "'integer'"),
    ({"n": 129}, "n", "maximum of 128"),
    ({"temperature": "hot"}, "temperature", "'number'"),
    ({"temperature": 2.5}, "temperature", "maximum of 2"),
    ({"top_p": 1.5}, "top_p", "maximum of 1"),
    ({"frequency_penalty": -3}, "frequency_penalty", "minimum of -2"),
    ({"best_of": 21}, "best_of", "maximum of 20"),
    ({"echo": "yes"}, "echo", "'boolean'"),
    ({"stream": 1}, "stream", "'boolean'"),
    ({"stop": ["a", "b", "c", "d", "e"]}, "stop", "at most 4"),
    ({"logit_bias": {"50256": "high"}}, "logit_bias.50256", "'integer'"),
    ({"suffix": 7}, "suffix", "'string'"),
    ({"prompt": 42}, "prompt", ""),
    ({"prompt": ["a", 2]}, "prompt[1]", ""),
    ({"stream_options": {"include_usage": "yes"}}, "stream_options.include_usage", "'boolean'"),
]  # fmt: skip


@pytest.mark.parametrize(("extra", "param", "words"), COMPLETIONS_WRONG,
                         ids=[w[1] + ":" + str(i) for i, w in enumerate(COMPLETIONS_WRONG)])  # fmt: skip
def test_completions_wrong_values_are_azures_400_naming_the_field(client: httpx.Client, extra: dict[str, Any],
                                                                  param: str, words: str) -> None:  # fmt: skip
    body = {"prompt": "Say hi", "max_tokens": 5, **extra}
    answer = client.post("/openai/deployments/my-instruct/completions", params=VERSION, json=body)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert words in error["message"]


def test_a_missing_prompt_is_named_and_a_valid_request_still_answers(client: httpx.Client) -> None:
    answer = client.post("/openai/deployments/my-instruct/completions", params=VERSION, json={"max_tokens": 5})
    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == "prompt"
    ok = client.post("/openai/deployments/my-instruct/completions", params=VERSION,
                     json={"prompt": ["a", "b"], "max_tokens": 5, "temperature": 0, "n": 1, "stop": None})  # fmt: skip
    assert ok.status_code == 200, ok.text
    assert len(ok.json()["choices"]) == 2


@pytest.fixture
def batch_file(client: httpx.Client) -> str:
    uploaded = client.post("/openai/files", params=VERSION, data={"purpose": "batch"},
                           files={"file": ("in.jsonl", batch_jsonl(2, "gpt-4o-mini"))})  # fmt: skip
    assert uploaded.status_code == 201, uploaded.text
    return str(uploaded.json()["id"])


BATCH_WRONG = [
    ({"input_file_id": 7}, "input_file_id", "'string'"),
    ({"input_file_id": ""}, "input_file_id", ""),
    ({"input_file_id": None}, "input_file_id", ""),
    ({"endpoint": 3}, "endpoint", ""),
    ({"endpoint": "/embeddings-please"}, "endpoint", "not supported"),
    ({"completion_window": 24}, "completion_window", "'string'"),
    ({"completion_window": "48h"}, "completion_window", "24h"),
    ({"metadata": {"team": 1}}, "metadata.team", "'string'"),
    ({"metadata": ["a"]}, "metadata", "'object'"),
]  # fmt: skip


@pytest.mark.parametrize(("extra", "target", "words"), BATCH_WRONG,
                         ids=[w[1] + ":" + str(i) for i, w in enumerate(BATCH_WRONG)])  # fmt: skip
def test_batch_create_wrong_values_are_a_400_naming_the_field(client: httpx.Client, batch_file: str,
                                                              extra: dict[str, Any], target: str, words: str) -> None:  # fmt: skip
    body = {"input_file_id": batch_file, "endpoint": "/chat/completions", "completion_window": "24h", **extra}
    answer = client.post("/openai/batches", params=VERSION, json=body)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["code"] == "invalidPayload"
    assert error["target"] == target
    assert words in error["message"]


@pytest.mark.parametrize("missing", ["input_file_id", "endpoint", "completion_window"])
def test_batch_create_without_a_required_field_names_it(client: httpx.Client, batch_file: str, missing: str) -> None:
    body = {"input_file_id": batch_file, "endpoint": "/chat/completions", "completion_window": "24h"}
    del body[missing]
    answer = client.post("/openai/batches", params=VERSION, json=body)
    assert answer.status_code == 400
    assert answer.json()["error"]["target"] == missing


@pytest.mark.parametrize("path", ["/openai/batches", "/openai/v1/files"])
@pytest.mark.parametrize("limit", ["ten", "1.5", "99999999999"])
def test_a_list_limit_that_is_no_int32_is_a_400(client: httpx.Client, path: str, limit: str) -> None:
    params = {"limit": limit} if "/v1/" in path else {**VERSION, "limit": limit}
    answer = client.get(path, params=params)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["target"] == "limit"


UPLOAD_WRONG = [
    ({"purpose": "training"}, True, "purpose"),
    ({}, True, "purpose"),
    ({"purpose": "batch"}, False, "file"),
]


@pytest.mark.parametrize(("form", "with_file", "target"), UPLOAD_WRONG)
def test_file_upload_wrong_values_are_a_400_naming_the_field(client: httpx.Client, form: dict[str, str],
                                                             with_file: bool, target: str) -> None:  # fmt: skip
    files = {"file": ("in.jsonl", batch_jsonl(1))} if with_file else {"other": ("x.txt", b"x")}
    answer = client.post("/openai/files", params=VERSION, data=form, files=files)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["target"] == target
