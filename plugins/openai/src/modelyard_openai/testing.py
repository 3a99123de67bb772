"""A twin of OpenAI's API for tests, in front of modelyard's emulator.

OpenAI's paths (``/v1/chat/completions`` ...) are the Azure v1 API's without ``/openai``, with
the model in the body and the key as ``Authorization: Bearer``. :class:`OpenAITwin` serves
them from a :class:`modelyard.testing.Emulator` (whose deployments are the model names): it
refuses Azure's ``api-key`` header and any ``api-version`` query as OpenAI would not know them,
records what it received (:attr:`requests`) and hands the call to the emulator's v1 route.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from modelyard.testing import Emulator

__all__ = ["OpenAITwin", "Seen", "TwinServer"]

Scope = dict[str, Any]


@dataclass
class Seen:
    """One request the twin received: OpenAI's path, the headers (lower-case) and the JSON body."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any = None


@dataclass
class OpenAITwin:
    """An ASGI app: OpenAI's paths, served by ``emulator``."""

    emulator: Emulator
    requests: list[Seen] = field(default_factory=list)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.emulator.app(scope, receive, send)
            return
        path: str = scope["path"]
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        chunks: list[bytes] = []
        more = True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        raw = b"".join(chunks)
        body: Any = None
        if "json" in headers.get("content-type", ""):
            try:
                body = json.loads(raw or b"null")
            except ValueError:
                body = None
        self.requests.append(Seen(scope["method"], path, headers, body))
        if not path.startswith("/v1/") or "api-key" in headers or scope.get("query_string"):
            await _json(send, 404 if not path.startswith("/v1/") else 400,
                        {"error": {"message": f"Unknown request URL: {scope['method']} {path}.", "type": "invalid_request_error",
                                   "param": None, "code": "unknown_url"}})  # fmt: skip
            return
        if not headers.get("authorization", "").startswith("Bearer "):
            await _json(send, 401, {"error": {"message": "You didn't provide an API key.", "type": "invalid_request_error",
                                              "param": None, "code": None}})  # fmt: skip
            return
        inner = {**scope, "path": "/openai" + path, "raw_path": ("/openai" + path).encode()}
        sent = False

        async def replay() -> dict[str, Any]:
            nonlocal sent
            if sent:
                message: dict[str, Any] = await receive()
                return message
            sent = True
            return {"type": "http.request", "body": raw, "more_body": False}

        await self.emulator.app(inner, replay, send)


async def _json(send: Any, status: int, body: dict[str, Any]) -> None:
    data = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]})  # fmt: skip
    await send({"type": "http.response.body", "body": data})


class TwinServer:
    """An :class:`OpenAITwin` served on loopback for a ``with`` block; ``.base`` is the API root.

    Args:
        emulator: the emulator behind the twin (its deployment names are the model names).
    """

    def __init__(self, emulator: Emulator) -> None:
        from modelyard.testing.server import serve_in_thread

        self.twin = OpenAITwin(emulator)
        self._server = serve_in_thread(self.twin)

    @property
    def base(self) -> str:
        """``http://127.0.0.1:<port>/v1``: pass it as ``api_base`` (or ``OPENAI_BASE_URL``)."""
        return f"{self._server.url}/v1"

    def __enter__(self) -> TwinServer:
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop()
