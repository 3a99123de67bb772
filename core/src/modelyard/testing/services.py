"""Real Redis and PostgreSQL servers on loopback, started and stopped by the pytest plugin.

Both run as child processes of the test session, in temporary directories, on free ports:
``redis-server`` (Debian's ``redis-server`` package) and PostgreSQL (``initdb`` + ``pg_ctl``,
Debian's ``postgresql`` package). Nothing is mocked: the code under test talks to the real
servers. Stdlib and pytest only at import time.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

__all__ = ["REDIS_PASSWORD", "RedisServer", "postgres_server"]

REDIS_PASSWORD = "router-test-password"
"""The password of the ``redis_server`` fixture's server (part of its ``url``)."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """A redis-server process on 127.0.0.1, started by the constructor.

    Fails the test (``pytest.fail``) when ``redis-server`` is not installed or does not start.

    Args:
        workdir: the server's directory (created).
        password: ``requirepass``.
        port: the port; a free one by default. Give an old server's port to restart "it".

    Attributes:
        port: the bound port.
        url: ``redis://:<password>@127.0.0.1:<port>/0``.
        process: the ``subprocess.Popen`` (kill it to test an outage).
        workdir: the server's directory; a server started again there loads the last ``SAVE``.
    """

    def __init__(self, workdir: Path, password: str = REDIS_PASSWORD, port: int | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed; `./dev test` installs it (apt-get install redis-server).")
        self.port = port or _free_port()
        self.password = password
        self.workdir = workdir  # a server started again here loads the last SAVE
        self.url = f"redis://:{password}@127.0.0.1:{self.port}/0"
        workdir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [binary, "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(workdir),
             "--save", "", "--appendonly", "no", "--requirepass", password],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while not self.ping():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"redis-server did not start on port {self.port}")
            time.sleep(0.02)

    def ping(self) -> bool:
        """Whether the server answers (needs the ``redis`` client: ``modelyard[redis]``)."""
        import redis

        try:
            return bool(redis.Redis.from_url(self.url, socket_timeout=0.5).ping())
        except redis.RedisError:
            return False

    def flush(self) -> None:
        """Empty every database."""
        import redis

        client = redis.Redis.from_url(self.url)
        client.flushall()
        client.close()

    def stop(self) -> None:
        """Kill the server (idempotent)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


def _postgres_bin_dir() -> str | None:
    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb"):
        return os.path.dirname(os.path.realpath(found))
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return os.path.dirname(candidates[-1]) if candidates else None


def _as_postgres_user() -> list[str]:
    # PostgreSQL refuses to run as root: as root, run it as the ``postgres`` user (Debian's
    # package creates it; created here if missing).
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "postgres"], check=True, capture_output=True)
    return ["runuser", "-u", "postgres", "--"]


@contextmanager
def postgres_server() -> Iterator[str]:
    """Run a throwaway PostgreSQL (initdb into a temp dir, loopback, free port) until the block ends.

    Fails the test (``pytest.fail``, saying how to install it) when ``initdb``/``pg_ctl`` are
    not installed: a missing server must never turn into a quiet skip.

    Yields:
        ``postgresql://postgres@127.0.0.1:<port>/modelyard_test`` (trust auth, fsync off).
    """
    bin_dir = _postgres_bin_dir()
    if bin_dir is None:
        pytest.fail("PostgreSQL (initdb, pg_ctl) is not installed; `./dev test` installs it on Debian "
                    "(apt-get install postgresql).")
    prefix = _as_postgres_user()
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
