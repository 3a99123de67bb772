"""HTTP/1.1 framing shared by the native clients: URLs, request heads, header checks, responses."""

from __future__ import annotations

import gzip
import json
import os
import ssl
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from modelyard._http1 import (
    InvalidHeader,
    Origin,
    ResponseParser,
    Target,
    build_response,
    check_headers,
    default_tls,
    encode_json,
    error_reason,
    request_bytes,
    request_head,
    split_url,
)


def test_split_url_fills_in_the_port_and_the_host_header() -> None:
    assert split_url("https://res.openai.azure.com/openai/x", {"api-version": "1"}) == Target(
        Origin("https", "res.openai.azure.com", 443, "res.openai.azure.com"), "/openai/x?api-version=1"
    )
    assert split_url("http://127.0.0.1:8080/a b") == Target(Origin("http", "127.0.0.1", 8080, "127.0.0.1:8080"), "/a%20b")
    assert split_url("http://[::1]:9/x") == Target(Origin("http", "::1", 9, "[::1]:9"), "/x")
    assert split_url("http://[::1]:80/").origin.host_header == "[::1]"  # the scheme's default port is not written
    assert split_url("https://h").path == "/"
    assert split_url("https://h").origin.tls and not split_url("http://h").origin.tls


def test_split_url_takes_params_and_drops_userinfo_and_fragment() -> None:
    # params are the query, as on the httpx and aiohttp backends (httpx.URL(url, params=...)).
    target = split_url("http://user:pa55word@h:1/p?a=1#frag", {"b": "x y", "c": "é"})
    assert target == Target(Origin("http", "h", 1, "h:1"), "/p?b=x+y&c=%C3%A9")
    assert split_url("http://h/p?a=1").path == "/p"
    assert str(httpx.URL("http://h/p?a=1", params=None)) == "http://h/p"  # what the other backends send
    assert "pa55word" not in repr(target)
    assert split_url("http://bücher.example/").origin.host == "xn--bcher-kva.example"  # IDNA for DNS and SNI


def test_split_url_refuses_other_schemes_and_no_host() -> None:
    with pytest.raises(httpx.UnsupportedProtocol, match="http or https"):
        split_url("ftp://h/x")
    with pytest.raises(httpx.InvalidURL):
        split_url("http:///x")


@pytest.mark.parametrize(
    ("headers", "named"),
    [
        ({"x-a": "ok", "api-key": "sekret\r\nx-evil: 1"}, "'api-key'"),
        ({"api-key": "sekret\nx"}, "'api-key'"),
        ({"api-key": "sek\x00ret"}, "'api-key'"),
        ({"x-evil: 1\r\nx-b": "v"}, "is not a valid HTTP header name"),
        ({"bad name": "v"}, "'bad name'"),
        ({"": "v"}, "is not a valid HTTP header name"),
        ({"x(y)": "v"}, "'x(y)'"),
    ],
)
def test_header_injection_is_refused_without_showing_the_value(headers: dict[str, str], named: str) -> None:
    with pytest.raises(InvalidHeader, match=None) as caught:
        check_headers(headers)
    assert named in str(caught.value)
    assert "sekret" not in str(caught.value) and "sek" not in str(caught.value)
    assert isinstance(caught.value, httpx.LocalProtocolError)  # maps as httpx's own refusal does


def test_valid_headers_pass() -> None:
    check_headers({"api-key": "abc def\ttab", "X-Ms-Client-Request-Id": "1", "a!#$%&'*+-.^_`|~9": "é"})


def test_request_head_adds_host_defaults_and_body_framing() -> None:
    target = split_url("http://127.0.0.1:9000/v1/x", {"q": "1"})
    head = request_head("POST", target, {"api-key": "k"}, b'{"a":1}', "application/json")
    assert head == (
        b"POST /v1/x?q=1 HTTP/1.1\r\nhost: 127.0.0.1:9000\r\naccept: */*\r\naccept-encoding: gzip, deflate\r\n"
        b"content-type: application/json\r\ncontent-length: 7\r\napi-key: k\r\n\r\n"
    )


def test_request_head_lets_the_caller_set_host_accept_and_content_type() -> None:
    target = split_url("http://h/")
    head = request_head("POST", target, {"Host": "other", "Accept": "text/event-stream", "Content-Type": "x/y",
                                         "Content-Length": "99"}, b"ab", "application/json")  # fmt: skip
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST / HTTP/1.1"
    assert b"host: h" not in lines and b"Host: other" in lines
    assert b"accept: */*" not in lines and b"Accept: text/event-stream" in lines and b"accept-encoding: gzip, deflate" in lines
    assert b"Content-Type: x/y" in lines and b"content-type: application/json" not in lines
    assert b"content-length: 2" in lines and b"Content-Length: 99" not in lines  # the body's own length wins
    assert request_head("GET", target, {}) == b"GET / HTTP/1.1\r\nhost: h\r\naccept: */*\r\naccept-encoding: gzip, deflate\r\n\r\n"


def test_encode_json_is_compact_utf8_and_refuses_nan() -> None:
    assert encode_json({"a": "é", "b": [1, 2.5]}) == '{"a":"é","b":[1,2.5]}'.encode()
    with pytest.raises(ValueError):
        encode_json({"a": float("nan")})


@settings(max_examples=200, deadline=None)
@given(body=st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
))  # fmt: skip
def test_encode_json_gives_what_json_dumps_gives(body: Any) -> None:
    assert encode_json(body) == json.dumps(body, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def test_encode_json_after_a_failure_encodes_the_same_objects_again() -> None:
    # The encoder is kept between calls; a failed call must not leave the objects it was in
    # marked as being encoded (a later call would see a circular reference that is not there).
    body: dict[str, Any] = {"messages": [{"role": "user", "content": float("inf")}], "n": object()}
    for _ in range(2):
        with pytest.raises(ValueError, match="Out of range float"):
            encode_json(body)
    body["messages"][0]["content"] = "hi"
    with pytest.raises(TypeError, match="not JSON serializable"):
        encode_json(body)
    del body["n"]
    assert encode_json(body) == b'{"messages":[{"role":"user","content":"hi"}]}'
    looped: list[Any] = []
    looped.append(looped)
    with pytest.raises(ValueError, match="Circular reference"):
        encode_json(looped)


def _parse(*pieces: bytes) -> ResponseParser:
    parser = ResponseParser()
    for piece in pieces:
        parser.feed(piece)
    return parser


def test_content_length_response_byte_by_byte() -> None:
    raw = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello"
    parser = _parse(*(raw[i : i + 1] for i in range(len(raw))))
    assert (parser.status, parser.complete, parser.keep_alive) == (200, True, True)
    assert parser.headers == [(b"Content-Length", b"5"), (b"X-A", b"b")]
    assert b"".join(parser.body) == b"hello"


def test_chunked_response() -> None:
    parser = _parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel", b"lo\r\n1\r\n!\r\n0\r\n\r\n")
    assert parser.complete and parser.keep_alive and b"".join(parser.body) == b"hello!"


def test_partial_response_is_not_complete_and_eof_cuts_it() -> None:
    parser = _parse(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello")
    assert parser.head_done and not parser.complete
    assert parser.eof() is False
    assert not ResponseParser().eof()  # nothing read at all


def test_body_until_close_completes_at_eof_and_is_not_reused() -> None:
    parser = _parse(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nsome", b" more")
    assert parser.head_done and not parser.complete
    assert parser.eof() is True
    assert parser.complete and not parser.keep_alive and b"".join(parser.body) == b"some more"


def test_informational_answers_are_skipped() -> None:
    parser = _parse(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n",
                    b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok")  # fmt: skip
    assert (parser.status, parser.headers, parser.complete) == (201, [(b"Content-Length", b"2")], True)


def test_connection_close_and_http10_are_not_kept_alive() -> None:
    assert not _parse(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n").keep_alive
    assert not _parse(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n").keep_alive
    assert _parse(b"HTTP/1.1 204 No Content\r\n\r\n").keep_alive  # no body by definition


def test_bytes_after_a_complete_response_spoil_the_connection() -> None:
    parser = _parse(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n")
    assert parser.complete and not parser.keep_alive
    with pytest.raises(httpx.RemoteProtocolError, match="after the end"):
        parser.feed(b"more")


def test_a_whole_second_response_in_the_same_read_leaves_the_answer_as_read() -> None:
    parser = _parse(
        b"HTTP/1.1 200 OK\r\nX-A: 1\r\nContent-Length: 2\r\n\r\nok"
        b"HTTP/1.1 500 Oops\r\nX-B: 2\r\nContent-Length: 3\r\n\r\nbad"
    )
    assert (parser.status, parser.headers, b"".join(parser.body)) == (200, [(b"X-A", b"1"), (b"Content-Length", b"2")], b"ok")
    assert parser.complete and not parser.keep_alive  # the connection is spoiled, the answer is not


def test_request_bytes_says_an_empty_body_of_a_post_and_none_of_a_get() -> None:
    target = split_url("http://h/p")
    post = request_bytes("POST", target, {})
    assert post.endswith(b"\r\n\r\n") and b"content-length: 0\r\n" in post and b"content-type" not in post
    assert b"content-length" not in request_bytes("GET", target, {})
    sent = request_bytes("POST", target, {"api-key": "k"}, {"a": [1, "é"]})
    head, body = sent.split(b"\r\n\r\n", 1)
    assert body == '{"a":[1,"é"]}'.encode() and b"content-length: %d" % len(body) in head
    assert b"content-type: application/json" in head


def test_default_tls_trusts_certifi_and_the_system_and_checks_host_names() -> None:
    import certifi

    context = default_tls()
    assert context is default_tls()  # built once
    assert context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED
    with open(certifi.where(), "rb") as f:
        bundle = f.read().count(b"BEGIN CERTIFICATE")
    assert context.cert_store_stats()["x509_ca"] >= bundle  # certifi's, as httpx trusted (and the system's, as aiohttp)


def test_error_reason_never_quotes_an_address() -> None:
    exc = OSError(111, "Connect call failed ('10.1.2.3', 443)")
    assert error_reason(exc) == f"ConnectionRefusedError: {os.strerror(111)}" and "10.1.2.3" not in error_reason(exc)


def test_reset_reads_the_next_response() -> None:
    parser = _parse(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na")
    parser.reset()
    parser.feed(b"HTTP/1.1 404 Not Found\r\nContent-Length: 1\r\n\r\nb")
    assert (parser.status, b"".join(parser.body), parser.complete) == (404, b"b", True)


def test_garbage_is_a_protocol_error() -> None:
    with pytest.raises(httpx.RemoteProtocolError, match="not valid HTTP"):
        _parse(b"SSH-2.0-OpenSSH\r\n\r\n")
    with pytest.raises(httpx.RemoteProtocolError):
        _parse(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n")


def test_build_response_plain_and_encoded() -> None:
    plain = build_response(200, [(b"Content-Type", b"application/json")], b'{"a":1}')
    assert plain.json() == {"a": 1} and plain.headers["content-type"] == "application/json"
    packed = gzip.compress(b'{"b":2}')
    parser = _parse(b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(packed), packed)
    assert parser.encoded
    response = build_response(parser.status, parser.headers, b"".join(parser.body), encoded=parser.encoded)
    assert response.json() == {"b": 2}
    assert build_response(200, [(b"content-encoding", b"gzip")], packed).json() == {"b": 2}  # found in the headers


async def test_build_response_with_a_stream() -> None:
    class Chunks(httpx.AsyncByteStream):
        async def __aiter__(self):  # type: ignore[no-untyped-def]
            yield b"a"
            yield b"b"

    response = build_response(200, [], stream=Chunks())
    assert await response.aread() == b"ab"
