"""``pytest --modelyard-leaks``: an object a test leaves unclosed in a reference cycle is reported
at that test's teardown, not at whichever later test the collector happens to run in."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# gc is off in the probe, so that only the option's collection can find the cycle (without it,
# the automatic collector would finalise the socket at a moment no test can predict).
PROBE = '''
import gc
import socket

gc.disable()


class Holder:
    pass


def test_drops_a_socket_in_a_cycle():
    holder = Holder()
    holder.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    holder.me = holder


def test_closes_its_socket():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM):
        pass


def test_leaves_a_file_open_in_a_cycle(tmp_path):
    holder = Holder()
    holder.file = open(tmp_path / "f.txt", "w")  # noqa: SIM115
    holder.me = holder
'''


def _run(tmp_path: Path, *extra: str, env: dict[str, str] | None = None) -> str:
    (tmp_path / "test_probe.py").write_text(PROBE)
    (tmp_path / "pytest.ini").write_text("[pytest]\nfilterwarnings = error\n")
    run = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:asyncio", "-q", "-rE",
                          *extra, "test_probe.py"], cwd=tmp_path, env={**os.environ, **(env or {})},
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    return run.stdout + run.stderr


def test_the_test_that_dropped_an_unclosed_object_fails_at_its_teardown(tmp_path: Path) -> None:
    out = _run(tmp_path, "--modelyard-leaks")
    assert "3 passed, 2 errors" in out, out
    errors = [line for line in out.splitlines() if line.startswith("ERROR ")]
    assert len(errors) == 2, out
    assert "test_drops_a_socket_in_a_cycle" in errors[0] and "unclosed <socket.socket" in out
    assert "test_leaves_a_file_open_in_a_cycle" in errors[1] and "unclosed file" in out
    assert not any("test_closes_its_socket" in line for line in errors)


def test_where_the_object_was_allocated_with_tracemalloc_on(tmp_path: Path) -> None:
    out = _run(tmp_path, "--modelyard-leaks", env={"PYTHONTRACEMALLOC": "5"})
    assert "allocated at (most recent call last):" in out, out
    assert 'holder.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)' in out


def test_without_the_option_the_leaks_name_no_test(tmp_path: Path) -> None:
    """What the option is for: every test passes, and pytest finds the two objects only when it
    collects at the end of the session, with no test to blame."""
    out = _run(tmp_path)
    assert "3 passed in" in out, out
    assert not [line for line in out.splitlines() if line.startswith("ERROR ")], out
    assert "left 1 object(s) unclosed" not in out
