"""The Router against the emulator: load balancing, cooldowns, tiers, strategies, fallbacks."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from modelyard import AsyncChatStream, Router, transport
from modelyard.api import TextStream
from modelyard.errors import (
    APIConnectionError,
    BadRequestError,
    ConfigError,
    ContentFilterError,
    ContextWindowExceededError,
    RateLimitError,
    ServiceUnavailableError,
)
from modelyard.testing import FILTER_OUTPUT_TRIGGER, KEY, Deployment, Emulator, Faults

HELLO = [{"role": "user", "content": "Hello there"}]


def entry(name: str, api_base: str, group: str = "gpt-4o", **extra: Any) -> dict[str, Any]:
    """A model_list entry for emulator deployment ``name``."""
    params = {"model": f"azure/{name}", "api_key": KEY, "api_base": api_base, "api_version": "2024-10-21"}
    params.update(extra.pop("litellm_params", {}))
    return {"model_name": group, "litellm_params": params, **extra}


def served(emu: Emulator) -> list[str]:
    """Deployment names, in the order the emulator received requests."""
    return [r.path.split("/")[3] for r in emu.requests]


def test_one_of_two_deployments_answering_503_all_100_succeed(emu: Emulator, emu_url: str) -> None:
    emu.add_deployment(Deployment("east", faults=Faults(error_rate=1.0, error_status=503)))
    emu.add_deployment(Deployment("west"))
    router = Router(model_list=[entry("east", emu_url), entry("west", emu_url)], cooldown_time=60)

    window = router.state.window_index()
    replies = [router.completion(model="gpt-4o", messages=HELLO) for _ in range(100)]
    windows = router.state.window_index() - window + 1

    assert all(r.choices[0].message.content.startswith("This is west") for r in replies)
    counts = Counter(served(emu))
    assert counts["west"] == 100
    # east failed allowed_fails + 1 = 4 times, then cooled down for the rest of the run
    # (failures count per usage window: a run across a minute boundary starts a new count)
    assert 4 <= counts["east"] <= 4 * windows


def test_a_429_with_retry_after_2_cools_the_deployment_for_2s_then_it_serves_again(emu: Emulator, emu_url: str) -> None:
    # Priority tiers: "ptu" (order 1) takes everything while it can; "paygo" (order 2) only
    # gets the spill while "ptu" cools down after its 429, and traffic returns after 2 s.
    emu.add_deployment(Deployment("ptu", faults=Faults(script=[429], retry_after=2)))
    emu.add_deployment(Deployment("paygo"))
    router = Router(
        model_list=[entry("ptu", emu_url, order=1), entry("paygo", emu_url, litellm_params={"order": 2})],
        cooldown_time=1,
    )
    t0 = time.time()
    first = router.completion(model="gpt-4o", messages=HELLO)
    assert served(emu) == ["ptu", "paygo"]  # 429, then the retry spilled to tier 2
    assert first.choices[0].message.content.startswith("This is paygo")

    ends: list[tuple[str, float]] = []
    for _ in range(100):
        before = len(emu.requests)
        router.completion(model="gpt-4o", messages=HELLO)
        ends.append((served(emu)[before], time.time()))
        if ends[-1][0] == "ptu":
            break
        time.sleep(0.1)
    assert ends[-1][0] == "ptu", "traffic never returned to tier 1"
    assert [name for name, _ in ends[:-1]] == ["paygo"] * (len(ends) - 1)
    # the call that reached "ptu" again ended at least 2 s after the 429's request began
    assert ends[-1][1] >= t0 + 2
    assert len(ends) > 1  # and calls did arrive in between, all on tier 2


def test_usage_based_routing_picks_the_least_used_deployment(emu: Emulator, emu_url: str) -> None:
    for name in ("a", "b", "c"):
        emu.add_deployment(Deployment(name))
    router = Router(
        model_list=[entry(n, emu_url) for n in ("a", "b", "c")], routing_strategy="usage-based-routing-v2"
    )
    used = {"a": 0, "b": 0, "c": 0}
    prompts = ["one", "two words", "now three words", "x " * 40, "y", "a b c d e f g", "z " * 15, "q"] * 2
    for prompt in prompts:
        least = min(used.values())
        expected = {n for n, u in used.items() if u == least}
        reply = router.completion(model="gpt-4o", messages=[{"role": "user", "content": prompt}])
        name = served(emu)[-1]
        assert name in expected, (name, used)
        used[name] += reply.usage.total_tokens


def test_quota_aware_sends_less_traffic_to_the_deployment_reporting_few_remaining_tokens(
    emu: Emulator, emu_url: str
) -> None:
    emu.add_deployment(Deployment("scarce", tpm=3_000))
    emu.add_deployment(Deployment("plenty", tpm=1_000_000))
    router = Router(
        model_list=[entry("scarce", emu_url), entry("plenty", emu_url)], routing_strategy="quota-aware", quota_ttl=60
    )
    # Until a deployment has reported, it weighs as much as the best known one, so the first
    # calls are a coin toss: call until both have answered once (and told their quota).
    for _ in range(200):
        if set(served(emu)) == {"scarce", "plenty"}:
            break
        router.completion(model="gpt-4o", messages=HELLO)
    assert set(served(emu)) == {"scarce", "plenty"}
    emu.requests.clear()
    for _ in range(60):
        router.completion(model="gpt-4o", messages=HELLO)
    counts = Counter(served(emu))
    # "scarce" now weighs its ~3k remaining tokens against ~1M: about 0.3% of picks (more
    # than 6 of 60 has a probability of about 1e-9), and it is not excluded outright
    assert counts["scarce"] <= 6 < 54 <= counts["plenty"]
    assert counts["scarce"] + counts["plenty"] == 60


def test_remaining_requests_header_steers_traffic_away_before_a_429(emu: Emulator, emu_url: str) -> None:
    emu.add_deployment(Deployment("small", rpm=3))
    emu.add_deployment(Deployment("large"))
    # simple-shuffle, no rpm given to the Router: only Azure's headers tell it "small" is full
    router = Router(model_list=[entry("small", emu_url), entry("large", emu_url)], quota_ttl=60)
    for _ in range(40):
        router.completion(model="gpt-4o", messages=HELLO)
    counts = Counter(served(emu))
    # three calls used "small" up; its third reply said 0 requests remain, so no fourth (a 429)
    assert counts["small"] == 3
    assert counts["large"] == 37


def test_rpm_limit_is_respected_in_one_process(emu: Emulator, emu_url: str) -> None:
    emu.add_deployment(Deployment("capped"))
    emu.add_deployment(Deployment("spare"))
    router = Router(
        model_list=[entry("capped", emu_url, rpm=4, weight=100), entry("spare", emu_url, weight=1)]
    )
    first_window = router.state.window_index()
    for _ in range(20):
        router.completion(model="gpt-4o", messages=HELLO)
    windows = router.state.window_index() - first_window + 1
    assert 4 <= Counter(served(emu))["capped"] <= 4 * windows


def test_latency_based_routing_prefers_the_faster_deployment(emu: Emulator, emu_url: str) -> None:
    # 1 s against a few ms: a margin no scheduling hiccup on a busy machine can close
    emu.add_deployment(Deployment("slow", faults=Faults(latency=1.0)))
    emu.add_deployment(Deployment("fast"))
    router = Router(
        model_list=[entry("slow", emu_url), entry("fast", emu_url)], routing_strategy="latency-based-routing"
    )
    for _ in range(12):
        router.completion(model="gpt-4o", messages=HELLO)
    # each is tried once (unmeasured deployments score 0), then the faster one keeps the traffic
    assert Counter(served(emu)) == {"slow": 1, "fast": 11}


def test_least_busy_counts_open_streams_as_in_flight(emu: Emulator, emu_url: str) -> None:
    emu.add_deployment(Deployment("a"))
    emu.add_deployment(Deployment("b"))
    router = Router(model_list=[entry("a", emu_url), entry("b", emu_url)], routing_strategy="least-busy")
    first = router.completion(model="gpt-4o", messages=HELLO, stream=True)
    second = router.completion(model="gpt-4o", messages=HELLO, stream=True)
    one, two = served(emu)
    assert one != two  # the first stream is still open: the second goes elsewhere
    text = "".join(c.choices[0].delta.content or "" for c in first if c.choices)
    assert text.startswith(f"This is {one}")
    router.completion(model="gpt-4o", messages=HELLO)
    assert served(emu)[-1] == one  # the first stream ended; the second is still open
    second.close()
    snaps = router.state.snapshot([d.id for d in router.deployments])
    assert [s.in_flight for s in snaps.values()] == [0, 0]
    assert any(s.ttft is not None for s in snaps.values())


def test_when_every_deployment_cools_down_the_call_fails_at_once_with_retry_after(
    emu: Emulator, emu_url: str
) -> None:
    emu.add_deployment(Deployment("a", faults=Faults(script=[429], retry_after=1)))
    emu.add_deployment(Deployment("b", faults=Faults(script=[429], retry_after=1)))
    router = Router(model_list=[entry("a", emu_url), entry("b", emu_url)], cooldown_time=0.5, timeout=30)
    with pytest.raises(RateLimitError) as info:  # the second 429, not a sleep through the cooldowns
        router.completion(model="gpt-4o", messages=HELLO)
    assert info.value.retry_after is not None and 0.5 <= info.value.retry_after <= 1.0
    assert sorted(served(emu)) == ["a", "b"]
    time.sleep(info.value.retry_after)  # traffic resumes by itself once the cooldown is over
    reply = router.completion(model="gpt-4o", messages=HELLO)
    assert reply.choices[0].message.content.startswith("This is")


def test_a_call_finding_the_whole_group_cooling_down_says_when_to_come_back(emu: Emulator, emu_url: str) -> None:
    emu.add_deployment(Deployment("a", faults=Faults(script=[429], retry_after=30)))
    emu.add_deployment(Deployment("b", faults=Faults(script=[429], retry_after=30)))
    router = Router(model_list=[entry("a", emu_url), entry("b", emu_url)], timeout=60)
    with pytest.raises(RateLimitError, match="Rate limit"):
        router.completion(model="gpt-4o", messages=HELLO)
    with pytest.raises(RateLimitError, match="No deployment of model group 'gpt-4o' is available") as info:
        router.completion(model="gpt-4o", messages=HELLO)  # sent nowhere: every deployment cools down
    assert info.value.retry_after is not None and info.value.retry_after > 20
    assert len(emu.requests) == 2


@pytest.mark.parametrize("asynchronous", [False, True])
def test_a_group_failing_with_503s_fails_fast_with_a_503_and_retry_after(
    emu: Emulator, emu_url: str, asynchronous: bool
) -> None:
    for name in ("a", "b"):
        emu.add_deployment(Deployment(name, faults=Faults(error_rate=1.0, error_status=503)))
    router = Router(model_list=[entry("a", emu_url), entry("b", emu_url)], allowed_fails=0, cooldown_time=30, timeout=60)

    def call() -> None:
        if asynchronous:
            asyncio.run(router.acompletion(model="gpt-4o", messages=HELLO))
        else:
            router.completion(model="gpt-4o", messages=HELLO)

    with pytest.raises(ServiceUnavailableError) as first:
        call()  # a and b each fail once and cool down
    with pytest.raises(ServiceUnavailableError, match="all are cooling down after failures") as later:
        call()  # nothing left to try: at once, no backoff
    for err in (first.value, later.value):
        assert err.retry_after is not None and 25 < err.retry_after <= 30
    assert len(emu.requests) == 2


@pytest.mark.parametrize("asynchronous", [False, True])
def test_a_deployment_that_keeps_cutting_streams_cools_down_and_streams_move_to_the_other(
    emu: Emulator, emu_url: str, asynchronous: bool, sync_backend: str
) -> None:
    emu.add_deployment(Deployment("east", faults=Faults(drop_stream_after=1)))
    emu.add_deployment(Deployment("west"))
    router = Router(model_list=[entry("east", emu_url), entry("west", emu_url)], allowed_fails=1, cooldown_time=60)

    async def astream() -> str:
        stream = await router.acompletion(model="gpt-4o", messages=HELLO, stream=True)
        return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])

    def stream() -> str:
        if asynchronous:
            return asyncio.run(astream())
        chunks = router.completion(model="gpt-4o", messages=HELLO, stream=True)
        return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)

    outcomes = Counter[str]()
    for _ in range(30):
        try:
            outcomes["west" if stream().startswith("This is west") else "other"] += 1
        except APIConnectionError:
            outcomes["cut"] += 1  # a stream east cut after its first chunk
    # east cuts allowed_fails + 1 = 2 streams (the usage window may roll over once), then cools down
    assert outcomes["cut"] <= 4 and outcomes["west"] == 30 - outcomes["cut"], outcomes
    assert Counter(served(emu))["east"] == outcomes["cut"]


@pytest.fixture(params=["httpx", "native"])
def sync_backend(request: pytest.FixtureRequest) -> Iterator[str]:
    """The process-wide transport's sync backend for the test."""
    t = transport.Transport(sync_backend=request.param)
    previous = transport.set_transport(t)
    try:
        yield request.param
    finally:
        transport.set_transport(previous)
        t.close()


def test_a_connection_reset_before_the_answer_fails_over_only_with_retry_on_timeout(
    emu: Emulator, emu_url: str, sync_backend: str
) -> None:
    # The request had left: the upstream may be running it. As documented (docs/router.md), it
    # is counted against the deployment but not retried elsewhere unless retry_on_timeout (nor
    # resent by the HTTP client on a new connection: the reset comes on a reused one).
    emu.add_deployment(Deployment("east", faults=Faults(reset_rate=1.0)))
    emu.add_deployment(Deployment("west"))
    model_list = [entry("east", emu_url, litellm_params={"weight": 1}), entry("west", emu_url, litellm_params={"weight": 0})]
    cautious = Router(model_list=model_list, allowed_fails=1, cooldown_time=60)
    with pytest.raises(APIConnectionError, match="reset") as info:
        cautious.completion(model="gpt-4o", messages=HELLO)
    assert info.value.request_sent and served(emu) == ["east"]
    with pytest.raises(APIConnectionError):
        cautious.completion(model="gpt-4o", messages=HELLO)  # the second failure: east cools down
    reply = cautious.completion(model="gpt-4o", messages=HELLO)  # steered to west from now on
    assert reply.choices[0].message.content.startswith("This is west")
    emu.requests.clear()
    bold = Router(model_list=model_list, retry_on_timeout=True)
    reply = bold.completion(model="gpt-4o", messages=HELLO)
    assert reply.choices[0].message.content.startswith("This is west") and served(emu) == ["east", "west"]


def test_a_retry_never_reuses_a_failed_deployment_while_another_is_left(emu: Emulator, emu_url: str) -> None:
    for name in ("a", "b", "c"):
        emu.add_deployment(Deployment(name, faults=Faults(error_rate=1.0, error_status=500)))
    router = Router(model_list=[entry(n, emu_url) for n in ("a", "b", "c")], num_retries=2)
    with pytest.raises(Exception) as info:
        router.completion(model="gpt-4o", messages=HELLO)
    assert info.value.status_code == 500  # type: ignore[attr-defined]
    assert sorted(served(emu)) == ["a", "b", "c"]


def test_a_lone_deployment_is_retried_with_backoff(emu: Emulator, emu_url: str) -> None:
    emu.add_deployment(Deployment("only", faults=Faults(script=[503])))
    router = Router(model_list=[entry("only", emu_url)])
    reply = router.completion(model="gpt-4o", messages=HELLO)
    assert reply.choices[0].message.content.startswith("This is only")
    assert served(emu) == ["only", "only"]


def test_fallbacks_to_another_model_group(emu: Emulator, emu_url: str) -> None:
    emu.add_deployment(Deployment("primary", faults=Faults(error_rate=1.0, error_status=503)))
    emu.add_deployment(Deployment("backup"))
    router = Router(
        model_list=[entry("primary", emu_url, group="main"), entry("backup", emu_url, group="spare")],
        fallbacks=[{"main": ["spare"]}],
        num_retries=1,
    )
    reply = router.completion(model="main", messages=HELLO)
    assert reply.choices[0].message.content.startswith("This is backup")
    assert served(emu) == ["primary", "primary", "backup"]

    # per-call fallbacks override the Router's: none here, so the 503 surfaces
    emu.requests.clear()
    with pytest.raises(ServiceUnavailableError):
        router.completion(model="main", messages=HELLO, fallbacks=[], num_retries=0)
    assert served(emu) == ["primary"]


def test_context_window_fallbacks(emu: Emulator, emu_url: str) -> None:
    emu.add_deployment(Deployment("small", context_window=20))
    emu.add_deployment(Deployment("large"))
    router = Router(
        model_list=[entry("small", emu_url, group="short"), entry("large", emu_url, group="long")],
        context_window_fallbacks=[{"short": ["long"]}],
    )
    long_prompt = [{"role": "user", "content": "word " * 50}]
    reply = router.completion(model="short", messages=long_prompt)
    assert reply.choices[0].message.content.startswith("This is large")
    assert served(emu) == ["small", "large"]  # a context-window error is not retried in its group

    plain = Router(model_list=[entry("small", emu_url, group="short")])
    with pytest.raises(ContextWindowExceededError):
        plain.completion(model="short", messages=long_prompt)


def test_content_policy_fallbacks_on_a_reply_cut_by_the_filter(emu: Emulator, emu_url: str) -> None:
    emu.add_deployment(Deployment("strict"))
    emu.add_deployment(Deployment("other"))
    router = Router(
        model_list=[entry("strict", emu_url, group="g1"), entry("other", emu_url, group="g2")],
        content_policy_fallbacks=[{"g1": ["g2"]}],
    )
    messages = [{"role": "user", "content": f"tell me {FILTER_OUTPUT_TRIGGER}"}]
    reply = router.completion(model="g1", messages=messages)
    assert served(emu) == ["strict", "other"]  # g1's cut reply sent the call on to g2
    assert reply.choices[0].finish_reason == "content_filter"  # g2 has no fallback: its reply, as is

    emu.requests.clear()
    loop = Router(
        model_list=[entry("strict", emu_url, group="g1"), entry("other", emu_url, group="g2")],
        content_policy_fallbacks=[{"g1": ["g2"]}, {"g2": ["g1"]}],
    )
    with pytest.raises(ContentFilterError) as info:
        loop.completion(model="g1", messages=messages)
    assert served(emu) == ["strict", "other"]  # each group once, no loop
    assert any("fallback 'g2' failed too" in note for note in info.value.__notes__)

    no_fallback = Router(model_list=[entry("strict", emu_url, group="g1")])
    reply = no_fallback.completion(model="g1", messages=messages)
    assert reply.choices[0].finish_reason == "content_filter"  # returned as is without fallbacks


def test_async_completion_and_stream(emu: Emulator, emu_url: str) -> None:
    emu.add_deployment(Deployment("east", faults=Faults(error_rate=1.0, error_status=503)))
    emu.add_deployment(Deployment("west"))

    async def main() -> list[str]:
        router = Router(model_list=[entry("east", emu_url), entry("west", emu_url)])
        replies = await asyncio.gather(*(router.acompletion(model="gpt-4o", messages=HELLO) for _ in range(20)))
        stream = await router.acompletion(model="gpt-4o", messages=HELLO, stream=True)
        assert isinstance(stream, AsyncChatStream)
        west = next(d.id for d in router.deployments if d.model == "azure/west")
        assert (await router.state.asnapshot([west]))[west].in_flight == 1  # open until read
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        snap = (await router.state.asnapshot([west]))[west]
        assert snap.in_flight == 0 and snap.ttft is not None and snap.latency is not None
        return [r.choices[0].message.content for r in replies] + [text]

    texts = asyncio.run(main())
    assert len(texts) == 21 and all(t.startswith("This is west") for t in texts)


def test_unknown_model_group_names_the_groups(emu: Emulator, emu_url: str) -> None:
    emu.add_deployment(Deployment("a"))
    router = Router(model_list=[entry("a", emu_url)])
    with pytest.raises(BadRequestError, match=r"no model group 'gpt-5'.*serves: gpt-4o") as info:
        router.completion(model="gpt-5", messages=HELLO)
    assert info.value.param == "model"


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"routing_strategy": "cheapest"}, "routing_strategy"),
        ({"num_retries": -1}, "num_retries"),
        ({"cooldown_time": "soon"}, "cooldown_time"),
        ({"redis_host": "127.0.0.1", "redis_port": "sixty"}, "redis_port"),
        ({"fallbacks": [{"gpt-4o": 3}]}, "fallbacks[0].gpt-4o"),
        ({"no_such_setting": 1}, "no_such_setting"),
    ],
)
def test_bad_settings_name_the_key(kwargs: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        Router(model_list=[entry("a", "http://127.0.0.1:9")], **kwargs)
    assert info.value.key == key


@pytest.mark.parametrize(
    ("model_list", "key"),
    [
        ([], "model_list"),
        ([{"litellm_params": {"model": "azure/a"}}], "model_list[0].model_name"),
        ([{"model_name": "g", "litellm_params": {}}], "model_list[0].litellm_params.model"),
        ([{"model_name": "g", "litellm_params": {"model": "azure/a", "rpm": "many"}}], "model_list[0].litellm_params.rpm"),
        ([{"model_name": "g", "litellm_params": {"model": "azure/a"}, "tpm": -5}], "model_list[0].tpm"),
    ],
)
def test_bad_model_list_entries_name_the_field(model_list: list[Any], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        Router(model_list=model_list)
    assert info.value.key == key


def test_secrets_stay_out_of_reprs_and_logs(emu: Emulator, emu_url: str, caplog: pytest.LogCaptureFixture) -> None:
    emu.add_deployment(Deployment("a", faults=Faults(script=[429], retry_after=0)))
    emu.add_deployment(Deployment("b"))
    caplog.set_level(logging.DEBUG)
    router = Router(
        model_list=[entry("a", emu_url), entry("b", emu_url)],
        redis_host="127.0.0.1", redis_port=9, redis_password="hunter2-secret",
    )  # fmt: skip
    router.completion(model="gpt-4o", messages=HELLO)  # Redis down: carries on locally
    text = repr(router) + repr(router.deployments) + repr(router.state) + caplog.text
    assert KEY not in text and "hunter2-secret" not in text
    assert "Redis is unreachable" in caplog.text


def test_deployment_settings_stay_out_of_the_upstream_request(emu: Emulator, emu_url: str) -> None:
    emu.add_deployment(Deployment("a"))
    extra = {"rpm": 50, "tpm": 9000, "weight": 3, "order": 1, "region_name": "eastus", "stream_timeout": 30,
             "input_cost_per_token": 1e-6, "temperature": 0.2}  # fmt: skip
    router = Router(model_list=[entry("a", emu_url, litellm_params=extra)])
    router.completion(model="gpt-4o", messages=HELLO, max_tokens=5)
    [seen] = emu.requests
    # the deployment's request parameters (temperature) go up; routing and metadata do not
    assert seen.body == {"messages": HELLO, "temperature": 0.2, "max_tokens": 5}
    assert seen.path == "/openai/deployments/a/chat/completions"


def test_connection_errors_and_timeouts_move_the_call_to_another_deployment(emu: Emulator, emu_url: str) -> None:
    emu.add_deployment(Deployment("stuck", faults=Faults(latency=1.5)))
    emu.add_deployment(Deployment("fine"))
    dead = entry("gone", "http://127.0.0.1:9", order=1)  # nothing listens on the discard port
    router = Router(
        model_list=[dead, entry("stuck", emu_url, order=2), entry("fine", emu_url, order=3)],
        timeout=0.5, allowed_fails=0, cooldown_time=60, retry_on_timeout=True,  # the read timeout too
    )  # fmt: skip
    replies = [router.completion(model="gpt-4o", messages=HELLO) for _ in range(10)]
    assert all(r.choices[0].message.content.startswith("This is fine") for r in replies)
    # the first call tried tier 1 (connection refused), tier 2 (timed out), then tier 3; both
    # failures cooled their deployment down, so the other nine went straight to tier 3
    assert Counter(served(emu)) == {"stuck": 1, "fine": 10}
    snaps = router.state.snapshot([d.id for d in router.deployments])
    cooling = {d.model for d in router.deployments if snaps[d.id].cooldown_until > time.time()}
    assert cooling == {"azure/gone", "azure/stuck"}


def test_text_completion_is_routed_too(emu: Emulator, emu_url: str) -> None:
    emu.add_deployment(Deployment("instruct-east", model="gpt-35-turbo-instruct", faults=Faults(error_rate=1.0)))
    emu.add_deployment(Deployment("instruct-west", model="gpt-35-turbo-instruct"))
    common = {"api_key": KEY, "api_base": emu_url, "api_version": "2024-10-21"}
    router = Router(
        model_list=[
            {"model_name": "instruct", "litellm_params": {"model": f"azure_text/{name}", **common}}
            for name in ("instruct-east", "instruct-west")
        ],
        cooldown_time=60,
    )
    replies = [router.text_completion(model="instruct", prompt="Say hi", max_tokens=20) for _ in range(10)]
    assert all(r.choices[0].text for r in replies)
    assert Counter(served(emu))["instruct-west"] == 10
    stream = router.text_completion(model="instruct", prompt="Say hi", stream=True)
    assert isinstance(stream, TextStream)
    assert "".join(c.choices[0].text for c in stream if c.choices)
    snaps = router.state.snapshot([d.id for d in router.deployments])
    assert all(s.in_flight == 0 for s in snaps.values())

    async def main() -> None:
        reply = await router.atext_completion(model="instruct", prompt="Say hi")
        assert reply.choices[0].text

    asyncio.run(main())
