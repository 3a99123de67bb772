"""The operation table's generic multipart mechanism, for any row (an image-edits-like row here):
``multipart_parts`` on the SDK side, ``read_multipart`` on the proxy side."""

from __future__ import annotations

import io
from typing import Any

import httpx
import pytest
from modelyard.errors import BadRequestError
from modelyard.operations import Operation, multipart_parts
from modelyard.proxy.files import read_multipart
from pydantic import BaseModel

EDITS = Operation(name="image_edits", sdk="image_edit", request=BaseModel, response=BaseModel, body="multipart",
                  payload=("image", "prompt"), files=("image", "mask"), max_upload_mb=1)  # fmt: skip


def test_multipart_parts_splits_files_and_encodes_fields() -> None:
    a, b, mask = ("a.png", io.BytesIO(b"a"), "image/png"), ("b.png", io.BytesIO(b"b"), "image/png"), ("m.png", io.BytesIO(b"m"), "image/png")
    files, data = multipart_parts(EDITS, {"image": [a, b], "mask": mask, "prompt": "a cat", "n": 2, "flag": True,
                                          "ratio": 0.5, "tags": ["x", "y"], "meta": {"k": 1}, "user": None})  # fmt: skip
    assert files == [("image[]", a), ("image[]", b), ("mask", mask)]
    assert data == {"prompt": "a cat", "n": "2", "flag": "true", "ratio": "0.5", "tags[]": ["x", "y"], "meta": '{"k":1}'}
    # httpx sends exactly that: repeated parts and fields, each file streamed from its object.
    request = httpx.Request("POST", "http://x/", files=files, data=data)
    body = request.read()
    assert body.count(b'name="image[]"; filename=') == 2 and body.count(b'name="tags[]"') == 2


def _asgi(files: Any, data: dict[str, Any], piece: int = 4096) -> tuple[dict[str, Any], Any, list[int]]:
    request = httpx.Request("POST", "http://x/", files=files, data=data)
    body = request.read()
    scope = {"type": "http", "headers": [(b"content-type", request.headers["content-type"].encode())]}
    calls: list[int] = []

    async def receive() -> dict[str, Any]:
        start = len(calls) * piece
        calls.append(start)
        chunk = body[start : start + piece]
        return {"type": "http.request", "body": chunk, "more_body": start + piece < len(body)}

    return scope, receive, calls


async def test_read_multipart_keeps_every_file_field_of_a_row() -> None:
    files = [("image[]", ("a.png", b"A" * 5000, "image/png")), ("image[]", ("b.png", b"B" * 10, "image/png")),
             ("mask", ("m.png", b"M", "image/png")), ("other", ("x.bin", b"X", "application/octet-stream"))]  # fmt: skip
    scope, receive, _ = _asgi(files, {"prompt": "a cat", "tags[]": ["x", "y"]})
    form = await read_multipart(scope, receive, limit=1 << 20, limit_mb=1, files=("image", "mask", "image[]", "mask[]"),
                                required=None, endpoint="POST /images/edits")  # fmt: skip
    try:
        assert [(p[0], p[1], p[2], p[3].read()) for p in form.parts] == [
            ("image[]", "a.png", "image/png", b"A" * 5000), ("image[]", "b.png", "image/png", b"B" * 10),
            ("mask", "m.png", "image/png", b"M"),
        ]  # fmt: skip
        assert form.items == [("prompt", "a cat"), ("tags[]", "x"), ("tags[]", "y")]
    finally:
        form.close()


async def test_read_multipart_refuses_an_upload_over_the_rows_limit_while_reading() -> None:
    scope, receive, calls = _asgi({"image": ("big.png", b"\0" * (3 << 20), "image/png")}, {"prompt": "x"}, piece=64 * 1024)
    with pytest.raises(BadRequestError) as info:
        await read_multipart(scope, receive, limit=1 << 20, limit_mb=1, files=("image",), required=None,
                             endpoint="POST /images/edits", setting="the provider's limit for /images/edits")  # fmt: skip
    assert info.value.status_code == 413 and "/images/edits" in info.value.message
    assert len(calls) < 20  # stopped near 1 MB of a 3 MB body: never read whole


async def test_read_multipart_one_file_per_plain_field() -> None:
    files = [("mask", ("a.png", b"a", "image/png")), ("mask", ("b.png", b"b", "image/png"))]
    scope, receive, _ = _asgi(files, {})
    with pytest.raises(BadRequestError) as info:
        await read_multipart(scope, receive, limit=1 << 20, limit_mb=1, files=("mask",), required=None)
    assert info.value.param == "mask"
