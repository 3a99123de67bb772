"""``modelyard serve`` as a process: embedded defaults, refusing unsafe keys, draining on SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from modelyard.testing import KEY, Emulator

from .conftest import MASTER_KEY


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve(*args: str, env: dict[str, str] | None = None) -> Iterator[tuple[subprocess.Popen[str], str]]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "modelyard.cli", "serve", "--port", str(port), *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})},
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"serve exited with {proc.returncode}: {proc.stderr.read() if proc.stderr else ''}")
            try:
                if httpx.get(f"{url}/health/liveliness", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("serve did not start")
            time.sleep(0.05)
        yield proc, url
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def read_banner(proc: subprocess.Popen[str]) -> str:
    assert proc.stderr is not None
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if "-d '" in line:
            break
    return "".join(lines)


def test_embedded_defaults_quickstart() -> None:
    with serve() as (proc, url):
        banner = read_banner(proc)
        key = re.search(r"master key \(generated for this run\): (sk-\S+)", banner)
        assert key is not None, banner
        auth = {"Authorization": f"Bearer {key.group(1)}"}
        assert httpx.post(f"{url}/v1/chat/completions", json={"model": "gpt-4o", "messages": []}).status_code == 401
        body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Hello"}]}
        r = httpx.post(f"{url}/v1/chat/completions", json=body, headers=auth, timeout=30)
        assert r.status_code == 200, r.text
        assert r.json()["choices"][0]["message"]["content"].endswith("You said: Hello")
        models = {m["id"] for m in httpx.get(f"{url}/v1/models", headers=auth).json()["data"]}
        assert models == {"gpt-4o", "gpt-4o-mini", "text-embedding-3-small", "dall-e-3", "gpt-4o-mini-tts", "whisper"}


def test_refuses_a_public_master_key(tmp_path: Path, api_base: str) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"""
model_list:
  - model_name: m
    litellm_params: {{model: azure/gpt-4o, api_base: "{api_base}", api_key: os.environ/UPSTREAM_KEY}}
general_settings:
  master_key: sk-1234
""")
    env = {"UPSTREAM_KEY": KEY}
    out = subprocess.run([sys.executable, "-m", "modelyard.cli", "serve", "--config", str(config)],
                         capture_output=True, text=True, env={**os.environ, **env}, timeout=60)  # fmt: skip
    assert out.returncode == 2
    assert "general_settings.master_key" in out.stderr and "--dev" in out.stderr
    assert "sk-1234" not in out.stderr and KEY not in out.stderr
    missing = subprocess.run([sys.executable, "-m", "modelyard.cli", "serve", "--config", str(config)],
                             capture_output=True, text=True, env=os.environ.copy(), timeout=60)  # fmt: skip
    assert missing.returncode == 2 and "UPSTREAM_KEY" in missing.stderr
    with serve("--config", str(config), "--dev", env=env) as (_, url):
        body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
        assert httpx.post(f"{url}/chat/completions", json=body, headers={"api-key": "sk-1234"}).status_code == 200


def test_sigterm_drains_requests_in_flight(tmp_path: Path, api_base: str, emulator: Emulator) -> None:
    emulator.deployments["gpt-4o"].faults.latency = 1.5
    config = tmp_path / "config.yaml"
    config.write_text(f"""
model_list:
  - model_name: slow
    litellm_params: {{model: azure/gpt-4o, api_base: "{api_base}", api_key: "{KEY}"}}
general_settings: {{master_key: "{MASTER_KEY}", graceful_shutdown_timeout: 20}}
""")
    results: dict[str, Any] = {}
    with serve("--config", str(config)) as (proc, url):
        def call() -> None:
            body = {"model": "slow", "messages": [{"role": "user", "content": "take your time"}]}
            results["response"] = httpx.post(f"{url}/v1/chat/completions", json=body,
                                              headers={"x-api-key": MASTER_KEY}, timeout=30)  # fmt: skip

        caller = threading.Thread(target=call)
        caller.start()
        deadline = time.monotonic() + 20
        while not emulator.requests:  # the request reached the upstream: it is in flight
            assert time.monotonic() < deadline
            time.sleep(0.01)
        proc.send_signal(signal.SIGTERM)
        caller.join(timeout=30)
        assert proc.wait(timeout=30) == 0
        assert results["response"].status_code == 200
        assert results["response"].json()["choices"][0]["message"]["content"].endswith("take your time")
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{url}/health/liveliness", timeout=2)
        assert proc.stdout is not None
        log_lines = proc.stdout.read()
        assert '"status":200' in log_lines and '"model":"slow"' in log_lines
        assert KEY not in log_lines and MASTER_KEY not in log_lines


def test_several_workers(tmp_path: Path, api_base: str, emulator: Emulator) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"""
model_list:
  - model_name: m
    litellm_params: {{model: azure/gpt-4o, api_base: "{api_base}", api_key: "{KEY}"}}
general_settings: {{master_key: "{MASTER_KEY}"}}
""")
    with serve("--config", str(config), "--num_workers", "2") as (proc, url):
        body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
        for _ in range(4):
            r = httpx.post(f"{url}/v1/chat/completions", json=body, headers={"api-key": MASTER_KEY}, timeout=30)
            assert r.status_code == 200, r.text
        assert httpx.post(f"{url}/v1/chat/completions", json=body, timeout=30).status_code == 401
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
