"""Closed-loop load with wrk (the Debian package ``wrk``): the bench's default load generator.

The same contract as bench/load.py (``concurrency`` connections post the same chat, embeddings
or streamed chat request back to back; a warm-up first; one JSON object out: requests, errors,
req_per_s, p50_ms, p99_ms), for 24-37 µs of CPU per request against load.py's 125-220 (one
proxy at c=64, bench/README.md "loadgen"): on a machine with few cores the generator then
leaves the cores to what it measures.

    python bench/wrk.py URL --concurrency 16 --duration 5 [--key sk-...] [--body chat|embeddings|stream]

Runs ``wrk -t<threads> -c<conc> -d<dur>s --latency -s bench/load.lua URL -- BODY KEY`` twice:
a warm-up of ``--warmup`` seconds, then the measured run. The script (bench/load.lua) prints the
JSON from wrk's ``done()`` callback. ``errors`` counts answers with a status above 399 (wrk's
rule: a 3xx would count as an answer; the bench's targets send none) and socket errors and
timeouts; ``requests`` counts the other answers. wrk takes whole seconds: ``--duration`` is
rounded, at least 1.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).resolve().parent / "load.lua"
BODIES = ("chat", "embeddings", "stream")
TIMEOUT_S = 30  # wrk's default (2 s) would count LiteLLM's slow answers as timeouts


def wrk_path() -> str:
    found = shutil.which("wrk") or ("/usr/bin/wrk" if Path("/usr/bin/wrk").exists() else None)
    if not found:
        raise SystemExit("wrk is not installed: `./dev bench` installs it (apt-get install wrk), or choose --load aiohttp")
    return found


def command(url: str, concurrency: int, duration: float, key: str | None = None, body: str = "chat", threads: int = 1) -> list[str]:
    """The wrk command line for one run (``key`` goes to the script as an argument, never to wrk's output)."""
    if body not in BODIES:
        raise ValueError(f"body must be one of {BODIES}, not {body!r}")
    threads = max(1, min(threads, concurrency))  # wrk refuses fewer connections than threads
    seconds = max(1, round(duration))
    return [wrk_path(), f"-t{threads}", f"-c{concurrency}", f"-d{seconds}s", f"--timeout={TIMEOUT_S}s", "--latency",
            "-s", str(SCRIPT), url, "--", body, key or ""]  # fmt: skip


def parse(stdout: str) -> dict[str, Any]:
    """The JSON line bench/load.lua's ``done()`` prints last (wrk's own report comes before it)."""
    for line in reversed(stdout.splitlines()):
        if line.startswith("{"):
            result: dict[str, Any] = json.loads(line)
            for name in ("requests", "errors", "req_per_s", "p50_ms", "p99_ms"):
                if name not in result:
                    raise ValueError(f"wrk's result has no {name!r}: {line}")
            if not result["requests"]:  # wrk's percentiles of no samples are 0; load.py reports nan
                result["p50_ms"] = result["p99_ms"] = float("nan")
            return result
    raise ValueError(f"no JSON line in wrk's output:\n{stdout[-2000:]}")


def run(url: str, concurrency: int, duration: float, key: str | None = None, body: str = "chat", warmup: float = 1.0,
        threads: int = 1) -> dict[str, Any]:  # fmt: skip
    """A warm-up run (skipped when ``warmup`` is 0), then the measured one; adds ``load_cpu_s``,
    the CPU seconds wrk spent in both runs."""
    cpu = 0.0
    if warmup > 0:
        cpu += _cpu_of(command(url, concurrency, warmup, key, body, threads))[1]
    out, spent = _cpu_of(command(url, concurrency, duration, key, body, threads))
    result = parse(out)
    result["load_cpu_s"] = cpu + spent
    return result


def _cpu_of(cmd: list[str]) -> tuple[str, float]:
    """Run wrk to its end: its stdout and the CPU seconds it used (user + system, all threads)."""
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err)
        assert proc.stdout is not None
        out = proc.stdout.read()  # to its end: wrk has exited or is exiting
        # wait4, not wait(): the rusage of this child alone (RUSAGE_CHILDREN would add any other
        # child the caller reaps meanwhile, such as bench/workers.py's ss).
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        proc.stdout.close()
        if proc.returncode != 0:
            err.seek(0)
            raise RuntimeError(f"wrk exited with {proc.returncode}: {err.read().decode(errors='replace').strip()[-2000:]}")
    return out.decode(), usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--key")
    parser.add_argument("--body", choices=BODIES, default="chat")
    parser.add_argument("--threads", type=int, default=1, help="wrk's threads (one keeps up with any proxy here)")
    args = parser.parse_args()
    print(json.dumps(run(args.url, args.concurrency, args.duration, args.key, args.body, args.warmup, args.threads)))


if __name__ == "__main__":
    main()
