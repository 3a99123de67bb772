"""modelyard.create_file / create_batch ... against the emulator, sync and async, every credential."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any

import modelyard
import pytest
from modelyard.files import Batch
from modelyard.testing import AD_TOKEN, KEY, Emulator, ManualClock
from modelyard.testing import batch_jsonl as jsonl


def _wait(batch_id: str, **kw: Any) -> Batch:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        batch = modelyard.retrieve_batch(batch_id, **kw)
        if batch.status in ("completed", "failed", "cancelled", "expired"):
            return batch
        time.sleep(0.02)
    raise AssertionError("batch did not finish")


def test_upload_create_wait_download(fast: Emulator, api_base: str) -> None:
    kw: dict[str, Any] = {"api_base": api_base, "api_key": KEY, "api_version": "2024-10-21"}
    created = modelyard.create_file(file=io.BytesIO(jsonl(5)), purpose="batch", custom_llm_provider="azure", **kw)
    assert created.id.startswith("file-") and created.purpose == "batch" and created.status == "processed"
    assert modelyard.file_retrieve(created.id, **kw).id == created.id
    assert [f.id for f in modelyard.file_list(purpose="batch", **kw).data] == [created.id]
    batch = modelyard.create_batch(input_file_id=created.id, endpoint="/v1/chat/completions",
                                   completion_window="24h", metadata={"run": "1"}, **kw)  # fmt: skip
    assert batch.status == "validating" and batch.input_file_id == created.id
    done = _wait(batch.id, **kw)
    assert done.status == "completed" and done.request_counts == {"total": 5, "completed": 5, "failed": 0}
    assert done.output_file_id is not None
    content = modelyard.file_content(done.output_file_id, **kw)
    assert sorted(json.loads(line)["custom_id"] for line in content.iter_lines()) == [f"task-{i}" for i in range(5)]
    assert modelyard.file_delete(created.id, **kw).deleted is True
    upload = fast.requests[0]
    assert (upload.method, upload.path, upload.query) == ("POST", "/openai/files", {"api-version": "2024-10-21"})
    assert upload.headers["api-key"] == KEY and upload.body["file"]["content"] == jsonl(5).decode()
    create = next(r for r in fast.requests if r.path == "/openai/batches")
    assert create.body == {"input_file_id": created.id, "endpoint": "/v1/chat/completions",
                           "completion_window": "24h", "metadata": {"run": "1"}}  # fmt: skip


def test_invalid_line_7_is_reported_and_nothing_is_sent(fast: Emulator, api_base: str) -> None:
    lines = jsonl(10).decode().splitlines()
    lines[6] = lines[6].replace('"custom_id": "task-6", ', "")
    with pytest.raises(modelyard.BadRequestError) as info:
        modelyard.create_file(file=("bad.jsonl", "\n".join(lines).encode()), purpose="batch",
                              api_base=api_base, api_key=KEY)  # fmt: skip
    assert "line 7:" in str(info.value) and "custom_id" in str(info.value)
    assert "line 6" not in str(info.value) and "line 8" not in str(info.value)
    assert info.value.param == "file"
    assert fast.requests == []


def test_upload_streams_from_the_file_object(fast: Emulator, api_base: str) -> None:
    sizes: list[int | None] = []

    class Recording(io.BytesIO):
        def read(self, size: int | None = -1, /) -> bytes:
            sizes.append(size)
            return super().read(size)

    data = jsonl(3000)  # ~400 kB: several upload chunks
    created = modelyard.create_file(file=Recording(data), purpose="batch", api_base=api_base, api_key=KEY)
    assert created.bytes == len(data)
    assert sizes and all(s is not None and 0 < s <= 1 << 20 for s in sizes)  # never read whole
    assert fast.batches.files[created.id].content == data


def test_a_path_and_a_non_seekable_stream_upload_too(fast: Emulator, api_base: str, tmp_path: Path) -> None:
    path = tmp_path / "requests.jsonl"
    path.write_bytes(jsonl(2))
    by_path = modelyard.create_file(file=path, api_base=api_base, api_key=KEY)
    assert by_path.filename == "requests.jsonl"

    class Pipe(io.RawIOBase):
        def __init__(self, data: bytes) -> None:
            self._data = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: Any) -> int:
            chunk = self._data.read(len(buffer))
            buffer[: len(chunk)] = chunk
            return len(chunk)

    piped = modelyard.create_file(file=("piped.jsonl", Pipe(jsonl(2))), api_base=api_base, api_key=KEY)
    assert fast.batches.files[piped.id].content == jsonl(2)


@pytest.mark.parametrize("credential", ["azure_ad_token", "azure_ad_token_provider", "async_provider"])
async def test_async_calls_with_entra_credentials(fast: Emulator, api_base: str, credential: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setattr(fast.batches, "clock", ManualClock())  # the batch is still running when cancelled
    async def token_async() -> str:
        return AD_TOKEN

    value: Any = {"azure_ad_token": AD_TOKEN, "azure_ad_token_provider": lambda: AD_TOKEN,
                  "async_provider": token_async}[credential]  # fmt: skip
    name = "azure_ad_token" if credential == "azure_ad_token" else "azure_ad_token_provider"
    kw: dict[str, Any] = {"api_base": api_base, name: value}
    created = await modelyard.acreate_file(file=io.BytesIO(jsonl(2)), purpose="batch", **kw)
    batch = await modelyard.acreate_batch(input_file_id=created.id, **kw)
    cancelled = await modelyard.acancel_batch(batch.id, **kw)
    assert cancelled.status == "cancelling"
    listed = await modelyard.alist_batches(limit=1, **kw)
    assert [b.id for b in listed.data] == [batch.id]
    assert (await modelyard.aretrieve_batch(batch.id, **kw)).id == batch.id
    assert (await modelyard.afile_retrieve(created.id, **kw)).id == created.id
    assert (await modelyard.afile_list(**kw)).data
    assert (await modelyard.afile_content(created.id, **kw)).content == jsonl(2)
    assert (await modelyard.afile_delete(created.id, **kw)).deleted
    assert all(r.headers["authorization"] == f"Bearer {AD_TOKEN}" for r in fast.requests)


def test_list_batches_pages_with_after_and_limit(fast: Emulator, api_base: str) -> None:
    kw: dict[str, Any] = {"api_base": api_base, "api_key": KEY, "api_version": "v1"}
    file_id = modelyard.create_file(file=jsonl(1), **kw).id
    ids = [modelyard.create_batch(input_file_id=file_id, **kw).id for _ in range(3)]
    first = modelyard.list_batches(limit=2, **kw)
    assert [b.id for b in first.data] == [ids[2], ids[1]] and first.has_more
    rest = modelyard.list_batches(after=first.last_id, limit=2, **kw)
    assert [b.id for b in rest.data] == [ids[0]] and not rest.has_more
    assert all(r.path.startswith("/openai/v1/") and "api-version" not in r.query for r in fast.requests)


def test_errors_are_mapped_and_name_the_field(fast: Emulator, api_base: str) -> None:
    kw: dict[str, Any] = {"api_base": api_base, "api_key": KEY}
    with pytest.raises(modelyard.NotFoundError):
        modelyard.retrieve_batch("batch_missing", **kw)
    with pytest.raises(modelyard.BadRequestError) as info:
        modelyard.create_batch(input_file_id="file-x", completion_window="48h", **kw)
    assert info.value.param == "completion_window"
    with pytest.raises(modelyard.BadRequestError) as info:
        modelyard.file_retrieve("", **kw)
    assert info.value.param == "file_id"
    with pytest.raises(modelyard.BadRequestError) as info:
        modelyard.file_list(purpos="batch", **kw)
    assert info.value.param == "purpos"
    with pytest.raises(modelyard.AuthenticationError) as auth:
        modelyard.file_list(api_base=api_base, api_key="wrong-key-wrong-key")
    assert "wrong-key" not in str(auth.value) and auth.value.status_code == 401
    assert len(fast.requests) == 2  # the retrieve and the refused list; nothing else was sent


def test_a_provider_without_a_files_plugin_is_named(fast: Emulator, api_base: str) -> None:
    # the caller's input, as an unknown model prefix is: a BadRequestError naming the field
    with pytest.raises(modelyard.BadRequestError) as info:
        modelyard.file_list(custom_llm_provider="acme", api_base=api_base, api_key=KEY)
    assert info.value.param == "custom_llm_provider"
    assert "'acme'" in str(info.value) and "'azure'" in str(info.value)
    assert fast.requests == []
