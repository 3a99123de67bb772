"""Start-up and memory of ``modelyard serve``, A/B between checkouts, interleaved.

    python bench/memory.py [--python A/.venv/bin/python --python B/.venv/bin/python] [--rounds 3]
                           [--duration 3] [--workers 2] [--load wrk|aiohttp] [--upstream-delay 0.1]

Each round starts the proxy once per interpreter (each its own checkout's ``.venv``), from the
bench's config (bench/run.py: spend to SQLite, metrics and the access log on), and measures what
``bench/run.py`` measures the same way: time from spawn to the first answer of
``/health/liveliness`` ("ready"), the RSS of the process tree after the load sequence (chat at
c=1/16/64, embeddings and streams at c=16, ``--duration`` seconds each), plus what the run does
not show: the RSS when ready, the CPU time spent until ready (all processes; steadier than the
wall clock on a loaded machine), and, with ``--workers``, each process's RSS.

``--upstream-delay`` has the canned upstream answer each request that many seconds late, as a
model does: the proxy then holds every request that long (its disconnect watch starts after 50 ms)
and the request rates are set by the latency, not by the machine's load, so the figures repeat
on a busy machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run
from run import (
    EMBEDDINGS_LEVEL,
    HERE,
    LEVELS,
    PY,
    STREAM_LEVEL,
    cpu_seconds,
    free_port,
    load,
    rss_mib,
    stop,
    tree_pids,
    wait_listening,
    wait_ready,
    write_config,
)  # fmt: skip


def env_for_proxy() -> dict[str, str]:
    """The environment bench/run.py gives a proxy: none of the user's provider or modelyard settings."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "OPENAI_", "MODELYARD_", "LITELLM_"))}


def one(python: str, config: Path, master_key: str, duration: float, workers: int) -> dict[str, Any]:
    port = free_port()
    cmd = [python, "-m", "modelyard.cli", "serve", "--config", str(config), "--port", str(port)]
    if workers > 1:
        cmd += ["--num_workers", str(workers)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env_for_proxy())
    try:
        ready = wait_ready(f"http://127.0.0.1:{port}/health/liveliness", proc)
        if workers > 1:  # every worker answers before the figures are taken
            wait_listening(port, workers)
        out: dict[str, Any] = {"ready_s": ready, "cpu_to_ready_s": cpu_seconds(proc.pid), "rss_ready": rss_mib(proc.pid),
                               "each_ready": [rss_mib(p, tree=False) for p in tree_pids(proc.pid)]}  # fmt: skip
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        for c in LEVELS:
            load(url, c, duration, master_key)
        load(f"http://127.0.0.1:{port}/v1/embeddings", EMBEDDINGS_LEVEL, duration, master_key, body="embeddings")
        load(url, STREAM_LEVEL, duration, master_key, body="stream")
        out["rss_after"] = rss_mib(proc.pid)
        out["each_after"] = [rss_mib(p, tree=False) for p in tree_pids(proc.pid)]
        return out
    finally:
        stop(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--python", action="append", help="an interpreter of a checkout's .venv (repeatable); default this one")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--load", choices=run.LOADERS, default=run.LOAD, help="the load generator: wrk (bench/wrk.py) or aiohttp (bench/load.py)")
    parser.add_argument("--upstream-delay", type=float, default=0.0, help="seconds the upstream waits before each answer")
    args = parser.parse_args()
    run.LOAD = args.load  # run.load() reads it
    pythons = args.python or [PY]
    port = free_port()
    upstream_proc = subprocess.Popen([PY, str(HERE / "upstream.py"), "--port", str(port), "--delay", str(args.upstream_delay)],
                                     stdout=subprocess.DEVNULL)  # fmt: skip
    upstream = f"http://127.0.0.1:{port}"
    results: dict[str, list[dict[str, Any]]] = {p: [] for p in pythons}
    try:
        wait_ready(upstream + "/", upstream_proc, timeout=30)
        master_key = "sk-bench-memory-0123456789abcdef"
        for _ in range(args.rounds):
            for py in pythons:
                config = write_config(upstream, master_key)
                r = one(py, config, master_key, args.duration, args.workers)
                results[py].append(r)
                print(py, json.dumps(r), flush=True)
    finally:
        stop(upstream_proc)
    print(f"\n{'interpreter':<48} {'ready s':>16} {'CPU to ready s':>16} {'RSS ready':>16} {'RSS after':>16}")
    for py, rs in results.items():
        def span(key: str, rs: list[dict[str, Any]] = rs) -> str:
            values = [r[key] for r in rs]
            return f"{min(values):.2f}/{statistics.median(values):.2f}"

        print(f"{py:<48} {span('ready_s'):>16} {span('cpu_to_ready_s'):>16} {span('rss_ready'):>16} {span('rss_after'):>16}")
        if args.workers > 1:
            print("   each process after:", [[round(x) for x in r["each_after"]] for r in rs])


if __name__ == "__main__":
    main()
