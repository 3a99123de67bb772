"""The native async backend (modelyard._wire) against canned HTTP/1.1 servers on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from modelyard import errors, transport
from modelyard._wire import NativeBackend
from modelyard.types import ProviderRequest

TIMEOUT = httpx.Timeout(10.0, connect=5.0)


@dataclass
class Seen:
    """One request as the server read it."""

    conn: int
    head: bytes
    body: bytes
    reader: asyncio.StreamReader = field(repr=False, compare=False)

    @property
    def lines(self) -> list[bytes]:
        return self.head.split(b"\r\n")


Answer = Callable[[Seen, asyncio.StreamWriter], Awaitable[bool]]


def reply(raw: bytes) -> Answer:
    """Answer every request with ``raw``; keep the connection."""

    async def answer(seen: Seen, writer: asyncio.StreamWriter) -> bool:
        writer.write(raw)
        return True

    return answer


OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 8\r\n\r\n{\"a\": 1}"


class Upstream:
    """A canned HTTP/1.1 server: ``answer`` writes the answer to each request it reads."""

    def __init__(self, answer: Answer, host: str = "127.0.0.1", tls: ssl.SSLContext | None = None) -> None:
        self.answer = answer
        self.host = host
        self.tls = tls
        self.seen: list[Seen] = []
        self.connections = 0
        self.ended = 0
        self.changed = asyncio.Event()
        self.writers: list[asyncio.StreamWriter] = []

    async def __aenter__(self) -> Upstream:
        self.server = await asyncio.start_server(self._handle, self.host, 0, ssl=self.tls)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()
        for writer in self.writers:
            writer.close()
        await self.server.wait_closed()

    def url(self, path: str = "/v1/x", scheme: str = "http", host: str | None = None) -> str:
        host = host or (f"[{self.host}]" if ":" in self.host else self.host)
        return f"{scheme}://{host}:{self.port}{path}"

    async def until(self, check: Callable[[], bool]) -> None:
        """Wait (at most 10 s) until ``check()`` holds."""
        async with asyncio.timeout(10):
            while not check():
                self.changed.clear()
                await self.changed.wait()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = self.connections
        self.connections += 1
        self.writers.append(writer)
        self.changed.set()
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                seen = Seen(conn, head, await reader.readexactly(length), reader)
                self.seen.append(seen)
                self.changed.set()
                if not await self.answer(seen, writer):
                    break
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            self.ended += 1
            self.changed.set()


@pytest.fixture
async def backend() -> AsyncIterator[NativeBackend]:
    b = NativeBackend()
    try:
        yield b
    finally:
        await b.aclose()


def req(url: str, *, body: dict[str, object] | None = None, stream: bool = False, method: str = "POST") -> ProviderRequest:
    return ProviderRequest(method=method, url=url, json_body=body, stream=stream)  # type: ignore[arg-type]


# ---------------------------------------------------------------------- requests and framing


async def test_request_head_and_body_as_sent(backend: NativeBackend) -> None:
    async with Upstream(reply(OK)) as up:
        r = await backend.send(req(up.url("/openai/x") + "?ignored=1", body={"q": "é"}), {"api-key": "k1"}, TIMEOUT)
        assert r.status_code == 200 and r.json() == {"a": 1} and r.headers["content-type"] == "application/json"
        [seen] = up.seen
        assert seen.lines[0] == b"POST /openai/x HTTP/1.1"  # params replace the query, as on the other backends
        names = {line.split(b":")[0].lower() for line in seen.lines[1:] if line}
        assert names == {b"host", b"accept", b"accept-encoding", b"content-type", b"content-length", b"api-key"}
        assert f"host: 127.0.0.1:{up.port}".encode() in seen.lines and b"accept-encoding: gzip, deflate" in seen.lines
        assert b"content-type: application/json" in seen.lines and b"user-agent" not in seen.head.lower()
        assert seen.body == '{"q":"é"}'.encode()
        r = await backend.send(ProviderRequest(method="GET", url=up.url(), params={"a": "b c"}), {}, TIMEOUT)
        assert up.seen[1].lines[0] == b"GET /v1/x?a=b+c HTTP/1.1" and up.seen[1].body == b""
        assert b"content-length" not in up.seen[1].head


@pytest.mark.parametrize(
    ("raw", "body"),
    [
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"a\r\n5\r\n\": 1}\r\n0\r\n\r\n", b'{"a": 1}'),
        (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", b"ok"),
        (b"HTTP/1.1 204 No Content\r\n\r\n", b""),
    ],
)
async def test_chunked_and_informational_answers(backend: NativeBackend, raw: bytes, body: bytes) -> None:
    async with Upstream(reply(raw)) as up:
        for _ in range(2):
            r = await backend.send(req(up.url()), {}, TIMEOUT)
            assert r.content == body and r.status_code in (200, 204)
        assert up.connections == 1  # framed answers keep the connection


async def test_body_read_until_close(backend: NativeBackend) -> None:
    async def answer(seen: Seen, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil ")
        await writer.drain()
        writer.write(b"the end")
        return False  # close: that ends the body

    async with Upstream(answer) as up:
        assert (await backend.send(req(up.url()), {}, TIMEOUT)).text == "until the end"
        assert (await backend.send(req(up.url()), {}, TIMEOUT)).text == "until the end"
        assert up.connections == 2


async def test_gzip_answer_is_decoded(backend: NativeBackend) -> None:
    import gzip

    packed = gzip.compress(b'{"z": 2}')
    raw = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n%s" % (len(packed), packed)
    async with Upstream(reply(raw)) as up:
        assert (await backend.send(req(up.url()), {}, TIMEOUT)).json() == {"z": 2}


async def test_connection_close_is_honoured(backend: NativeBackend) -> None:
    raw = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"
    async with Upstream(reply(raw)) as up:
        for _ in range(3):
            assert (await backend.send(req(up.url()), {}, TIMEOUT)).text == "ok"
        assert up.connections == 3 and [s.conn for s in up.seen] == [0, 1, 2]


async def test_header_injection_is_refused_before_anything_is_sent(backend: NativeBackend) -> None:
    async with Upstream(reply(OK)) as up:
        for headers in ({"api-key": "sekret-1234\r\nX-Evil: 1"}, {"X-Evil: 1\r\nx": "v"}, {"bad name": "v"}):
            with pytest.raises(httpx.LocalProtocolError) as caught:
                await backend.send(req(up.url()), headers, TIMEOUT)
            assert "sekret" not in str(caught.value)
        assert up.connections == 0


async def test_head_is_refused_clearly(backend: NativeBackend) -> None:
    with pytest.raises(httpx.UnsupportedProtocol, match="HEAD"):
        await backend.send(ProviderRequest.model_construct(method="HEAD", url="http://127.0.0.1:9/"), {}, TIMEOUT)


async def test_garbage_is_a_protocol_error(backend: NativeBackend) -> None:
    async with Upstream(reply(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")) as up:
        with pytest.raises(httpx.RemoteProtocolError):
            await backend.send(req(up.url()), {}, TIMEOUT)


# ---------------------------------------------------------------------- the pool


async def test_keep_alive_reuses_the_last_connection_first(backend: NativeBackend) -> None:
    gate = asyncio.Event()

    async def answer(seen: Seen, writer: asyncio.StreamWriter) -> bool:
        if seen.body == b'{"hold":true}':
            await gate.wait()
        writer.write(OK)
        return True

    async with Upstream(answer) as up:
        held = asyncio.ensure_future(backend.send(req(up.url(), body={"hold": True}), {}, TIMEOUT))
        await up.until(lambda: len(up.seen) == 1)
        await backend.send(req(up.url()), {}, TIMEOUT)  # a second connection: the first is busy
        gate.set()
        await held  # conn 0 goes back to the pool after conn 1
        for _ in range(3):
            await backend.send(req(up.url()), {}, TIMEOUT)
        assert [s.conn for s in up.seen] == [0, 1, 0, 0, 0]  # last in, first out


async def test_the_limit_queues_callers_in_order() -> None:
    backend = NativeBackend(limit=1)
    gate = asyncio.Event()

    async def answer(seen: Seen, writer: asyncio.StreamWriter) -> bool:
        if seen.body == b'{"n":0}':
            await gate.wait()
        writer.write(OK)
        return True

    try:
        async with Upstream(answer) as up:
            first = asyncio.ensure_future(backend.send(req(up.url(), body={"n": 0}), {}, TIMEOUT))
            await up.until(lambda: len(up.seen) == 1)
            rest = []
            for n in range(1, 5):
                rest.append(asyncio.ensure_future(backend.send(req(up.url(), body={"n": n}), {}, TIMEOUT)))
                await asyncio.sleep(0)
            gate.set()
            await asyncio.gather(first, *rest)
            assert [s.body for s in up.seen] == [b'{"n":%d}' % n for n in range(5)]  # in the order they came
            assert up.connections == 1
    finally:
        await backend.aclose()


async def test_a_waiter_that_gives_up_passes_its_turn_on() -> None:
    backend = NativeBackend(limit=1)
    gate = asyncio.Event()

    async def answer(seen: Seen, writer: asyncio.StreamWriter) -> bool:
        if seen.body == b'{"n":0}':
            await gate.wait()
        writer.write(OK)
        return True

    try:
        async with Upstream(answer) as up:
            first = asyncio.ensure_future(backend.send(req(up.url(), body={"n": 0}), {}, TIMEOUT))
            await up.until(lambda: len(up.seen) == 1)
            quitter = asyncio.ensure_future(backend.send(req(up.url(), body={"n": 1}), {}, TIMEOUT))
            patient = asyncio.ensure_future(backend.send(req(up.url(), body={"n": 2}), {}, TIMEOUT))
            await asyncio.sleep(0)
            quitter.cancel()
            gate.set()
            await asyncio.gather(first, patient)
            assert [s.body for s in up.seen] == [b'{"n":0}', b'{"n":2}']
    finally:
        await backend.aclose()


async def test_idle_connections_are_closed_after_the_keep_alive_time() -> None:
    backend = NativeBackend(keepalive=0.05)
    try:
        async with Upstream(reply(OK)) as up:
            await backend.send(req(up.url()), {}, TIMEOUT)
            await up.until(lambda: up.ended == 1)  # we closed it: the server read EOF
            await backend.send(req(up.url()), {}, TIMEOUT)
            assert up.connections == 2
    finally:
        await backend.aclose()


async def test_a_connection_the_server_closed_leaves_the_pool_at_once(backend: NativeBackend) -> None:
    async def answer(seen: Seen, writer: asyncio.StreamWriter) -> bool:
        writer.write(OK)
        return False  # close after answering (no "connection: close" said)

    async with Upstream(answer) as up:
        await backend.send(req(up.url()), {}, TIMEOUT)
        await up.until(lambda: up.ended == 1)
        [pool] = backend._pools.get(asyncio.get_running_loop()).values()  # type: ignore[union-attr]
        for _ in range(100):
            if not pool.idle:
                break
            await asyncio.sleep(0)
        assert pool.idle == [] and pool.conns == set()
        await backend.send(req(up.url()), {}, TIMEOUT)
        assert up.connections == 2


async def test_stale_reused_connection_is_retried_once_on_a_new_one(backend: NativeBackend) -> None:
    async def answer(seen: Seen, writer: asyncio.StreamWriter) -> bool:
        if seen.conn == 0 and seen.lines[0].startswith(b"DELETE"):
            return False  # read the request, then close without a byte of answer (as at keep-alive expiry)
        writer.write(OK)
        return True

    async with Upstream(answer) as up:
        await backend.send(req(up.url(), body={"n": 1}), {}, TIMEOUT)
        assert (await backend.send(req(up.url(), method="DELETE"), {}, TIMEOUT)).json() == {"a": 1}
        assert [(s.conn, s.lines[0][:6]) for s in up.seen] == [(0, b"POST /"), (0, b"DELETE"), (1, b"DELETE")]


async def test_a_post_the_upstream_read_is_not_resent_on_a_stale_connection(backend: NativeBackend) -> None:
    """Azure may be running a POST it read (and bill it): the transport decides, as with aiohttp."""

    async def answer(seen: Seen, writer: asyncio.StreamWriter) -> bool:
        if seen.conn == 0 and seen.body == b'{"n":2}':
            return False  # read the request, then close without a byte of answer
        writer.write(OK)
        return True

    async with Upstream(answer) as up:
        await backend.send(req(up.url(), body={"n": 1}), {}, TIMEOUT)
        with pytest.raises(httpx.ReadError, match="without answering"):
            await backend.send(req(up.url(), body={"n": 2}), {}, TIMEOUT)
        assert [(s.conn, s.body) for s in up.seen] == [(0, b'{"n":1}'), (0, b'{"n":2}')]


async def test_no_retry_on_a_new_connection_nor_after_answer_bytes(backend: NativeBackend) -> None:
    async def answer(seen: Seen, writer: asyncio.StreamWriter) -> bool:
        if seen.body == b'{"n":1}':
            writer.write(OK)
            return True
        if seen.body == b'{"n":2}':
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhal")  # cut short
        return False

    async with Upstream(answer) as up:
        with pytest.raises(httpx.ReadError, match="without answering"):
            await backend.send(req(up.url(), body={"n": 0}), {}, TIMEOUT)  # a new connection: not resent here
        await backend.send(req(up.url(), body={"n": 1}), {}, TIMEOUT)
        with pytest.raises(httpx.ReadError, match="before the end"):
            await backend.send(req(up.url(), body={"n": 2}), {}, TIMEOUT)  # reused, but bytes came: never resent
        assert [s.body for s in up.seen] == [b'{"n":0}', b'{"n":1}', b'{"n":2}']


async def test_unasked_bytes_spoil_an_idle_connection(backend: NativeBackend) -> None:
    async def answer(seen: Seen, writer: asyncio.StreamWriter) -> bool:
        writer.write(OK)
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstale")
        return True

    async with Upstream(answer) as up:
        await backend.send(req(up.url()), {}, TIMEOUT)
        await up.until(lambda: up.ended == 1)  # we closed it rather than read "stale" as the next answer
        assert (await backend.send(req(up.url()), {}, TIMEOUT)).json() == {"a": 1}
        assert up.connections == 2


async def test_bytes_after_a_whole_answer_keep_the_answer_but_not_the_connection(backend: NativeBackend) -> None:
    async with Upstream(reply(OK + b"garbage\r\n\r\n")) as up:
        for _ in range(2):
            assert (await backend.send(req(up.url()), {}, TIMEOUT)).json() == {"a": 1}
        assert up.connections == 2


async def test_cancelled_call_closes_its_connection(backend: NativeBackend) -> None:
    gate = asyncio.Event()

    async def answer(seen: Seen, writer: asyncio.StreamWriter) -> bool:
        if seen.conn == 0:
            await gate.wait()
        writer.write(OK)
        return True

    async with Upstream(answer) as up:
        call = asyncio.ensure_future(backend.send(req(up.url()), {}, TIMEOUT))
        await up.until(lambda: len(up.seen) == 1)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        gate.set()
        await up.until(lambda: up.ended == 1)  # never reused half-read
        await backend.send(req(up.url()), {}, TIMEOUT)
        assert [s.conn for s in up.seen] == [0, 1]


# ---------------------------------------------------------------------- streams


def _chunked(*pieces: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces)


STREAM_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"


async def test_stream_arrives_piece_by_piece_and_the_connection_is_reused(backend: NativeBackend) -> None:
    steps = [asyncio.Event() for _ in range(2)]

    async def answer(seen: Seen, writer: asyncio.StreamWriter) -> bool:
        writer.write(STREAM_HEAD + _chunked(b"data: 1\n\n"))
        await writer.drain()
        await steps[0].wait()
        writer.write(_chunked(b"data: 2\n\n") + b"0\r\n\r\n")
        return True

    async with Upstream(answer) as up:
        r = await backend.send(req(up.url(), stream=True), {}, TIMEOUT)
        pieces = r.aiter_bytes()
        assert await pieces.__anext__() == b"data: 1\n\n"  # before the upstream has finished
        steps[0].set()
        assert b"".join([p async for p in pieces]) == b"data: 2\n\n"
        await r.aclose()
        steps[0].clear()
        steps[0].set()
        r = await backend.send(req(up.url(), stream=True), {}, TIMEOUT)
        assert await r.aread() == b"data: 1\n\ndata: 2\n\n"
        assert up.connections == 1


async def test_stream_reader_closed_after_the_last_byte_keeps_the_connection(backend: NativeBackend) -> None:
    # The SSE reader stops at "data: [DONE]" and closes its generator: the answer was read whole.
    raw = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: 23\r\n\r\ndata: 1\n\ndata: [DONE]\n\n"
    async with Upstream(reply(raw)) as up:
        for _ in range(3):
            r = await backend.send(req(up.url(), stream=True), {}, TIMEOUT)
            chunks = r.stream.__aiter__()  # type: ignore[union-attr]
            assert (await chunks.__anext__()).endswith(b"[DONE]\n\n")
            await chunks.aclose()  # type: ignore[attr-defined]
            await r.aclose()
        assert up.connections == 1


async def test_stream_error_status_is_read_whole(backend: NativeBackend) -> None:
    raw = b"HTTP/1.1 429 Too Many Requests\r\nContent-Length: 11\r\n\r\n{\"e\": \"no\"}"
    async with Upstream(reply(raw)) as up:
        r = await backend.send(req(up.url(), stream=True), {}, TIMEOUT)
        assert r.status_code == 429 and r.json() == {"e": "no"}


async def test_unfinished_stream_closed_early_closes_its_connection(backend: NativeBackend) -> None:
    async def answer(seen: Seen, writer: asyncio.StreamWriter) -> bool:
        writer.write(STREAM_HEAD + _chunked(b"data: 1\n\n"))
        await seen.reader.read()  # until the client closes
        return False

    async with Upstream(answer) as up:
        r = await backend.send(req(up.url(), stream=True), {}, TIMEOUT)
        await r.aiter_bytes().__anext__()
        await r.aclose()
        await up.until(lambda: up.ended == 1)


async def test_cancelled_stream_reader_closes_the_connection(backend: NativeBackend) -> None:
    async def answer(seen: Seen, writer: asyncio.StreamWriter) -> bool:
        writer.write(STREAM_HEAD + _chunked(b"data: 1\n\n"))
        await seen.reader.read()  # until the client closes
        return False

    async with Upstream(answer) as up:
        r = await backend.send(req(up.url(), stream=True), {}, TIMEOUT)

        async def read() -> None:
            async for _ in r.aiter_bytes():
                pass

        task = asyncio.ensure_future(read())
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await up.until(lambda: up.ended == 1)


async def test_stream_idle_timeout_between_chunks(backend: NativeBackend) -> None:
    async def answer(seen: Seen, writer: asyncio.StreamWriter) -> bool:
        writer.write(STREAM_HEAD + _chunked(b"data: 1\n\n"))
        await seen.reader.read()  # until the client closes
        return False

    async with Upstream(answer) as up:
        r = await backend.send(req(up.url(), stream=True), {}, httpx.Timeout(0.2, connect=5))
        with pytest.raises(httpx.ReadTimeout):
            async for _ in r.aiter_bytes():
                pass
        await up.until(lambda: up.ended == 1)
        # idle=False: the caller's deadline bounds the call, no idle timeout of our own
        r = await backend.send(req(up.url(), stream=True), {}, httpx.Timeout(0.05, connect=5), idle=False)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.3):
                async for _ in r.aiter_bytes():
                    pass


async def test_idle_timeout_of_a_whole_answer(backend: NativeBackend) -> None:
    async def answer(seen: Seen, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab")  # then nothing
        await seen.reader.read()
        return False

    async with Upstream(answer) as up:
        with pytest.raises(httpx.ReadTimeout):
            await backend.send(req(up.url()), {}, httpx.Timeout(0.2, connect=5))
        await up.until(lambda: up.ended == 1)  # closed, never reused half-read


async def test_stream_flow_control_pauses_reading(backend: NativeBackend) -> None:
    block = b"x" * 65536

    async def answer(seen: Seen, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (len(block) * 64))
        for _ in range(64):
            writer.write(block)
            await writer.drain()
        return True

    async with Upstream(answer) as up:
        r = await backend.send(req(up.url(), stream=True), {}, TIMEOUT)
        await asyncio.sleep(0.2)  # the upstream sends as fast as it can; nobody reads
        [pool] = backend._pools.get(asyncio.get_running_loop()).values()  # type: ignore[union-attr]
        [conn] = pool.conns
        assert conn.paused and conn.parser.size < 4 * 65536 + 256 * 1024  # bounded: reading stopped
        total = sum([len(p) async for p in r.aiter_bytes()])
        assert total == len(block) * 64 and not conn.paused


# ---------------------------------------------------------------------- addresses, TLS, timeouts


async def test_ipv6_and_host_names(backend: NativeBackend) -> None:
    if not socket.has_ipv6:
        pytest.fail("this machine has no IPv6 loopback")
    async with Upstream(reply(OK), host="::1") as up:
        assert (await backend.send(req(up.url()), {}, TIMEOUT)).json() == {"a": 1}
        assert f"host: [::1]:{up.port}".encode() in up.seen[0].lines
    async with Upstream(reply(OK)) as up:
        assert (await backend.send(req(up.url(host="localhost")), {}, TIMEOUT)).json() == {"a": 1}


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    where = tmp_path_factory.mktemp("tls")
    cert, key = where / "cert.pem", where / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True)  # fmt: skip
    return cert, key


async def test_https(certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    trusting = ssl.create_default_context(cafile=str(cert))
    backend = NativeBackend(tls=trusting)
    default = NativeBackend()
    try:
        async with Upstream(reply(OK), tls=server_tls) as up:
            for host in ("localhost", "127.0.0.1"):
                r = await backend.send(req(up.url(scheme="https", host=host)), {"api-key": "k"}, TIMEOUT)
                assert r.json() == {"a": 1}
            assert up.connections == 2  # one pool per origin
            await backend.send(req(up.url(scheme="https", host="localhost")), {}, TIMEOUT)
            assert up.connections == 2
            with pytest.raises(httpx.ConnectError, match="SSLCertVerificationError"):  # the system's CAs refuse it
                await default.send(req(up.url(scheme="https", host="localhost")), {}, TIMEOUT)
    finally:
        await backend.aclose()
        await default.aclose()


async def test_connect_errors(backend: NativeBackend) -> None:
    with pytest.raises(httpx.ConnectError, match="refused"):
        await backend.send(req("http://user:pa55word@127.0.0.1:9/x"), {}, TIMEOUT)
    # A listener that never accepts, its backlog full: the handshake never completes.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        fillers = []
        try:
            for _ in range(4):
                s = socket.socket()
                s.setblocking(False)
                with contextlib.suppress(BlockingIOError):
                    s.connect(("127.0.0.1", port))
                fillers.append(s)
            with pytest.raises(httpx.ConnectTimeout):
                await backend.send(req(f"http://127.0.0.1:{port}/x"), {}, httpx.Timeout(5, connect=0.2))
        finally:
            for s in fillers:
                s.close()


async def test_transport_maps_native_failures_without_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    t = transport.Transport(async_backend="native")
    try:
        with pytest.raises(errors.APIConnectionError) as caught:
            await t.asend(req("http://user:pa55word@127.0.0.1:9/x"), None, timeout=5)
        assert "pa55word" not in str(caught.value)
        assert "Connection refused" in str(caught.value)
        assert not caught.value.request_sent
    finally:
        await t.aclose()


def test_pools_belong_to_their_event_loop() -> None:
    backend = NativeBackend()

    async def call(up_port: int) -> None:
        await backend.send(req(f"http://127.0.0.1:{up_port}/x"), {}, TIMEOUT)
        assert backend.sessions() >= 1

    async def main() -> None:
        async with Upstream(reply(OK)) as up:
            loop = asyncio.new_event_loop()
            try:  # another loop in another thread gets its own pool
                await asyncio.to_thread(loop.run_until_complete, call(up.port))
                await asyncio.to_thread(loop.run_until_complete, loop.shutdown_asyncgens())  # closes its pool
            finally:
                loop.close()
            await call(up.port)
            assert up.connections == 2
            await up.until(lambda: up.ended == 1)  # the finished loop's connection was closed
            await backend.aclose()
            await up.until(lambda: up.ended == 2)
            assert backend.sessions() == 0

    asyncio.run(main())


def test_import_modelyard_does_not_import_the_native_backend() -> None:
    import sys

    code = "import sys, modelyard, modelyard.transport; print(sorted(m for m in sys.modules if m.startswith(('modelyard._wire', 'modelyard._http1', 'httptools'))))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_on_uvloop() -> None:
    """The proxy runs on uvloop: its transports are not asyncio's classes."""
    import uvloop

    async def main() -> None:
        backend = NativeBackend()

        async def answer(seen: Seen, writer: asyncio.StreamWriter) -> bool:
            if seen.conn == 0 and seen.lines[0].startswith(b"GET"):
                return False  # the reused connection closes without answering: resent on a new one
            writer.write(STREAM_HEAD + _chunked(b"x" * 300_000, b"data: end\n\n") + b"0\r\n\r\n")
            return True

        try:
            async with Upstream(answer) as up:
                r = await backend.send(req(up.url(), body={"n": 0}, stream=True), {}, TIMEOUT)
                await asyncio.sleep(0.05)
                [pool] = backend._pools.get(asyncio.get_running_loop()).values()  # type: ignore[union-attr]
                assert next(iter(pool.conns)).paused  # flow control on uvloop's transport
                assert (await r.aread()).endswith(b"data: end\n\n")
                r = await backend.send(req(up.url(), method="GET"), {}, TIMEOUT)
                assert r.status_code == 200 and [s.conn for s in up.seen] == [0, 0, 1]
        finally:
            await backend.aclose()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main())
