"""Every Python and curl example in docs/ runs, in page order, against the emulator and the proxy.

Collected with Sybil (``sybil.parsers.markdown``): it finds the fenced blocks, keeps one namespace
per page (a later block may use what an earlier one made, as a reader does), and reads the
``<!-- skip: next "reason" -->`` markers, HTML comments that the site does not show. Each page is
one test here, so the page's fixtures (the emulator, the proxy, files the examples open) are plain
pytest fixtures.

- ``python`` blocks are executed as written, after the placeholder table below (``PLACEHOLDERS``):
  the page's ``https://<resource>.openai.azure.com`` is the emulator, ``api_key="..."`` its key,
  ``http://127.0.0.1:4000`` the proxy. A block opening with ``# test_<name>.py`` is a user's test
  file: tests/test_docs_testing.py runs those in a user's own pytest process.
- ``bash``/``sh`` blocks that call ``curl`` run in bash with ``set -euo pipefail`` and a ``curl``
  that fails on an HTTP error; other shell blocks are commands (``pip install``, ``./dev serve``),
  not examples.
- A block that cannot run here (a real Azure resource, a fragment with ``...`` in it) carries a
  skip marker with its reason; ``SKIPPED`` pins how many each page has, so a new marker is a
  visible change in review and a skip never goes unnoticed.
"""

from __future__ import annotations

import gc
import json
import os
import re
import subprocess
import warnings
import wave
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import SkipTest

import pytest
from modelyard.testing import (
    KEY,
    MASTER_KEY,
    Deployment,
    Emulator,
    EmulatorServer,
    batch_jsonl,
    litellm_params,
)
from sybil import Example, Sybil
from sybil.parsers.markdown import CodeBlockParser, SkipParser

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = sorted(p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md") if "_hooks" not in p.parts)

# How many blocks of each page carry a skip marker (every marker gives its reason on the page).
SKIPPED: dict[str, int] = {
    "auth.md": 1,  # DefaultAzureCredential: a real tenant
    "batch.md": 2,  # a completed batch; the ids of earlier calls
    "observability.md": 1,  # an OTLP collector
    "vision.md": 4,  # a shortened data URL; three fragments of the enhancements example
}

# Emulated deployments named as the pages name theirs, with the model each stands for.
DEPLOYMENTS = [
    Deployment("gpt-4o"), Deployment("gpt-4o-mini", model="gpt-4o-mini-2024-07-18"),
    Deployment("my-gpt-4o"), Deployment("gpt-4o-eastus"), Deployment("gpt-4o-swedencentral"),
    Deployment("prod-reasoner", model="o3-mini-2025-01-31"),
    Deployment("gpt-4-vision", model="gpt-4-vision-preview"),
    Deployment("my-text-embedding-3-small", model="text-embedding-3-small"),
    Deployment("my-dall-e-3", model="dall-e-3"), Deployment("my-gpt-image-1", model="gpt-image-1"),
    Deployment("my-gpt-4o-mini-tts", model="gpt-4o-mini-tts"), Deployment("tts", model="tts-1"),
    Deployment("my-whisper", model="whisper"), Deployment("whisper", model="whisper"),
    Deployment("gpt-4o-mini-batch", model="gpt-4o-mini-2024-07-18"),
]  # fmt: skip
MODES = {"tts": "audio_speech", "whisper": "audio_transcription", "my-text-embedding-3-small": "embedding",
         "my-dall-e-3": "image_generation", "my-gpt-image-1": "image_generation"}  # fmt: skip


def _placeholders(api_base: str, proxy_url: str) -> list[tuple[str, str]]:
    """What a page writes for the reader to fill in, and what it is here."""
    return [
        ("https://<resource>.openai.azure.com", api_base),
        ("https://my-resource.openai.azure.com", api_base),
        ('api_key="..."', "api_key=KEY"),
        ("azure/<deployment>", "azure/gpt-4o"),
        ("http://127.0.0.1:4000", proxy_url),
        ("http://localhost:4000", proxy_url),
    ]


@dataclass
class _PageRun:
    """The page being run: its placeholders and what its examples did."""

    placeholders: list[tuple[str, str]] = field(default_factory=list)
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


_Run = _PageRun()


def _python(example: Example) -> None:
    source = str(example.parsed)
    if source.startswith("# test_"):
        raise SkipTest("a user's test file: tests/test_docs_testing.py runs it with pytest")
    for placeholder, value in _Run.placeholders:
        source = source.replace(placeholder, value)
    code = compile("\n" * example.line + source, example.path, "exec")
    with warnings.catch_warnings():
        # openai marks `audio.translations.create` deprecated; Azure serves it (audio.md shows it).
        warnings.filterwarnings("ignore", "deprecated", DeprecationWarning)
        # Pages pass `open(...)` inline, as LiteLLM's and Azure's pages do: closed when collected.
        warnings.simplefilter("ignore", ResourceWarning)
        exec(code, example.namespace)
    _Run.ran.append(f"{example.line}")


def _shell(example: Example) -> None:
    source = str(example.parsed)
    if not re.search(r"^\s*curl ", source, re.M):
        raise SkipTest("a command, not an example")
    for placeholder, value in _Run.placeholders:
        source = source.replace(placeholder, value)
    script = 'set -euo pipefail\ncurl() { command curl --silent --show-error --fail-with-body "$@"; echo; }\n' + source
    run = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60, env=dict(os.environ))
    assert run.returncode == 0, f"{example.path}:{example.line}: {run.stdout}{run.stderr}"
    _Run.ran.append(f"{example.line}")


SYBIL = Sybil(
    parsers=[
        SkipParser(),
        CodeBlockParser("python", _python),
        CodeBlockParser("bash", _shell),
        CodeBlockParser("sh", _shell),
    ],
    path=str(DOCS),
)


def _wav(path: Path) -> None:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(b"\0\0" * 1600)


@pytest.fixture(scope="module")
def docs_emulator() -> Iterator[EmulatorServer]:
    with EmulatorServer(Emulator(DEPLOYMENTS, api_keys=[KEY])) as server:
        yield server


@pytest.fixture
def page_env(docs_emulator: EmulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """The world a page's examples run in: the emulator, the proxy before it, the files they open."""
    import modelyard
    from modelyard import pricing, transport
    from modelyard.testing import running_proxy
    from modelyard.testing.images import png
    from modelyard_azure_auth.entra import clear_token_cache

    docs_emulator.emulator.reset()
    # A page may set the emulator's clocks (fine_tuning.md): each page starts from the defaults.
    monkeypatch.setattr(docs_emulator.emulator.batches, "clock", docs_emulator.emulator.batches.clock)
    monkeypatch.setattr(docs_emulator.emulator.fine_tuning, "step_seconds", docs_emulator.emulator.fine_tuning.step_seconds)
    api_base = docs_emulator.url
    for name in ("api_key", "azure_key", "api_base", "base_url", "api_version", "azure_ad_token",
                 "drop_params", "num_retries", "request_timeout", "enable_azure_ad_token_refresh"):  # fmt: skip
        monkeypatch.setattr(modelyard, name, getattr(modelyard, name, None), raising=False)
    saved_environ = dict(os.environ)
    monkeypatch.chdir(tmp_path)
    env = {"AZURE_API_KEY": KEY, "AZURE_API_BASE": api_base, "AZURE_API_VERSION": "2024-10-21",
           "MASTER_KEY": MASTER_KEY, "MODELYARD_MASTER_KEY": MASTER_KEY,
           "AZURE_API_BASE_EASTUS": api_base, "AZURE_KEY_EASTUS": KEY,
           "AZURE_API_BASE_SWEDEN": api_base, "AZURE_KEY_SWEDEN": KEY,
           "AZURE_VISION_API_KEY": KEY, "AZURE_VISION_ENHANCE_KEY": "vision-key"}  # fmt: skip
    os.environ.update(env)
    for name in ("meeting.wav", "french.wav"):
        _wav(tmp_path / name)
    for name in ("mydata.jsonl", "requests.jsonl"):
        (tmp_path / name).write_bytes(batch_jsonl(3, "gpt-4o-mini"))
    line = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}
    (tmp_path / "train.jsonl").write_text((json.dumps(line) + "\n") * 3)
    for name in ("room.png", "lamp.png", "mask.png"):
        (tmp_path / name).write_bytes(png("docs"))
    config = {
        "model_list": [
            {"model_name": d.name, "litellm_params": litellm_params(api_base, d.name, api_version="2025-04-01-preview"),
             "model_info": {"mode": MODES.get(d.name, "chat")}}
            for d in DEPLOYMENTS
        ],
        "router_settings": {"num_retries": 0},
    }  # fmt: skip
    pricing.reset_prices()
    clear_token_cache()
    try:
        with running_proxy(config) as proxy:
            _Run.placeholders, _Run.ran, _Run.skipped = _placeholders(api_base, proxy.url), [], []
            try:
                yield {"KEY": KEY, "MASTER_KEY": MASTER_KEY, "API_BASE": api_base, "png_bytes": png("docs"),
                       "emulator": docs_emulator.emulator, "Path": Path}
            finally:
                # The SDK calls a page made went through the transport the in-process proxy
                # installed; its sync connections are the page's to close.
                transport.get_transport().close()
    finally:
        os.environ.clear()
        os.environ.update(saved_environ)
        pricing.reset_prices()
        clear_token_cache()


def _close(namespace: dict[str, Any]) -> None:
    """Close what the page left open: pages show `open(...)` and clients without closing them."""
    for value in namespace.values():
        close = getattr(value, "close", None)
        if callable(close) and type(value).__module__.split(".")[0] in ("openai", "io", "_io", "httpx"):
            close()
    namespace.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


@pytest.mark.parametrize("page", PAGES)
def test_the_pages_examples_run(page: str, page_env: dict[str, Any]) -> None:
    document = SYBIL.parse(DOCS / page)
    document.namespace.update(page_env)
    try:
        for example in document.examples():
            try:
                example.evaluate()
            except SkipTest as skip:
                if str(skip) != "a command, not an example":
                    _Run.skipped.append(f"{example.line}: {skip}")
    finally:
        _close(document.namespace)
    markers = [s for s in _Run.skipped if "tests/test_docs_testing.py" not in s]
    assert len(markers) == SKIPPED.get(page, 0), markers
    # Every example was run or skipped by name: none missed by the collector.
    assert len(_Run.ran) + len(_Run.skipped) == _examples_on(DOCS / page)


def _examples_on(path: Path) -> int:
    """The Python and curl blocks of a page, counted without Sybil (a fence it missed shows)."""
    blocks = re.findall(r"^```(\w*)[^\n]*\n(.*?)^```", path.read_text(), flags=re.S | re.M)
    hidden = len(re.findall(r"^<!-- invisible-code-block: python", path.read_text(), flags=re.M))
    python = sum(1 for lang, _ in blocks if lang in ("python", "py", "python3", "pycon"))
    curl = sum(1 for lang, body in blocks if lang in ("bash", "sh", "shell", "console") and re.search(r"^\s*curl ", body, re.M))
    return python + curl + hidden


def test_the_config_reference_lists_every_key_of_every_section() -> None:
    """docs/proxy-config.md is generated at build time (docs/_hooks/config_reference.py): every
    field of every section's pydantic model has its row, with its type, default and bounds."""
    import importlib.util

    from modelyard.proxy import config

    spec = importlib.util.spec_from_file_location("config_reference", DOCS / "_hooks" / "config_reference.py")
    assert spec is not None and spec.loader is not None
    hook = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hook)
    page = hook.render()
    for model, prefix in [(config.GeneralSettings, "general_settings."), (config.RouterSettings, "router_settings."),
                          (config.LiteLLMParams, "litellm_params."), (config.ModelyardSettings, "modelyard_settings."),
                          (config.LiteLLMSettings, "litellm_settings."), (config.ModelInfo, "model_info.")]:  # fmt: skip
        for name in model.model_fields:
            assert f"| `{prefix}{name}` |" in page, f"{prefix}{name}"
    assert "| `general_settings.max_request_size_mb` | number | `32.0` | > `0` |" in page
    assert "| `model_list[].litellm_params` | mapping | **required** |" in page
    assert "| `litellm_params.api_key` | string (secret) | unset |" in page
    # A field's docstring is its note, roles turned into Markdown.
    assert "Seconds requests in flight get to finish after SIGTERM" in page
    assert ":class:" not in page and "``" not in page
