"""Strategies and deployment parsing, as pure functions (no network)."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from modelyard.router.deployments import Deployment, parse_model_list
from modelyard.router.state import MemoryState, Quota, Snapshot
from modelyard.router.strategies import choose


def deps(*names: str, **fields: dict) -> list[Deployment]:
    return [Deployment(id=n, model_name="g", model=f"azure/{n}", **fields.get(n, {})) for n in names]


def picks(strategy: str, candidates: list[Deployment], snaps: dict[str, Snapshot], n: int = 2000, **kw) -> Counter:
    rng = random.Random(7)
    return Counter(choose(strategy, candidates, snaps, rng=rng, **kw).id for _ in range(n))


def test_simple_shuffle_weighs_by_weight_then_rpm_then_tpm() -> None:
    blank = {"a": Snapshot(), "b": Snapshot()}
    by_weight = picks("simple-shuffle", deps("a", "b", a={"weight": 9, "rpm": 1}, b={"weight": 1, "rpm": 9}), blank)
    assert 1650 < by_weight["a"] < 1950
    by_rpm = picks("simple-shuffle", deps("a", "b", a={"rpm": 100, "tpm": 1}, b={"rpm": 300, "tpm": 1}), blank)
    assert 350 < by_rpm["a"] < 650
    by_tpm = picks("simple-shuffle", deps("a", "b", a={"tpm": 1000}, b={"tpm": 1}), blank)
    assert by_tpm["a"] > 1950
    uniform = picks("simple-shuffle", deps("a", "b"), blank)
    assert 850 < uniform["a"] < 1150


def test_least_busy_and_usage_based_take_the_minimum() -> None:
    candidates = deps("a", "b", "c")
    snaps = {"a": Snapshot(in_flight=3, tokens=10), "b": Snapshot(in_flight=1, tokens=500), "c": Snapshot(in_flight=2, tokens=5)}
    assert picks("least-busy", candidates, snaps, n=50) == {"b": 50}
    assert picks("usage-based-routing", candidates, snaps, n=50) == {"c": 50}
    tied = {"a": Snapshot(tokens=5), "b": Snapshot(tokens=5), "c": Snapshot(tokens=9)}
    assert set(picks("usage-based-routing-v2", candidates, tied, n=200)) == {"a", "b"}


def test_latency_based_uses_time_to_first_token_for_streams() -> None:
    candidates = deps("a", "b")
    snaps = {"a": Snapshot(latency=1.0, ttft=0.05), "b": Snapshot(latency=0.5, ttft=0.30)}
    assert picks("latency-based-routing", candidates, snaps, n=20) == {"b": 20}
    assert picks("latency-based-routing", candidates, snaps, n=20, stream=True) == {"a": 20}
    # within the buffer, both share the load
    close = {"a": Snapshot(latency=1.0), "b": Snapshot(latency=1.05)}
    spread = picks("latency-based-routing", candidates, close, n=200, args={"lowest_latency_buffer": 0.1})
    assert set(spread) == {"a", "b"}


def test_quota_aware_weighs_by_remaining_tokens_and_trusts_fresh_readings_only() -> None:
    candidates = deps("a", "b")
    snaps = {"a": Snapshot(quota=Quota(100, 1_000, at=100.0)), "b": Snapshot(quota=Quota(100, 99_000, at=100.0))}
    fresh = picks("quota-aware", candidates, snaps, now=101.0, quota_ttl=10)
    assert fresh["a"] < 60 and fresh["b"] > 1940
    stale = picks("quota-aware", candidates, snaps, now=200.0, quota_ttl=10)
    assert 850 < stale["a"] < 1150  # old readings say nothing: even split


def test_memory_state_counts_per_window_and_keeps_the_later_cooldown() -> None:
    state = MemoryState(window=3600)
    first, second = state.reserve("a", rpm=2), state.reserve("a", rpm=2)
    assert first is not None and second is not None
    assert state.reserve("a", rpm=2) is None
    state.release(first, tokens=40, latency=1.0)
    state.release(second, tokens=2, latency=2.0)
    state.cool_down("a", 500.0)
    state.cool_down("a", 100.0)
    snap = state.snapshot(["a"])["a"]
    assert (snap.requests, snap.tokens, snap.in_flight, snap.cooldown_until) == (2, 42, 0, 500.0)
    assert snap.latency == pytest.approx(1.3)  # moving average, newest weighs 0.3
    assert state.add_failure("a") == 1 and state.add_failure("a") == 2


def test_model_list_routing_numbers_come_from_any_level_and_never_reach_the_call(monkeypatch) -> None:
    monkeypatch.setenv("MY_KEY", "from-env")
    [top, inner, info] = parse_model_list([
        {"model_name": "g", "litellm_params": {"model": "azure/a", "api_key": "os.environ/MY_KEY"}, "tpm": 100, "rpm": 6},
        {"model_name": "g", "params": {"model": "azure/b", "rpm": 7, "weight": 2, "order": 1, "region_name": "eastus"}},
        {"model_name": "g", "litellm_params": {"model": "azure/c"}, "model_info": {"id": "c-1", "priority": 2, "base_model": "azure/gpt-4o"}},
    ])  # fmt: skip
    assert (top.tpm, top.rpm, top.call_kwargs()) == (100, 6, {"api_key": "from-env"})
    assert (inner.rpm, inner.weight, inner.order, inner.call_kwargs()) == (7, 2.0, 1, {})
    assert (info.id, info.order, info.call_kwargs()) == ("c-1", 2, {"model_info": {"base_model": "azure/gpt-4o"}})
    again = parse_model_list([{"model_name": "g", "litellm_params": {"model": "azure/a", "api_key": "os.environ/MY_KEY"}}])
    assert again[0].id == top.id  # stable across processes: Redis keys line up
    assert "from-env" not in repr(top) and "MY_KEY" not in repr(top)
