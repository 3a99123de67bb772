"""The Azure page's SDK snippets, run against the emulator with only the import changed.

Each test is the snippet (LiteLLM's ``litellm`` import swapped for ``modelyard``), followed by
assertions on exactly what the upstream received.
"""

from __future__ import annotations

import json
import os

from modelyard.testing import AD_TOKEN, KEY, Emulator


def test_completion_using_env_variables(monkeypatch, api_base: str, emulator: Emulator) -> None:
    from modelyard import completion

    ## set ENV variables
    os.environ["AZURE_API_KEY"] = KEY
    os.environ["AZURE_API_BASE"] = api_base
    os.environ["AZURE_API_VERSION"] = "2023-05-15"

    # azure call
    response = completion(
        model="azure/chatgpt-v-2",
        messages=[{"content": "Hello, how are you?", "role": "user"}],
    )

    assert response.choices[0].message.content.endswith("You said: Hello, how are you?")
    assert response.model == "gpt-35-turbo-0613"
    [seen] = emulator.requests
    assert seen.method == "POST"
    assert seen.path == "/openai/deployments/chatgpt-v-2/chat/completions"
    assert seen.query == {"api-version": "2023-05-15"}
    assert seen.headers["api-key"] == KEY
    assert "authorization" not in seen.headers
    assert seen.headers["content-type"] == "application/json"
    assert seen.body == {"messages": [{"content": "Hello, how are you?", "role": "user"}]}


def test_completion_using_api_key_api_base_api_version(api_base: str, emulator: Emulator) -> None:
    import modelyard as litellm

    # azure call
    response = litellm.completion(
        model="azure/gpt-4o",  # model = azure/<your deployment name>
        api_base=api_base,  # azure api base
        api_version="2024-10-21",  # azure api version
        api_key=KEY,  # azure api key
        messages=[{"role": "user", "content": "good morning"}],
    )

    assert response.choices[0].message.content.endswith("You said: good morning")
    [seen] = emulator.requests
    assert seen.path == "/openai/deployments/gpt-4o/chat/completions"
    assert seen.query == {"api-version": "2024-10-21"}
    assert seen.headers["api-key"] == KEY
    assert seen.body == {"messages": [{"role": "user", "content": "good morning"}]}


def test_completion_using_azure_ad_token(api_base: str, emulator: Emulator) -> None:
    import modelyard as litellm

    response = litellm.completion(
        model="azure/gpt-4o",
        api_base=api_base,
        api_version="2024-10-21",
        azure_ad_token=AD_TOKEN,
        messages=[{"role": "user", "content": "good morning"}],
    )

    assert response.choices[0].finish_reason == "stop"
    [seen] = emulator.requests
    assert seen.headers["authorization"] == f"Bearer {AD_TOKEN}"
    assert "api-key" not in seen.headers
    assert seen.query == {"api-version": "2024-10-21"}


def test_tool_calling(api_base: str, emulator: Emulator) -> None:
    # set Azure env variables
    import os

    import modelyard as litellm

    os.environ["AZURE_API_KEY"] = KEY  # modelyard reads AZURE_API_KEY from .env and sends the request
    os.environ["AZURE_API_BASE"] = api_base + "/"
    os.environ["AZURE_API_VERSION"] = "2023-07-01-preview"

    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_current_weather",
                "description": "Get the current weather in a given location",
                "parameters": {
                    "type": "object",
                    "properties": {
                        "location": {
                            "type": "string",
                            "description": "The city and state, e.g. San Francisco, CA",
                        },
                        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                    },
                    "required": ["location"],
                },
            },
        }
    ]

    response = litellm.completion(
        model="azure/chatgpt-functioncalling",  # model = azure/<your-azure-deployment-name>
        messages=[{"role": "user", "content": "What's the weather like in San Francisco, Tokyo, and Paris?"}],
        tools=tools,
        tool_choice="auto",  # auto is default, but we'll be explicit
    )
    print("\nLLM Response1:\n", response)
    response_message = response.choices[0].message
    tool_calls = response.choices[0].message.tool_calls
    print("\nTool Choice:\n", tool_calls)

    assert response.choices[0].finish_reason == "tool_calls"
    assert response_message.content is None
    assert tool_calls[0]["function"]["name"] == "get_current_weather"
    assert "location" in json.loads(tool_calls[0]["function"]["arguments"])
    [seen] = emulator.requests
    assert seen.path == "/openai/deployments/chatgpt-functioncalling/chat/completions"
    assert seen.query == {"api-version": "2023-07-01-preview"}
    assert seen.body == {
        "messages": [{"role": "user", "content": "What's the weather like in San Francisco, Tokyo, and Paris?"}],
        "tools": tools,
        "tool_choice": "auto",
    }
