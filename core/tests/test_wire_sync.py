"""The native sync backend (modelyard._wire_sync) against canned HTTP/1.1 servers on loopback."""

from __future__ import annotations

import contextlib
import gc
import gzip
import os
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import modelyard
import pytest
from modelyard import errors, transport
from modelyard._wire_sync import SyncNativeBackend
from modelyard.testing import KEY, Emulator
from modelyard.types import ProviderRequest

TIMEOUT = httpx.Timeout(10.0, connect=5.0)
WAIT = 10.0  # the longest a test waits for the server to see something (never reached when all is well)


@dataclass
class Seen:
    """One request as the server read it."""

    conn: int
    head: bytes
    body: bytes
    first: bytes = field(repr=False)  # what the server's first read of this request returned

    @property
    def lines(self) -> list[bytes]:
        return self.head.split(b"\r\n")


Answer = Callable[[Seen, socket.socket], bool]


def reply(raw: bytes) -> Answer:
    """Answer every request with ``raw``; keep the connection."""

    def answer(seen: Seen, sock: socket.socket) -> bool:
        sock.sendall(raw)
        return True

    return answer


OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 8\r\n\r\n{\"a\": 1}"
STREAM_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


class Upstream:
    """A canned HTTP/1.1 server on threads: ``answer`` writes the answer to each request it reads
    and says whether to keep the connection."""

    def __init__(self, answer: Answer, host: str = "127.0.0.1", tls: ssl.SSLContext | None = None,
                 reset_at_head: Callable[[int, bytes], bool] | None = None) -> None:  # fmt: skip
        self.answer = answer
        self.reset_at_head = reset_at_head  # (connection, head): reset the connection, the body unread
        self.tls = tls
        self.seen: list[Seen] = []
        self.connections = 0
        self.ended = 0
        self.names: list[str | None] = []  # the TLS server names (SNI) clients sent
        self.changed = threading.Condition()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.listener = socket.socket(family)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((host, 0))
        self.listener.listen(64)
        self.host = host
        self.port = self.listener.getsockname()[1]
        self.socks: list[socket.socket] = []
        if tls is not None:
            tls.sni_callback = lambda _sock, name, _ctx: self.names.append(name)  # type: ignore[assignment,func-returns-value]
        self.thread = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> Upstream:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        for sock in self.socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        self.thread.join(WAIT)

    def url(self, path: str = "/v1/x", scheme: str = "http", host: str | None = None) -> str:
        host = host or (f"[{self.host}]" if ":" in self.host else self.host)
        return f"{scheme}://{host}:{self.port}{path}"

    def until(self, check: Callable[[], bool]) -> None:
        """Wait (at most :data:`WAIT` seconds) until ``check()`` holds."""
        with self.changed:
            assert self.changed.wait_for(check, WAIT), "the server never saw it"

    def _note(self, what: Callable[[], None]) -> None:
        with self.changed:
            what()
            self.changed.notify_all()

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            if self.tls is not None:
                try:
                    sock = self.tls.wrap_socket(sock, server_side=True)
                except (OSError, ssl.SSLError):
                    sock.close()
                    continue
            self.socks.append(sock)
            conn = self.connections
            self._note(lambda: setattr(self, "connections", self.connections + 1))
            threading.Thread(target=self._handle, args=(sock, conn), daemon=True).start()

    def _handle(self, sock: socket.socket, conn: int) -> None:
        buffer = b""
        try:
            while True:
                first = b""
                while b"\r\n\r\n" not in buffer:
                    data = sock.recv(65536)
                    if not data:
                        return
                    first = first or data
                    buffer += data
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                if self.reset_at_head is not None and self.reset_at_head(conn, head):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    return
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                pieces = bytearray(buffer)  # (not bytes +=: a 32 MiB body would take quadratic time)
                while len(pieces) < length:
                    data = sock.recv(1 << 20)
                    if not data:
                        return
                    pieces += data
                body, buffer = bytes(pieces[:length]), bytes(pieces[length:])
                seen = Seen(conn, head, body, first)
                self._note(lambda seen=seen: self.seen.append(seen))  # type: ignore[misc]
                if not self.answer(seen, sock):
                    return
        except OSError:
            return
        finally:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
            self._note(lambda: setattr(self, "ended", self.ended + 1))


@pytest.fixture
def backend() -> Iterator[SyncNativeBackend]:
    b = SyncNativeBackend()
    try:
        yield b
    finally:
        b.close()


def req(url: str, *, body: dict[str, object] | None = None, stream: bool = False, method: str = "POST") -> ProviderRequest:
    return ProviderRequest(method=method, url=url, json_body=body, stream=stream)  # type: ignore[arg-type]


def send(backend: SyncNativeBackend, request: ProviderRequest, headers: dict[str, str] | None = None,
         timeout: httpx.Timeout = TIMEOUT, deadline: float | None = None) -> httpx.Response:  # fmt: skip
    return backend.send(request, headers or {}, timeout, deadline)


# ---------------------------------------------------------------------- requests and framing


def test_request_head_and_body_in_one_send(backend: SyncNativeBackend) -> None:
    with Upstream(reply(OK)) as up:
        r = send(backend, req(up.url("/openai/x") + "?ignored=1", body={"q": "é"}), {"api-key": "k1"})
        assert r.status_code == 200 and r.json() == {"a": 1} and r.headers["content-type"] == "application/json"
        [seen] = up.seen
        assert seen.lines[0] == b"POST /openai/x HTTP/1.1"  # params replace the query, as on the other backends
        names = {line.split(b":")[0].lower() for line in seen.lines[1:] if line}
        assert names == {b"host", b"accept", b"accept-encoding", b"content-type", b"content-length", b"api-key"}
        assert f"host: 127.0.0.1:{up.port}".encode() in seen.lines and b"accept-encoding: gzip, deflate" in seen.lines
        assert seen.body == '{"q":"é"}'.encode()
        assert seen.first.endswith(seen.body)  # head and body left in one write: the server's first read has both
        r = send(backend, ProviderRequest(method="GET", url=up.url(), params={"a": "b c"}))
        assert up.seen[1].lines[0] == b"GET /v1/x?a=b+c HTTP/1.1" and up.seen[1].body == b""
        assert b"content-length" not in up.seen[1].head and up.seen[1].conn == 0  # the same connection
        send(backend, req(up.url(), method="DELETE"))
        assert b"content-length" not in up.seen[2].head


@pytest.mark.parametrize(
    ("raw", "body"),
    [
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"a\r\n5\r\n\": 1}\r\n0\r\n\r\n", b'{"a": 1}'),
        (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", b"ok"),
        (b"HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", b"ok"),
        (b"HTTP/1.1 204 No Content\r\n\r\n", b""),
    ],
)
def test_chunked_and_informational_answers(backend: SyncNativeBackend, raw: bytes, body: bytes) -> None:
    with Upstream(reply(raw)) as up:
        for _ in range(2):
            r = send(backend, req(up.url()))
            assert r.content == body and r.status_code in (200, 204) and "link" not in r.headers
        assert up.connections == 1  # framed answers keep the connection


def test_body_read_until_close(backend: SyncNativeBackend) -> None:
    def answer(seen: Seen, sock: socket.socket) -> bool:
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil ")
        sock.sendall(b"the end")
        return False  # close: that ends the body

    with Upstream(answer) as up:
        assert send(backend, req(up.url())).text == "until the end"
        assert send(backend, req(up.url())).text == "until the end"
        assert up.connections == 2


def test_gzip_answer_is_decoded(backend: SyncNativeBackend) -> None:
    packed = gzip.compress(b'{"z": 2}')
    raw = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n%s" % (len(packed), packed)
    with Upstream(reply(raw)) as up:
        assert send(backend, req(up.url())).json() == {"z": 2}


def test_connection_close_is_honoured(backend: SyncNativeBackend) -> None:
    raw = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"
    with Upstream(reply(raw)) as up:
        for _ in range(3):
            assert send(backend, req(up.url())).text == "ok"
        assert up.connections == 3 and [s.conn for s in up.seen] == [0, 1, 2]


def test_header_injection_is_refused_before_anything_is_sent(backend: SyncNativeBackend) -> None:
    with Upstream(reply(OK)) as up:
        for headers in ({"api-key": "sekret-1234\r\nX-Evil: 1"}, {"X-Evil: 1\r\nx": "v"}, {"bad name": "v"}):
            with pytest.raises(httpx.LocalProtocolError) as caught:
                send(backend, req(up.url()), headers)
            assert "sekret" not in str(caught.value)
        assert up.connections == 0


def test_head_is_refused_clearly(backend: SyncNativeBackend) -> None:
    with Upstream(reply(OK)) as up:
        with pytest.raises(httpx.UnsupportedProtocol, match="'HEAD' requests are not supported"):
            send(backend, ProviderRequest.model_construct(method="HEAD", url=up.url()))
        assert up.connections == 0


def test_garbage_is_a_protocol_error(backend: SyncNativeBackend) -> None:
    with Upstream(reply(b"SMTP ready\r\n\r\n")) as up:
        with pytest.raises(httpx.RemoteProtocolError):
            send(backend, req(up.url()))
        up.until(lambda: up.ended == 1)  # the connection was dropped, not pooled


# ---------------------------------------------------------------------- the pool


def test_keep_alive_reuses_the_last_connection_first(backend: SyncNativeBackend) -> None:
    def answer(seen: Seen, sock: socket.socket) -> bool:
        if seen.body == b'{"stream":true}':
            sock.sendall(STREAM_HEAD + chunk(b"data: 1\n\n"))
            gate.wait(WAIT)
            sock.sendall(b"0\r\n\r\n")
        else:
            sock.sendall(OK)
        return True

    gate = threading.Event()
    with Upstream(answer) as up:
        streamed = send(backend, req(up.url(), body={"stream": True}, stream=True))  # holds connection 0
        send(backend, req(up.url()))  # opens connection 1, which goes back to the pool
        gate.set()
        assert streamed.read() == b"data: 1\n\n"  # connection 0 back last
        send(backend, req(up.url()))
        send(backend, req(up.url()))
        assert [s.conn for s in up.seen] == [0, 1, 0, 0]  # last in, first out


def test_the_limit_makes_callers_wait_then_hands_over_a_connection() -> None:
    backend = SyncNativeBackend(limit=1)

    def answer(seen: Seen, sock: socket.socket) -> bool:
        if seen.body == b'{"stream":true}':
            sock.sendall(STREAM_HEAD + chunk(b"data: 1\n\n"))
            gate.wait(WAIT)
            sock.sendall(b"0\r\n\r\n")
        else:
            sock.sendall(OK)
        return True

    gate = threading.Event()
    try:
        with Upstream(answer) as up:
            streamed = send(backend, req(up.url(), body={"stream": True}, stream=True))
            with pytest.raises(httpx.PoolTimeout):  # the one connection is busy
                send(backend, req(up.url()), timeout=httpx.Timeout(5, pool=0.05))
            with ThreadPoolExecutor(1) as pool:
                waiting = pool.submit(send, backend, req(up.url()))
                with backend._pools[next(iter(backend._pools))].cond:  # the caller waits for the connection
                    assert backend._pools[next(iter(backend._pools))].cond.wait_for(
                        lambda: backend._pools[next(iter(backend._pools))].waiting == 1, WAIT)  # fmt: skip
                gate.set()
                assert streamed.read() == b"data: 1\n\n"
                assert waiting.result(WAIT).json() == {"a": 1}
            assert up.connections == 1
    finally:
        backend.close()


def test_idle_connections_past_the_keep_alive_time_are_closed_when_found() -> None:
    expiring = SyncNativeBackend(keepalive=0.0)  # every idle connection is too old when next taken
    keeping = SyncNativeBackend(keepalive=60.0)
    try:
        with Upstream(reply(OK)) as up:
            send(expiring, req(up.url()))
            send(expiring, req(up.url()))
            assert up.connections == 2
            up.until(lambda: up.ended == 1)  # the expired one was closed, not left open
            send(keeping, req(up.url()))
            send(keeping, req(up.url()))
            assert up.connections == 3
    finally:
        expiring.close()
        keeping.close()


def test_a_connection_the_server_closed_while_idle_is_not_used(backend: SyncNativeBackend) -> None:
    raw = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    with Upstream(lambda seen, sock: sock.sendall(raw) or False) as up:  # answers, then closes
        send(backend, req(up.url()))
        up.until(lambda: up.ended == 1)
        assert send(backend, req(up.url(), body={"n": 2})).text == "ok"
        assert [s.conn for s in up.seen] == [0, 1]


def test_idle_connections_are_reused_with_descriptors_past_select_s_limit(backend: SyncNativeBackend) -> None:
    """A busy process's sockets get descriptors past 1023, where select() refuses them."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(2048, hard), hard))
    fillers = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]  # the next sockets land past 1023
    try:
        with Upstream(reply(OK)) as up:
            for _ in range(3):
                assert send(backend, req(up.url())).json() == {"a": 1}
            [pool] = backend._pools.values()
            assert pool.idle[0].sock.fileno() > 1023
            assert up.connections == 1  # reused each time, not seen as spoiled
    finally:
        for fd in fillers:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_unasked_bytes_spoil_an_idle_connection(backend: SyncNativeBackend) -> None:
    sent = threading.Event()

    def answer(seen: Seen, sock: socket.socket) -> bool:
        sock.sendall(OK)
        if seen.conn == 0:
            time.sleep(0.05)  # after the client took the answer
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstale")
            sent.set()
        return True

    with Upstream(answer) as up:
        assert send(backend, req(up.url())).json() == {"a": 1}
        assert sent.wait(WAIT)
        time.sleep(0.05)
        assert send(backend, req(up.url())).json() == {"a": 1}  # never the stale bytes
        assert [s.conn for s in up.seen] == [0, 1]


def test_a_get_on_a_stale_reused_connection_is_resent_once_on_a_new_one_a_post_is_not(backend: SyncNativeBackend) -> None:
    # The server reads the second request on the reused connection, then closes without a word:
    # what a server that timed the connection out at that moment does. A GET is safe to send
    # again; a POST may be running upstream (and billed): the transport decides (retry_on_timeout).
    def answer(seen: Seen, sock: socket.socket) -> bool:
        if seen.conn == 0 and seen.body != b'{"n":0}':
            return False
        sock.sendall(OK)
        return True

    with Upstream(answer) as up:
        send(backend, req(up.url(), body={"n": 0}))
        assert send(backend, req(up.url(), method="GET")).json() == {"a": 1}
        assert [(s.conn, s.lines[0][:4]) for s in up.seen] == [(0, b"POST"), (0, b"GET "), (1, b"GET ")]
    with Upstream(answer) as up:
        send(backend, req(up.url(), body={"n": 0}))
        with pytest.raises(httpx.ReadError, match="without answering"):
            send(backend, req(up.url(), body={"n": 1}))
        assert [(s.conn, s.body) for s in up.seen] == [(0, b'{"n":0}'), (0, b'{"n":1}')]


def test_a_post_that_could_not_be_sent_whole_is_resent_on_a_new_connection(backend: SyncNativeBackend) -> None:
    # The server resets the reused connection at the head of the second request, its body unread:
    # the client's send fails, the upstream never had the request.
    with Upstream(reply(OK), reset_at_head=lambda conn, head: conn == 0 and b"content-length: 7" not in head) as up:
        send(backend, req(up.url(), body={"n": 0}))  # {"n":0} is 7 bytes
        big = {"x": "a" * (32 << 20)}  # more than the socket buffers hold: the send is cut off
        assert send(backend, req(up.url(), body=big)).json() == {"a": 1}
        assert [s.conn for s in up.seen] == [0, 1] and len(up.seen[1].body) > 32 << 20


def test_no_retry_on_a_new_connection_nor_after_answer_bytes(backend: SyncNativeBackend) -> None:
    def silent(seen: Seen, sock: socket.socket) -> bool:
        return False

    with Upstream(silent) as up:
        with pytest.raises(httpx.ReadError, match="without answering"):
            send(backend, req(up.url()))
        assert len(up.seen) == 1  # a fresh connection: not resent

    def half(seen: Seen, sock: socket.socket) -> bool:
        if seen.body == b'{"n":0}':
            sock.sendall(OK)
            return True
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        return False

    with Upstream(half) as up:
        send(backend, req(up.url(), body={"n": 0}))
        with pytest.raises(httpx.ReadError, match="before the end"):
            send(backend, req(up.url(), body={"n": 1}))
        assert len(up.seen) == 2  # answer bytes came: not resent


# ---------------------------------------------------------------------- streams


def test_stream_is_read_as_the_caller_iterates_and_the_connection_is_reused(backend: SyncNativeBackend) -> None:
    gate = threading.Event()

    def answer(seen: Seen, sock: socket.socket) -> bool:
        if seen.body == b'{"stream":true}':
            sock.sendall(STREAM_HEAD + chunk(b"data: 1\n\n"))
            gate.wait(WAIT)  # the rest only once the caller has the first event
            sock.sendall(chunk(b"data: 2\n\n") + b"0\r\n\r\n")
        else:
            sock.sendall(OK)
        return True

    with Upstream(answer) as up:
        r = send(backend, req(up.url(), body={"stream": True}, stream=True))
        assert r.status_code == 200 and r.headers["content-type"] == "text/event-stream"
        pieces = r.iter_bytes()
        assert next(pieces) == b"data: 1\n\n"
        gate.set()
        assert list(pieces) == [b"data: 2\n\n"]
        send(backend, req(up.url()))
        assert [s.conn for s in up.seen] == [0, 0]


def test_stream_error_status_is_read_whole(backend: SyncNativeBackend) -> None:
    raw = b"HTTP/1.1 429 Too Many Requests\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk(b'{"error": 1}') + b"0\r\n\r\n"
    with Upstream(reply(raw)) as up:
        r = send(backend, req(up.url(), stream=True))
        assert r.status_code == 429 and r.is_stream_consumed is False and r.content == b'{"error": 1}'
        send(backend, req(up.url()))
        assert up.connections == 1


def test_unfinished_stream_closed_early_closes_its_connection(backend: SyncNativeBackend) -> None:
    def answer(seen: Seen, sock: socket.socket) -> bool:
        sock.sendall(STREAM_HEAD + chunk(b"data: 1\n\n"))  # never ends
        return True

    with Upstream(answer) as up:
        r = send(backend, req(up.url(), stream=True))
        assert next(r.iter_bytes()) == b"data: 1\n\n"
        r.close()
        up.until(lambda: up.ended == 1)
        r = send(backend, req(up.url(), stream=True))
        r.close()  # before reading anything
        up.until(lambda: up.ended == 2)
        assert up.connections == 2


def test_a_stream_dropped_unread_frees_its_connection_and_its_place() -> None:
    backend = SyncNativeBackend(limit=1)

    def answer(seen: Seen, sock: socket.socket) -> bool:
        if seen.body:
            sock.sendall(OK)
        else:
            sock.sendall(STREAM_HEAD + chunk(b"data: 1\n\n"))  # never ends
        return True

    quick = httpx.Timeout(5, pool=1)
    try:
        with Upstream(answer) as up:
            r = send(backend, req(up.url(), stream=True))
            del r  # neither read nor closed (a binary answer the caller forgot)
            gc.collect()
            up.until(lambda: up.ended == 1)  # its socket was closed, not left to the collector's warning
            assert send(backend, req(up.url(), body={"n": 1}), timeout=quick).json() == {"a": 1}  # its place is free
            pieces = send(backend, req(up.url(), stream=True)).iter_bytes()
            assert next(pieces) == b"data: 1\n\n"
            del pieces  # left half-read
            gc.collect()
            up.until(lambda: up.ended == 2)
            assert send(backend, req(up.url(), body={"n": 2}), timeout=quick).json() == {"a": 1}
    finally:
        backend.close()


def test_stream_idle_timeout_between_chunks(backend: SyncNativeBackend) -> None:
    stop = threading.Event()

    def answer(seen: Seen, sock: socket.socket) -> bool:
        sock.sendall(STREAM_HEAD + chunk(b"data: 1\n\n"))
        stop.wait(WAIT)  # then silence
        return False

    with Upstream(answer) as up:
        # The deadline has passed once the head is in: the body gets the idle timeout instead.
        r = send(backend, req(up.url(), stream=True), timeout=httpx.Timeout(0.3), deadline=time.monotonic() + 5)
        pieces = r.iter_bytes()
        assert next(pieces) == b"data: 1\n\n"
        with pytest.raises(httpx.ReadTimeout):
            next(pieces)
        stop.set()
        up.until(lambda: up.ended == 1)


def test_whole_answer_deadline_bounds_a_dripping_body(backend: SyncNativeBackend) -> None:
    stop = threading.Event()

    def answer(seen: Seen, sock: socket.socket) -> bool:
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
        while not stop.wait(0.05):
            sock.sendall(b"x")  # each byte well within the read timeout
        return False

    with Upstream(answer) as up:
        with pytest.raises(httpx.ReadTimeout):
            send(backend, req(up.url()), timeout=httpx.Timeout(5), deadline=time.monotonic() + 0.5)
        stop.set()


def test_many_threads_share_the_pools(backend: SyncNativeBackend) -> None:
    def answer(seen: Seen, sock: socket.socket) -> bool:
        n = seen.body.decode()
        if b'"stream":true' in seen.body:
            sock.sendall(STREAM_HEAD + chunk(f"data: {n}\n\n".encode()) + chunk(b"data: end\n\n") + b"0\r\n\r\n")
        else:
            body = n.encode()
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        return True

    def one(i: int) -> None:
        stream = i % 3 == 0
        r = send(backend, req(up.url(), body={"i": i, "stream": stream}, stream=stream))
        expected = f'{{"i":{i},"stream":{str(stream).lower()}}}'
        if stream:
            assert r.read() == f"data: {expected}\n\ndata: end\n\n".encode()
        else:
            assert r.text == expected

    with Upstream(answer) as up, ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(400)))
        assert len(up.seen) == 400 and up.connections <= 8


def test_a_forked_child_starts_with_no_connections(backend: SyncNativeBackend) -> None:
    with Upstream(reply(OK)) as up:
        send(backend, req(up.url(), body={"who": "parent"}))
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: one call, its result down the pipe, and out
            code = 1
            try:
                os.write(write, send(backend, req(up.url(), body={"who": "child"})).content)
                code = 0
            finally:
                os._exit(code)
        os.close(write)
        _, status = os.waitpid(pid, 0)
        with os.fdopen(read, "rb") as answer:
            assert answer.read() == b'{"a": 1}' and os.waitstatus_to_exitcode(status) == 0
        send(backend, req(up.url(), body={"who": "parent"}))
        # the child opened its own connection; the parent's stayed open and its own
        assert [(s.conn, s.body) for s in up.seen] == [(0, b'{"who":"parent"}'), (1, b'{"who":"child"}'), (0, b'{"who":"parent"}')]


# ---------------------------------------------------------------------- connecting


def test_ipv6_and_host_names(backend: SyncNativeBackend) -> None:
    if not socket.has_ipv6:
        pytest.fail("this machine has no IPv6 loopback")
    with Upstream(reply(OK), host="::1") as up:
        assert send(backend, req(up.url())).json() == {"a": 1}
        assert f"host: [::1]:{up.port}".encode() in up.seen[0].lines
    with Upstream(reply(OK)) as up:
        assert send(backend, req(up.url(host="localhost"))).json() == {"a": 1}


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    where = tmp_path_factory.mktemp("tls")
    cert, key = where / "cert.pem", where / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True)  # fmt: skip
    return cert, key


def test_https_with_sni_and_the_default_context(certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    trusting = SyncNativeBackend(tls=ssl.create_default_context(cafile=str(cert)))
    default = SyncNativeBackend()
    try:
        with Upstream(reply(OK), tls=server_tls) as up:
            for host in ("localhost", "127.0.0.1"):
                r = send(trusting, req(up.url(scheme="https", host=host), body={"a": 1}), {"api-key": "k"})
                assert r.json() == {"a": 1}
            assert up.connections == 2  # one pool per origin
            r = send(trusting, req(up.url(scheme="https", host="localhost"), stream=True))
            assert r.read() == b'{"a": 1}'
            assert up.connections == 2  # reused over TLS
            assert up.names == ["localhost", None]  # SNI carries the host name (never an address)
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):  # the system's CAs refuse it
                send(default, req(up.url(scheme="https", host="localhost")))
    finally:
        trusting.close()
        default.close()


def test_connect_errors(backend: SyncNativeBackend) -> None:
    with pytest.raises(httpx.ConnectError, match="refused") as caught:
        send(backend, req("http://user:pa55word@127.0.0.1:9/x"))
    assert "pa55word" not in str(caught.value) and "127.0.0.1" not in str(caught.value)
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
                send(backend, req(f"http://127.0.0.1:{port}/x"), timeout=httpx.Timeout(5, connect=0.2))
            with pytest.raises(httpx.ConnectTimeout):  # the attempt's deadline bounds connecting too
                send(backend, req(f"http://127.0.0.1:{port}/x"), deadline=time.monotonic() + 0.2)
        finally:
            for s in fillers:
                s.close()


# ---------------------------------------------------------------------- through the transport


def test_transport_maps_native_failures_without_secrets() -> None:
    t = transport.Transport(sync_backend="native")
    try:
        with pytest.raises(errors.APIConnectionError) as caught:
            t.send(req("http://user:pa55word@127.0.0.1:9/x"), None, timeout=5)
        assert "pa55word" not in str(caught.value) and "Connection refused" in str(caught.value)
        assert not caught.value.request_sent
        assert "pa55word" not in repr(t._native_sync)
    finally:
        t.close()


def test_transport_sends_userinfo_as_basic_auth_and_checks_its_settings() -> None:
    with Upstream(reply(OK)) as up:
        t = transport.Transport(sync_backend="native")
        try:
            t.send(req(up.url().replace("http://", "http://user:pa55@")), None, timeout=5)
            assert b"Authorization: Basic dXNlcjpwYTU1" in up.seen[0].lines  # user:pa55, never in the URL
            assert b"pa55" not in up.seen[0].lines[0]
            assert b"content-length: 0" in up.seen[0].lines  # a POST without a body says so
        finally:
            t.close()
    unlimited = transport.Transport(sync_backend="native", limits=httpx.Limits(max_connections=None, max_keepalive_connections=None,
                                                                              keepalive_expiry=None))  # fmt: skip
    assert unlimited._native_sync is not None and unlimited._native_sync._max_idle > 1000 and unlimited._native_sync._keepalive > 1e9
    limited = transport.Transport(sync_backend="native", limits=httpx.Limits(max_connections=3, max_keepalive_connections=2))
    assert limited._native_sync is not None and (limited._native_sync._limit, limited._native_sync._max_idle) == (3, 2)
    with pytest.raises(ValueError, match="sync_backend must be 'httpx' or 'native'"):
        transport.Transport(sync_backend="requests")


def test_sdk_calls_uploads_and_a_given_transport_on_native(api_base: str, emulator: Emulator) -> None:
    t = transport.Transport(sync_backend="native")
    previous = transport.set_transport(t)
    kw = {"api_base": api_base, "api_key": KEY, "api_version": "2024-10-21"}
    try:
        r = modelyard.completion(model="azure/gpt-4o", messages=[{"role": "user", "content": "hi"}], **kw)
        assert r.choices[0].message.content.endswith("You said: hi")  # type: ignore[union-attr]
        assert t._sync == {}  # no httpx client was made for it
        line = b'{"custom_id": "1", "method": "POST", "url": "/chat/completions", "body": {"model": "gpt-4o", "messages": []}}\n'
        uploaded = modelyard.create_file(file=("rows.jsonl", line), purpose="batch", **kw)  # multipart: httpx
        assert uploaded.id and len(t._sync) == 1
    finally:
        transport.set_transport(previous)
        t.close()
    seen: list[httpx.Request] = []
    mocked = transport.Transport(sync_backend="native", transport=httpx.MockTransport(lambda r: seen.append(r) or httpx.Response(204)))
    assert mocked._native_sync is None  # a given transport wins
    assert mocked.send(req("http://127.0.0.1:9/x"), None, timeout=5).status_code == 204 and len(seen) == 1


def test_import_modelyard_does_not_import_the_native_sync_backend() -> None:
    code = "import sys, modelyard, modelyard.transport; print(sorted(m for m in sys.modules if m.startswith(('modelyard._wire', 'httptools'))))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
