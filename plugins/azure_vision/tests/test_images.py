"""Image parts: every malformed case fails before sending, naming the part; good ones pass through."""

from __future__ import annotations

import base64
import copy
from typing import Any

import pytest
from modelyard import BadRequestError, completion
from modelyard.testing import Emulator

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(64))
JPEG = b"\xff\xd8\xff\xe0" + bytes(64)
GIF = b"GIF89a" + bytes(64)
WEBP = b"RIFF\x24\x00\x00\x00WEBPVP8 " + bytes(64)


def data_uri(raw: bytes, media_type: str = "image/png") -> str:
    return f"data:{media_type};base64," + base64.b64encode(raw).decode()


def ask(*parts: dict[str, Any], role: str = "user", **kw: Any) -> Any:
    return completion(
        model="azure/gpt-4o",
        messages=[
            {"role": "system", "content": "You describe images."},
            {"role": role, "content": [{"type": "text", "text": "What is this?"}, *parts]},
        ],
        **kw,
    )


def image(url: Any = None, **extra: Any) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url, **extra} if url is not None else extra}


# --------------------------------------------------------------------------- refused before sending

BIG = 20 * 1024 * 1024 + 1


@pytest.mark.parametrize(
    ("part", "param", "fragment"),
    [
        pytest.param(image(), "messages[1].content[1].image_url.url", "is missing", id="missing-url"),
        pytest.param(image(""), "messages[1].content[1].image_url.url", "is missing", id="empty-url"),
        pytest.param({"type": "image_url"}, "messages[1].content[1].image_url", "is missing", id="missing-image_url"),
        pytest.param({"type": "image_url", "image_url": 42}, "messages[1].content[1].image_url", "must be an object", id="image_url-not-object"),
        pytest.param(image(42), "messages[1].content[1].image_url.url", "must be a string", id="url-not-string"),
        pytest.param(image("ftp://example.com/a.png"), "messages[1].content[1].image_url.url", "scheme 'ftp'", id="bad-scheme"),
        pytest.param(image("https:///a.png"), "messages[1].content[1].image_url.url", "names no host", id="url-without-host"),
        pytest.param(image("data:image/png;base64"), "messages[1].content[1].image_url.url", "malformed data URI", id="data-uri-no-comma"),
        pytest.param(image("data:image/png," + "x" * 10), "messages[1].content[1].image_url.url", "must be base64", id="data-uri-not-base64"),
        pytest.param(image("data:;base64,AAAA"), "messages[1].content[1].image_url.url", "without a media type", id="data-uri-no-media-type"),
        pytest.param(image(data_uri(PNG, "image/bmp")), "messages[1].content[1].image_url.url", "'image/bmp' is not supported", id="unsupported-media-type"),
        pytest.param(image(data_uri(PNG, "application/pdf")), "messages[1].content[1].image_url.url", "'application/pdf' is not supported", id="pdf"),
        pytest.param(image("data:image/png;base64,"), "messages[1].content[1].image_url.url", "without image data", id="data-uri-empty"),
        pytest.param(image("data:image/png;base64,iVBORw0KGgo*&^%"), "messages[1].content[1].image_url.url", "not valid base64", id="undecodable-base64"),
        pytest.param(image("data:image/png;base64,iVBORw0KGgo"), "messages[1].content[1].image_url.url", "not valid base64", id="bad-padding"),
        pytest.param(image("data:image/png;base64,iVBORw0KAA=AAAAA"), "messages[1].content[1].image_url.url", "not valid base64", id="padding-inside"),
        pytest.param(image("data:image/png;base64,iVBORw0KA==="), "messages[1].content[1].image_url.url", "not valid base64", id="too-much-padding"),
        pytest.param(image("data:image/png;base64,iVBORw0KÄAAA"), "messages[1].content[1].image_url.url", "not valid base64", id="non-ascii"),
        pytest.param(image("data:image/png;base64,iVBO Rw0K\tAA=A"), "messages[1].content[1].image_url.url", "not valid base64", id="whitespace-and-padding-inside"),
        pytest.param(image(data_uri(b"just some text, not an image")), "messages[1].content[1].image_url.url", "not a JPEG, PNG, GIF or WEBP image", id="not-an-image"),
        pytest.param(image("https://example.com/a.png", detail="ultra"), "messages[1].content[1].image_url.detail", "auto, low, high", id="bad-detail"),
    ],
)
def test_malformed_part_is_refused_before_sending(
    azure_env: Emulator, part: dict[str, Any], param: str, fragment: str
) -> None:
    with pytest.raises(BadRequestError) as caught:
        ask(part)
    assert caught.value.param == param
    assert fragment in caught.value.message
    assert caught.value.message.startswith(param.rsplit(".image_url", 1)[0])
    assert caught.value.status_code == 400
    assert azure_env.requests == []


def test_image_over_20_mb_is_refused_before_sending(azure_env: Emulator) -> None:
    uri = data_uri(PNG + bytes(BIG - len(PNG)))
    with pytest.raises(BadRequestError) as caught:
        ask(image(uri))
    assert caught.value.param == "messages[1].content[1].image_url.url"
    assert caught.value.code == "image_too_large"
    assert "20 MB" in caught.value.message
    assert len(caught.value.message) < 300  # the image never lands in the error
    assert azure_env.requests == []


def test_image_of_exactly_20_mb_is_sent(azure_env: Emulator) -> None:
    uri = data_uri(PNG + bytes(20 * 1024 * 1024 - len(PNG)))
    ask(image(uri))
    [seen] = azure_env.requests
    assert seen.body["messages"][1]["content"][1]["image_url"]["url"] == uri


def test_image_far_over_20_mb_is_refused_from_its_length(azure_env: Emulator) -> None:
    with pytest.raises(BadRequestError) as caught:
        ask(image("data:image/png;base64," + "A" * (40 * 1024 * 1024)))
    assert caught.value.code == "image_too_large"
    assert "30.0 MB" in caught.value.message
    assert azure_env.requests == []


def test_eleven_images_are_refused_before_sending(azure_env: Emulator) -> None:
    parts = [image(f"https://example.com/{i}.png") for i in range(11)]
    with pytest.raises(BadRequestError) as caught:
        ask(*parts)
    assert caught.value.param == "messages[1].content[11]"
    assert caught.value.code == "too_many_images"
    assert "at most 10 images" in caught.value.message
    assert azure_env.requests == []


def test_ten_images_are_sent(azure_env: Emulator) -> None:
    ask(*[image(f"https://example.com/{i}.png") for i in range(10)])
    assert len(azure_env.requests) == 1


@pytest.mark.parametrize("role", ["system", "assistant"])
def test_image_outside_a_user_message_is_refused(azure_env: Emulator, role: str) -> None:
    with pytest.raises(BadRequestError) as caught:
        ask(image("https://example.com/a.png"), role=role)
    assert caught.value.param == "messages[1].content[1]"
    assert f"role {role!r}" in caught.value.message
    assert azure_env.requests == []


def test_image_in_a_tool_message_is_refused(azure_env: Emulator) -> None:
    messages = [
        {"role": "user", "content": "look"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "snap", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": [image("https://example.com/a.png")]},
    ]  # fmt: skip
    with pytest.raises(BadRequestError) as caught:
        completion(model="azure/gpt-4o", messages=messages)
    assert caught.value.param == "messages[2].content[0]"
    assert azure_env.requests == []


async def test_async_calls_are_checked_too(azure_env: Emulator) -> None:
    from modelyard import acompletion

    with pytest.raises(BadRequestError) as caught:
        await acompletion(
            model="azure/gpt-4o",
            messages=[{"role": "user", "content": [image(data_uri(PNG, "image/tiff"))]}],
        )
    assert caught.value.param == "messages[0].content[0].image_url.url"
    assert azure_env.requests == []


# --------------------------------------------------------------------------- accepted


@pytest.mark.parametrize(
    ("raw", "media_type"),
    [(PNG, "image/png"), (JPEG, "image/jpeg"), (GIF, "image/gif"), (WEBP, "image/webp")],
    ids=["png", "jpeg", "gif", "webp"],
)
@pytest.mark.parametrize("detail", [None, "auto", "low", "high"])
def test_supported_data_uris_are_sent_unchanged(azure_env: Emulator, raw: bytes, media_type: str, detail: str | None) -> None:
    part = image(data_uri(raw, media_type), **({"detail": detail} if detail else {}))
    response = ask(part)
    assert response.choices[0].message.content.endswith("You said: What is this? ")
    [seen] = azure_env.requests
    assert seen.path == "/openai/deployments/gpt-4o/chat/completions"
    assert seen.body["messages"][1]["content"][1] == part


def test_image_jpg_is_sent_as_image_jpeg(azure_env: Emulator) -> None:
    ask(image(data_uri(JPEG, "image/jpg"), detail="low"))
    [seen] = azure_env.requests
    assert seen.body["messages"][1]["content"][1] == image(data_uri(JPEG, "image/jpeg"), detail="low")


def test_https_url_and_line_wrapped_base64_are_sent(azure_env: Emulator) -> None:
    encoded = base64.encodebytes(PNG * 4).decode()  # MIME-style, a newline every 76 characters
    assert "\n" in encoded
    ask(image("https://example.com/cat.png", detail="high"), image("data:image/png;base64," + encoded))
    [seen] = azure_env.requests
    assert seen.body["messages"][1]["content"][1] == image("https://example.com/cat.png", detail="high")
    assert seen.body["messages"][1]["content"][2]["image_url"]["url"] == "data:image/png;base64," + encoded


def test_litellm_shorthands_are_made_azure_shaped_without_touching_the_callers_messages(azure_env: Emulator) -> None:
    messages = [
        {"role": "user", "content": [
            {"type": "text", "text": "two pictures"},
            {"type": "image_url", "image_url": "https://example.com/a.png"},
            {"type": "image_url", "image_url": {"url": data_uri(PNG), "format": "image/png", "detail": "low"}},
        ]},
    ]  # fmt: skip
    before = copy.deepcopy(messages)
    completion(model="azure/gpt-4o", messages=messages)
    assert messages == before
    [seen] = azure_env.requests
    assert seen.body["messages"] == [
        {"role": "user", "content": [
            {"type": "text", "text": "two pictures"},
            {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
            {"type": "image_url", "image_url": {"url": data_uri(PNG), "detail": "low"}},
        ]},
    ]  # fmt: skip


def test_text_only_chat_is_untouched(azure_env: Emulator) -> None:
    completion(model="azure/gpt-4o", messages=[{"role": "user", "content": "hello"}], temperature=0.2)
    [seen] = azure_env.requests
    assert seen.path == "/openai/deployments/gpt-4o/chat/completions"
    assert seen.query == {"api-version": "2024-10-21"}
    assert seen.body == {"messages": [{"role": "user", "content": "hello"}], "temperature": 0.2}
