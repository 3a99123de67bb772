"""The async httpx pool's liveness check (modelyard._netstream): installed, and still right."""

from __future__ import annotations

import asyncio
import json

import httpx
import modelyard
from modelyard import transport
from modelyard._netstream import _Backend, install

ANSWER = json.dumps({
    "id": "c1", "object": "chat.completion", "created": 1, "model": "gpt-4o",
    "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "hi"}}],
    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
}).encode()  # fmt: skip


def test_the_transports_async_clients_get_it_and_a_callers_transport_does_not() -> None:
    async def main() -> None:
        ours = transport.Transport()
        client = ours.aclient("http://127.0.0.1:1/x")
        assert isinstance(client._transport._pool._network_backend, _Backend)  # type: ignore[attr-defined]
        assert not install(client)  # once
        theirs = transport.Transport(async_transport=httpx.AsyncHTTPTransport())
        other = theirs.aclient("http://127.0.0.1:1/x")
        assert not isinstance(getattr(getattr(other._transport, "_pool", None), "_network_backend", None), _Backend)
        await ours.aclose()
        await theirs.aclose()

    asyncio.run(main())


def test_an_idle_connection_the_server_closed_is_not_reused() -> None:
    # The server answers one request per connection, keeps it open (no "Connection: close")
    # and then closes it: the pool must see that before reusing it, or the next call fails.
    async def main() -> None:
        connections = 0
        closed = asyncio.Event()

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal connections
            connections += 1
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
            await reader.readexactly(length)
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (len(ANSWER), ANSWER))
            await writer.drain()
            writer.close()
            await writer.wait_closed()
            closed.set()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        previous = transport.set_transport(transport.Transport())
        try:
            for _ in range(3):
                closed.clear()
                result = await modelyard.acompletion(
                    model="azure/gpt-4o", messages=[{"role": "user", "content": "hi"}], api_base=f"http://127.0.0.1:{port}",
                    api_key="k", api_version="2024-10-21", num_retries=0,
                )  # fmt: skip
                assert result.choices[0].message.content == "hi"  # type: ignore[union-attr]
                await closed.wait()
                await asyncio.sleep(0.01)  # let the FIN arrive
            assert connections == 3
        finally:
            await transport.get_transport().aclose()
            transport.set_transport(previous)
            server.close()
            await server.wait_closed()

    asyncio.run(main())
