"""SIGTERM under load (issue 18): readiness turns 503 at once, no request in flight is lost,
new connections are refused once the proxy stops listening."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import httpx
from modelyard.testing import KEY, Emulator

from .conftest import MASTER_KEY
from .test_lifecycle import serve

IN_FLIGHT = 16


def test_sigterm_under_load_loses_nothing(tmp_path: Path, api_base: str, emulator: Emulator) -> None:
    emulator.deployments["gpt-4o"].faults.latency = 4.0  # longer than the drain delay below
    config = tmp_path / "config.yaml"
    config.write_text(f"""
model_list:
  - model_name: slow
    litellm_params: {{model: azure/gpt-4o, api_base: "{api_base}", api_key: "{KEY}"}}
general_settings: {{master_key: "{MASTER_KEY}", graceful_shutdown_timeout: 30, shutdown_delay: 1.5}}
""")
    statuses: list[int | str] = []
    lock = threading.Lock()
    with serve("--config", str(config)) as (proc, url):
        def call(i: int) -> None:
            body = {"model": "slow", "messages": [{"role": "user", "content": f"request {i}"}]}
            try:
                r = httpx.post(f"{url}/v1/chat/completions", json=body, headers={"x-api-key": MASTER_KEY}, timeout=60)
                outcome: int | str = r.status_code
            except httpx.HTTPError as exc:
                outcome = type(exc).__name__
            with lock:
                statuses.append(outcome)

        callers = [threading.Thread(target=call, args=(i,)) for i in range(IN_FLIGHT)]
        for t in callers:
            t.start()
        deadline = time.monotonic() + 30
        while len(emulator.requests) < IN_FLIGHT:  # every request reached the upstream: all in flight
            assert time.monotonic() < deadline, len(emulator.requests)
            time.sleep(0.01)
        assert httpx.get(f"{url}/health/readiness", timeout=5).status_code == 200
        proc.send_signal(signal.SIGTERM)

        # Readiness says 503 as soon as draining starts, while the proxy still listens.
        readiness = httpx.get(f"{url}/health/readiness", timeout=5)
        assert readiness.status_code == 503 and readiness.json()["status"] == "shutting down"

        # Once the delay is over, new connections are refused while the requests still run.
        refused_at = None
        while refused_at is None and time.monotonic() < deadline:
            try:
                httpx.get(f"{url}/health/liveliness", timeout=2)
                time.sleep(0.05)
            except httpx.ConnectError:
                refused_at = time.monotonic()
        assert refused_at is not None, "the proxy never stopped listening"
        with lock:
            finished_before_refusal = len(statuses)
        for t in callers:
            t.join(timeout=60)
        assert proc.wait(timeout=30) == 0
    print(f"\n{IN_FLIGHT} in flight at SIGTERM; {finished_before_refusal} done when new connections were "
          f"refused; outcomes: {sorted(statuses, key=str)}")
    assert statuses == [200] * IN_FLIGHT
    assert finished_before_refusal < IN_FLIGHT  # the refusal came while requests were in flight
