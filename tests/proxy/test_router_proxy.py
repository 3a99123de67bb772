"""The proxy routes through ``modelyard.Router``: failover, cooldowns, fallbacks, shared Redis state.

Every test drives the proxy with the official ``openai`` SDK (or raw httpx for headers) and
counts what the emulator received.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from modelyard.router import RedisState
from modelyard.testing import Deployment, Emulator, Faults, RedisServer

from .conftest import MASTER_KEY, azure, running_proxy

HELLO = [{"role": "user", "content": "Hello there"}]


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


def served(emulator: Emulator, prefix: str = "pr-") -> list[str]:
    """The deployments the emulator served, in order (only this module's, named ``pr-*``)."""
    names = [r.path.split("/")[3] for r in emulator.requests]
    return [n for n in names if n.startswith(prefix)]


def pool(api_base: str, *names: str, group: str = "pool", **extra: Any) -> list[dict[str, Any]]:
    """One model_list entry per emulator deployment, all in model group ``group``."""
    return [{"model_name": group, "litellm_params": azure(api_base, n), "model_info": {"id": n}, **extra} for n in names]


def test_one_deployment_answering_503_every_request_still_succeeds(api_base: str, emulator: Emulator) -> None:
    emulator.add_deployment(Deployment("pr-east", faults=Faults(error_rate=1.0, error_status=503)))
    emulator.add_deployment(Deployment("pr-west"))
    config = {"model_list": pool(api_base, "pr-east", "pr-west"), "router_settings": {"cooldown_time": 60}}
    with running_proxy(config) as proxy:
        window = proxy.app.router.state.window_index()
        c = client(proxy)
        replies = [c.chat.completions.create(model="pool", messages=HELLO) for _ in range(100)]
        windows = proxy.app.router.state.window_index() - window + 1
    assert all((r.choices[0].message.content or "").startswith("This is pr-west") for r in replies)
    counts = Counter(served(emulator))
    assert counts["pr-west"] == 100
    # pr-east failed allowed_fails + 1 = 4 times in a usage window, then cooled down for 60 s
    # (failures count per 60 s window: a run across a window boundary may start a new count)
    assert 4 <= counts["pr-east"] <= 4 * windows


def test_a_429_with_retry_after_cools_the_deployment_then_it_serves_again(api_base: str, emulator: Emulator) -> None:
    # Priority tiers from config: pr-ptu (order 1) takes every call it can; after its 429 with
    # retry-after: 2 the calls spill to pr-paygo (order 2) until the cooldown is over.
    emulator.add_deployment(Deployment("pr-ptu", faults=Faults(script=[429], retry_after=2)))
    emulator.add_deployment(Deployment("pr-paygo"))
    config = {
        "model_list": [
            {"model_name": "pool", "litellm_params": {**azure(api_base, "pr-ptu"), "order": 1}},
            {"model_name": "pool", "litellm_params": azure(api_base, "pr-paygo"), "model_info": {"order": 2}},
        ],
        "router_settings": {"cooldown_time": 1},
    }
    with running_proxy(config) as proxy:
        c = client(proxy)
        t0 = time.time()
        first = c.chat.completions.create(model="pool", messages=HELLO)
        assert served(emulator) == ["pr-ptu", "pr-paygo"]  # the 429, then the retry on tier 2
        assert (first.choices[0].message.content or "").startswith("This is pr-paygo")
        ends: list[tuple[str, float]] = []
        for _ in range(100):
            before = len(served(emulator))
            c.chat.completions.create(model="pool", messages=HELLO)
            ends.append((served(emulator)[before], time.time()))
            if ends[-1][0] == "pr-ptu":
                break
            time.sleep(0.1)
    assert ends[-1][0] == "pr-ptu", "traffic never returned to tier 1"
    assert len(ends) > 1 and {name for name, _ in ends[:-1]} == {"pr-paygo"}
    assert ends[-1][1] >= t0 + 2  # not before the retry-after was over


def test_a_lone_deployment_answering_429_gives_the_client_429_with_retry_after(api_base: str, emulator: Emulator) -> None:
    emulator.add_deployment(Deployment("pr-only", faults=Faults(script=[429, 429], retry_after=1)))
    config = {"model_list": pool(api_base, "pr-only"), "router_settings": {"num_retries": 1}}
    with running_proxy(config) as proxy:
        r = httpx.post(f"{proxy.url}/v1/chat/completions", json={"model": "pool", "messages": HELLO},
                       headers={"Authorization": f"Bearer {MASTER_KEY}"}, timeout=30)  # fmt: skip
    assert r.status_code == 429 and r.json()["error"]["code"] == "429"
    assert r.headers["retry-after"] == "1"
    assert served(emulator) == ["pr-only", "pr-only"]  # tried, then retried after the retry-after


@pytest.mark.parametrize("section", ["router_settings", "litellm_settings"])
def test_fallbacks_across_model_groups_from_config(api_base: str, emulator: Emulator, section: str) -> None:
    emulator.add_deployment(Deployment("pr-primary", faults=Faults(error_rate=1.0, error_status=503)))
    emulator.add_deployment(Deployment("pr-backup"))
    config = {
        "model_list": [*pool(api_base, "pr-primary", group="primary"), *pool(api_base, "pr-backup", group="backup")],
        section: {"num_retries": 1, "fallbacks": [{"primary": ["backup"]}]},
    }
    with running_proxy(config) as proxy:
        reply = client(proxy).chat.completions.create(model="primary", messages=HELLO)
    assert (reply.choices[0].message.content or "").startswith("This is pr-backup")
    # the group's own retries (one deployment: the first try and one retry), then the fallback
    assert served(emulator) == ["pr-primary", "pr-primary", "pr-backup"]


def test_a_client_may_send_fallbacks_and_a_malformed_list_is_a_400(api_base: str, emulator: Emulator) -> None:
    emulator.add_deployment(Deployment("pr-down", faults=Faults(error_rate=1.0, error_status=500)))
    emulator.add_deployment(Deployment("pr-up"))
    config = {"model_list": [*pool(api_base, "pr-down", group="down"), *pool(api_base, "pr-up", group="up")],
              "router_settings": {"num_retries": 0}}  # fmt: skip
    auth = {"Authorization": f"Bearer {MASTER_KEY}"}
    with running_proxy(config) as proxy, httpx.Client(base_url=proxy.url, headers=auth, timeout=30) as http:
        ok = http.post("/v1/chat/completions", json={"model": "down", "messages": HELLO, "fallbacks": ["up"]})
        bad = http.post("/v1/chat/completions", json={"model": "down", "messages": HELLO, "fallbacks": "up"})
    assert ok.status_code == 200 and ok.json()["choices"][0]["message"]["content"].startswith("This is pr-up")
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "fallbacks"
    assert served(emulator) == ["pr-down", "pr-up"]  # the malformed request reached no deployment


def test_context_window_fallbacks_from_config(api_base: str, emulator: Emulator) -> None:
    config = {
        "model_list": [
            {"model_name": "tiny", "litellm_params": azure(api_base, "small-context")},
            {"model_name": "big", "litellm_params": azure(api_base, "gpt-4o")},
        ],
        "router_settings": {"context_window_fallbacks": [{"tiny": ["big"]}]},
    }
    long = [{"role": "user", "content": "word " * 5000}]
    with running_proxy(config) as proxy:
        reply = client(proxy).chat.completions.create(model="tiny", messages=long)  # type: ignore[arg-type]
    assert (reply.choices[0].message.content or "").startswith("This is gpt-4o")
    assert [r.path.split("/")[3] for r in emulator.requests] == ["small-context", "gpt-4o"]


def test_streaming_through_the_router_records_the_deployment(
    api_base: str, emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    emulator.add_deployment(Deployment("pr-s1", faults=Faults(script=[503])))
    config = {"model_list": pool(api_base, "pr-s1"), "router_settings": {"routing_strategy": "least-busy"}}
    caplog.set_level(logging.INFO, logger="modelyard.proxy.access")
    with running_proxy(config) as proxy:
        stream = client(proxy).chat.completions.create(model="pool", messages=HELLO, stream=True)
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        snaps = proxy.app.router.state.snapshot(["pr-s1"])
    assert text.startswith("This is pr-s1")
    assert served(emulator) == ["pr-s1", "pr-s1"]  # a 503 before the stream began is retried
    assert snaps["pr-s1"].in_flight == 0 and snaps["pr-s1"].ttft is not None  # the stream ended
    access = [r.getMessage() for r in caplog.records if r.name == "modelyard.proxy.access"]
    assert '"deployment":"pr-s1"' in access[-1]


def test_router_settings_reach_the_router(api_base: str, emulator: Emulator) -> None:
    config = {
        "model_list": pool(api_base, "gpt-4o", "gpt-4o-mini", rpm=100),
        "litellm_settings": {"num_retries": 5, "request_timeout": 42},
        "router_settings": {"routing_strategy": "usage-based-routing-v2", "allowed_fails": 7, "cooldown_time": 9,
                            "quota_ttl": 3, "max_fallbacks": 2, "default_fallbacks": ["other"],
                            "retry_on_timeout": True},
    }  # fmt: skip
    with running_proxy(config) as proxy:
        router = proxy.app.router
        assert router.routing_strategy == "usage-based-routing-v2"
        assert (router.num_retries, router.allowed_fails, router.cooldown_time) == (5, 7, 9.0)
        assert (router.timeout, router.quota_ttl, router.max_fallbacks) == (42.0, 3.0, 2)
        assert router.fallbacks == {"*": ["other"]}
        assert router.retry_on_timeout is True
        assert [d.rpm for d in router.deployments] == [100, 100]


def test_an_unknown_routing_strategy_stops_the_start(api_base: str) -> None:
    from modelyard.errors import ConfigError
    from modelyard.proxy import ProxyApp, parse_config

    config = parse_config({"model_list": pool(api_base, "gpt-4o"), "router_settings": {"routing_strategy": "fastest"}})
    with pytest.raises(ConfigError, match="routing_strategy"):
        ProxyApp(config, master_key=MASTER_KEY)


# ------------------------------------------------------------------------------ Redis


def _redis_config(api_base: str, redis: RedisServer, **settings: Any) -> dict[str, Any]:
    return {
        "model_list": [
            {"model_name": "pool", "litellm_params": azure(api_base, "pr-capped"), "rpm": 5},
            {"model_name": "pool", "litellm_params": azure(api_base, "pr-spare")},
        ],
        "router_settings": {"routing_strategy": "usage-based-routing-v2", "redis_host": "127.0.0.1",
                            "redis_port": redis.port, "redis_password": redis.password, **settings},
    }  # fmt: skip


def test_two_proxies_sharing_redis_respect_a_combined_rpm(
    api_base: str, emulator: Emulator, redis_server: RedisServer
) -> None:
    redis_server.flush()
    emulator.add_deployment(Deployment("pr-capped"))
    emulator.add_deployment(Deployment("pr-spare"))
    config = _redis_config(api_base, redis_server)
    with running_proxy(config) as one, running_proxy(config) as two:
        assert isinstance(one.app.router.state, RedisState) and one.app.router.state is not two.app.router.state
        window = one.app.router.state.window_index()
        results: list[int] = []
        start = threading.Barrier(2)

        def drive(proxy: Any) -> None:
            c = client(proxy)
            start.wait()
            results.append(sum(1 for _ in range(15) if c.chat.completions.create(model="pool", messages=HELLO)))

        threads = [threading.Thread(target=drive, args=(p,)) for p in (one, two)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        windows = one.app.router.state.window_index() - window + 1
        assert one.app.router.state.available and two.app.router.state.available
    assert results == [15, 15]  # every request succeeded
    counts = Counter(served(emulator))
    assert counts["pr-capped"] + counts["pr-spare"] == 30
    # Usage-based routing sends both proxies' calls to the least used deployment, so both reach
    # for pr-capped until the count they share in Redis says its 5 requests are gone. The slot
    # is taken atomically in Redis before the call, so this is exact per usage window (a run
    # across a minute boundary gets 5 more in the new window).
    assert 5 <= counts["pr-capped"] <= 5 * windows


def test_redis_killed_mid_run_the_proxy_keeps_serving(
    api_base: str, emulator: Emulator, fresh_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    emulator.add_deployment(Deployment("pr-capped"))
    emulator.add_deployment(Deployment("pr-spare"))
    config = _redis_config(api_base, fresh_redis)
    caplog.set_level(logging.WARNING, logger="modelyard.router")
    with running_proxy(config) as proxy:
        c = client(proxy)
        for _ in range(5):
            c.chat.completions.create(model="pool", messages=HELLO)
        state = proxy.app.router.state
        assert isinstance(state, RedisState) and state.available
        fresh_redis.stop()
        replies = [c.chat.completions.create(model="pool", messages=HELLO) for _ in range(20)]
        assert not state.available
    assert len(replies) == 20 and len(served(emulator)) == 25
    assert sum("Redis is unreachable" in r.getMessage() for r in caplog.records) == 1
    assert fresh_redis.password not in caplog.text


def test_azure_page_router_in_proxy_form(
    api_base: str, emulator: Emulator, redis_server: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The Azure page's Router quick start and its Redis variant, as a proxy config.yaml (its
    # third deployment is plain OpenAI, which modelyard does not serve, so it is left out).
    from modelyard.proxy import ProxyApp, load_config
    from modelyard.testing.server import serve_in_thread

    redis_server.flush()
    for name, value in {"AZURE_API_KEY": azure(api_base, "x")["api_key"], "AZURE_API_BASE": api_base,
                        "AZURE_API_VERSION": "2024-10-21", "REDIS_HOST": "127.0.0.1",
                        "REDIS_PORT": str(redis_server.port), "REDIS_PASSWORD": redis_server.password}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    path = tmp_path / "config.yaml"
    path.write_text(
        """
model_list:
  - model_name: gpt-3.5-turbo
    litellm_params:
      model: azure/chatgpt-v-2
      api_key: os.environ/AZURE_API_KEY
      api_version: os.environ/AZURE_API_VERSION
      api_base: os.environ/AZURE_API_BASE
    tpm: 240000
    rpm: 1800
  - model_name: gpt-3.5-turbo
    litellm_params:
      model: azure/chatgpt-functioncalling
      api_key: os.environ/AZURE_API_KEY
      api_version: os.environ/AZURE_API_VERSION
      api_base: os.environ/AZURE_API_BASE
    tpm: 240000
    rpm: 1800
router_settings:
  redis_host: os.environ/REDIS_HOST
  redis_password: os.environ/REDIS_PASSWORD
  redis_port: os.environ/REDIS_PORT
"""
    )
    app = ProxyApp(load_config(path), master_key=MASTER_KEY)
    with serve_in_thread(app, lifespan="on") as server:
        c = client(server)
        response = c.chat.completions.create(model="gpt-3.5-turbo", messages=[{"role": "user", "content": "Hey, how's it going?"}])
        for _ in range(30):
            c.chat.completions.create(model="gpt-3.5-turbo", messages=HELLO)
        state = app.router.state
        assert isinstance(state, RedisState) and state.available  # the password worked
        ids = [d.id for d in app.router.deployments]
        snaps = state.snapshot(ids)
        twin = RedisState(redis_server.url)
        assert twin.snapshot(ids) == snaps  # the usage is in Redis, where another instance sees it
        twin.close()
    assert (response.choices[0].message.content or "").endswith("You said: Hey, how's it going?")
    assert 0 < sum(s.requests for s in snaps.values()) <= 31
    assert {r.path for r in emulator.requests} == {"/openai/deployments/chatgpt-v-2/chat/completions",
                                                   "/openai/deployments/chatgpt-functioncalling/chat/completions"}  # fmt: skip
