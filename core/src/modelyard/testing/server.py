"""Run an ASGI app (the emulator, or the proxy) with uvicorn on a loopback port, in a thread."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any, Self

__all__ = ["EmulatorServer", "serve_in_thread"]


class serve_in_thread:
    """Serve ``app`` on ``host:port`` (port 0 picks a free one) until the ``with`` block ends.

    Extra keyword arguments go to ``uvicorn.Config`` (``ssl_certfile``/``ssl_keyfile`` serve HTTPS).

    Attributes:
        url: ``http://127.0.0.1:<port>`` (``https://`` when ``ssl_certfile`` is given).
        port: the bound port.
        app: the ASGI app served.
    """

    def __init__(self, app: Any, *, host: str = "127.0.0.1", port: int = 0, **uvicorn_options: Any) -> None:
        import uvicorn

        self.app: Any = app
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Accepted sockets inherit this. Without it a response (headers, then body) waits on
        # Nagle + delayed ACK: ~45 ms per call on loopback instead of ~0.5 ms.
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock.bind((host, port))
        self.port: int = self._sock.getsockname()[1]
        scheme = "https" if uvicorn_options.get("ssl_certfile") else "http"
        self.url = f"{scheme}://{host}:{self.port}"
        options = {"log_level": "warning", "lifespan": "off", **uvicorn_options}
        self._server = uvicorn.Server(uvicorn.Config(app, **options))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True)

    def start(self) -> Self:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"server on {self.url} did not start")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class EmulatorServer(serve_in_thread):
    """An :class:`~modelyard.testing.Emulator` served on loopback; ``emulator`` is the live object."""

    def __init__(self, emulator: Any = None, *, host: str = "127.0.0.1", port: int = 0) -> None:
        from .emulator import Emulator

        self.emulator = emulator if emulator is not None else Emulator()
        super().__init__(self.emulator.app, host=host, port=port)
