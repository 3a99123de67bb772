"""Property tests (issue 18): for any input, the documented outcome and nothing else.

- any YAML document either loads as a proxy config or raises ``ConfigError`` naming a path;
- any JSON body either validates as the SDK's request parameters (and can then be sent as
  JSON) or is refused with a ``BadRequestError`` naming one of its fields;
- SSE parsing yields every event, in order, wherever the network cut the bytes.

The default run keeps the example counts small for CI; ``./dev fuzz`` (or
``MODELYARD_PROPERTY_EXAMPLES=2000``) runs many more.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import tempfile
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from modelyard._sse import SSEParser
from modelyard.api import _validate_params
from modelyard.errors import BadRequestError, ConfigError
from modelyard.proxy.config import ProxyConfig, load_config
from modelyard.transport import aiter_sse, iter_sse
from modelyard.types import ChatParams, TextParams

EXAMPLES = int(os.environ.get("MODELYARD_PROPERTY_EXAMPLES", "60"))
PROPERTY = settings(max_examples=EXAMPLES, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])  # fmt: skip

# ------------------------------------------------------------------ YAML configs

# Keys a config uses, so that generated documents reach deep into the model, not only the top.
CONFIG_KEYS = ["model_list", "model_name", "litellm_params", "model", "api_base", "api_key", "api_version",
               "model_info", "id", "mode", "base_model", "rpm", "tpm", "timeout", "litellm_settings",
               "drop_params", "num_retries", "router_settings", "routing_strategy", "redis_host",
               "general_settings", "master_key", "max_request_size_mb", "request_header_timeout",
               "graceful_shutdown_timeout", "modelyard_settings", "load_plugins", "block_plugins",
               "environment_variables", "fallbacks", "allowed_fails", "cooldown_time"]  # fmt: skip
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20), st.sampled_from(["azure/gpt-4o", "os.environ/NOPE", "os.environ/", "https://x", "1e3", ""]),
)
KEYS = st.one_of(st.sampled_from(CONFIG_KEYS), st.text(max_size=10), st.integers(), st.booleans())
DOCUMENTS = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(KEYS, inner, max_size=5)),
    max_leaves=25,
)
TOP_LEVEL = st.dictionaries(st.sampled_from(CONFIG_KEYS), DOCUMENTS, max_size=4)


def _load(text: str) -> ProxyConfig:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.yaml"
        path.write_text(text, encoding="utf-8")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # unknown keys warn; the property is about what raises
            return load_config(path)


def _config_or_named_error(text: str) -> None:
    try:
        config = _load(text)
    except ConfigError as exc:
        assert exc.key, f"ConfigError without a path: {exc}"
    else:
        assert isinstance(config, ProxyConfig)


@PROPERTY
@given(TOP_LEVEL)
def test_any_config_mapping_loads_or_names_a_path(document: dict[str, Any]) -> None:
    _config_or_named_error(yaml.safe_dump(document, allow_unicode=True))


@PROPERTY
@given(st.one_of(DOCUMENTS.map(lambda d: yaml.safe_dump(d, allow_unicode=True)), st.text(max_size=200)))
def test_any_yaml_text_loads_or_names_a_path(text: str) -> None:
    _config_or_named_error(text)


# ------------------------------------------------------------------ JSON bodies

JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(), st.text(max_size=10)),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=15,
)


@pytest.mark.parametrize("model", [ChatParams, TextParams])
@PROPERTY
@given(data=st.data())
def test_any_json_body_validates_or_names_its_field(model: type[ChatParams | TextParams], data: st.DataObject) -> None:
    fields = st.sampled_from(sorted(model.model_fields))
    body = data.draw(st.dictionaries(st.one_of(fields, st.text(max_size=8)), JSON, max_size=6))
    try:
        params = _validate_params(body, model)
    except BadRequestError as exc:
        assert exc.param is not None, exc
        top = exc.param.split(".")[0].split("[")[0]
        assert top in body or model.model_fields[top].is_required(), (exc.param, body)
    else:
        json.dumps(params, allow_nan=False)  # what validates can be sent: no NaN, no objects


# ------------------------------------------------------------------ SSE

EVENTS = st.lists(st.dictionaries(st.text(max_size=6), st.text(max_size=12) | st.integers(), max_size=3), max_size=8)


def _wire(events: list[dict[str, Any]], newline: bytes, comments: bool, done: bool) -> bytes:
    out = b": keep-alive" + newline + newline if comments else b""
    for e in events:
        out += b"data: " + json.dumps(e, ensure_ascii=False).encode() + newline + newline
        if comments:
            out += b": ping" + newline + newline
    return out + (b"data: [DONE]" + newline + newline if done else b"")


def _cut(body: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(body) + 1) for c in cuts} | {0, len(body)})
    return [body[a:b] for a, b in itertools.pairwise(points)]


class _Chunks(httpx.SyncByteStream, httpx.AsyncByteStream):
    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    def __iter__(self) -> Iterator[bytes]:
        yield from self.chunks

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            yield chunk


@PROPERTY
@given(EVENTS, st.lists(st.integers(min_value=0), max_size=30), st.sampled_from([b"\n", b"\r\n"]), st.booleans(), st.booleans())
def test_sse_survives_any_chunk_boundaries(events: list[dict[str, Any]], cuts: list[int], newline: bytes,
                                           comments: bool, done: bool) -> None:  # fmt: skip
    chunks = _cut(_wire(events, newline, comments, done), cuts)
    assert list(iter_sse(httpx.Response(200, stream=_Chunks(chunks)))) == events

    async def collect() -> list[Any]:
        return [e async for e in aiter_sse(httpx.Response(200, stream=_Chunks(chunks)))]

    assert asyncio.run(collect()) == events


@PROPERTY
@given(EVENTS, st.lists(st.integers(min_value=0), max_size=30), st.sampled_from([b"\n", b"\r\n", b"\r"]), st.booleans())
def test_sse_keeps_each_events_own_bytes_across_any_chunk_boundaries(events: list[dict[str, Any]], cuts: list[int],
                                                                     newline: bytes, comments: bool) -> None:  # fmt: skip
    # Cut anywhere, multi-byte characters included: each event comes with its data's bytes as sent.
    parser = SSEParser()
    got = [e for chunk in _cut(_wire(events, newline, comments, True), cuts) for e in parser.feed(chunk)]
    got += parser.close()  # a last CR may still be the first half of a CRLF
    assert got == [(e, json.dumps(e, ensure_ascii=False).encode()) for e in events]
    assert parser.done and parser.feed(b"data: {}\n\n") == []  # nothing after [DONE]
