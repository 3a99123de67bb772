"""Serve the Entra ID emulator over HTTPS, under the real authority host names.

azure-identity (through azure-core's ``requests`` transport) only talks HTTPS and, for a
host MSAL does not know, first asks ``login.microsoftonline.com`` whether the authority is
valid. To run the real credential classes unchanged, :class:`EntraServer`:

* makes a throw-away certificate authority with ``trustme`` and a server certificate for
  ``login.microsoftonline.com``, the sovereign-cloud hosts, ``127.0.0.1`` and ``localhost``;
* serves the emulator with uvicorn over TLS on a loopback port (:attr:`EntraServer.url`);
* runs a loopback ``CONNECT`` proxy (:attr:`EntraServer.proxy_url`) that tunnels those host
  names, and only those, to the emulator.

Point a process at it with :meth:`EntraServer.environ`: ``REQUESTS_CA_BUNDLE`` (trust the test
CA) and ``HTTPS_PROXY`` (reach the "cloud" through the tunnel), the same variables an
enterprise sets for a TLS-inspecting proxy. Needs the ``trustme`` package.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import threading
from typing import Any

from .entra import EntraEmulator
from .server import serve_in_thread

__all__ = ["AUTHORITY_HOSTS", "EntraServer"]

AUTHORITY_HOSTS = (
    "login.microsoftonline.com",
    "login.microsoftonline.us",
    "login.chinacloudapi.cn",
    "login.partner.microsoftonline.cn",
    "login.modelyard.test",
)
"""The authority hosts the tunnel maps to the emulator: the public cloud, the sovereign clouds,
and ``login.modelyard.test``, a host MSAL does not know (so it runs instance discovery)."""


class _Tunnel:
    """A minimal HTTP ``CONNECT`` proxy on loopback that tunnels allowed hosts to one port.

    Anything else (another host, another port, a plain request) gets 403, so a test can
    never reach the network through it.
    """

    def __init__(self, hosts: set[str], target_port: int) -> None:
        self.hosts = hosts
        self.target_port = target_port
        self.port = 0
        self.tunnelled: list[str] = []
        self.refused: list[str] = []
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._server: asyncio.Server | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("tunnel did not start")

    def stop(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self._server is not None:
                await self._server.wait_closed()
            await asyncio.sleep(0.05)  # let the transports' close callbacks run before the loop stops

        if self._loop.is_running():
            # Connections cut at shutdown are expected; keep their tracebacks out of the logs.
            self._loop.set_exception_handler(lambda loop, context: None)
            asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            method, target, *_ = head.split(b"\r\n", 1)[0].decode("latin-1").split()
            host, _, port = target.rpartition(":")
            if method != "CONNECT" or host.lower() not in self.hosts or port != "443":
                self.refused.append(target)
                writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
                return
            self.tunnelled.append(host.lower())
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await writer.drain()
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer), return_exceptions=True)
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            writer.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


class EntraServer:
    """An :class:`~modelyard.testing.entra.EntraEmulator` on loopback over HTTPS, plus the tunnel.

    Args:
        entra: the emulator to serve (a new one by default).
        hosts: authority host names the tunnel maps to the emulator.

    Attributes:
        entra: the live emulator.
        url: ``https://127.0.0.1:<port>``, the emulator reached directly.
        proxy_url: ``http://127.0.0.1:<port>``, the ``CONNECT`` proxy.
        ca_path: the test CA certificate (PEM) to trust.
    """

    def __init__(self, entra: EntraEmulator | None = None, *, hosts: tuple[str, ...] = AUTHORITY_HOSTS) -> None:
        import trustme

        self.entra = entra if entra is not None else EntraEmulator()
        self._dir = tempfile.TemporaryDirectory(prefix="modelyard-entra-")
        ca = trustme.CA()
        cert = ca.issue_cert(*hosts, "127.0.0.1", "localhost")
        self.ca_path = os.path.join(self._dir.name, "ca.pem")
        ca.cert_pem.write_to_path(self.ca_path)
        server_pem = os.path.join(self._dir.name, "server.pem")
        cert.private_key_and_cert_chain_pem.write_to_path(server_pem)
        self._server = serve_in_thread(self.entra.app, ssl_certfile=server_pem)
        self.url = self._server.url
        self._tunnel = _Tunnel({h.lower() for h in hosts}, self._server.port)
        self.proxy_url = ""

    @property
    def tunnelled(self) -> list[str]:
        """Host names clients asked the tunnel for, in order."""
        return self._tunnel.tunnelled

    def environ(self) -> dict[str, str]:
        """Environment variables that make azure-identity reach and trust this emulator."""
        return {
            "REQUESTS_CA_BUNDLE": self.ca_path,
            "HTTPS_PROXY": self.proxy_url,
            "https_proxy": self.proxy_url,
            "NO_PROXY": "",
            "no_proxy": "",
        }

    def start(self) -> EntraServer:
        self._server.start()
        self._tunnel.start()
        self.proxy_url = f"http://127.0.0.1:{self._tunnel.port}"
        return self

    def stop(self) -> None:
        self._tunnel.stop()
        self._server.stop()
        self._dir.cleanup()

    def __enter__(self) -> EntraServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
