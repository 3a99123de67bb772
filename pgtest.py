"""A real PostgreSQL for the tests: initdb into a temp dir, start on a free loopback port, stop.

``postgres_url`` (a session fixture, imported by the root conftest) yields
``postgresql://postgres@127.0.0.1:<port>/modelyard_test``. PostgreSQL refuses to run as root,
so as root the server runs as the ``postgres`` user (created by Debian's package; created here
if missing). Without ``initdb``/``pg_ctl`` (``./dev test`` installs them on Debian) the tests
that need it are skipped, saying why.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator

import pytest


def _bin_dir() -> str | None:
    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb"):
        return os.path.dirname(os.path.realpath(found))
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return os.path.dirname(candidates[-1]) if candidates else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_user() -> list[str]:
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "postgres"], check=True, capture_output=True)
    return ["runuser", "-u", "postgres", "--"]


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A database on a PostgreSQL server started for this test session."""
    bin_dir = _bin_dir()
    if bin_dir is None:
        pytest.skip("PostgreSQL (initdb, pg_ctl) is not installed; ./dev test installs it on Debian")
    prefix = _as_user()
    root = tempfile.mkdtemp(prefix="modelyard-pg-")
    data, log = os.path.join(root, "data"), os.path.join(root, "server.log")
    if prefix:
        entry = pwd.getpwnam("postgres")
        os.chown(root, entry.pw_uid, entry.pw_gid)
    port = _free_port()

    def run(*args: str) -> None:
        subprocess.run([*prefix, *args], check=True, capture_output=True, cwd=root)

    try:
        run(f"{bin_dir}/initdb", "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")
        options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
        run(f"{bin_dir}/pg_ctl", "-D", data, "-o", options, "-l", log, "-w", "-t", "60", "start")
        run(f"{bin_dir}/createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "modelyard_test")
        yield f"postgresql://postgres@127.0.0.1:{port}/modelyard_test"
    finally:
        subprocess.run([*prefix, f"{bin_dir}/pg_ctl", "-D", data, "-m", "immediate", "-w", "stop"],
                       capture_output=True, cwd=root)  # fmt: skip
        shutil.rmtree(root, ignore_errors=True)
