"""Soak: many requests through a real ``modelyard serve``, its RSS and open files sampled each second.

    ./dev soak [--requests 100000] [--concurrency 16] [--png soak.png]

The proxy runs as its own process (``modelyard serve --config``) in front of an emulator in this
process; the load mixes chat (60%), streamed chat (20%), refused requests (10%: a 400 naming a
field, a 404 unknown model) and file round trips (10%: upload, read back, delete). Every second
the proxy's RSS (``/proc/PID/status``) and open file descriptors (``/proc/PID/fd``) are
sampled. After the warm-up (the first 20% of requests) RSS may grow by less than 5% and file
descriptors by less than 5% (plus a few for connection churn); the table and the verdict are
printed. ``tests/proxy/test_soak.py`` runs a small version in CI.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from modelyard.testing import KEY, Emulator, EmulatorServer

MASTER_KEY = "sk-soak-" + "0" * 24
WARM_UP = 0.2
LIMIT = 0.05


@dataclass
class Sample:
    seconds: float
    done: int
    rss_mb: float
    fds: int


@dataclass
class Result:
    requests: int
    seconds: float
    outcomes: dict[str, int]
    samples: list[Sample] = field(default_factory=list)
    rss_growth: float = 0.0
    fd_growth: int = 0
    rss_slope_mb_per_10k: float = 0.0

    @property
    def ok(self) -> bool:
        return self.rss_growth < LIMIT and self.fd_growth <= max(5, int(LIMIT * self.base_fds)) and not self.unexpected

    @property
    def base_fds(self) -> int:
        after = self._after()
        return after[0].fds if after else 0

    @property
    def unexpected(self) -> int:
        return sum(n for k, n in self.outcomes.items() if k.startswith("unexpected"))

    def _after(self) -> list[Sample]:
        return [s for s in self.samples if s.done >= WARM_UP * self.requests]

    def summarise(self) -> None:
        after = self._after()
        if len(after) < 2:
            return
        base = after[0]
        self.rss_growth = (max(s.rss_mb for s in after[len(after) // 2 :]) - base.rss_mb) / base.rss_mb
        # Open fds swing with the clients' sockets: compare medians (start of the run after warm-up
        # against its second half), so a momentary peak is not read as growth.
        first, last = after[: max(1, len(after) // 4)], after[len(after) // 2 :]
        self.fd_growth = int(statistics.median(s.fds for s in last) - statistics.median(s.fds for s in first))
        # least squares: RSS against requests done, after warm-up
        xs, ys = [s.done for s in after], [s.rss_mb for s in after]
        mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
        var = sum((x - mx) ** 2 for x in xs)
        self.rss_slope_mb_per_10k = 0.0 if var == 0 else 10_000 * sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var

    def table(self) -> str:
        rows = ["  second    done   RSS MB   fds"]
        step = max(1, len(self.samples) // 30)
        shown = self.samples[::step] + ([self.samples[-1]] if self.samples and (len(self.samples) - 1) % step else [])
        rows += [f"  {s.seconds:6.0f} {s.done:7d} {s.rss_mb:8.1f} {s.fds:5d}" for s in shown]
        rate = self.requests / self.seconds if self.seconds else 0
        rows.append(f"{self.requests} requests in {self.seconds:.0f} s ({rate:.0f}/s); outcomes {json.dumps(self.outcomes, sort_keys=True)}")
        rows.append(f"after warm-up ({WARM_UP:.0%} of requests): RSS growth {self.rss_growth:+.1%}, "
                    f"fd growth {self.fd_growth:+d}, RSS trend {self.rss_slope_mb_per_10k:+.2f} MB per 10k requests: "
                    f"{'PASS' if self.ok else 'FAIL'} (limit {LIMIT:.0%})")  # fmt: skip
        return "\n".join(rows)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _sample(pid: int) -> tuple[float, int]:
    rss = 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) / 1024
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


async def _load(url: str, requests: int, concurrency: int, outcomes: dict[str, int], progress: list[int]) -> None:
    auth = {"Authorization": f"Bearer {MASTER_KEY}"}
    hello = [{"role": "user", "content": "soak"}]
    counter = iter(range(requests))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    def count(key: str) -> None:
        outcomes[key] = outcomes.get(key, 0) + 1

    async def one(http: httpx.AsyncClient, i: int) -> None:
        kind = i % 10
        if kind < 6:
            r = await http.post("/v1/chat/completions", json={"model": "gpt-4o", "messages": hello}, headers=auth)
            count("chat 200" if r.status_code == 200 else f"unexpected chat {r.status_code}")
        elif kind < 8:
            body = {"model": "gpt-4o", "messages": hello, "stream": True}
            async with http.stream("POST", "/v1/chat/completions", json=body, headers=auth) as r:
                text = "".join([chunk async for chunk in r.aiter_text()])
            count("stream 200" if r.status_code == 200 and text.rstrip().endswith("[DONE]") else f"unexpected stream {r.status_code}")
        elif kind == 8:
            bad = {"model": "gpt-4o", "messages": hello, "n": 129} if i % 20 < 10 else {"model": "nope", "messages": hello}
            r = await http.post("/v1/chat/completions", json=bad, headers=auth)
            count(f"error {r.status_code}" if r.status_code in (400, 404) else f"unexpected error {r.status_code}")
        else:
            line = json.dumps({"custom_id": f"t{i}", "method": "POST", "url": "/chat/completions",
                               "body": {"model": "gpt-4o", "messages": hello}}).encode() + b"\n"  # fmt: skip
            up = await http.post("/v1/files", headers=auth, files={"file": ("in.jsonl", line, "application/jsonl")},
                                 data={"purpose": "batch"})  # fmt: skip
            ok = up.status_code == 200
            if ok:
                file_id = up.json()["id"]
                content = await http.get(f"/v1/files/{file_id}/content", headers=auth)
                gone = await http.delete(f"/v1/files/{file_id}", headers=auth)
                ok = content.content == line and gone.status_code == 200
            count("files 200" if ok else f"unexpected files {up.status_code}")

    async def worker(http: httpx.AsyncClient) -> None:
        for i in counter:
            try:
                await one(http, i)
            except httpx.HTTPError as exc:
                count(f"unexpected {type(exc).__name__}")
            progress[0] += 1

    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http:
        await asyncio.gather(*(worker(http) for _ in range(concurrency)))


def run(requests: int, concurrency: int = 16) -> Result:
    """Run the soak; returns the samples and the verdict (also the CI test's entry point)."""
    emulator = Emulator(["gpt-4o"], api_keys=[KEY])
    with EmulatorServer(emulator) as upstream, tempfile.TemporaryDirectory() as tmp:
        emulator.batches.step_seconds = 0.05
        config = Path(tmp) / "config.yaml"
        config.write_text(json.dumps({
            "model_list": [{"model_name": "gpt-4o", "litellm_params": {
                "model": "azure/gpt-4o", "api_base": upstream.url, "api_key": KEY, "api_version": "2024-10-21"}}],
            "router_settings": {"num_retries": 0},
            "general_settings": {"master_key": MASTER_KEY},
            "modelyard_settings": {"store_path": str(Path(tmp) / "store.db")},
        }))  # fmt: skip  (JSON is YAML)
        port = _free_port()
        env = {**os.environ, "AZURE_API_BASE": upstream.url, "AZURE_API_KEY": KEY, "AZURE_API_VERSION": "2024-10-21"}
        proc = subprocess.Popen([sys.executable, "-m", "modelyard.cli", "serve", "--config", str(config), "--port", str(port),
                                 "--no-access-log"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)  # fmt: skip
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
            outcomes: dict[str, int] = {}
            progress = [0]
            result = Result(requests, 0.0, outcomes)
            stop = threading.Event()
            started = time.monotonic()

            def sampler() -> None:
                while not stop.is_set():
                    rss, fds = _sample(proc.pid)
                    result.samples.append(Sample(time.monotonic() - started, progress[0], rss, fds))
                    # Forget what the upstream recorded: the emulator lives in this process, and
                    # only the proxy's memory is being measured.
                    emulator.requests.clear()
                    stop.wait(1.0)

            thread = threading.Thread(target=sampler, daemon=True)
            thread.start()
            asyncio.run(_load(url, requests, concurrency, outcomes, progress))
            stop.set()
            thread.join()
            rss, fds = _sample(proc.pid)
            result.samples.append(Sample(time.monotonic() - started, progress[0], rss, fds))
            result.seconds = time.monotonic() - started
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    result.summarise()
    return result


def write_png(samples: list[Sample], path: Path, width: int = 480, height: int = 200) -> None:
    """A small plot without a plotting library: RSS (dark) and open fds (light) against time."""
    import struct
    import zlib

    pixels = [[255] * width for _ in range(height)]
    if len(samples) >= 2:
        t_max = samples[-1].seconds or 1.0
        for values, shade in (([s.rss_mb for s in samples], 0), ([float(s.fds) for s in samples], 160)):
            top = max(values) * 1.1 or 1.0
            points = [(int(s.seconds / t_max * (width - 1)), height - 1 - int(v / top * (height - 1))) for s, v in zip(samples, values, strict=True)]
            for (x0, y0), (x1, y1) in itertools.pairwise(points):
                for step in range(max(abs(x1 - x0), abs(y1 - y0)) + 1):
                    f = step / max(1, max(abs(x1 - x0), abs(y1 - y0)))
                    pixels[round(y0 + (y1 - y0) * f)][round(x0 + (x1 - x0) * f)] = shade
    raw = b"".join(b"\x00" + bytes(row) for row in pixels)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--png", type=Path, default=None, help="also save a plot of RSS and fds over time here")
    args = parser.parse_args()
    result = run(args.requests, args.concurrency)
    print(result.table())
    if args.png is not None:
        write_png(result.samples, args.png)
        print(f"plot: {args.png} (RSS dark, open fds light, against time)")
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
