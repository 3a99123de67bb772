"""The loopback-only guard (``modelyard_no_network = true``) covers the Python subprocesses tests start."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

PROBE = textwrap.dedent('''
    import socket, sys, time
    started = time.monotonic()
    try:
        socket.create_connection(("192.0.2.1", 443), timeout=5)   # TEST-NET-1: never reachable
    except ConnectionRefusedError as exc:
        print("refused", round(time.monotonic() - started, 3), exc)
    else:
        print("connected")
    with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5):
        print("loopback ok")
''')


def test_a_python_subprocess_is_refused_any_non_loopback_address_before_a_packet_leaves() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        out = subprocess.run([sys.executable, "-c", PROBE, str(port)], capture_output=True, text=True, timeout=60,
                             env=dict(os.environ), check=True).stdout  # fmt: skip
    first, second = out.splitlines()
    assert first.startswith("refused ") and "may not reach the network (modelyard_no_network)" in first, out
    assert float(first.split()[1]) < 0.5  # refused at once, not a timeout
    assert second == "loopback ok"


def test_the_modelyard_cli_in_a_subprocess_is_guarded_too() -> None:
    code = "import socket, modelyard.cli; socket.create_connection(('203.0.113.7', 80), timeout=5)"
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "ConnectionRefusedError: tests may not reach the network" in done.stderr
    assert time.monotonic() - started < 30


def test_a_users_project_gets_it_for_its_subprocesses(tmp_path: Path) -> None:
    (tmp_path / "test_probe.py").write_text(textwrap.dedent('''
        import subprocess, sys

        def test_child_is_guarded():
            code = "import socket; socket.create_connection(('192.0.2.1', 443), timeout=5)"
            done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
            assert "tests may not reach the network" in done.stderr
    '''))
    (tmp_path / "pytest.ini").write_text("[pytest]\nmodelyard_no_network = true\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # a fresh run, not this one's guard
    run = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "test_probe.py"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
