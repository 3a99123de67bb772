"""The Azure page's model-family snippets, run against the emulator with only the import changed.

Sections: O-Series Models (automatic and explicit routing), GPT-5 Models (explicit and inferred
routing), Azure Audio Model, Azure Instruct Models. Each test is the snippet (``litellm``
swapped for ``modelyard``; placeholders and empty environment values filled in for the
emulator), followed by assertions on exactly what the upstream received. The emulator's
deployments have the models the snippets imply (an o3-mini behind ``my-o3-deployment`` ...), and
it refuses what Azure refuses for those models.
"""

from __future__ import annotations

import base64
import os

import pytest
from modelyard.testing import KEY, Emulator, add_family_deployments


@pytest.fixture
def page_env(azure_env: Emulator) -> Emulator:
    """AZURE_API_KEY / AZURE_API_BASE / AZURE_API_VERSION (2024-10-21) and the family deployments."""
    return add_family_deployments(azure_env)  # type: ignore[no-any-return]


# --------------------------------------------------------------------------- O-Series Models


def test_o_series_automatic_routing(page_env: Emulator) -> None:
    import modelyard as litellm

    response = litellm.completion(model="azure/my-o3-deployment", messages=[{"role":"user","content":"Hello, world!"}])# 👈 Note: 'o3' in the deployment name  # fmt: skip

    assert response.choices[0].message.content.endswith("You said: Hello, world!")
    assert response.model == "o3-mini"
    assert response.usage.completion_tokens_details["reasoning_tokens"] > 0
    [seen] = page_env.requests
    assert seen.path == "/openai/deployments/my-o3-deployment/chat/completions"
    assert seen.query == {"api-version": "2024-10-21"}
    assert seen.headers["api-key"] == KEY
    assert seen.body == {"messages": [{"role": "user", "content": "Hello, world!"}]}


def test_o_series_explicit_routing(page_env: Emulator) -> None:
    import modelyard as litellm

    litellm.completion(model="azure/o_series/my-random-deployment-name", messages=[{"role":"user","content":"Hello, world!"}])# 👈 Note: 'o_series/' in the deployment name  # fmt: skip

    [seen] = page_env.requests
    assert seen.path == "/openai/deployments/my-random-deployment-name/chat/completions"
    assert seen.query == {"api-version": "2024-10-21"}
    assert seen.body == {"messages": [{"role": "user", "content": "Hello, world!"}]}


def test_o_series_explicit_routing_applies_the_rules(page_env: Emulator) -> None:
    """The same route with the parameters users send: the o-series rules reach the wire.

    ``developer`` messages need api-version 2024-12-01-preview or later (as o1 and o3-mini do).
    """
    import modelyard as litellm

    os.environ["AZURE_API_VERSION"] = "2024-12-01-preview"

    litellm.completion(
        model="azure/o_series/my-random-deployment-name",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello, world!"}],
        max_tokens=500,
        reasoning_effort="low",
    )

    assert page_env.requests[0].body == {
        "messages": [{"role": "developer", "content": "Be brief."}, {"role": "user", "content": "Hello, world!"}],
        "max_completion_tokens": 500,
        "reasoning_effort": "low",
    }


# --------------------------------------------------------------------------- GPT-5 Models


def test_gpt5_explicit_routing(page_env: Emulator) -> None:
    import modelyard as litellm

    response = litellm.completion(
        model="azure/gpt5_series/my-gpt-5-deployment",
        messages=[{"role":"user","content":"Hello, world!"}]
    )

    assert response.model == "gpt-5"
    [seen] = page_env.requests
    assert seen.path == "/openai/deployments/my-gpt-5-deployment/chat/completions"
    assert seen.body == {"messages": [{"role": "user", "content": "Hello, world!"}]}


def test_gpt5_inferred_routing(page_env: Emulator) -> None:
    import modelyard as litellm

    # Deployment name contains 'gpt-5' - automatically inferred
    response = litellm.completion(
        model="azure/my-gpt-5-deployment",
        messages=[{"role":"user","content":"Hello, world!"}]
    )

    assert response.choices[0].finish_reason == "stop"
    [seen] = page_env.requests
    assert seen.path == "/openai/deployments/my-gpt-5-deployment/chat/completions"
    assert seen.query == {"api-version": "2024-10-21"}
    assert seen.body == {"messages": [{"role": "user", "content": "Hello, world!"}]}


def test_gpt5_inferred_routing_applies_the_rules(page_env: Emulator) -> None:
    import modelyard as litellm

    litellm.completion(
        model="azure/my-gpt-5-deployment",
        messages=[{"role": "user", "content": "Hello, world!"}],
        max_tokens=256,
        reasoning_effort="minimal",
        verbosity="low",
    )

    assert page_env.requests[0].body == {
        "messages": [{"role": "user", "content": "Hello, world!"}],
        "max_completion_tokens": 256,
        "reasoning_effort": "minimal",
        "verbosity": "low",
    }


# --------------------------------------------------------------------------- Azure Audio Model


def test_azure_audio_model(page_env: Emulator, api_base: str) -> None:
    from modelyard import completion

    os.environ["AZURE_API_KEY"] = KEY
    os.environ["AZURE_API_BASE"] = api_base
    os.environ["AZURE_API_VERSION"] = "2025-01-01-preview"

    response = completion(
        model="azure/azure-openai-4o-audio",
        messages=[
    {
    "role":"user",
    "content":"I want to try out speech to speech"
    }
    ],
        modalities=["text","audio"],
        audio={"voice":"alloy","format":"wav"}
    )  # fmt: skip

    print(response)

    [seen] = page_env.requests
    assert seen.path == "/openai/deployments/azure-openai-4o-audio/chat/completions"
    assert seen.query == {"api-version": "2025-01-01-preview"}
    assert seen.body == {
        "messages": [{"role": "user", "content": "I want to try out speech to speech"}],
        "modalities": ["text", "audio"],
        "audio": {"voice": "alloy", "format": "wav"},
    }
    audio = response.choices[0].message.audio
    assert audio is not None and audio.id.startswith("audio_")
    assert audio["transcript"].endswith("You said: I want to try out speech to speech")
    assert base64.b64decode(audio["data"])[:4] == b"RIFF"
    assert audio["expires_at"] > response.created


# --------------------------------------------------------------------------- Azure Instruct Models


def test_azure_instruct_models(page_env: Emulator, api_base: str) -> None:
    import modelyard as litellm

    ## set ENV variables
    os.environ["AZURE_API_KEY"] = KEY
    os.environ["AZURE_API_BASE"] = api_base
    os.environ["AZURE_API_VERSION"] = "2024-10-21"

    response = litellm.completion(
        model="azure_text/my-instruct-deployment",
        messages=[{"role":"user","content":"What is the weather like in Boston?"}]
    )

    print(response)

    [seen] = page_env.requests
    assert seen.path == "/openai/deployments/my-instruct-deployment/completions"
    assert seen.query == {"api-version": "2024-10-21"}
    assert seen.headers["api-key"] == KEY
    assert seen.body == {"prompt": "What is the weather like in Boston?"}
    assert response.object == "chat.completion"
    assert response.model == "gpt-35-turbo-instruct"
    # Azure's default max_tokens on /completions is 16: the reply is cut, as it would be
    assert response.choices[0].message.content == " This is my-instruct-deployment on the modelyard emulator. You said: What"
    assert response.choices[0].finish_reason == "length"
