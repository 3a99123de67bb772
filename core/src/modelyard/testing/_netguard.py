"""Loopback only: ``socket.connect`` refuses any address that is not loopback (or a unix socket).

Standard library only, and self-contained: the pytest plugin (``modelyard_no_network = true``)
installs it in the test process, and writes this very file, followed by ``guard()``, as the
``sitecustomize`` of a directory it puts first on ``PYTHONPATH``, so every Python subprocess the
tests start (``modelyard serve``, workers, scripts) is guarded from its first line too.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex
SETTING = "modelyard_no_network"


def loopback(address: Any) -> bool:
    """True for a loopback host (``localhost``, 127.0.0.0/8, ::1) or a non-IP address (unix socket)."""
    if not isinstance(address, tuple):
        return True  # unix sockets
    host = address[0]
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _guarded_connect(self: socket.socket, address: Any) -> None:
    if not loopback(address):
        raise ConnectionRefusedError(f"tests may not reach the network ({SETTING}): {address!r}")
    _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: Any) -> int:
    if not loopback(address):
        raise ConnectionRefusedError(f"tests may not reach the network ({SETTING}): {address!r}")
    return _real_connect_ex(self, address)


def guard() -> None:
    """Patch ``socket.socket`` (every socket: httpx's, aiohttp's, redis's, azure-identity's)."""
    # typeshed types ``self`` as the C base class, hence the ignores.
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign,assignment]
    socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign,assignment]


def unguard() -> None:
    """Put the real methods back."""
    socket.socket.connect = _real_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _real_connect_ex  # type: ignore[method-assign]
