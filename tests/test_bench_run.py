"""bench/run.py's helpers: the count of voluntary context switches (each proxy row's threads that
blocked), every live thread of the process, not only the main one that ``/proc/PID/status``
reports; and the paired rounds (issue 17, round thirteen), where the servers take turns, the order
turning about each round, and each round's ratio is kept beside their median."""

from __future__ import annotations

import importlib.util
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

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


def _run_module() -> Any:
    sys.path.insert(0, str(BENCH))  # run.py imports its neighbours (wrk, upstream_nginx)
    try:
        spec = importlib.util.spec_from_file_location("modelyard_bench_run", BENCH / "run.py")
        assert spec is not None and spec.loader is not None
        run = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(run)
    finally:
        sys.path.remove(str(BENCH))
    return run


def test_the_switches_of_a_thread_beside_the_main_one_are_counted() -> None:
    run = _run_module()
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


def test_rounds_alternate_and_a_steady_drift_favours_no_server() -> None:
    run = _run_module()
    calls: list[tuple[str, int]] = []
    speed = {"floor": 1000.0, "modelyard": 500.0, "w2": 900.0}

    def measure(name: str, round_: int) -> float:
        calls.append((name, round_))
        return speed[name] * (1.0 - 0.02 * len(calls))  # the machine slows down steadily

    values = run.paired_rounds(["floor", "modelyard", "w2"], 4, measure)
    assert calls == [("floor", 0), ("modelyard", 0), ("w2", 0), ("w2", 1), ("modelyard", 1), ("floor", 1),
                     ("floor", 2), ("modelyard", 2), ("w2", 2), ("w2", 3), ("modelyard", 3), ("floor", 3)]  # fmt: skip
    ratios = run.round_ratios(values, "modelyard", "floor")
    assert ratios == [values["modelyard"][i] / values["floor"][i] for i in range(4)]
    # Measured second in even rounds and fifth in odd ones, modelyard's ratio errs both ways;
    # the mean of a pair of rounds is within 0.2% of the true 0.5, where each round is 2% off.
    assert ratios[0] < 0.5 < ratios[1]
    assert abs((ratios[0] + ratios[1]) / 2 - 0.5) < 0.001
    assert abs(statistics.median(ratios) - 0.5) < abs(ratios[0] - 0.5)
