"""Issue 22: ids that would climb out of their upstream path (bug 12), and request bodies that
broke the proxy or reached the upstream broken (a line nested 200,000 deep, NaN, a line break in
a multipart part's Content-Type)."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote

import httpx
import modelyard
import pytest
from modelyard.errors import BadRequestError
from modelyard.testing import KEY, Emulator, batch_jsonl

from .conftest import MASTER_KEY, azure, running_proxy

AUTH = {"Authorization": f"Bearer {MASTER_KEY}"}


@pytest.fixture
def files_proxy(azure_env: Emulator, api_base: str) -> Iterator[Any]:
    """A proxy whose files and batches go to the emulator named by AZURE_API_BASE / AZURE_API_KEY."""
    config = {"model_list": [{"model_name": "gpt-4o", "litellm_params": azure(api_base, "gpt-4o")}],
              "router_settings": {"num_retries": 0}}  # fmt: skip
    with running_proxy(config) as server:
        yield server


def _raw(server: Any, method: str, path: str, body: bytes | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:  # fmt: skip
    """Send ``path`` exactly as written: httpx and browsers would resolve ``..`` before sending."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.request(method, path, body=body, headers={**AUTH, **(headers or {})})
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def test_file_ids_are_one_path_segment(files_proxy: Any, azure_env: Emulator) -> None:
    emulator = azure_env
    for method, path, param in (
        ("GET", "/v1/files/../content", "file_id"),
        ("GET", "/v1/files/..", "file_id"),
        ("GET", "/v1/files/.", "file_id"),
        ("DELETE", "/v1/files/..", "file_id"),
        ("POST", "/v1/batches/../cancel", "batch_id"),
        ("GET", "/v1/batches/..", "batch_id"),
        ("GET", "/files/%2e%2e/content", "file_id"),  # decoded by the server before routing
        ("GET", "/v1/files/%0d%0a", "file_id"),  # blank
    ):
        status, body = _raw(files_proxy, method, path)
        assert status == 400, (path, body)
        assert body["error"]["param"] == param and ("cannot be" in body["error"]["message"] or "%0d" in path), body
    assert emulator.requests == []  # nothing reached the upstream, with the proxy's credentials or not

    # Ids with characters that mean something in a URL travel as one segment, and the
    # upstream answers for that id (404: no such file), never for another path.
    for path, upstream_id in (
        ("/v1/files/abc%3Fx=1/content", "abc?x=1"),
        ("/v1/files/abc%23frag", "abc#frag"),
        ("/v1/files/%0d%0aabc", "\r\nabc"),
        ("/v1/files/file%2520id", "file%20id"),
        ("/v1/batches/%0d%0aX-Injected:%201/cancel", "\r\nX-Injected: 1"),
    ):
        emulator.requests.clear()
        status, body = _raw(files_proxy, "POST" if path.endswith("/cancel") else "GET", path)
        assert status == 404, (path, body)
        [sent] = emulator.requests
        assert sent.query == {"api-version": "2024-10-21"}
        kind = "batches" if "/batches/" in path else "files"
        tail = "/content" if path.endswith("/content") else "/cancel" if path.endswith("/cancel") else ""
        assert unquote(sent.raw_path) == f"/openai/{kind}/{upstream_id}{tail}", (path, sent.raw_path)
        assert "x-injected" not in sent.headers


def test_file_ids_are_one_path_segment_in_the_sdk(azure_env: Emulator, api_base: str) -> None:
    """The SDK builds the upstream paths the proxy uses: the same rules hold there."""
    emulator = azure_env
    common = {"api_key": KEY, "api_base": api_base, "api_version": "2024-10-21"}
    with pytest.raises(BadRequestError) as caught:
        modelyard.file_content("..", **common)
    assert caught.value.param == "file_id"
    with pytest.raises(BadRequestError) as caught:
        modelyard.cancel_batch(".", **common)
    assert caught.value.param == "batch_id"
    emulator.requests.clear()
    with pytest.raises(modelyard.errors.NotFoundError):
        modelyard.file_delete("abc?x=1", **common)
    assert [(r.method, unquote(r.raw_path)) for r in emulator.requests] == [("DELETE", "/openai/files/abc?x=1")]


def test_deeply_nested_batch_line_is_400(files_proxy: Any, azure_env: Emulator) -> None:
    deep = b"[" * 200_000 + b"]" * 200_000
    lines = batch_jsonl(2) + b'{"custom_id": "deep", "method": "POST", "url": "/chat/completions", "body": ' + deep + b"}\n"
    r = httpx.post(f"{files_proxy.url}/v1/files", headers=AUTH, files={"file": ("in.jsonl", lines, "application/jsonl")},
                   data={"purpose": "batch"}, timeout=60)  # fmt: skip
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["param"] == "file" and "line 3" in error["message"] and "nested too deeply" in error["message"]
    assert not [q for q in azure_env.requests if q.method == "POST"]  # nothing uploaded

    # A JSON body nested as deep is a 400 too, not a 500.
    r = httpx.post(f"{files_proxy.url}/v1/chat/completions", headers={**AUTH, "content-type": "application/json"},
                   content=b'{"model": "gpt-4o", "messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", timeout=60)  # fmt: skip
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json", r.text


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_nan_temperature_is_400(files_proxy: Any, azure_env: Emulator, literal: str, api_base: str) -> None:
    body = '{"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "temperature": ' + literal + "}"
    r = httpx.post(f"{files_proxy.url}/v1/chat/completions", headers={**AUTH, "content-type": "application/json"},
                   content=body, timeout=30)  # fmt: skip
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == "temperature" and "temperature" in r.json()["error"]["message"]
    nested = '{"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "logit_bias": {"50256": ' + literal + "}}"
    r = httpx.post(f"{files_proxy.url}/v1/chat/completions", headers={**AUTH, "content-type": "application/json"},
                   content=nested, timeout=30)  # fmt: skip
    assert r.status_code == 400 and r.json()["error"]["param"] == "logit_bias.50256", r.text
    assert azure_env.requests == []  # nothing forwarded

    # The SDK refuses it too, naming the field, on both async backends and the sync path.
    value = float(literal)
    common = {"api_key": KEY, "api_base": api_base, "api_version": "2024-10-21"}
    with pytest.raises(BadRequestError) as caught:
        modelyard.completion(model="azure/gpt-4o", messages=[{"role": "user", "content": "hi"}], temperature=value, **common)
    assert caught.value.param == "temperature"
    assert azure_env.requests == []


def test_multipart_content_type_newline(files_proxy: Any, azure_env: Emulator) -> None:
    boundary = "b0undary"
    # A bare LF (or a vertical tab, NUL ...) is kept in the header value by the multipart parser;
    # a bare CR already fails the parse. Each is a 400 naming the file part.
    for ctype in ("application/jsonl\nX-Injected: yes", "application/jsonl\x0bX-Injected: yes",
                  "application/jsonl\rX-Injected: yes"):  # fmt: skip
        payload = (
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"in.jsonl\"\r\n"
            f"Content-Type: {ctype}\r\n\r\n"
        ).encode() + batch_jsonl(1) + f"\r\n--{boundary}--\r\n".encode()
        status, body = _raw(files_proxy, "POST", "/v1/files", body=payload,
                            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})  # fmt: skip
        uploads = [r for r in azure_env.requests if r.method == "POST"]
        # Refused before anything is sent (the line break never reaches the upstream's headers).
        assert status == 400, body
        assert body["error"]["param"] == "file"
        if "\r" not in ctype:
            assert "content type" in body["error"]["message"], body
        assert uploads == []
