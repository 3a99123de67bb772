"""``GET /metrics``: exact counters after a known mix of requests, in one process and with two workers."""

from __future__ import annotations

import json
import os
import signal
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx
import pytest
from modelyard.testing import Deployment, Emulator, Faults
from prometheus_client.parser import text_string_to_metric_families

from .conftest import MASTER_KEY, azure, running_proxy
from .test_lifecycle import serve

HELLO = [{"role": "user", "content": "Hello there"}]
AUTH = {"Authorization": f"Bearer {MASTER_KEY}"}


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition as {(name, sorted labels): value}."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def total(found: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    return sum(v for (n, ls), v in found.items() if n == name and set(labels.items()) <= set(ls))


def config(api_base: str, a: str, b: str, down: str) -> dict[str, Any]:
    # ``order`` makes the Router deterministic: a first, b once a cools down.
    return {
        "model_list": [
            {"model_name": "pool", "litellm_params": {**azure(api_base, a), "order": 1}, "model_info": {"id": a}},
            {"model_name": "pool", "litellm_params": {**azure(api_base, b), "order": 2}, "model_info": {"id": b}},
            {"model_name": "solo", "litellm_params": azure(api_base, down), "model_info": {"id": down}},
        ],
        "router_settings": {"num_retries": 1, "cooldown_time": 60, "fallbacks": [{"solo": ["pool"]}]},
        "general_settings": {"master_key": MASTER_KEY},
    }


def add_deployments(emulator: Emulator, a: str, b: str, down: str) -> None:
    emulator.add_deployment(Deployment(a, faults=Faults(script=[200, 200, 429], retry_after=0.01)))
    emulator.add_deployment(Deployment(b))
    emulator.add_deployment(Deployment(down, faults=Faults(error_rate=1.0, error_status=503)))


def usage_sum(replies: Iterable[dict[str, Any]], field: str) -> int:
    return sum(r["usage"][field] for r in replies)


def test_metrics_count_a_known_mix_of_requests(api_base: str, emulator: Emulator) -> None:
    add_deployments(emulator, "mx-a", "mx-b", "mx-down")
    with running_proxy(config(api_base, "mx-a", "mx-b", "mx-down")) as proxy, httpx.Client(base_url=proxy.url, timeout=30) as http:
        replies = []
        for model in ("pool", "pool", "pool", "pool", "solo"):
            r = http.post("/v1/chat/completions", json={"model": model, "messages": HELLO}, headers=AUTH)
            assert r.status_code == 200, r.text
            replies.append(r.json())
        assert http.post("/v1/chat/completions", json={"model": "pool", "messages": HELLO}).status_code == 401
        assert http.get("/metrics").status_code == 401  # the master key protects it by default
        assert http.get("/health", headers=AUTH).json()["unhealthy_count"] == 1  # mx-down
        page = http.get("/metrics", headers=AUTH)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/plain")
    found = samples(page.text)
    chat = {"endpoint": "/chat/completions"}
    # 1-2: mx-a; 3: mx-a answers 429 (cooled down for 60 s), the Router retries on mx-b;
    # 4: mx-b (mx-a is cooling down); 5: solo's mx-down 503 twice, then the fallback to pool (mx-b).
    assert total(found, "modelyard_requests_total", model_group="pool", deployment="mx-a", status="200", **chat) == 2
    assert total(found, "modelyard_requests_total", model_group="pool", deployment="mx-b", status="200", **chat) == 2
    assert total(found, "modelyard_requests_total", model_group="solo", deployment="mx-b", status="200", **chat) == 1
    assert total(found, "modelyard_requests_total", model_group="", deployment="", status="401", **chat) == 1
    assert total(found, "modelyard_deployment_calls_total", deployment="mx-a", status="429") == 1
    assert total(found, "modelyard_deployment_calls_total", deployment="mx-a", status="200") == 2
    assert total(found, "modelyard_deployment_calls_total", deployment="mx-b", status="200") == 3
    assert total(found, "modelyard_deployment_calls_total", deployment="mx-down", status="503") == 2
    # each call under the group of its own try: solo's mx-down, then the fallback group's mx-b
    assert total(found, "modelyard_deployment_calls_total", model_group="solo") == 2
    assert total(found, "modelyard_deployment_calls_total", model_group="pool", deployment="mx-b") == 3
    assert total(found, "modelyard_router_retries_total", model_group="pool") == 1
    assert total(found, "modelyard_router_retries_total", model_group="solo") == 1
    assert total(found, "modelyard_router_fallbacks_total", model_group="solo", fallback_group="pool") == 1
    assert total(found, "modelyard_deployment_cooldowns_total", deployment="mx-a") == 1
    assert total(found, "modelyard_deployment_cooldowns_total") == 1  # the lone mx-down is retried, not cooled
    assert total(found, "modelyard_deployment_cooldown_until_timestamp_seconds", deployment="mx-a") > 0
    assert total(found, "modelyard_deployment_remaining_requests", deployment="mx-a") == 0  # the 429's headers
    assert total(found, "modelyard_deployment_remaining_requests", deployment="mx-b") > 0
    assert total(found, "modelyard_tokens_total", kind="prompt") == usage_sum(replies, "prompt_tokens")
    assert total(found, "modelyard_tokens_total", kind="completion") == usage_sum(replies, "completion_tokens")
    # /health's probes set the health gauges; they are not counted as calls (mx-down's stayed 2 above)
    healthy = {d: total(found, "modelyard_deployment_healthy", deployment=d) for d in ("mx-a", "mx-b", "mx-down")}
    assert healthy == {"mx-a": 1, "mx-b": 1, "mx-down": 0}
    assert total(found, "modelyard_requests_total", endpoint="/health", status="200") == 1
    assert total(found, "modelyard_request_duration_seconds_count", model_group="pool", **chat) == 4
    assert total(found, "modelyard_proxy_overhead_seconds_count", model_group="pool", **chat) == 4
    assert 0 <= total(found, "modelyard_proxy_overhead_seconds_sum") < total(found, "modelyard_request_duration_seconds_sum")


def test_public_metrics_and_metrics_off(api_base: str, emulator: Emulator) -> None:
    add_deployments(emulator, "mp-a", "mp-b", "mp-down")
    cfg = config(api_base, "mp-a", "mp-b", "mp-down")
    cfg["general_settings"]["public_metrics"] = True
    with running_proxy(cfg) as proxy:
        assert httpx.get(f"{proxy.url}/metrics").status_code == 200
    cfg["general_settings"] = {"master_key": MASTER_KEY, "metrics": False}
    with running_proxy(cfg) as proxy:
        assert httpx.get(f"{proxy.url}/metrics", headers=AUTH).status_code == 404


def test_metrics_with_two_workers_are_one_view(api_base: str, emulator: Emulator, tmp_path: Path) -> None:
    """``--num_workers 2``: every worker's counts in each scrape; the temporary directory is removed at exit."""
    add_deployments(emulator, "mw-a", "mw-b", "mw-down")
    emulator.deployments["mw-a"].faults.script = [429]
    emulator.deployments["mw-a"].faults.latency = 0.2  # concurrent requests keep both workers busy
    emulator.deployments["mw-b"].faults.latency = 0.2
    import yaml

    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config(api_base, "mw-a", "mw-b", "mw-down")))
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {"TMPDIR": str(tmp)}
    with serve("--config", str(path), "--num_workers", "2", env=env) as (proc, url):
        replies: list[dict[str, Any]] = []
        statuses: list[int] = []

        def send(model: str) -> None:
            r = httpx.post(f"{url}/v1/chat/completions", json={"model": model, "messages": HELLO}, headers=AUTH, timeout=30)
            statuses.append(r.status_code)
            replies.append(r.json())

        def batch(*models: str) -> None:
            threads = [threading.Thread(target=send, args=(m,)) for m in models]
            for t in threads:
                t.start()
            for t in threads:
                t.join()

        (metrics_dir,) = tmp.glob("modelyard-metrics-*")
        batch("solo", *["pool"] * 7)
        # Until both workers have served (the second may still be starting): each keeps its own
        # counter file, named by its pid. Counted in batches, not timed.
        for _ in range(30):
            writers = {p.name.rsplit("_", 1)[1] for p in metrics_dir.glob("counter_*.db")}
            if len(writers) == 2:
                break
            batch(*["pool"] * 8)
        assert statuses == [200] * len(statuses), replies
        pool = len(statuses) - 1
        scrapes = [samples(httpx.get(f"{url}/metrics", headers=AUTH, timeout=30).text) for _ in range(4)]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    assert len(writers) == 2, writers  # both workers served (else this test proves nothing)
    for found in scrapes:  # whichever worker answers, the same totals
        assert total(found, "modelyard_requests_total", model_group="pool", status="200") == pool
        assert total(found, "modelyard_requests_total", model_group="solo", status="200") == 1
        assert total(found, "modelyard_router_fallbacks_total", model_group="solo", fallback_group="pool") == 1
        assert total(found, "modelyard_deployment_calls_total", deployment="mw-a", status="429") == 1
        assert total(found, "modelyard_deployment_calls_total", deployment="mw-down", status="503") == 2
        assert total(found, "modelyard_tokens_total", kind="prompt") == usage_sum(replies, "prompt_tokens")
        assert total(found, "modelyard_tokens_total", kind="completion") == usage_sum(replies, "completion_tokens")
    assert not list(tmp.glob("modelyard-metrics-*"))  # removed at exit
    assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ


def test_the_access_log_has_the_incoming_trace_id(api_base: str, everything_logged: pytest.LogCaptureFixture) -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    cfg = {"model_list": [{"model_name": "m", "litellm_params": azure(api_base, "gpt-4o")}],
           "general_settings": {"master_key": MASTER_KEY}}  # fmt: skip
    with running_proxy(cfg) as proxy:
        for parent in (f"00-{trace_id}-00f067aa0ba902b7-01", "not-a-traceparent", None):
            headers = {**AUTH, **({"traceparent": parent} if parent else {})}
            r = httpx.post(f"{proxy.url}/v1/chat/completions", json={"model": "m", "messages": HELLO}, headers=headers)
            assert r.status_code == 200
    lines = {(line := json.loads(rec.getMessage()))["request_id"]: line for rec in everything_logged.records
             if rec.name == "modelyard.proxy.access"}  # fmt: skip
    assert [line.get("trace_id") for line in lines.values()] == [trace_id, None, None]
