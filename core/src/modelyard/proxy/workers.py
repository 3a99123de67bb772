"""``modelyard serve --num_workers N``: one listening socket per worker (``SO_REUSEPORT``), so the kernel shares connections.

With uvicorn's own arrangement every worker accepts from one shared socket, and whichever
worker wakes first takes what is waiting: with keep-alive clients that open their connections
at once, one of two workers held 43 of 64 connections in every run measured (bench/README.md,
"Two workers"), so its requests waited twice as long as the other's. Here the parent binds the
address with ``SO_REUSEPORT`` and never listens on it (it only reserves the port, so a port
already taken still fails before any worker starts); each worker, when it unpickles its copy
of the socket (uvicorn hands the sockets to its spawned workers by pickling them), binds a
socket of its own to the same address with ``SO_REUSEPORT``, and the kernel spreads new
connections over the workers' sockets by a hash of each connection's addresses and ports.

Only where the platform has ``SO_REUSEPORT`` (Linux, the BSDs, macOS); elsewhere the workers
share uvicorn's one socket as before. The sockets of one port must belong to the same user
(the kernel's rule), so another user cannot bind into the group. A worker that dies drops the
connections waiting in its own socket's queue (not yet accepted); its requests in flight are
lost either way, and uvicorn starts a new worker, which binds a socket of its own.
"""

from __future__ import annotations

import socket
from typing import Any

__all__ = ["REUSE_PORT", "ReusePortSocket", "bind_listening_socket", "run_workers"]

REUSE_PORT = hasattr(socket, "SO_REUSEPORT")
"""Whether the platform can give each worker a socket of its own."""


def _bound(family: int, address: tuple[Any, ...]) -> ReusePortSocket:
    sock = ReusePortSocket(family=family)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
    except BaseException:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


class ReusePortSocket(socket.socket):
    """A TCP socket bound with ``SO_REUSEPORT`` that pickles as a new one bound to the same address.

    So each process that receives it (a spawned uvicorn worker) gets a socket of its own in the
    port's group rather than a copy of the parent's.
    """

    def __reduce_ex__(self, protocol: Any) -> tuple[Any, ...]:
        return _bound, (int(self.family), self.getsockname())


def bind_listening_socket(host: str, port: int) -> socket.socket:
    """The parent's socket for ``host:port``: bound (the port is taken now), not listening.

    Raises:
        OSError: the address cannot be bound (the port is in use ...).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    if not REUSE_PORT:  # pragma: no cover - Linux, the BSDs and macOS have it
        sock = socket.socket(family=family)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.set_inheritable(True)
        return sock
    return _bound(family, (host, port))


def run_workers(config: Any) -> int:
    """Run uvicorn's worker supervisor for ``config`` (a ``uvicorn.Config`` with ``workers`` > 1).

    What ``uvicorn.run`` does with several workers, with :func:`bind_listening_socket` in place
    of uvicorn's shared socket. Returns uvicorn's start-up failure status (3) when the address
    cannot be bound, else 0.
    """
    import logging

    from uvicorn.config import STARTUP_FAILURE
    from uvicorn.supervisors import Multiprocess

    try:
        sock = bind_listening_socket(config.host, config.port)
    except OSError as exc:
        logging.getLogger("uvicorn.error").error(exc)
        return STARTUP_FAILURE
    try:
        Multiprocess(config, sockets=[sock]).run()
    except KeyboardInterrupt:  # pragma: no cover - uvicorn handles SIGINT itself
        pass
    finally:
        sock.close()
    return 0
