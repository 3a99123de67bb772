"""The offline demo: ``modelyard serve`` without a config or provider settings, and ``modelyard demo``.

The Azure OpenAI emulator runs in the serving process on another loopback port with a few
demo deployments, so the quickstart works with no account and no network. Provider names are
allowed here (the core outside ``modelyard.testing`` names none).
"""

from __future__ import annotations

from typing import Any

__all__ = ["DEMO_DEPLOYMENTS", "DEMO_MODEL", "DEMO_UPSTREAM", "demo_config", "start_demo_upstream"]

DEMO_DEPLOYMENTS = (
    ("gpt-4o", "gpt-4o-eastus", "gpt-4o-2024-08-06", "chat"),
    ("gpt-4o", "gpt-4o-westus", "gpt-4o-2024-08-06", "chat"),
    ("gpt-4o-mini", "gpt-4o-mini", "gpt-4o-mini-2024-07-18", "chat"),
    ("text-embedding-3-small", "text-embedding-3-small", "text-embedding-3-small", "embedding"),
    ("dall-e-3", "dall-e-3", "dall-e-3", "image_generation"),
    ("gpt-4o-mini-tts", "gpt-4o-mini-tts", "gpt-4o-mini-tts", "audio_speech"),
    ("whisper", "whisper", "whisper", "audio_transcription"),
)
"""(public model name, emulator deployment, its model, ``model_info.mode``) of the embedded
defaults: gpt-4o is spread over two deployments to show the load balancing; one deployment per
other operation. The files and batches endpoints use the same emulator (``litellm_settings``
``api_base`` / ``api_key``)."""

DEMO_MODEL = "azure/gpt-4o"
"""The model ``modelyard demo`` calls on its emulator."""

DEMO_UPSTREAM = "the built-in Azure OpenAI emulator (offline demo)"
"""What the start-up banner says the demo's upstream is."""

_DEMO_VERSIONS = {"audio_speech": "2025-04-01-preview"}
"""api-versions of demo deployments whose operation the GA 2024-10-21 lacks (speech is preview-only on Azure)."""


def demo_config(upstream: str, upstream_key: str) -> dict[str, Any]:
    """The proxy config of the offline demo, against the emulator at ``upstream``."""
    return {
        "model_list": [
            {"model_name": name, "litellm_params": {"model": f"azure/{dep}", "api_base": upstream,
                                                    "api_key": upstream_key, "api_version": _DEMO_VERSIONS.get(mode, "2024-10-21")},
             "model_info": {"id": dep, "mode": mode}}
            for name, dep, _, mode in DEMO_DEPLOYMENTS
        ],
        # The files and batches endpoints call the provider with the module settings, as LiteLLM's do.
        "litellm_settings": {"api_base": upstream, "api_key": upstream_key, "api_version": "2024-10-21"},
        "general_settings": {"database_url": "sqlite:///modelyard.db"},
    }  # fmt: skip


def start_demo_upstream() -> tuple[Any, str, str]:
    """Start the emulator with the demo deployments on a free loopback port, in a thread.

    Returns:
        (the running server, its URL, the api-key it accepts).
    """
    import secrets

    from . import Deployment, Emulator, EmulatorServer

    key = secrets.token_hex(16)
    emulator = Emulator([Deployment(d, model=model) for _, d, model, _ in DEMO_DEPLOYMENTS], api_keys=[key])
    server = EmulatorServer(emulator).start()
    return server, server.url, key
