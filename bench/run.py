"""The benchmark: modelyard's proxy and SDK side by side with LiteLLM's, against a canned upstream.

    ./dev bench                      # everything (installs LiteLLM into bench/.litellm-venv once)
    ./dev bench --duration 10        # seconds per load level (default 5, after 1 s of warm-up)
    ./dev bench --skip-litellm       # only modelyard (no install)
    ./dev bench --load aiohttp       # the load from bench/load.py (aiohttp) instead of wrk (bench/wrk.py)
    ./dev bench --upstream nginx     # the canned answers from nginx (bench/upstream_nginx.py), not bench/upstream.py
    ./dev bench --only proxy|sdk
    ./dev bench --observability      # also modelyard with metrics off and with tracing on
    ./dev bench --virtual-key plain  # also modelyard called with a virtual key (no budget) ...
    ./dev bench --virtual-key budget # ... or with one that has a budget (reserved and settled per call)
    ./dev bench --spend              # also modelyard with spend tracking off (the CPU it adds)
    ./dev bench --workers 2          # also modelyard with --num_workers 2 (spend to SQLite), beside one worker
    ./dev bench --workers 2 --workers-store postgres
                                     # ... both rows on PostgreSQL and Redis instead (started for the run)

What it does:

1. starts bench/upstream.py (a raw-asyncio server answering a fixed Azure chat completion;
   ``--upstream nginx``: the same answers from nginx, bench/upstream_nginx.py);
2. drives it directly, then through ``modelyard serve`` and through LiteLLM's proxy (one
   worker each, the same model list and master key) with wrk (bench/wrk.py; ``--load aiohttp``:
   bench/load.py) at concurrency 1, 16 and 64; prints req/s, p50/p99 latency added over the direct calls, the ratio
   ours/LiteLLM, each proxy's CPU per request, its time to become ready and its RSS after the run;
3. measures SDK calls per second (bench/sdk.py): sequential sync calls of
   ``modelyard.completion``, raw httpx, the openai SDK and ``litellm.completion``; async with
   32 in flight, each rate mode three times interleaved and the median reported
   (``--sdk-rounds``); and import times.

Numbers depend on the machine and on what else runs on it; compare ratios, not absolutes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import upstream_nginx
import wrk

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PY = sys.executable
LITELLM_VENV = HERE / ".litellm-venv"
LITELLM_PY = LITELLM_VENV / "bin" / "python"
LEVELS = (1, 16, 64)
LOADERS = ("wrk", "aiohttp")
LOAD = "wrk"  # the load generator (--load): wrk (bench/wrk.py) or aiohttp (bench/load.py)
EMBEDDINGS_LEVEL = 16
STREAM_LEVEL = 16
UPSTREAM_KEY = "bench-upstream-key"
# Like an installed package, let Python cache bytecode: without it every start compiles every module.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
WARM = {
    PY: "import modelyard.proxy.serve, modelyard.proxy.app, modelyard.api, modelyard.testing, modelyard._aiohttp, modelyard._wire, "
        "uvicorn, httptools, uvloop, openai, modelyard_azure_chat.plugin, modelyard_azure_auth.plugin",
    str(LITELLM_PY): "import litellm, litellm.proxy.proxy_server",
}


def compile_bytecode(py: str) -> None:
    """Write the ``.pyc`` files of ``py``'s environment (and of the workspace's sources) now, as
    ``pip install`` does at install time; ``uv sync`` leaves them to the first import. Without
    this, the first server started after a sync writes them, and its "ready" counts that
    (1.80 s against 0.99 s on the next start, round six). Quick when they are already there."""
    code = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    purelib = subprocess.run([py, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    sources = [str(p) for p in (HERE.parent / "core" / "src", *sorted((HERE.parent / "plugins").glob("*/src")))] if py == PY else []
    subprocess.run([py, "-m", "compileall", "-q", "-j", "0", purelib, *sources], check=False, capture_output=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 180) -> float:
    import httpx

    start = time.perf_counter()
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"{url}: the server exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return time.perf_counter() - start
        except httpx.TransportError:
            pass
        if time.perf_counter() - start > timeout:
            raise SystemExit(f"{url}: not ready after {timeout} s")
        time.sleep(0.02)


UPSTREAMS = ("python", "nginx")


def upstream_command(kind: str, port: int) -> list[str]:
    """The canned upstream's command: bench/upstream.py (``python``) or nginx (bench/upstream_nginx.py)."""
    if kind == "nginx":
        return upstream_nginx.command(port)
    return [PY, str(HERE / "upstream.py"), "--port", str(port)]


def wait_listening(port: int, sockets: int, timeout: float = 120) -> None:
    """Until ``sockets`` sockets listen on ``port``: with ``--num_workers N`` each worker listens on
    a socket of its own (``SO_REUSEPORT``) once its start-up is done, and until then the workers
    already listening take every connection (a keep-alive load then stays on them)."""
    start = time.perf_counter()
    while True:
        out = subprocess.run(["ss", "-tlnH", f"( sport = :{port} )"], capture_output=True, text=True).stdout
        if len(out.splitlines()) >= sockets:
            return
        if time.perf_counter() - start > timeout:
            raise SystemExit(f"port {port}: {len(out.splitlines())} listening sockets after {timeout} s, not {sockets}")
        time.sleep(0.05)


def tree_pids(pid: int) -> list[int]:
    pids = [pid]
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry))
    i = 0
    while i < len(pids):
        pids += children.get(pids[i], [])
        i += 1
    return pids


def rss_mib(pid: int, tree: bool = True) -> float:
    total = 0
    for p in tree_pids(pid) if tree else [pid]:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def voluntary_switches(pid: int) -> int:
    """The voluntary context switches of every live thread of ``pid``'s process tree so far: each is
    a thread that blocked (waiting for the GIL, a lock, the disk). A process's own status counts its
    main thread only. Round twelve found the spend writer's thread making the event loop wait for
    the GIL by this count: ~1 switch per request with spend on, none with it off (bench/README.md)."""
    total = 0
    for p in tree_pids(pid):
        try:
            threads = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for t in threads:
            try:
                status = Path(f"/proc/{p}/task/{t}/status").read_text()
            except OSError:
                continue
            for line in status.splitlines():
                if line.startswith("voluntary_ctxt_switches:"):
                    total += int(line.split()[1])
                    break
    return total


def cpu_seconds(pid: int) -> float:
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for p in tree_pids(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except OSError:
            pass
    return total


def load(url: str, concurrency: int, duration: float, key: str | None = None, body: str = "chat") -> dict[str, Any]:
    """One closed-loop load level (a 1 s warm-up, then ``duration`` s) with the chosen generator
    (``LOAD``): wrk through bench/wrk.py, or bench/load.py (aiohttp) in a process of its own."""
    if LOAD == "wrk":
        return wrk.run(url, concurrency, duration, key, body)
    cmd = [PY, str(HERE / "load.py"), url, "--concurrency", str(concurrency), "--duration", str(duration), "--body", body]
    if key:
        cmd += ["--key", key]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def write_config(upstream: str, master_key: str, extra: str = "", name: str = "config.yaml") -> Path:
    """The bench's config.yaml; ``extra`` goes under ``general_settings``. Spend tracking is on
    (the default), its rows in a SQLite file of this run, never the user's store."""
    path = Path(tempfile.mkdtemp(prefix="modelyard-bench-")) / name
    path.write_text(f"""model_list:
  - model_name: gpt-4o
    litellm_params:
      model: azure/gpt-4o
      api_base: {upstream}
      api_key: {UPSTREAM_KEY}
      api_version: "2024-10-21"
  - model_name: embed
    litellm_params:
      model: azure/text-embedding-3-small
      api_base: {upstream}
      api_key: {UPSTREAM_KEY}
      api_version: "2024-10-21"
    model_info:
      mode: embedding
modelyard_settings:
  store_path: {path.parent / "spend.db"}
general_settings:
  master_key: {master_key}
{extra}""")
    return path


def fmt_row(cells: list[Any], widths: list[int]) -> str:
    return "  ".join(str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True)))


def make_virtual_key(base: str, master_key: str, budget: bool) -> str:
    """A virtual key made through the proxy's admin API (docs/keys.md), with a budget if asked."""
    import urllib.request

    fields: dict[str, Any] = {"models": ["gpt-4o", "embed"], "key_alias": "bench"}
    if budget:
        fields["max_budget"] = 1e6
    request = urllib.request.Request(f"{base}/key/generate", data=json.dumps(fields).encode(), method="POST",
                                     headers={"Authorization": f"Bearer {master_key}", "Content-Type": "application/json"})  # fmt: skip
    with urllib.request.urlopen(request, timeout=30) as answer:
        return str(json.loads(answer.read())["key"])


def floor_command(upstream: str, master_key: str) -> list[str]:
    """bench/floor.py, the minimal Python forwarder every proxy is measured against."""
    return [PY, str(HERE / "floor.py"), "--upstream", upstream, "--key", master_key, "--upstream-key", UPSTREAM_KEY]


def server_env() -> dict[str, str]:
    """This environment without the settings a proxy would read (``AZURE_*``, ``MODELYARD_*`` ...)."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "OPENAI_", "MODELYARD_", "LITELLM_"))}


def bench_proxies(upstream: str, duration: float, with_litellm: bool, observability: bool = False,
                  virtual_key: str | None = None, spend: bool = False, bare: bool = False,
                  workers: int | None = None, shared: tuple[str, str] | None = None) -> dict[str, Any]:  # fmt: skip
    master_key = "sk-bench-" + secrets.token_hex(16)
    config = write_config(upstream, master_key)
    direct_url = f"{upstream}/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21"
    results: dict[str, Any] = {"direct": {}}
    for c in LEVELS:
        results["direct"][c] = load(direct_url, c, duration, UPSTREAM_KEY)
    emb_direct = f"{upstream}/openai/deployments/text-embedding-3-small/embeddings?api-version=2024-10-21"
    results["direct"]["embeddings"] = load(emb_direct, EMBEDDINGS_LEVEL, duration, UPSTREAM_KEY, body="embeddings")
    results["direct"]["stream"] = load(direct_url, STREAM_LEVEL, duration, UPSTREAM_KEY, body="stream")
    # The floor (bench/floor.py): the least any Python proxy spends; every figure is also a ratio to it.
    servers = {"floor": floor_command(upstream, master_key),
               "modelyard": [PY, "-m", "modelyard.cli", "serve", "--config", str(config)]}  # fmt: skip
    if bare:
        # Spend, metrics and the access log off: what the features cost, beside the row with them on.
        off = write_config(upstream, master_key, "  disable_spend_logs: true\n  metrics: false\n")
        servers["bare"] = [PY, "-m", "modelyard.cli", "serve", "--config", str(off), "--no-access-log"]
    if observability:
        # The default above has /metrics on (prometheus-client is installed) and modelyard-otel
        # loaded without a tracer provider (it records nothing); these two change one thing each.
        off = write_config(upstream, master_key, "  metrics: false\n")
        servers["no-metrics"] = [PY, "-m", "modelyard.cli", "serve", "--config", str(off)]
        servers["+tracing"] = [PY, str(HERE / "otel_serve.py"), "serve", "--config", str(config)]
    if virtual_key:
        # The same proxy with a store, called with a virtual key instead of the master key.
        store = Path(tempfile.mkdtemp(prefix="modelyard-bench-store-")) / "store.db"
        vk = write_config(upstream, master_key, f"modelyard_settings:\n  store_path: {store}\n")
        servers["+vkey"] = [PY, "-m", "modelyard.cli", "serve", "--config", str(vk)]
    if spend:
        # The default above records a spend row per request (SQLite); this one records none.
        off = write_config(upstream, master_key, "  disable_spend_logs: true\n")
        servers["no-spend"] = [PY, "-m", "modelyard.cli", "serve", "--config", str(off)]
    if workers:
        # The same proxy with --num_workers N, beside one worker with the same settings. With
        # ``shared`` (PostgreSQL URL, Redis URL) both rows keep spend and keys in PostgreSQL and the
        # router's state in Redis, as several instances would; else spend goes to one SQLite file.
        many = config
        if shared:
            many = write_config(upstream, master_key, f"  database_url: {shared[0]}\nrouter_settings:\n  redis_url: {shared[1]}\n")
            servers["pg-w1"] = [PY, "-m", "modelyard.cli", "serve", "--config", str(many)]
        servers[f"{'pg-' if shared else ''}w{workers}"] = [PY, "-m", "modelyard.cli", "serve", "--config", str(many),
                                                          "--num_workers", str(workers)]  # fmt: skip
    if with_litellm:
        servers["litellm"] = [str(LITELLM_VENV / "bin" / "litellm"), "--config", str(config), "--num_workers", "1"]
    env = server_env()
    for name, cmd in servers.items():
        port = free_port()
        started = time.perf_counter()
        proc = subprocess.Popen([*cmd, "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        try:
            ready = wait_ready(f"http://127.0.0.1:{port}/health/liveliness", proc)
            if "--num_workers" in cmd:
                wait_listening(port, int(cmd[cmd.index("--num_workers") + 1]))
            info: dict[str, Any] = {"ready_s": ready, "spawn_to_ready_s": time.perf_counter() - started}
            url = f"http://127.0.0.1:{port}/v1/chat/completions"
            key = master_key
            if name == "+vkey":
                key = make_virtual_key(f"http://127.0.0.1:{port}", master_key, virtual_key == "budget")
            for c in LEVELS:
                cpu0, switches0 = cpu_seconds(proc.pid), voluntary_switches(proc.pid)
                r = load(url, c, duration, key)
                cpu = cpu_seconds(proc.pid) - cpu0
                total = r["requests"] + r["errors"]
                r["cpu_us_per_req"] = cpu / max(1, total) * 1e6 * (duration / (duration + 1.0))
                # Like the CPU, counted over the warm-up second too, and scaled to the measured part.
                r["switches_per_req"] = (voluntary_switches(proc.pid) - switches0) / max(1, total) * (duration / (duration + 1.0))
                info[c] = r
            # Embeddings through the proxy, beside chat (one concurrency level keeps the run short).
            emb_url = f"http://127.0.0.1:{port}/v1/embeddings"
            cpu0 = cpu_seconds(proc.pid)
            r = load(emb_url, EMBEDDINGS_LEVEL, duration, key, body="embeddings")
            r["cpu_us_per_req"] = (cpu_seconds(proc.pid) - cpu0) / max(1, r["requests"] + r["errors"]) * 1e6 * (duration / (duration + 1.0))
            info["embeddings"] = r
            cpu0, switches0 = cpu_seconds(proc.pid), voluntary_switches(proc.pid)
            r = load(url, STREAM_LEVEL, duration, key, body="stream")
            total = r["requests"] + r["errors"]
            r["cpu_us_per_req"] = (cpu_seconds(proc.pid) - cpu0) / max(1, total) * 1e6 * (duration / (duration + 1.0))
            r["switches_per_req"] = (voluntary_switches(proc.pid) - switches0) / max(1, total) * (duration / (duration + 1.0))
            info["stream"] = r
            info["rss_mib"] = rss_mib(proc.pid)
            info["processes_rss_mib"] = [rss_mib(p, tree=False) for p in tree_pids(proc.pid)]  # --num_workers: each
            results[name] = info
        finally:
            stop(proc)
    return results


def paired_rounds(names: list[str], rounds: int, measure: Callable[[str, int], Any]) -> dict[str, list[Any]]:
    """``measure(name, round)`` for every name, ``rounds`` times; the results per name, in round order.

    The order turns round about (A B C, then C B A, ...), so a machine that speeds up or slows
    down steadily through the rounds favours no name, and neighbouring measures pair up.
    """
    out: dict[str, list[Any]] = {name: [] for name in names}
    for round_ in range(rounds):
        for name in names if round_ % 2 == 0 else reversed(names):
            out[name].append(measure(name, round_))
    return out


def round_ratios(values: dict[str, list[float]], name: str, ref: str) -> list[float]:
    """``name``'s value over ``ref``'s, round by round."""
    return [a / max(b, 1e-9) for a, b in zip(values[name], values[ref], strict=True)]


def bench_paired(upstream: str, duration: float, rounds: int, workers: int | None = None) -> dict[str, Any]:
    """The ratios the targets are read from, measured in ``rounds`` alternating rounds.

    On this machine req/s moves by up to 30% within minutes, and the main table measures each
    proxy once, one after the other: the floor a minute or more before modelyard. Here the
    floor, modelyard and (with ``workers``) ``--num_workers N`` run side by side (an idle one
    costs nothing) and take turns, each round chat at c=64 then streams at c=16 on each
    (:func:`paired_rounds`). Each round gives a ratio; the median is reported with all of them.
    """
    master_key = "sk-bench-" + secrets.token_hex(16)
    config = write_config(upstream, master_key, name="paired.yaml")
    servers = {"floor": floor_command(upstream, master_key),
               "modelyard": [PY, "-m", "modelyard.cli", "serve", "--config", str(config)]}  # fmt: skip
    if workers:
        servers[f"w{workers}"] = [*servers["modelyard"], "--num_workers", str(workers)]
    env = server_env()
    procs: dict[str, tuple[subprocess.Popen[bytes], str]] = {}
    try:
        for name, cmd in servers.items():
            port = free_port()
            proc = subprocess.Popen([*cmd, "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
            procs[name] = (proc, f"http://127.0.0.1:{port}/v1/chat/completions")
            wait_ready(f"http://127.0.0.1:{port}/health/liveliness", proc)
            if "--num_workers" in cmd:
                wait_listening(port, workers or 1)

        def measure(name: str, _round: int) -> dict[str, float]:
            url = procs[name][1]
            return {"chat": load(url, LEVELS[-1], duration, master_key)["req_per_s"],
                    "stream": load(url, STREAM_LEVEL, duration, master_key, body="stream")["req_per_s"]}  # fmt: skip

        measured = paired_rounds(list(servers), rounds, measure)
    finally:
        for proc, _ in procs.values():
            stop(proc)
    values = {kind: {name: [m[kind] for m in runs] for name, runs in measured.items()} for kind in ("chat", "stream")}
    out: dict[str, Any] = {"rounds": rounds, "req_per_s": values}
    pairs = [("modelyard", "floor")] + ([(f"w{workers}", "modelyard")] if workers else [])
    for name, ref in pairs:
        for kind in ("chat", "stream"):
            ratios = round_ratios(values[kind], name, ref)
            out[f"{name}/{ref} {kind}"] = {"median": statistics.median(ratios), "rounds": ratios}
    return out


def print_paired(results: dict[str, Any]) -> None:
    level = {"chat": f"chat c={LEVELS[-1]}", "stream": f"streams c={STREAM_LEVEL}"}
    print(f"\nPaired rounds ({results['rounds']}, alternating; bench_paired): req/s ratios, median (each round)")
    for key, value in results.items():
        if "/" in key:
            pair, kind = key.split(" ")
            rounds = ", ".join(f"{r:.2f}" for r in value["rounds"])
            print(f"  {pair:18s} {level[kind]:16s} {value['median']:.2f}x  ({rounds})")


def print_proxies(results: dict[str, Any]) -> None:
    fixed = ("floor", "modelyard", "bare", "no-spend", "no-metrics", "+tracing", "+vkey", "litellm")
    names = [n for n in fixed if n in results] + [n for n in results if n not in fixed and n != "direct"]
    widths = [10, 5, 9, 8, 8, 10, 10, 8, 8]
    print(f"\nProxy, one worker, canned upstream, load from {LOAD} (latency added = proxy minus direct, same concurrency)")
    print(fmt_row(["target", "conc", "req/s", "p50 ms", "p99 ms", "+p50 ms", "+p99 ms", "errors", "cpu us"], widths))
    for c in LEVELS:
        d = results["direct"][c]
        print(fmt_row(["direct", c, f"{d['req_per_s']:.0f}", f"{d['p50_ms']:.2f}", f"{d['p99_ms']:.2f}", "", "", d["errors"], ""], widths))
        for n in names:
            r = results[n][c]
            print(fmt_row([n, c, f"{r['req_per_s']:.0f}", f"{r['p50_ms']:.2f}", f"{r['p99_ms']:.2f}",
                           f"{r['p50_ms'] - d['p50_ms']:.2f}", f"{r['p99_ms'] - d['p99_ms']:.2f}", r["errors"],
                           f"{r['cpu_us_per_req']:.0f}"], widths))  # fmt: skip
    emb_direct = results["direct"].get("embeddings")
    if emb_direct:
        print(fmt_row(["direct emb", EMBEDDINGS_LEVEL, f"{emb_direct['req_per_s']:.0f}", f"{emb_direct['p50_ms']:.2f}",
                       f"{emb_direct['p99_ms']:.2f}", "", "", emb_direct["errors"], ""], widths))  # fmt: skip
    for n in names:
        r = results[n].get("embeddings")
        if r:
            print(fmt_row([f"{n} emb", EMBEDDINGS_LEVEL, f"{r['req_per_s']:.0f}", f"{r['p50_ms']:.2f}", f"{r['p99_ms']:.2f}",
                           "", "", r["errors"], f"{r['cpu_us_per_req']:.0f}"], widths))  # fmt: skip
    st_direct = results["direct"].get("stream")
    if st_direct:
        print(fmt_row(["direct sse", STREAM_LEVEL, f"{st_direct['req_per_s']:.0f}", f"{st_direct['p50_ms']:.2f}",
                       f"{st_direct['p99_ms']:.2f}", "", "", st_direct["errors"], ""], widths))  # fmt: skip
    for n in names:
        r = results[n].get("stream")
        if r:
            print(fmt_row([f"{n} sse", STREAM_LEVEL, f"{r['req_per_s']:.0f}", f"{r['p50_ms']:.2f}", f"{r['p99_ms']:.2f}",
                           f"{r['p50_ms'] - st_direct['p50_ms']:.2f}", f"{r['p99_ms'] - st_direct['p99_ms']:.2f}",
                           r["errors"], f"{r['cpu_us_per_req']:.0f}"], widths))  # fmt: skip
    for n in names:
        r = results[n]
        each = r.get("processes_rss_mib", [])
        per = f" ({' + '.join(f'{x:.0f}' for x in each)} per process)" if len(each) > 1 else ""
        print(f"{n}: ready in {r['ready_s']:.2f} s after spawn; RSS after the run {r['rss_mib']:.0f} MiB{per}")
    switches = "  ".join(f"{n} {results[n][LEVELS[-1]]['switches_per_req']:.2f} / {results[n]['stream']['switches_per_req']:.2f}"
                         for n in names if "switches_per_req" in results[n][LEVELS[-1]])  # fmt: skip
    if switches:
        print(f"voluntary context switches per request (threads that blocked), c={LEVELS[-1]} / sse: {switches}")
    if "+vkey" in results:
        m, v = results["modelyard"], results["+vkey"]
        added = "  ".join(f"c={c}: {v[c]['cpu_us_per_req'] / max(m[c]['cpu_us_per_req'], 1e-9) - 1:+.1%}" for c in LEVELS)
        print(f"CPU per request a virtual key adds over the master key: {added}")
    if "no-spend" in results:
        on, off = results["modelyard"], results["no-spend"]
        added = "  ".join(
            f"c={c}: {on[c]['cpu_us_per_req'] - off[c]['cpu_us_per_req']:+.0f} us "
            f"({(on[c]['cpu_us_per_req'] / max(off[c]['cpu_us_per_req'], 1e-9) - 1) * 100:+.1f}%)"
            for c in (*LEVELS, "embeddings")
        )
        print(f"CPU per request spend tracking adds (modelyard minus no-spend): {added}")
    for many in (n for n in names if n.startswith(("w", "pg-w")) and n != "pg-w1"):
        one = results["pg-w1" if many.startswith("pg-") else "modelyard"]
        ratio = "  ".join(f"c={c}: {results[many][c]['req_per_s'] / max(one[c]['req_per_s'], 1e-9):.2f}x" for c in LEVELS)
        sse = results[many]["stream"]["req_per_s"] / max(one["stream"]["req_per_s"], 1e-9)
        print(f"req/s of {many} over one worker, same settings: {ratio}  sse: {sse:.2f}x")
    for ref in ("floor", "litellm"):
        if ref in results:
            print_ratios(results, names, ref)
    if "litellm" in results:
        m, lt = results["modelyard"], results["litellm"]
        ratios = "  ".join(f"c={c}: {m[c]['req_per_s'] / max(lt[c]['req_per_s'], 1e-9):.1f}x" for c in LEVELS)
        print(f"ratio modelyard/litellm req/s: {ratios}; memory {m['rss_mib'] / lt['rss_mib']:.2f}x")


def print_ratios(results: dict[str, Any], names: list[str], ref: str) -> None:
    """Each proxy's figures as a ratio to ``ref``'s (the floor, LiteLLM) from the same run."""
    base = results[ref]
    print(f"\nAs a ratio to {ref} (req/s: higher is better; CPU, added latency, RSS: lower is better)")
    keys = [(c, f"c={c}") for c in LEVELS] + [("embeddings", "emb"), ("stream", "sse")]
    widths = [10] + [22] * len(keys)
    print(fmt_row(["target", *(label for _, label in keys)], widths))
    direct = results["direct"]
    for n in names:
        if n == ref:
            continue
        cells = [n]
        for k, _ in keys:
            r, b = results[n].get(k), base.get(k)
            if not r or not b:
                cells.append("")
                continue
            rate = r["req_per_s"] / max(b["req_per_s"], 1e-9)
            cpu = r["cpu_us_per_req"] / max(b["cpu_us_per_req"], 1e-9)
            cell = f"{rate:.2f}x rps {cpu:.2f}x cpu"
            if k == 64:
                added = (r["p99_ms"] - direct[64]["p99_ms"]) / max(b["p99_ms"] - direct[64]["p99_ms"], 1e-9)
                cell = f"{rate:.2f}x rps {cpu:.2f}x cpu, +p99 {added:.1f}x"
            cells.append(cell)
        print(fmt_row(cells, widths))
        extra = f"ready {results[n]['ready_s'] / max(base['ready_s'], 1e-9):.2f}x, RSS {results[n]['rss_mib'] / max(base['rss_mib'], 1e-9):.2f}x"
        print(f"{'':10s}  {extra}")


def start_shared(stack: contextlib.ExitStack) -> tuple[str, str]:
    """A throwaway PostgreSQL and Redis on loopback (modelyard.testing's helpers), closed with ``stack``."""
    from modelyard.testing.services import RedisServer, postgres_server

    database = stack.enter_context(postgres_server())
    redis = RedisServer(Path(tempfile.mkdtemp(prefix="modelyard-bench-redis-")))
    stack.callback(redis.stop)
    return database, redis.url


def sdk_modes(with_litellm: bool) -> list[tuple[str, str]]:
    modes = [(PY, m) for m in ("httpx", "modelyard", "modelyard-native-sync", "openai", "httpx-async", "aiohttp-async",
                               "modelyard-async", "modelyard-async-aiohttp", "modelyard-async-native", "import-modelyard",
                               "import-modelyard.api", "first-call-modelyard")]  # fmt: skip
    if with_litellm:
        modes += [(str(LITELLM_PY), m) for m in ("litellm", "litellm-async", "import-litellm", "first-call-litellm")]
    return modes


def bench_sdk(upstream: str, duration: float, with_litellm: bool, rounds: int = 3) -> dict[str, Any]:
    """Each mode in a process of its own; the rate modes ``rounds`` times, interleaved (one mode
    after another, then again), reported as their median with every round's figure: one 3 s
    figure per mode moved the aiohttp backend's ratio between 0.65x and 0.98x on this machine."""
    results: dict[str, Any] = {}
    rates: dict[str, list[float]] = {}
    for round_ in range(rounds):
        for py, mode in sdk_modes(with_litellm):
            if round_ and mode in results and "calls_per_s" not in results[mode]:
                continue  # import and first-call figures: best of 5 in one process already
            out = subprocess.run([py, str(HERE / "sdk.py"), mode, upstream, "--duration", str(duration)],
                                 capture_output=True, text=True)  # fmt: skip
            if out.returncode != 0:
                print(f"sdk mode {mode} failed:\n{out.stderr[-2000:]}", file=sys.stderr)
                continue
            result = json.loads(out.stdout.strip().splitlines()[-1])
            if "calls_per_s" in result:
                rates.setdefault(mode, []).append(result["calls_per_s"])
                result = {"calls_per_s": statistics.median(rates[mode]), "rounds": rates[mode]}
            results[mode] = result
    return results


def print_sdk(results: dict[str, Any]) -> None:
    print("\nSDK against the canned upstream")
    base = results.get("httpx", {}).get("calls_per_s")
    abase = results.get("httpx-async", {}).get("calls_per_s")
    for mode, r in results.items():
        if "calls_per_s" in r:
            ref = abase if mode.endswith(("async", "aiohttp", "native")) else base
            rel = f"  {r['calls_per_s'] / ref:.2f}x raw httpx{' async' if ref is abase else ''}" if ref else ""
            kind = "32 in flight" if ref is abase else "sequential"
            aio = results.get("aiohttp-async", {}).get("calls_per_s")
            if mode in ("modelyard-async-aiohttp", "modelyard-async-native") and aio:
                rel += f", {r['calls_per_s'] / aio:.2f}x raw aiohttp"
            each = r.get("rounds") or []
            spread = f"  [{', '.join(f'{v:.0f}' for v in each)}]" if len(each) > 1 else ""
            print(f"  {mode:26s} {r['calls_per_s']:8.0f} calls/s ({kind}){rel}{spread}")
        elif "first_call_ms" in r:
            print(f"  {mode:26s} {r['first_call_ms']:8.1f} ms from `from ... import completion` to the first answer, "
                  f"{r['import_ms']:.1f} of it the import (fresh process, best of 5)")  # fmt: skip
        else:
            print(f"  {mode:26s} {r['import_ms']:8.1f} ms import (best of 5)")


def main() -> None:
    global LOAD
    parser = argparse.ArgumentParser(description="modelyard vs LiteLLM")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per proxy load level")
    parser.add_argument("--sdk-duration", type=float, default=3.0)
    parser.add_argument("--sdk-rounds", type=int, default=3, help="runs of each SDK rate mode, interleaved; the median is reported")
    parser.add_argument("--skip-litellm", action="store_true")
    parser.add_argument("--only", choices=("proxy", "sdk"))
    parser.add_argument("--observability", action="store_true", help="also modelyard with metrics off and with tracing on")
    parser.add_argument("--virtual-key", choices=("plain", "budget"),
                        help="also modelyard called with a virtual key (plain: no budget; budget: with one)")  # fmt: skip
    parser.add_argument("--spend", action="store_true", help="also modelyard with spend tracking off (the CPU it adds)")
    parser.add_argument("--bare", action="store_true", help="also modelyard with spend, metrics and access logs off")
    parser.add_argument("--workers", type=int, help="also modelyard with --num_workers N (its req/s over one worker's)")
    parser.add_argument("--workers-store", choices=("sqlite", "postgres"), default="sqlite",
                        help="with --workers: spend in SQLite (default), or PostgreSQL and Redis for both rows")  # fmt: skip
    parser.add_argument("--paired", type=int, default=3, metavar="ROUNDS",
                        help="the floor, modelyard (and --workers N) again in alternating rounds, for the ratios (0: skip)")  # fmt: skip
    parser.add_argument("--load", choices=LOADERS, default=LOAD,
                        help="the load generator: wrk (default, bench/wrk.py) or aiohttp (bench/load.py, 125-220 us of CPU per request against wrk's 24-37)")  # fmt: skip
    parser.add_argument("--upstream", choices=UPSTREAMS, default="python",
                        help="the canned upstream: bench/upstream.py (default) or nginx with njs (bench/upstream_nginx.py)")  # fmt: skip
    args = parser.parse_args()
    LOAD = args.load
    if LOAD == "wrk":  # wrk runs whole seconds; the CPU per request is scaled by the same duration
        args.duration = float(max(1, round(args.duration)))
    with_litellm = not args.skip_litellm
    if with_litellm:
        subprocess.run(["bash", str(HERE / "setup_litellm.sh")], check=True)
    for py, code in WARM.items():
        if py == PY or with_litellm:
            compile_bytecode(py)
            subprocess.run([py, "-c", code], check=False, capture_output=True)
    port = free_port()
    upstream_proc = subprocess.Popen(upstream_command(args.upstream, port), stdout=subprocess.DEVNULL)
    upstream = f"http://127.0.0.1:{port}"
    try:
        wait_ready(upstream + "/", upstream_proc, timeout=30)
        report: dict[str, Any] = {"cpus": os.cpu_count(), "duration": args.duration, "load": LOAD, "upstream": args.upstream}
        if args.only in (None, "proxy"):
            with contextlib.ExitStack() as services:
                shared = None
                if args.workers and args.workers_store == "postgres":
                    shared = start_shared(services)
                report["proxy"] = bench_proxies(upstream, args.duration, with_litellm, args.observability, args.virtual_key,
                                                args.spend, args.bare, args.workers, shared)  # fmt: skip
            print_proxies(report["proxy"])
            if args.paired:
                report["paired"] = bench_paired(upstream, args.duration, args.paired, args.workers)
                print_paired(report["paired"])
        if args.only in (None, "sdk"):
            report["sdk"] = bench_sdk(upstream, args.sdk_duration, with_litellm, args.sdk_rounds)
            print_sdk(report["sdk"])
        out = HERE / "results"
        out.mkdir(exist_ok=True)
        (out / "latest.json").write_text(json.dumps(report, indent=2, default=str))
        print(f"\n(raw numbers in {out / 'latest.json'})")
    finally:
        stop(upstream_proc)


if __name__ == "__main__":
    main()
