"""The Azure page's Router snippets, run against the emulator with only the import changed.

The page's third deployment is plain OpenAI (``"model": "gpt-3.5-turbo"`` with
``OPENAI_API_KEY``). modelyard has no OpenAI provider, so the Router skips that deployment with
a warning naming it and balances over the two Azure ones; the tests assert exactly that.
"""

from __future__ import annotations

import logging
import os
from collections import Counter

import pytest
from modelyard.testing import Emulator

from .conftest import RedisServer

pytestmark = pytest.mark.usefixtures("azure_env")


def _model_list() -> list[dict]:  # the page's model_list, verbatim
    model_list =[{# list of model deployments
    "model_name":"gpt-3.5-turbo",# openai model name
    "litellm_params":{# params for litellm completion/embedding call
    "model":"azure/chatgpt-v-2",
    "api_key": os.getenv("AZURE_API_KEY"),
    "api_version": os.getenv("AZURE_API_VERSION"),
    "api_base": os.getenv("AZURE_API_BASE")
    },
    "tpm":240000,
    "rpm":1800
    },{
    "model_name":"gpt-3.5-turbo",# openai model name
    "litellm_params":{# params for litellm completion/embedding call
    "model":"azure/chatgpt-functioncalling",
    "api_key": os.getenv("AZURE_API_KEY"),
    "api_version": os.getenv("AZURE_API_VERSION"),
    "api_base": os.getenv("AZURE_API_BASE")
    },
    "tpm":240000,
    "rpm":1800
    },{
    "model_name":"gpt-3.5-turbo",# openai model name
    "litellm_params":{# params for litellm completion/embedding call
    "model":"gpt-3.5-turbo",
    "api_key": os.getenv("OPENAI_API_KEY"),
    },
    "tpm":1000000,
    "rpm":9000
    }]  # fmt: skip
    return model_list


def test_router_quick_start(emulator: Emulator, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> None:
    from modelyard import Router

    model_list = _model_list()
    caplog.set_level(logging.WARNING, logger="modelyard.router")

    router = Router(model_list=model_list)

    # openai.chat.completions.create replacement
    response = router.completion(model="gpt-3.5-turbo",
                    messages=[{"role":"user","content":"Hey, how's it going?"}])  # fmt: skip

    print(response)

    assert "Router skips deployment 'gpt-3.5-turbo' of model group 'gpt-3.5-turbo'" in caplog.text
    assert len(router.deployments) == 2
    assert response.choices[0].message.content.endswith("You said: Hey, how's it going?")
    assert "This is chatgpt-" in capsys.readouterr().out
    [seen] = emulator.requests
    assert seen.path in {"/openai/deployments/chatgpt-v-2/chat/completions",
                         "/openai/deployments/chatgpt-functioncalling/chat/completions"}  # fmt: skip
    assert seen.query == {"api-version": os.environ["AZURE_API_VERSION"]}
    assert seen.body == {"messages": [{"role": "user", "content": "Hey, how's it going?"}]}
    # simple-shuffle weighs the two by rpm (1800 each): both get traffic
    for _ in range(30):
        router.completion(model="gpt-3.5-turbo", messages=[{"role": "user", "content": "again"}])
    assert len(Counter(r.path for r in emulator.requests)) == 2


def test_router_redis_queue(
    emulator: Emulator, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modelyard import Router
    from modelyard.router import RedisState

    monkeypatch.setenv("REDIS_HOST", "127.0.0.1")
    monkeypatch.setenv("REDIS_PORT", str(redis_server.port))
    monkeypatch.setenv("REDIS_PASSWORD", redis_server.password)
    redis_server.flush()
    model_list = _model_list()
    response = None

    router = Router(model_list=model_list,
                    redis_host=os.getenv("REDIS_HOST"),
                    redis_password=os.getenv("REDIS_PASSWORD"),
                    redis_port=os.getenv("REDIS_PORT"))  # fmt: skip

    print(response)

    response = router.completion(model="gpt-3.5-turbo", messages=[{"role": "user", "content": "Hey, how's it going?"}])
    assert response.choices[0].message.content.endswith("You said: Hey, how's it going?")
    assert isinstance(router.state, RedisState) and router.state.available  # the password worked
    snaps = router.state.snapshot([d.id for d in router.deployments])
    assert sum(s.requests for s in snaps.values()) == 1
    # the usage is in Redis, where a second instance sees it
    twin = Router(model_list=model_list, redis_host="127.0.0.1", redis_port=redis_server.port,
                  redis_password=redis_server.password)  # fmt: skip
    assert twin.state.snapshot([d.id for d in twin.deployments]) == snaps
    assert len(emulator.requests) == 1
