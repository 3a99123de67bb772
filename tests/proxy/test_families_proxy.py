"""Model families through the proxy: a family pinned in config, and ``drop_params`` per deployment and globally.

``prod-reasoner`` is an o3-mini deployment whose name says nothing: without a pin the proxy
would send ``max_tokens`` and Azure would refuse it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import modelyard
import openai
import pytest
from modelyard.testing import Deployment, Emulator

from .conftest import MASTER_KEY, azure, running_proxy

HELLO = [{"role": "user", "content": "Hello there"}]


@pytest.fixture
def reasoner(emulator: Emulator) -> Emulator:
    emulator.add_deployment(Deployment("prod-reasoner", model="o3-mini"))
    return emulator


def reasoner_config(api_base: str, *, params: dict[str, Any] | None = None, info: dict[str, Any] | None = None,
                    settings: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    entry: dict[str, Any] = {"model_name": "reasoner", "litellm_params": azure(api_base, "prod-reasoner", **{"api_version": "2025-04-01-preview", **(params or {})})}
    if info is not None:
        entry["model_info"] = info
    return {"model_list": [entry], "litellm_settings": settings or {}, "router_settings": {"num_retries": 0}}


_clients: list[openai.OpenAI] = []


def client(proxy: Any) -> openai.OpenAI:
    """An openai SDK client of the proxy, closed after the test."""
    c = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key=MASTER_KEY, max_retries=0)
    _clients.append(c)
    return c


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _clients:
        _clients.pop().close()


PINS = {
    "model_info.base_model": {"info": {"base_model": "azure/o3-mini"}},
    "litellm_params.base_model": {"params": {"base_model": "azure/o3-mini"}},
    "litellm_params.model_family": {"params": {"model_family": "o_series"}},
    "model_info.model_family": {"info": {"model_family": "o_series"}},
}


@pytest.mark.parametrize("pin", list(PINS))
def test_a_pinned_family_renames_max_tokens_upstream(api_base: str, reasoner: Emulator, pin: str) -> None:
    with running_proxy(reasoner_config(api_base, **PINS[pin])) as proxy:
        reply = client(proxy).chat.completions.create(
            model="reasoner", messages=[{"role": "system", "content": "Be brief."}, *HELLO], max_tokens=50
        )  # type: ignore[call-overload]
    assert reply.choices[0].message.content
    [seen] = reasoner.requests
    assert seen.path == "/openai/deployments/prod-reasoner/chat/completions"
    assert seen.body["max_completion_tokens"] == 50 and "max_tokens" not in seen.body
    assert seen.body["messages"][0]["role"] == "developer"


def test_without_a_pin_azure_refuses_max_tokens(api_base: str, reasoner: Emulator) -> None:
    with running_proxy(reasoner_config(api_base)) as proxy, pytest.raises(openai.BadRequestError) as info:
        client(proxy).chat.completions.create(model="reasoner", messages=HELLO, max_tokens=50)
    assert "max_completion_tokens" in str(info.value)  # Azure's own error, passed on
    assert len(reasoner.requests) == 1


def test_an_unsupported_param_is_a_400_naming_it_and_nothing_is_sent(api_base: str, reasoner: Emulator) -> None:
    with running_proxy(reasoner_config(api_base, info={"base_model": "azure/o3-mini"})) as proxy:
        with pytest.raises(openai.BadRequestError) as info:
            client(proxy).chat.completions.create(model="reasoner", messages=HELLO, top_p=0.5)
        with pytest.raises(openai.BadRequestError) as temp:
            client(proxy).chat.completions.create(model="reasoner", messages=HELLO, temperature=0.2)
    err = info.value
    assert err.status_code == 400
    assert isinstance(err.body, dict) and err.body["param"] == "top_p" and err.body["code"] == "unsupported_parameter"
    assert "top_p" in err.body["message"] and "drop_params" in err.body["message"]
    assert isinstance(temp.value.body, dict) and temp.value.body["param"] == "temperature"
    assert reasoner.requests == []  # refused before any request reached the upstream


def test_drop_params_per_deployment(api_base: str, reasoner: Emulator) -> None:
    config = reasoner_config(api_base, params={"drop_params": True}, info={"base_model": "azure/o3-mini"})
    with running_proxy(config) as proxy:
        client(proxy).chat.completions.create(model="reasoner", messages=HELLO, top_p=0.5, max_tokens=20)
    [seen] = reasoner.requests
    assert "top_p" not in seen.body and seen.body["max_completion_tokens"] == 20
    assert modelyard.drop_params is False  # per deployment only


def test_drop_params_globally_sets_modelyard_drop_params(api_base: str, reasoner: Emulator) -> None:
    config = reasoner_config(api_base, info={"base_model": "azure/o3-mini"}, settings={"drop_params": True})
    with running_proxy(config) as proxy:
        assert modelyard.drop_params is True
        client(proxy).chat.completions.create(model="reasoner", messages=HELLO, top_p=0.5, presence_penalty=1)
    assert modelyard.drop_params is False  # put back when the proxy shut down
    [seen] = reasoner.requests
    assert "top_p" not in seen.body and "presence_penalty" not in seen.body


def test_a_deployment_drop_params_false_wins_over_the_global_setting(api_base: str, reasoner: Emulator) -> None:
    config = reasoner_config(api_base, params={"drop_params": False}, info={"base_model": "azure/o3-mini"},
                             settings={"drop_params": True})  # fmt: skip
    with running_proxy(config) as proxy, pytest.raises(openai.BadRequestError, match="top_p"):
        client(proxy).chat.completions.create(model="reasoner", messages=HELLO, top_p=0.5)
    assert reasoner.requests == []


def test_enable_azure_ad_token_refresh_sets_the_module_setting(api_base: str, emulator: Emulator) -> None:
    config = {"model_list": [{"model_name": "m", "litellm_params": azure(api_base, "gpt-4o")}],
              "litellm_settings": {"enable_azure_ad_token_refresh": True}}  # fmt: skip
    assert modelyard.enable_azure_ad_token_refresh is False
    with running_proxy(config) as proxy:
        assert modelyard.enable_azure_ad_token_refresh is True
        assert client(proxy).chat.completions.create(model="m", messages=HELLO).choices
    assert modelyard.enable_azure_ad_token_refresh is False


def test_an_unknown_model_family_stops_the_start(api_base: str) -> None:
    from modelyard.errors import ConfigError
    from modelyard.proxy import ProxyApp, parse_config

    config = parse_config(reasoner_config(api_base, info={"model_family": "o_serie"}))
    with pytest.raises(ConfigError, match="model_family"):
        ProxyApp(config, master_key=MASTER_KEY)
