"""Results keep the upstream's response headers in ``_response_headers`` (the Router reads them)."""

from __future__ import annotations

import modelyard
from modelyard.testing import KEY, Deployment, Emulator


def test_completion_keeps_the_response_headers(api_base: str, emulator: Emulator) -> None:
    emulator.add_deployment(Deployment("quota-headers", rpm=50, tpm=10_000))
    reply = modelyard.completion(
        model="azure/quota-headers", api_base=api_base, api_key=KEY, api_version="2024-10-21",
        messages=[{"role": "user", "content": "hi"}],
    )  # fmt: skip
    headers = reply._response_headers
    assert headers is not None
    assert headers["x-ratelimit-remaining-requests"] == "49"
    assert int(headers["x-ratelimit-remaining-tokens"]) < 10_000
    assert headers["apim-request-id"]
    assert "_response_headers" not in reply.model_dump()  # private: never serialised
