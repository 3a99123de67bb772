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
    """A ``modelyard serve`` process: ``url``, ``proc``, ``log`` (its output file)."""

    def __init__(self, proc: subprocess.Popen[bytes], url: str, log: Path, verify: Any = True) -> None:
        self.proc = proc
        self.url = url
        self.log = log
        self.verify = verify

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self, timeout: float = 60) -> None:
        wait_ready(self.url, self.proc, self.log, verify=self.verify, timeout=timeout)

    def stop(self) -> None:
        """SIGTERM (SIGKILL after 30 s) unless it has exited; then its output is searched for secrets."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        scan_text(self.output(), f"the output of `modelyard serve` at {self.url}")


def wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, *, verify: Any = True, timeout: float = 60) -> None:
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


def start_proxy(tmp: Path, config: dict[str, Any] | None, *args: str, env: dict[str, str] | None = None,
                port: int | None = None, scheme: str = "http", verify: Any = True) -> ServedProxy:  # fmt: skip
    """Start ``modelyard serve`` (``config`` written to a YAML file, if given) without waiting for it."""
    port = port or free_port()
    command = [sys.executable, "-m", "modelyard.cli", "serve", "--port", str(port), *args]
    if config is not None:
        path = tmp / f"config-{port}.yaml"
        path.write_text(yaml.safe_dump(config))
        command += ["--config", str(path)]
    log = tmp / f"serve-{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    return ServedProxy(proc, f"{scheme}://127.0.0.1:{port}", log, verify)


@contextmanager
def serve_process(tmp: Path, config: dict[str, Any] | None, *args: str, env: dict[str, str] | None = None,
                  port: int | None = None, scheme: str = "http", verify: Any = True) -> Iterator[ServedProxy]:  # fmt: skip
    """Run ``modelyard serve`` until the block ends (SIGTERM then; SIGKILL after 30 s)."""
    proxy = start_proxy(tmp, config, *args, env=env, port=port, scheme=scheme, verify=verify)
    try:
        proxy.wait_ready()
        yield proxy
    finally:
        proxy.stop()
