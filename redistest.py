"""A real redis-server on loopback for the tests (the Router's and the proxy's).

``redis_server`` starts ``redis-server`` (the Debian package; ``./dev test`` installs it) on a
free loopback port with a password and a temporary directory, for the whole session;
``redis_url`` is that server, emptied for one test. ``fresh_redis`` starts one for a single
test (to be killed mid-run). The root ``conftest.py`` imports the fixtures.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REDIS_PASSWORD = "router-test-password"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """A redis-server process on 127.0.0.1; ``url`` includes the password."""

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
        import redis

        try:
            return bool(redis.Redis.from_url(self.url, socket_timeout=0.5).ping())
        except redis.RedisError:
            return False

    def flush(self) -> None:
        import redis

        client = redis.Redis.from_url(self.url)
        client.flushall()
        client.close()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session Redis, emptied for this test."""
    redis_server.flush()
    return redis_server.url


@pytest.fixture
def fresh_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis")
    yield server
    server.stop()
