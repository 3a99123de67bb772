"""An OpenAI twin (OpenAI's paths, Bearer keys) on loopback, in front of modelyard's emulator."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from modelyard.testing import KEY, Deployment, Emulator
from modelyard_openai.testing import OpenAITwin, TwinServer

# The emulator's deployments, named as OpenAI's models (the twin's "model" is the deployment).
MODELS = [
    Deployment("gpt-4o"),
    Deployment("gpt-3.5-turbo", model="gpt-35-turbo-0125"),
    Deployment("gpt-3.5-turbo-instruct", model="gpt-35-turbo-instruct-0914"),
    Deployment("text-embedding-3-small", model="text-embedding-3-small"),
    Deployment("dall-e-3", model="dall-e-3"),
    Deployment("tts-1", model="tts-1"),
    Deployment("whisper-1", model="whisper"),
]


@pytest.fixture(scope="session")
def twin_server() -> Iterator[TwinServer]:
    with TwinServer(Emulator(MODELS, api_keys=[KEY])) as server:
        yield server


@pytest.fixture
def twin(twin_server: TwinServer) -> OpenAITwin:
    twin_server.twin.requests.clear()
    twin_server.twin.emulator.reset()
    return twin_server.twin
