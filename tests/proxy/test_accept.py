"""The proxy's event loop (``modelyard.proxy.accept.Loop``) accepts every waiting connection at once.

uvloop (libuv >= 1.45) accepts one connection per turn of the loop; under load, with turns of
milliseconds, the last of 64 clients connecting together waited ~0.45 s (bench/README.md,
"accept"). Turns are counted here by a callback that schedules itself again each turn.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Any

import pytest
import uvloop
from modelyard.proxy.accept import Loop
from modelyard.proxy.serve import event_loop

CLIENTS = 32


def _turns_to_accept(loop_factory: Callable[[], asyncio.AbstractEventLoop]) -> tuple[list[int], bytes]:
    """Open CLIENTS connections while the server's loop is not looking, then count the loop's turns
    until each has its protocol; the server greets each one so the clients know it is theirs."""

    async def scenario() -> tuple[list[int], bytes]:
        loop = asyncio.get_running_loop()
        turns = 0
        made: list[int] = []

        class Greeter(asyncio.Protocol):
            def connection_made(self, transport: Any) -> None:
                made.append(turns)
                transport.write(b"hi")

        server = await loop.create_server(Greeter, "127.0.0.1", 0, backlog=128)
        port = server.sockets[0].getsockname()[1]
        # Blocking connects: each returns once the kernel has queued the connection for accept().
        clients = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(CLIENTS)]

        def tick() -> None:
            nonlocal turns
            turns += 1
            if len(made) < CLIENTS and turns < 10_000:
                loop.call_soon(tick)

        loop.call_soon(tick)
        while len(made) < CLIENTS and turns < 10_000:
            await asyncio.sleep(0)
        greeting = b"".join(client.recv(2) for client in clients)
        for client in clients:
            client.close()
        server.close()
        await server.wait_closed()
        return made, greeting

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(scenario())


def test_connections_waiting_together_are_accepted_in_one_turn() -> None:
    made, greeting = _turns_to_accept(Loop)
    assert len(made) == CLIENTS
    assert greeting == b"hi" * CLIENTS
    assert max(made) <= 3, made  # accepted in one turn; each transport starts in the next one or two


def test_uvloops_own_server_takes_a_turn_per_connection() -> None:
    """Why the class exists: if this fails, libuv accepts in a loop again and Loop can go."""
    made, _ = _turns_to_accept(uvloop.Loop)
    assert len(made) == CLIENTS
    assert max(made) >= CLIENTS // 2, made


def test_a_taken_address_is_an_oserror_naming_it() -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]

    async def bind() -> None:
        await asyncio.get_running_loop().create_server(asyncio.Protocol, "127.0.0.1", port)

    try:
        with asyncio.Runner(loop_factory=Loop) as runner, pytest.raises(OSError, match=f"127.0.0.1', {port}"):
            runner.run(bind())
    finally:
        taken.close()


def test_a_given_socket_is_served_and_closed_with_the_server() -> None:
    """The ``--num_workers`` path: uvicorn hands each worker a bound socket (``sock=``)."""

    async def scenario() -> bytes:
        loop = asyncio.get_running_loop()
        listening = socket.socket()
        listening.bind(("127.0.0.1", 0))

        class Echo(asyncio.Protocol):
            def connection_made(self, transport: Any) -> None:
                self.transport = transport

            def data_received(self, data: bytes) -> None:
                self.transport.write(data.upper())

        server = await loop.create_server(Echo, sock=listening, backlog=16)
        assert server.is_serving() and server.sockets == (listening,)
        reader, writer = await asyncio.open_connection(*listening.getsockname())
        writer.write(b"ping")
        answer = await reader.readexactly(4)
        writer.close()
        server.close()
        await server.wait_closed()
        assert not server.is_serving() and listening.fileno() == -1
        return answer

    with asyncio.Runner(loop_factory=Loop) as runner:
        assert runner.run(scenario()) == b"PING"


def test_modelyard_serve_runs_on_this_loop() -> None:
    import uvicorn

    factory = uvicorn.Config(lambda *_: None, loop=event_loop()).get_loop_factory()
    assert factory is not None
    loop = factory()
    try:
        assert type(loop) is Loop
    finally:
        loop.close()


_OUT_OF_DESCRIPTORS = r"""
import asyncio, logging, os, resource, socket, sys
from modelyard.proxy import accept

accept.RESOURCE_PAUSE_S = 0.3
logging.basicConfig(level=logging.ERROR, format="%(message)s")

async def main():
    loop = asyncio.get_running_loop()

    class Greeter(asyncio.Protocol):
        def connection_made(self, transport):
            transport.write(b"hi")

    server = await loop.create_server(Greeter, "127.0.0.1", 0, backlog=16)
    port = server.sockets[0].getsockname()[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    fillers = []
    try:
        while True:
            fillers.append(open(os.devnull))
    except OSError:
        pass
    for _ in range(2):  # room for the two clients, none for the server's accept
        fillers.pop().close()
    clients = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(2)]
    await asyncio.sleep(0.1)  # the server tries, fails, and waits
    for _ in range(8):
        fillers.pop().close()
    greeting = b""
    for client in clients:
        client.setblocking(False)
    deadline = loop.time() + 5
    while len(greeting) < 4 and loop.time() < deadline:
        await asyncio.sleep(0.05)
        for client in clients:
            try:
                greeting += client.recv(2)
            except BlockingIOError:
                pass
    print(greeting.decode())

with asyncio.Runner(loop_factory=accept.Loop) as runner:
    runner.run(main())
"""


def test_out_of_descriptors_pauses_accepting_then_serves_the_waiting_clients() -> None:
    """accept() failing with EMFILE is logged once and retried after a pause, not in a busy loop."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", _OUT_OF_DESCRIPTORS], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "hihi"
    refusals = [line for line in done.stderr.splitlines() if "cannot accept connections" in line]
    assert 1 <= len(refusals) <= 2, done.stderr[-2000:]
    assert "Too many open files" in refusals[0]


def test_a_host_name_listens_on_each_of_its_addresses() -> None:
    """As asyncio's create_server: ``localhost`` is 127.0.0.1 and, where the machine has it, ::1."""
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    expected = {info[4][0] for info in socket.getaddrinfo("localhost", port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)}

    async def scenario() -> tuple[set[str], bytes]:
        loop = asyncio.get_running_loop()

        class Greeter(asyncio.Protocol):
            def connection_made(self, transport: Any) -> None:
                transport.write(b"hi")

        server = await loop.create_server(Greeter, "localhost", port)
        addresses = {listening.getsockname()[0] for listening in server.sockets}
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        greeting = await reader.readexactly(2)
        writer.close()
        server.close()
        await server.wait_closed()
        return addresses, greeting

    with asyncio.Runner(loop_factory=Loop) as runner:
        addresses, greeting = runner.run(scenario())
    assert addresses == expected and "127.0.0.1" in addresses
    assert greeting == b"hi"
