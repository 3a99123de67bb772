"""File content downloads through the proxy are streamed: memory stays flat whatever the size.

The proxy runs as its own process so that its resident memory is measured alone; the emulator
(in this process) serves a generated 200 MB batch output chunk by chunk, never holding it whole.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from modelyard.testing import KEY, Emulator
from modelyard.testing.batches import StoredFile

from .conftest import MASTER_KEY
from .processes import rss_bytes, serve_process

SIZE = 200 * 1024 * 1024
CHUNK = 1024 * 1024
_LINE = b'{"custom_id":"task","response":{"status_code":200,"body":{"choices":[]}}}\n'
_BLOCK = (_LINE * (CHUNK // len(_LINE) + 1))[:CHUNK]


def _big_output(emulator: Emulator, size: int, *, break_after: int | None = None) -> str:
    """A batch output file of ``size`` bytes generated on each download (one 1 MB block reused)."""

    def generate() -> Iterator[bytes]:
        for sent in range(0, size, CHUNK):
            if break_after is not None and sent >= break_after:
                raise ConnectionResetError("the emulated resource broke off the download")
            yield _BLOCK[: min(CHUNK, size - sent)]

    file_id = f"file-{uuid.uuid4().hex}"
    emulator.batches.files[file_id] = StoredFile(id=file_id, filename="batch_output.jsonl", purpose="batch_output",
                                                 content=b"", generate=generate, size=size)  # fmt: skip
    return file_id


@pytest.fixture
def served(tmp_path: Path, api_base: str, emulator: Emulator) -> Iterator[str]:
    env = {"AZURE_API_BASE": api_base, "AZURE_API_KEY": KEY, "AZURE_API_VERSION": "2024-10-21",
           "MODELYARD_MASTER_KEY": MASTER_KEY}  # fmt: skip
    config = {"model_list": [{"model_name": "gpt-4o", "litellm_params": {
        "model": "azure/gpt-4o", "api_base": api_base, "api_key": KEY, "api_version": "2024-10-21"}}]}  # fmt: skip
    with serve_process(tmp_path, config, "--no-access-log", env=env) as proxy:
        proxy_pid[0] = proxy.pid
        yield proxy.url


proxy_pid = [0]


def test_a_200_mb_batch_output_passes_through_with_bounded_memory(served: str, emulator: Emulator) -> None:
    file_id = _big_output(emulator, SIZE)
    headers = {"Authorization": f"Bearer {MASTER_KEY}"}
    pid = proxy_pid[0]
    # Warm up the path (imports, the upstream connection pool) before the baseline.
    small = _big_output(emulator, 3 * CHUNK)
    assert len(httpx.get(f"{served}/v1/files/{small}/content", headers=headers, timeout=30).content) == 3 * CHUNK
    baseline = rss_bytes(pid)
    peak = [baseline]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], rss_bytes(pid))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    received = 0
    started = time.perf_counter()
    try:
        with httpx.stream("GET", f"{served}/v1/files/{file_id}/content", headers=headers, timeout=60) as response:
            assert response.status_code == 200
            assert response.headers["content-length"] == str(SIZE)
            assert response.headers["content-type"] == "application/octet-stream"
            for chunk in response.iter_raw():
                received += len(chunk)
    finally:
        done.set()
        sampler.join()
    seconds = time.perf_counter() - started
    growth = peak[0] - baseline
    print(f"\n200 MB download through the proxy: {seconds:.2f} s, proxy RSS {baseline / 2**20:.1f} MB "
          f"-> peak {peak[0] / 2**20:.1f} MB (+{growth / 2**20:.1f} MB)")  # fmt: skip
    assert received == SIZE
    assert growth < 32 * 1024 * 1024, f"the proxy's memory grew by {growth / 2**20:.1f} MB for a 200 MB download"


def test_a_download_the_upstream_breaks_off_is_broken_for_the_client_too(served: str, emulator: Emulator) -> None:
    file_id = _big_output(emulator, 8 * CHUNK, break_after=2 * CHUNK)
    headers = {"Authorization": f"Bearer {MASTER_KEY}"}
    received = 0
    with pytest.raises(httpx.RemoteProtocolError), \
            httpx.stream("GET", f"{served}/v1/files/{file_id}/content", headers=headers, timeout=30) as response:  # fmt: skip
        assert response.status_code == 200
        for chunk in response.iter_raw():
            received += len(chunk)
    assert 0 < received < 8 * CHUNK  # never a short file that looks complete
    # The proxy is still serving.
    assert httpx.get(f"{served}/health/liveliness", timeout=5).status_code == 200


def test_an_unknown_file_is_a_404_before_any_byte(served: str) -> None:
    response = httpx.get(f"{served}/v1/files/file-missing/content", headers={"Authorization": f"Bearer {MASTER_KEY}"},
                         timeout=10)  # fmt: skip
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found_error"
