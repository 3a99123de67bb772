"""``modelyard serve --num_workers N``: each worker listens on a socket of its own (``SO_REUSEPORT``).

With uvicorn's one shared socket one of two workers took about two thirds of 64 keep-alive
connections in every measured run; with a socket per worker the kernel spreads connections by
a hash of their addresses (bench/README.md, "Two workers"). Read from ``/proc`` (Linux).
"""

from __future__ import annotations

import os
import pickle
import signal
import socket
import subprocess
import sys
import time
from multiprocessing.reduction import ForkingPickler
from pathlib import Path

import pytest
from modelyard.proxy.workers import REUSE_PORT, ReusePortSocket, bind_listening_socket

from .test_lifecycle import serve
from .test_workers_start import _config

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads sockets from /proc (Linux)")

LISTEN, ESTABLISHED = "0A", "01"


def _sockets(port: int) -> dict[int, str]:
    """Inode -> TCP state of the IPv4 sockets whose local port is ``port``."""
    found: dict[int, str] = {}
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].rsplit(":", 1)[1], 16) == port:
            found[int(fields[9])] = fields[3]
    return found


def _owners(pids: list[int]) -> dict[int, int]:
    """Socket inode -> the process (of ``pids``) holding it."""
    owners: dict[int, int] = {}
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                owners.setdefault(int(target[8:-1]), pid)
    return owners


def _children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry))
    return out


def test_the_socket_pickles_as_a_new_one_bound_to_the_same_address() -> None:
    assert REUSE_PORT
    sock = bind_listening_socket("127.0.0.1", 0)
    try:
        copy = pickle.loads(ForkingPickler.dumps([sock]))[0]
        try:
            assert isinstance(copy, ReusePortSocket) and copy.fileno() != sock.fileno()
            assert copy.getsockname() == sock.getsockname()
            assert copy.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 1
        finally:
            copy.close()
    finally:
        sock.close()


def test_each_worker_listens_on_its_own_socket_and_both_get_connections(tmp_path: Path, api_base: str) -> None:
    config = _config(tmp_path, api_base)
    with serve("--config", str(config), "--num_workers", "2") as (proc, url):
        port = int(url.rsplit(":", 1)[1])
        deadline = time.monotonic() + 60
        while sum(s == LISTEN for s in _sockets(port).values()) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)  # the second worker may still be starting
        states = _sockets(port)
        listening = {i for i, s in states.items() if s == LISTEN}
        owners = _owners([proc.pid, *_children(proc.pid)])
        # Two listening sockets, one per worker; the parent's socket only holds the port.
        assert len(listening) == 2, states
        assert len({owners[i] for i in listening}) == 2 and proc.pid not in {owners[i] for i in listening}
        assert not [i for i, p in owners.items() if p == proc.pid and i in states]  # bound only: not in /proc/net/tcp
        # 32 connections kept open: every one is answered, and the kernel gave some to each worker
        # (all 32 to one of two sockets: a chance of 2**-31).
        clients = []
        try:
            for _ in range(32):
                client = socket.create_connection(("127.0.0.1", port), timeout=10)
                client.sendall(b"GET /health/liveliness HTTP/1.1\r\nhost: x\r\n\r\n")
                clients.append(client)
            for client in clients:
                assert client.recv(65536).startswith(b"HTTP/1.1 200")
            states = _sockets(port)
            owners = _owners(_children(proc.pid))
            served = [owners[i] for i, s in states.items() if s == ESTABLISHED and i in owners]
            assert len(served) == 32 and len(set(served)) == 2
        finally:
            for client in clients:
                client.close()


def test_a_port_in_use_fails_before_the_workers_start(tmp_path: Path, api_base: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cmd = [sys.executable, "-m", "modelyard.cli", "serve", "--config", str(_config(tmp_path, api_base)),
               "--port", str(port), "--num_workers", "2"]  # fmt: skip
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 3, out.stderr
    assert "in use" in out.stderr and "a worker could not start" not in out.stderr


def test_a_worker_started_again_listens_on_a_socket_of_its_own(tmp_path: Path, api_base: str) -> None:
    import httpx

    with serve("--config", str(_config(tmp_path, api_base)), "--num_workers", "2") as (proc, url):
        port = int(url.rsplit(":", 1)[1])
        deadline = time.monotonic() + 60
        while sum(s == LISTEN for s in _sockets(port).values()) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        workers = {owner for i, owner in _owners(_children(proc.pid)).items() if _sockets(port).get(i) == LISTEN}
        assert len(workers) == 2
        killed = workers.pop()
        os.kill(killed, signal.SIGKILL)
        # uvicorn starts another worker; it binds a socket of its own (the killed one's is gone).
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            listening = {owner for i, owner in _owners(_children(proc.pid)).items() if _sockets(port).get(i) == LISTEN}
            if len(listening) == 2 and killed not in listening:
                break
            time.sleep(0.1)
        assert len(listening) == 2 and killed not in listening and workers < listening
        for _ in range(20):  # new connections, each hashed to one of the two sockets: all answered
            assert httpx.get(f"{url}/health/liveliness", timeout=10).status_code == 200
