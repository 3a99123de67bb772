"""What makes the proxy's tail latency: one ``modelyard serve`` traced by its own clock under the bench's load.

    python bench/tail.py [--concurrency 64] [--duration 5] [--workers 1] [--extra 'general_settings: ...']

Runs ``modelyard serve`` from the bench's config (spend to SQLite, metrics and the access log on)
with, in the server process: the time each HTTP request spends in the app (first call to its
last send), the event loop's stalls (a task that sleeps 1 ms and records how late it wakes),
every garbage collection (generation, duration) and every spend flush (rows, duration in the
writer's thread). After the closed-loop chat load at ``--concurrency`` it prints the
distributions and how much of the loop's stalls overlap a collection or a flush.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def _instrument(out_path: str) -> None:
    """Install the probes in this (the server's) process; write what they saw at exit."""
    import asyncio
    import atexit
    import gc
    import threading

    from modelyard.proxy.app import ProxyApp
    from modelyard.store.spend import SpendRecorder

    clock = time.perf_counter
    seen: dict[str, list[Any]] = {"requests": [], "gc": [], "flush": [], "lag": [], "collected": [], "garbage": [], "cpu": [],
                                 "accepted": []}
    gc_start: list[float] = [0.0, 0.0]

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            gc_start[:] = clock(), time.thread_time()
        else:
            seen["gc"].append((gc_start[0], clock() - gc_start[0], info["generation"], time.thread_time() - gc_start[1]))
            seen["collected"].append(info["collected"])

    gc.callbacks.append(on_gc)
    flush = SpendRecorder.flush

    def timed_flush(self: SpendRecorder) -> int:
        t0, c0 = clock(), time.thread_time()
        rows = flush(self)
        if rows:
            seen["flush"].append((t0, clock() - t0, rows, time.thread_time() - c0))
        return rows

    SpendRecorder.flush = timed_flush  # type: ignore[method-assign]
    call = ProxyApp.__call__
    sampler: list[Any] = []

    async def lag() -> None:
        while True:
            t0 = clock()
            await asyncio.sleep(0.001)
            late = clock() - t0 - 0.001
            if late > 0.002:
                seen["lag"].append((t0, late))

    async def timed_call(self: ProxyApp, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await call(self, scope, receive, send)
        if not sampler:
            sampler.append(asyncio.get_running_loop().create_task(lag()))
        t0 = clock()
        try:
            await call(self, scope, receive, send)
        finally:
            done = clock()
            seen["requests"].append((t0, done - t0))
            if len(seen["requests"]) % 256 == 0:
                seen["cpu"].append((done, time.process_time(), len(seen["requests"])))

    ProxyApp.__call__ = timed_call  # type: ignore[method-assign]
    from modelyard.proxy.protocol import BoundedHttpToolsProtocol

    made = BoundedHttpToolsProtocol.connection_made

    def timed_made(self: BoundedHttpToolsProtocol, transport: Any) -> None:
        seen["accepted"].append(clock())
        made(self, transport)

    BoundedHttpToolsProtocol.connection_made = timed_made  # type: ignore[method-assign]

    if os.environ.get("MODELYARD_BENCH_TAIL_GARBAGE"):  # what the collections free: the types of the cycles found
        gc.set_debug(gc.DEBUG_SAVEALL)

    def dump() -> None:
        if gc.garbage:
            import collections

            seen["garbage"] = collections.Counter(type(o).__qualname__ for o in gc.garbage).most_common(25)
        with open(out_path, "w") as f:
            json.dump({"pid": os.getpid(), "thread": threading.get_ident(), **seen}, f)

    atexit.register(dump)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def _overlap(spans: list[tuple[float, float]], t: float, d: float) -> bool:
    return any(s < t + d and t < s + sd for s, sd in spans)


def report(data: dict[str, Any], since: float) -> None:
    req = [d for t, d in data["requests"] if t >= since]
    print(f"requests {len(req)}: in the app p50 {_pct(req, 0.5) * 1e3:.1f} ms, p90 {_pct(req, 0.9) * 1e3:.1f}, "
          f"p99 {_pct(req, 0.99) * 1e3:.1f}, max {max(req, default=0) * 1e3:.1f}")  # fmt: skip
    accepted = [t for t in data["accepted"] if t >= since]  # the measured run's connections (the warm-up ends at since)
    if accepted:
        print(f"connections accepted: {len(accepted)}, the last {(accepted[-1] - accepted[0]) * 1e3:.1f} ms after the first "
              "(their first requests wait in the kernel until then)")  # fmt: skip
    cpu = [(t, c, n) for t, c, n in data["cpu"] if t >= since]
    if len(cpu) > 1:
        print(f"server CPU per request (process time, main and writer threads): {(cpu[-1][1] - cpu[0][1]) / (cpu[-1][2] - cpu[0][2]) * 1e6:.0f} us")
    gcs = [(t, d, g, c) for t, d, g, c in data["gc"] if t >= since]
    if gcs and len(req):
        print(f"collections' CPU per request: {sum(c for *_, c in gcs) / len(req) * 1e6:.1f} us")
    for gen in (0, 1, 2):
        ds = [d for _, d, g, _ in gcs if g == gen]
        cs = [c for _, _, g, c in gcs if g == gen]
        if ds:
            print(f"gc gen {gen}: {len(ds)} collections, wall p50 {_pct(ds, 0.5) * 1e3:.2f} ms, max {max(ds) * 1e3:.2f}, "
                  f"CPU p50 {_pct(cs, 0.5) * 1e3:.2f} ms, max {max(cs) * 1e3:.2f}, total {sum(cs) * 1e3:.0f} ms")  # fmt: skip
    fl = [(t, d, n, c) for t, d, n, c in data["flush"] if t >= since]
    if fl:
        print(f"spend flushes: {len(fl)}, rows {sum(n for _, _, n, _ in fl)}, wall p50 {_pct([d for _, d, _, _ in fl], 0.5) * 1e3:.1f} ms "
              f"max {max(d for _, d, _, _ in fl) * 1e3:.1f}, thread CPU total {sum(c for *_, c in fl) * 1e3:.0f} ms")  # fmt: skip
    print(f"objects freed by the collections: {sum(data['collected'])} in {len(data['collected'])} collections")
    if data["garbage"]:
        print("garbage by type:", data["garbage"])
    lags = [(t, d) for t, d in data["lag"] if t >= since]
    gspans = [(t, d) for t, d, _, _ in gcs]
    fspans = [(t, d) for t, d, _, _ in fl]
    reqs = [(t, d) for t, d in data["requests"] if t >= since]
    for what, spans in (("a spend flush", fspans), ("a gen 1+ collection", [(t, d) for t, d, g, _ in gcs if g >= 1]),
                        ("a gen 0 collection", [(t, d) for t, d, g, _ in gcs if g == 0])):  # fmt: skip
        hit = [d for t, d in reqs if _overlap(spans, t, d)]
        miss = [d for t, d in reqs if not _overlap(spans, t, d)]
        print(f"requests overlapping {what}: {len(hit)}, p50 {_pct(hit, 0.5) * 1e3:.1f} p99 {_pct(hit, 0.99) * 1e3:.1f} ms; "
              f"the others {len(miss)}, p50 {_pct(miss, 0.5) * 1e3:.1f} p99 {_pct(miss, 0.99) * 1e3:.1f} ms")  # fmt: skip
    for floor_ms in (2, 5, 10):
        big = [(t, d) for t, d in lags if d * 1e3 > floor_ms]
        with_gc = sum(1 for t, d in big if _overlap(gspans, t, d + 0.001))
        with_flush = sum(1 for t, d in big if _overlap(fspans, t, d + 0.001))
        print(f"loop stalls > {floor_ms} ms: {len(big)} (sum {sum(d for _, d in big) * 1e3:.0f} ms); "
              f"overlapping a collection {with_gc}, a spend flush {with_flush}")  # fmt: skip


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":  # the server process
        if os.environ.get("MODELYARD_BENCH_TAIL_GC"):
            import gc

            gc.set_threshold(int(os.environ["MODELYARD_BENCH_TAIL_GC"]), *gc.get_threshold()[1:])
        _instrument(os.environ["MODELYARD_BENCH_TAIL_OUT"])
        from modelyard.cli import main as cli

        sys.exit(cli(sys.argv[2:]))
    sys.path.insert(0, str(HERE))
    from memory import env_for_proxy
    from run import PY, free_port, load, stop, wait_ready, write_config

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--extra", default="", help="lines added under general_settings")
    parser.add_argument("--python", default=PY)
    parser.add_argument("--gc-threshold", type=int, help="the youngest generation's threshold (modelyard serve keeps a higher one)")
    parser.add_argument("--garbage", action="store_true", help="keep what the collector frees (gc.DEBUG_SAVEALL) and count it by type")
    args = parser.parse_args()
    port = free_port()
    upstream_proc = subprocess.Popen([PY, str(HERE / "upstream.py"), "--port", str(port)], stdout=subprocess.DEVNULL)
    key = "sk-bench-tail-0123456789abcdef"
    out = Path(tempfile.mkdtemp(prefix="modelyard-tail-")) / "tail.json"
    try:
        upstream = f"http://127.0.0.1:{port}"
        wait_ready(upstream + "/", upstream_proc, timeout=30)
        config = write_config(upstream, key, args.extra)
        sport = free_port()
        env = {**env_for_proxy(), "MODELYARD_BENCH_TAIL_OUT": str(out)}
        if args.gc_threshold:
            env["MODELYARD_BENCH_TAIL_GC"] = str(args.gc_threshold)
        if args.garbage:
            env["MODELYARD_BENCH_TAIL_GARBAGE"] = "1"
        proc = subprocess.Popen([args.python, str(Path(__file__).resolve()), "--serve", "serve", "--config", str(config),
                                 "--port", str(sport)], stdout=subprocess.DEVNULL, env=env)  # fmt: skip
        try:
            wait_ready(f"http://127.0.0.1:{sport}/health/liveliness", proc)
            since = time.perf_counter() + 1.0  # perf_counter is CLOCK_MONOTONIC: the same clock in both processes
            r = load(f"http://127.0.0.1:{sport}/v1/chat/completions", args.concurrency, args.duration, key)
        finally:
            stop(proc)
        print(f"client: {r['req_per_s']:.0f} req/s, p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms")
        report(json.loads(out.read_text()), since)
    finally:
        stop(upstream_proc)


if __name__ == "__main__":
    main()
