"""bench/run.py's count of voluntary context switches (each proxy row's threads that blocked): every
live thread of the process is counted, not only the main one that ``/proc/PID/status`` reports."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).parents[1] / "bench"

_CHILD = """
import sys, threading, time

def work():
    for _ in range(200):
        time.sleep(0.001)  # each sleep blocks the thread: a voluntary switch
    print("slept", flush=True)
    threading.Event().wait()

threading.Thread(target=work, daemon=True).start()
sys.stdin.read()
"""


def test_the_switches_of_a_thread_beside_the_main_one_are_counted() -> None:
    sys.path.insert(0, str(BENCH))  # run.py imports its neighbours (wrk, upstream_nginx)
    try:
        spec = importlib.util.spec_from_file_location("modelyard_bench_run", BENCH / "run.py")
        assert spec is not None and spec.loader is not None
        run = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(run)
    finally:
        sys.path.remove(str(BENCH))
    with subprocess.Popen([sys.executable, "-c", _CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as child:
        assert child.stdin is not None and child.stdout is not None
        try:
            assert child.stdout.readline() == "slept\n"
            main_only = int(next(line for line in Path(f"/proc/{child.pid}/status").read_text().splitlines()
                                 if line.startswith("voluntary_ctxt_switches:")).split()[1])  # fmt: skip
            counted = run.voluntary_switches(child.pid)
        finally:
            child.stdin.close()
            child.wait(timeout=10)
    assert counted >= 200 > main_only
