"""The Azure page's Router snippets, run against the emulator with only the import changed.

The page's third deployment is plain OpenAI (``"model": "gpt-3.5-turbo"`` with
``OPENAI_API_KEY``): modelyard-openai reads the bare name as OpenAI's (issue 13), so the Router
balances over all three deployments, the OpenAI one served by an OpenAI twin (OpenAI's paths and
Bearer keys, ``OPENAI_BASE_URL``), and fails over between the providers.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Iterator

import pytest
from modelyard.testing import KEY, Deployment, Emulator, Faults
from modelyard_openai.testing import OpenAITwin, TwinServer

from .conftest import RedisServer

pytestmark = pytest.mark.usefixtures("azure_env", "openai_env")


@pytest.fixture(scope="module")
def openai_server() -> Iterator[TwinServer]:
    with TwinServer(Emulator([Deployment("gpt-3.5-turbo", model="gpt-35-turbo-0125")], api_keys=[KEY])) as server:
        yield server


@pytest.fixture
def openai_env(openai_server: TwinServer, monkeypatch: pytest.MonkeyPatch) -> OpenAITwin:
    """``OPENAI_API_KEY`` / ``OPENAI_BASE_URL`` pointing at the OpenAI twin (requests cleared)."""
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", openai_server.base)
    openai_server.twin.requests.clear()
    openai_server.twin.emulator.reset()
    return openai_server.twin


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


def test_router_quick_start(emulator: Emulator, openai_env: OpenAITwin, caplog: pytest.LogCaptureFixture,
                            capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    from modelyard import Router

    model_list = _model_list()
    caplog.set_level(logging.WARNING, logger="modelyard.router")

    router = Router(model_list=model_list)

    # openai.chat.completions.create replacement
    response = router.completion(model="gpt-3.5-turbo",
                    messages=[{"role":"user","content":"Hey, how's it going?"}])  # fmt: skip

    print(response)

    assert "Router skips" not in caplog.text
    assert len(router.deployments) == 3  # the plain OpenAI one too
    assert response.choices[0].message.content.endswith("You said: Hey, how's it going?")
    assert "This is chatgpt-" in capsys.readouterr().out or openai_env.requests
    azure = [r for r in emulator.requests]
    openai = openai_env.requests
    assert len(azure) + len(openai) == 1
    if azure:
        assert azure[0].path in {"/openai/deployments/chatgpt-v-2/chat/completions",
                                 "/openai/deployments/chatgpt-functioncalling/chat/completions"}  # fmt: skip
        assert azure[0].query == {"api-version": os.environ["AZURE_API_VERSION"]}
        assert azure[0].body == {"messages": [{"role": "user", "content": "Hey, how's it going?"}]}
    else:
        assert (openai[0].path, openai[0].headers["authorization"]) == ("/v1/chat/completions", f"Bearer {KEY}")
        assert openai[0].body == {"model": "gpt-3.5-turbo", "messages": [{"role": "user", "content": "Hey, how's it going?"}]}
    # simple-shuffle weighs the three by rpm (1800, 1800, 9000): all get traffic
    for _ in range(60):
        router.completion(model="gpt-3.5-turbo", messages=[{"role": "user", "content": "again"}])
    assert len(Counter(r.path for r in emulator.requests)) == 2
    assert len(openai_env.requests) > len(emulator.requests) / 2  # 9000 of 12600 rpm: about 70%
    assert {r.path for r in openai_env.requests} == {"/v1/chat/completions"}


def test_router_fails_over_between_providers(emulator: Emulator, openai_env: OpenAITwin) -> None:
    from modelyard import Router

    router = Router(model_list=_model_list(), num_retries=2)
    for name in ("chatgpt-v-2", "chatgpt-functioncalling"):  # every Azure deployment answers 500
        emulator.deployments[name].faults = Faults(error_rate=1.0, error_status=500)
    for _ in range(5):
        r = router.completion(model="gpt-3.5-turbo", messages=[{"role": "user", "content": "hi"}])
        assert r.choices[0].message.content.endswith("You said: hi")
    assert len(openai_env.requests) == 5  # every call ended at OpenAI
    for name in ("chatgpt-v-2", "chatgpt-functioncalling"):
        emulator.deployments[name].faults = Faults()
    openai_env.emulator.deployments["gpt-3.5-turbo"].faults = Faults(error_rate=1.0, error_status=500)
    before = len(emulator.requests)
    router = Router(model_list=_model_list(), num_retries=2)
    for _ in range(5):
        r = router.completion(model="gpt-3.5-turbo", messages=[{"role": "user", "content": "hi"}])
        assert r.choices[0].message.content.endswith("You said: hi")
    assert len([r for r in emulator.requests[before:] if r.path.endswith("/chat/completions")]) == 5  # Azure served


def test_router_redis_queue(
    emulator: Emulator, openai_env: OpenAITwin, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
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
    assert len(emulator.requests) + len(openai_env.requests) == 1
