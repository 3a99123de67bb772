"""How ``modelyard serve --num_workers N`` shares a closed-loop load among its workers, and what the machine has left.

    python bench/workers.py [--python A/.venv/bin/python ...] [--workers 2] [--concurrency 64]
                            [--duration 3] [--rounds 3] [--single] [--load wrk|aiohttp] [--upstream nginx]

Per interpreter (a checkout's ``.venv``) and round, interleaved: one proxy with ``--num_workers
N`` from the bench's config (spend to SQLite, metrics and the access log on), the bench's chat
load at ``--concurrency`` (keep-alive connections) and, while it runs, which worker holds each
of the load's connections (``ss -tnp``: the process that owns the accepted socket) and each
worker's CPU time. Prints req/s, p50/p99, the connections and the CPU share per worker, and the
CPU per request of the proxy tree, of the load generator and of the upstream: on a machine with
few cores these bound what N workers can reach (``--single`` adds one worker, same round, for
the ratio). The load is wrk's (bench/wrk.py, a few µs of CPU per request; ``--load aiohttp``:
bench/load.py's, ~120 µs).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import wrk
from memory import env_for_proxy
from run import (
    HERE,
    LOADERS,
    PY,
    UPSTREAM_KEY,
    UPSTREAMS,
    cpu_seconds,
    free_port,
    stop,
    tree_pids,
    upstream_command,
    wait_listening,
    wait_ready,
    write_config,
)

_PID = re.compile(r"pid=(\d+)")


def _own_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def connections(port: int) -> dict[int, int]:
    """Established connections accepted on ``port``, counted per owning process."""
    out = subprocess.run(["ss", "-tnpH", "state", "established", f"( sport = :{port} )"], capture_output=True, text=True).stdout
    counts: dict[int, int] = {}
    for line in out.splitlines():
        found = _PID.search(line)
        if found:
            pid = int(found.group(1))
            counts[pid] = counts.get(pid, 0) + 1
    return counts


def loader_start_cpu(upstream: str, concurrency: int) -> float:
    """The load generator's CPU seconds for starting and stopping (imports, connections), best of 3."""
    url = f"{upstream}/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21"
    best = float("inf")
    for _ in range(3):
        cmd = [PY, str(HERE / "load.py"), url, "--concurrency", str(concurrency), "--duration", "0.01", "--warmup", "0", "--key", UPSTREAM_KEY]
        loader = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
        _, _, usage = os.wait4(loader.pid, 0)
        loader.returncode = 0
        best = min(best, usage.ru_utime + usage.ru_stime)
    return best


def one(python: str, config: Path, key: str, workers: int, concurrency: int, duration: float, upstream_pid: int,
        start_cpu: float = 0.0, load: str = "wrk") -> dict[str, Any]:  # fmt: skip
    port = free_port()
    cmd = [python, "-m", "modelyard.cli", "serve", "--config", str(config), "--port", str(port)]
    if workers > 1:
        cmd += ["--num_workers", str(workers)]
    log = config.parent / "serve.log"
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log.open("w"), env=env_for_proxy())
    try:
        wait_ready(f"http://127.0.0.1:{port}/health/liveliness", proc)
        wait_listening(port, workers)  # every worker takes its share of the connections
        time.sleep(0.1)
        pids = tree_pids(proc.pid)
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        cpu0 = {p: _own_cpu(p) for p in pids}
        tree0, up0 = cpu_seconds(proc.pid), _own_cpu(upstream_pid)
        seen: list[dict[int, int]] = []

        def sample() -> None:
            time.sleep(1.0 + duration / 2)  # after the warm-up, mid-run
            seen.append(connections(port))

        sampler = threading.Thread(target=sample)
        sampler.start()
        result: dict[str, Any]
        if load == "wrk":  # a warm-up run of 1 s, then the measured one (bench/wrk.py)
            result = wrk.run(url, concurrency, duration, key)
            load_cpu = result.pop("load_cpu_s")
        else:
            load_cmd = [PY, str(HERE / "load.py"), url, "--concurrency", str(concurrency), "--duration", str(duration), "--key", key]
            loader = subprocess.Popen(load_cmd, stdout=subprocess.PIPE, text=True)
            assert loader.stdout is not None
            out = loader.stdout.read()
            _, _, usage = os.wait4(loader.pid, 0)  # the loader's own CPU time
            loader.returncode = 0
            load_cpu = usage.ru_utime + usage.ru_stime - start_cpu  # per request: without its start
            result = json.loads(out)
        sampler.join()
        total = result["requests"] + result["errors"]
        scale = duration / (duration + 1.0)  # the warm-up second is served too, not counted in requests
        per_pid = {p: _own_cpu(p) - cpu0[p] for p in pids}
        result["cpu_us_per_req"] = (cpu_seconds(proc.pid) - tree0) / max(1, total) * 1e6 * scale
        result["upstream_us_per_req"] = (_own_cpu(upstream_pid) - up0) / max(1, total) * 1e6 * scale
        result["load_us_per_req"] = load_cpu / max(1, total) * 1e6 * scale
        result["conns"] = sorted(seen[0].values(), reverse=True) if seen else []
        if result["errors"]:
            print(f"errors: the proxy's log ({log}) ends with:", log.read_text()[-3000:], file=sys.stderr)
        busy = sorted((v for v in per_pid.values() if v > 0.05), reverse=True)
        result["cpu_s_per_process"] = [round(v, 2) for v in busy]
        return result
    finally:
        stop(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--python", action="append", help="an interpreter of a checkout's .venv (repeatable); default this one")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--single", action="store_true", help="also one worker per round (the ratio)")
    parser.add_argument("--load", choices=LOADERS, action="append",
                        help="the load generator: wrk (bench/wrk.py, the default) or aiohttp (bench/load.py); repeat to interleave both")  # fmt: skip
    parser.add_argument("--upstream", choices=UPSTREAMS, default="python",
                        help="the canned upstream: bench/upstream.py (default) or nginx (bench/upstream_nginx.py)")  # fmt: skip
    args = parser.parse_args()
    pythons = args.python or [PY]
    loads = args.load or ["wrk"]
    if "wrk" in loads:  # wrk runs whole seconds; the CPU per request is scaled by the same duration
        args.duration = float(max(1, round(args.duration)))
    port = free_port()
    upstream_proc = subprocess.Popen(upstream_command(args.upstream, port), stdout=subprocess.DEVNULL)
    upstream = f"http://127.0.0.1:{port}"
    key = "sk-bench-workers-0123456789abcdef"
    rows: dict[str, list[dict[str, Any]]] = {}
    try:
        wait_ready(upstream + "/", upstream_proc, timeout=30)
        start_cpu = 0.0
        if "aiohttp" in loads:
            start_cpu = loader_start_cpu(upstream, args.concurrency)
            print(f"the load generator's own start and stop: {start_cpu:.2f} s of CPU (not counted per request)")
        for _ in range(args.rounds):
            for py in pythons:
                for load, n in ((load, n) for load in loads for n in ([1] if args.single else []) + [args.workers]):
                    r = one(py, write_config(upstream, key), key, n, args.concurrency, args.duration, upstream_proc.pid, start_cpu,
                            load)  # fmt: skip
                    name = f"{py} w{n}" + (f" {load}" if len(loads) > 1 else "")
                    rows.setdefault(name, []).append(r)
                    print(name, json.dumps(r), flush=True)
    finally:
        stop(upstream_proc)
    print(f"\n{'':<56} {'req/s':>7} {'p50':>6} {'p99':>6} {'cpu us':>7} {'up us':>6} {'load us':>7}  conns per worker / CPU s per process")
    for name, rs in rows.items():
        for r in rs:
            print(f"{name:<56} {r['req_per_s']:>7.0f} {r['p50_ms']:>6.1f} {r['p99_ms']:>6.1f} {r['cpu_us_per_req']:>7.0f} "
                  f"{r['upstream_us_per_req']:>6.0f} {r['load_us_per_req']:>7.0f}  {r['conns']} / {r['cpu_s_per_process']}")  # fmt: skip
        print(f"{'  median req/s':<56} {statistics.median(r['req_per_s'] for r in rs):>7.0f}")
    if args.single:  # N workers over one, each round's pair, and the medians'
        for name, rs in rows.items():
            one_name = name.replace(f" w{args.workers}", " w1", 1)
            if f" w{args.workers}" in name and one_name in rows:
                pairs = [m["req_per_s"] / max(o["req_per_s"], 1e-9) for m, o in zip(rs, rows[one_name], strict=True)]
                medians = statistics.median(r["req_per_s"] for r in rs) / max(statistics.median(r["req_per_s"] for r in rows[one_name]), 1e-9)
                print(f"{name}: {' '.join(f'{p:.2f}x' for p in pairs)} of one worker per round; {medians:.2f}x the median")
                # Where the CPU goes: with every process CPU-bound, one worker is held to one core
                # (1 / s1 requests per second) and N share the machine with the generator and the
                # upstream (cores / (sN + up + load)): the ratio this machine allows when idle.
                med = {k: statistics.median(r[k] for r in rs) for k in ("cpu_us_per_req", "upstream_us_per_req", "load_us_per_req")}
                s1 = statistics.median(r["cpu_us_per_req"] for r in rows[one_name])
                cores = min(args.workers, os.cpu_count() or 1)
                used = statistics.median(r["req_per_s"] * sum(r[k] for k in med) / 1e6 for r in rs)
                ceiling = cores * s1 / sum(med.values())
                print(f"  CPU per request (medians): proxy {med['cpu_us_per_req']:.0f} us (one worker {s1:.0f}), upstream "
                      f"{med['upstream_us_per_req']:.0f}, load {med['load_us_per_req']:.0f}; these used {used:.2f} of "
                      f"{os.cpu_count()} cores; on an idle machine at most {ceiling:.2f}x one worker")  # fmt: skip


if __name__ == "__main__":
    main()
