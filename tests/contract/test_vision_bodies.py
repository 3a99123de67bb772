"""Chat bodies with images, as modelyard-azure-vision sends them, validate against Microsoft's spec."""

from __future__ import annotations

import base64

import modelyard
import pytest
from modelyard.testing import KEY, Emulator

from .test_request_bodies import SPEC_FILES, assert_conforms

PNG = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(32)).decode()
JPEG = base64.b64encode(b"\xff\xd8\xff\xe0" + bytes(32)).decode()

CASES = {
    "https": [{"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}],
    "detail": [{"type": "image_url", "image_url": {"url": "https://example.com/cat.png", "detail": "high"}},
               {"type": "image_url", "image_url": {"url": PNG, "detail": "low"}}],
    # LiteLLM shorthands, made Azure-shaped by the plugin: a bare string, a "format" hint, image/jpg.
    "shorthands": [{"type": "image_url", "image_url": "https://example.com/cat.png"},
                   {"type": "image_url", "image_url": {"url": f"data:image/jpg;base64,{JPEG}", "format": "image/jpeg"}}],
}


@pytest.mark.parametrize("api_version", sorted(SPEC_FILES))
@pytest.mark.parametrize("case", sorted(CASES))
def test_image_body_conforms(api_base: str, emulator: Emulator, api_version: str, case: str) -> None:
    modelyard.completion(
        model="azure/gpt-4o", api_base=api_base, api_key=KEY, api_version=api_version,
        messages=[{"role": "user", "content": [{"type": "text", "text": "What is this?"}, *CASES[case]]}],
    )  # fmt: skip
    [seen] = emulator.requests
    assert_conforms(api_version, seen.body)


def test_bare_string_image_url_as_given_would_not_conform() -> None:
    """The check above has teeth: LiteLLM's bare-string ``image_url``, sent unchanged, breaks Azure's schema."""
    with pytest.raises(AssertionError):
        assert_conforms("2024-10-21", {"messages": [{"role": "user", "content": [CASES["shorthands"][0]]}]})
