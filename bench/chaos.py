"""Faults under load: a real ``modelyard serve`` in front of two emulated deployments, one faulty.

    ./dev chaos [--requests 2000] [--concurrency 32]

The model group ``gpt-4o`` has two deployments (``east``, ``west``) on an emulator in this
process; the proxy runs as its own process. Each phase sends ``--requests`` requests (a quarter
of them streamed, each carrying its own id in the prompt) while ``east`` is made to fail in one
way, then the faults are cleared and the cooldowns let pass:

- ``429 storm``: every answer 429 with ``retry-after: 1``;
- ``5xx burst``: every answer 503;
- ``timeouts``: ``east`` answers after 3 s, past the deployment's 1 s timeout
  (``retry_on_timeout`` is on, so the request moves to ``west``; ``east`` still runs it);
- ``resets``: ``east`` resets the connection once it has read the request, answering nothing
  (``retry_on_timeout`` is on: the request may have reached it, and moves to ``west``);
- ``resets, no retry``: the same, with requests that set ``"retry_on_timeout": false``: the
  documented default policy, under which a request that may have run is not sent again, so
  those that reach ``east`` fail (502) until it cools down past ``allowed_fails``;
- ``stream drops``: ``east`` cuts streams after two chunks (a non-streamed answer is whole);
  each cut counts as a failure of ``east``, which cools down past ``allowed_fails``;
- ``both failing``: ``east`` and ``west`` answer 503: every request must fail fast with a
  status and ``retry-after``; then ``recovery``: the faults are cleared and requests succeed
  again without a restart.

Figures per phase: sent, succeeded, failed, streams ended by an error event, streams silently
truncated (must be 0), requests run twice upstream (counted by id at the emulator: only
``timeouts`` may, by design: a request that timed out may still be running upstream), answers
received twice by the client (0), failures without ``retry-after`` (``no-r-a``), p50/p99 latency.
``tests/proxy/test_chaos.py`` runs a small version in CI.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from modelyard.testing import KEY, Emulator, EmulatorServer, Faults

MASTER_KEY = "sk-chaos-" + "0" * 24
# Request body fields some phases add.
_BODY: dict[str, dict[str, object]] = {"resets, no retry": {"retry_on_timeout": False}}


@dataclass
class Phase:
    name: str
    sent: int = 0
    succeeded: int = 0
    failed: int = 0
    stream_error_events: int = 0
    silent_truncations: int = 0
    run_twice_upstream: int = 0
    client_duplicates: int = 0
    statuses: Counter[int | str] = field(default_factory=Counter)
    retry_after_missing: int = 0
    latencies: list[float] = field(default_factory=list)

    def pct(self, p: float) -> float:
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def _drive(url: str, phase: Phase, requests: int, concurrency: int) -> set[str]:
    """Send the phase's requests; returns the ids the client got a whole answer for."""
    auth = {"Authorization": f"Bearer {MASTER_KEY}"}
    counter = iter(range(requests))
    answered: Counter[str] = Counter()

    async def one(http: httpx.AsyncClient, i: int) -> None:
        rid = f"{phase.name.replace(' ', '_')}-{i}"
        body = {"model": "gpt-4o", "messages": [{"role": "user", "content": rid}], "stream": i % 4 == 0,
                **_BODY.get(phase.name, {})}  # fmt: skip
        started = time.perf_counter()
        phase.sent += 1
        try:
            if body["stream"]:
                async with http.stream("POST", "/v1/chat/completions", json=body, headers=auth) as r:
                    text = "".join([c async for c in r.aiter_text()])
                phase.statuses[r.status_code] += 1
                if r.status_code != 200:
                    phase.failed += 1
                    phase.retry_after_missing += "retry-after" not in r.headers and r.status_code in (429, 503)
                elif text.rstrip().endswith("data: [DONE]") and '"error"' not in text:
                    phase.succeeded += 1
                    answered[rid] += 1
                elif '"error"' in text:
                    phase.failed += 1
                    phase.stream_error_events += 1
                else:
                    phase.failed += 1
                    phase.silent_truncations += 1
            else:
                r = await http.post("/v1/chat/completions", json=body, headers=auth)
                phase.statuses[r.status_code] += 1
                if r.status_code == 200 and r.json()["choices"][0]["message"]["content"].endswith(rid):
                    phase.succeeded += 1
                    answered[rid] += 1
                else:
                    phase.failed += 1
                    phase.retry_after_missing += "retry-after" not in r.headers and r.status_code in (429, 503)
        except httpx.HTTPError as exc:
            phase.statuses[type(exc).__name__] += 1
            phase.failed += 1
        phase.latencies.append(time.perf_counter() - started)

    async def worker(http: httpx.AsyncClient) -> None:
        for i in counter:
            await one(http, i)

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http:
        await asyncio.gather(*(worker(http) for _ in range(concurrency)))
    phase.client_duplicates = sum(1 for n in answered.values() if n > 1)
    return set(answered)


def _run_twice(emulator: Emulator, phase: Phase, erroring: set[str]) -> int:
    """Ids that more than one upstream request executed (not counting injected error answers)."""
    runs: Counter[str] = Counter()
    prefix = phase.name.replace(" ", "_") + "-"
    for r in emulator.requests:
        deployment = r.path.split("/deployments/")[-1].split("/")[0]
        if deployment in erroring or not isinstance(r.body, dict):
            continue
        content = str((r.body.get("messages") or [{}])[-1].get("content", ""))
        if content.startswith(prefix):
            runs[content] += 1
    return sum(1 for n in runs.values() if n > 1)


def run(requests: int = 2000, concurrency: int = 32) -> list[Phase]:
    """Every phase in turn; returns their figures (also the CI test's entry point)."""
    emulator = Emulator(["east", "west"], api_keys=[KEY])
    phases: list[Phase] = []
    with EmulatorServer(emulator) as upstream, tempfile.TemporaryDirectory() as tmp:
        # The emulator's uvicorn logs each injected stream drop as an exception: expected here.
        logging.getLogger("uvicorn.error").disabled = True

        def entry(name: str) -> dict[str, object]:
            return {"model_name": "gpt-4o", "model_info": {"id": name},
                    "litellm_params": {"model": f"azure/{name}", "api_base": upstream.url, "api_key": KEY,
                                       "api_version": "2024-10-21", "timeout": 1.0, "stream_timeout": 1.0}}  # fmt: skip

        config = Path(tmp) / "config.yaml"
        config.write_text(json.dumps({
            "model_list": [entry("east"), entry("west")],
            "router_settings": {"num_retries": 2, "retry_on_timeout": True, "cooldown_time": 1, "allowed_fails": 3,
                                "timeout": 5},
            "general_settings": {"master_key": MASTER_KEY},
            "modelyard_settings": {"store_path": str(Path(tmp) / "store.db")},
        }))  # fmt: skip
        port = _free_port()
        proc = subprocess.Popen([sys.executable, "-m", "modelyard.cli", "serve", "--config", str(config), "--port", str(port),
                                 "--no-access-log"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                env=dict(os.environ))  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{url}/health/liveliness", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("modelyard serve did not start")
                time.sleep(0.05)
            plan: list[tuple[str, dict[str, Faults], set[str]]] = [
                ("baseline", {}, set()),
                ("429 storm", {"east": Faults(error_rate=1.0, error_status=429, retry_after=1)}, {"east"}),
                ("5xx burst", {"east": Faults(error_rate=1.0, error_status=503)}, {"east"}),
                ("timeouts", {"east": Faults(latency=3.0)}, set()),
                ("resets", {"east": Faults(reset_rate=1.0)}, {"east"}),
                ("resets, no retry", {"east": Faults(reset_rate=1.0)}, {"east"}),
                ("stream drops", {"east": Faults(drop_stream_after=2)}, set()),
                ("both failing", {"east": Faults(error_rate=1.0, error_status=503),
                                  "west": Faults(error_rate=1.0, error_status=503)}, {"east", "west"}),
                ("recovery", {}, set()),
            ]
            for name, faults, erroring in plan:
                for d in emulator.deployments.values():
                    d.faults = faults.get(d.name, Faults())
                emulator.requests.clear()
                phase = Phase(name)
                count = requests if name != "both failing" else max(32, requests // 4)
                asyncio.run(_drive(url, phase, count, concurrency))
                time.sleep(3.5 if name == "timeouts" else 0)  # east's late answers land before counting
                phase.run_twice_upstream = _run_twice(emulator, phase, erroring)
                phases.append(phase)
                if faults:
                    for d in emulator.deployments.values():
                        d.faults = Faults()
                    time.sleep(1.5)  # the cooldowns (1 s, retry-after 1) run out
        finally:
            logging.getLogger("uvicorn.error").disabled = False
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    return phases


def table(phases: list[Phase]) -> str:
    rows = [f"{'phase':<17}{'sent':>6}{'ok':>6}{'failed':>7}{'err-evt':>8}{'silent':>7}{'twice-up':>9}"
            f"{'dup':>5}{'no-r-a':>7}{'p50 ms':>8}{'p99 ms':>8}  statuses"]  # fmt: skip
    for p in phases:
        statuses = ", ".join(f"{k}: {v}" for k, v in sorted(p.statuses.items(), key=str))
        rows.append(f"{p.name:<17}{p.sent:>6}{p.succeeded:>6}{p.failed:>7}{p.stream_error_events:>8}"
                    f"{p.silent_truncations:>7}{p.run_twice_upstream:>9}{p.client_duplicates:>5}{p.retry_after_missing:>7}"
                    f"{p.pct(0.5):>8.0f}{p.pct(0.99):>8.0f}  {statuses}")  # fmt: skip
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    phases = run(args.requests, args.concurrency)
    print(table(phases))
    return 0


if __name__ == "__main__":
    sys.exit(main())
