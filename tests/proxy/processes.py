"""``modelyard serve`` as a separate OS process, for tests that measure or kill it.

Its output goes to a file (a pipe nobody reads would block the proxy once full); the file is
kept with the test's temporary files and its text is returned by :meth:`ServedProxy.output`.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import yaml
from modelyard.testing.secret_scan import scan_text


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_bytes(pid: int) -> int:
    """The resident set size of process ``pid`` (Linux ``/proc``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for process {pid}")


class ServedProxy:
    """A running ``modelyard serve`` process: ``url``, ``proc``, ``log`` (its output file)."""

    def __init__(self, proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
        self.proc = proc
        self.url = url
        self.log = log

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, *, verify: Any = True, timeout: float = 30) -> None:
    """Poll ``/health/liveliness`` until it answers 200; fail with the output when the process exits."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"serve exited with {proc.returncode}:\n{log.read_text(errors='replace')}")
        try:
            if httpx.get(f"{url}/health/liveliness", timeout=1, verify=verify).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"serve did not start:\n{log.read_text(errors='replace')}")
        time.sleep(0.05)


@contextmanager
def serve_process(tmp: Path, config: dict[str, Any] | None, *args: str, env: dict[str, str] | None = None,
                  port: int | None = None, scheme: str = "http", verify: Any = True) -> Iterator[ServedProxy]:  # fmt: skip
    """Run ``modelyard serve`` (with ``config`` written to a YAML file, if given) until the block ends.

    The process gets SIGTERM at the end (SIGKILL after 30 s); ``args`` are more CLI options.
    """
    port = port or free_port()
    command = [sys.executable, "-m", "modelyard.cli", "serve", "--port", str(port), *args]
    if config is not None:
        path = tmp / f"config-{port}.yaml"
        path.write_text(yaml.safe_dump(config))
        command += ["--config", str(path)]
    log = tmp / f"serve-{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    url = f"{scheme}://127.0.0.1:{port}"
    try:
        wait_ready(url, proc, log, verify=verify)
        yield ServedProxy(proc, url, log)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        scan_text(log.read_text(errors="replace"), f"the output of `modelyard serve` on port {port}")
