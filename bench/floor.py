"""The floor: the least a Python proxy in front of Azure OpenAI can do per request (bench/README.md).

Raw ASGI on uvicorn (httptools, uvloop), one aiohttp session, a bearer check, ``json.loads`` of
the body to find the model, the upstream's bytes passed back untouched (a stream chunk by
chunk). No config file: one upstream, the bench's two models.

    python bench/floor.py --upstream http://127.0.0.1:8900 --key sk-... --upstream-key K --port 4001
"""

from __future__ import annotations

import argparse
import json
from typing import Any

DEPLOYMENTS = {"gpt-4o": ("gpt-4o", "chat/completions"), "embed": ("text-embedding-3-small", "embeddings")}


def make_app(upstream: str, key: str, upstream_key: str) -> Any:
    import aiohttp

    session: aiohttp.ClientSession | None = None
    bearer = f"Bearer {key}".encode()

    async def answer(send: Any, status: int, body: bytes, ctype: bytes = b"application/json") -> None:
        await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", ctype)]})
        await send({"type": "http.response.body", "body": body})

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        nonlocal session
        if scope["type"] != "http":
            return
        if scope["method"] == "GET":  # /health/liveliness
            return await answer(send, 200, b'"I\'m alive!"')
        if dict(scope["headers"]).get(b"authorization") != bearer:
            return await answer(send, 401, b'{"error":{"message":"bad key"}}')
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        raw = b"".join(chunks)
        body = json.loads(raw)
        deployment, path = DEPLOYMENTS[body["model"]]
        if session is None:
            session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        url = f"{upstream}/openai/deployments/{deployment}/{path}?api-version=2024-10-21"
        headers = {"api-key": upstream_key, "content-type": "application/json"}
        async with session.post(url, data=raw, headers=headers) as r:
            ctype = r.headers.get("content-type", "application/json").encode()
            if not body.get("stream"):
                return await answer(send, r.status, await r.read(), ctype)
            await send({"type": "http.response.start", "status": r.status, "headers": [(b"content-type", ctype)]})
            async for chunk in r.content.iter_any():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--upstream-key", required=True)
    parser.add_argument("--port", type=int, default=4001)
    args = parser.parse_args()
    import uvicorn

    app = make_app(args.upstream.rstrip("/"), args.key, args.upstream_key)
    uvicorn.run(app, host="127.0.0.1", port=args.port, loop="uvloop", http="httptools", log_level="warning",
                access_log=False, lifespan="off")  # fmt: skip


if __name__ == "__main__":
    main()
