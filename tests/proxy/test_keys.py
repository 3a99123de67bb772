"""Virtual keys, teams and budgets through the proxy (issue 15), on SQLite and on a real PostgreSQL.

Every test here runs with all loggers at DEBUG and the access log captured, and records every
response it gets; at the end, no virtual key made during the test may appear in any of them
(the one ``/key/generate`` answer that hands it out excepted).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import httpx
import openai
import pytest
from modelyard.testing import Emulator

from .conftest import MASTER_KEY, azure, logged_text, running_proxy

PRICES = {"input_cost_per_token": 1e-03, "output_cost_per_token": 2e-03}
CHAT = "/openai/deployments/gpt-4o/chat/completions"
STREAM_USAGE = "2025-04-01-preview"  # streams end with their usage (2024-10-21 cannot send it)


class Leaks:
    """Every key handed out and every response seen, checked for keys at the end of the test."""

    def __init__(self) -> None:
        self.keys: list[str] = []
        self.seen: list[str] = []

    def record(self, response: httpx.Response) -> None:
        response.read()
        if response.request.url.path.endswith("/key/generate") and response.status_code == 200:
            self.keys.append(response.json()["key"])
            return
        self.seen.append(f"{response.status_code} {response.headers!r} {response.text}")

    async def arecord(self, response: httpx.Response) -> None:
        await response.aread()
        self.record(response)


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Any) -> dict[str, Any]:
    """The store settings: a SQLite file of the test's own, or the session's PostgreSQL."""
    if request.param == "sqlite":
        return {"modelyard_settings": {"store_path": str(tmp_path / "store.db")}}
    url = request.getfixturevalue("postgres_url")
    return {"general_settings": {"database_url": url}}


@pytest.fixture
def leaks(everything_logged: pytest.LogCaptureFixture) -> Iterator[Leaks]:
    found = Leaks()
    yield found
    text = logged_text(everything_logged) + "\n".join(found.seen)
    assert found.keys, "the test made no key"
    for key in found.keys:
        assert key not in text and key[3:] not in text


def config(api_base: str, backend: dict[str, Any], **general: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "model_list": [
            {"model_name": "gpt-4o", "litellm_params": {**azure(api_base, "gpt-4o", api_version=STREAM_USAGE), **PRICES}},
            {"model_name": "gpt-4o-mini", "litellm_params": {**azure(api_base, "gpt-4o-mini"), **PRICES}},
        ],
        "router_settings": {"num_retries": 0},
        "general_settings": {**backend.get("general_settings", {}), **general},
    }
    if "modelyard_settings" in backend:
        out["modelyard_settings"] = backend["modelyard_settings"]
    return out


def admin(server: Any, leaks: Leaks) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {MASTER_KEY}"},
                        event_hooks={"response": [leaks.record]}, timeout=30)  # fmt: skip


def user(server: Any, key: str, leaks: Leaks) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"},
                        event_hooks={"response": [leaks.record]}, timeout=30)  # fmt: skip


def generate(server: Any, leaks: Leaks, **fields: Any) -> str:
    with admin(server, leaks) as client:
        r = client.post("/key/generate", json=fields)
    assert r.status_code == 200, r.text
    key: str = r.json()["key"]
    return key


def info(server: Any, leaks: Leaks, key: str) -> dict[str, Any]:
    with admin(server, leaks) as client:
        r = client.get("/key/info", params={"key": info_token(key)})
    assert r.status_code == 200, r.text
    found: dict[str, Any] = r.json()["info"]
    return found


def chat(client: httpx.Client, model: str = "gpt-4o", **extra: Any) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5, **extra}
    return client.post("/v1/chat/completions", json=body)


def upstream_calls(emulator: Emulator) -> int:
    return sum(1 for r in emulator.requests if r.path == CHAT)


# ---------------------------------------------------------------------- the openai SDK


def test_openai_sdk_allowed_model_works_disallowed_refused(api_base: str, emulator: Emulator, backend: dict[str, Any],
                                                          leaks: Leaks) -> None:  # fmt: skip
    with running_proxy(config(api_base, backend)) as server:
        key = generate(server, leaks, models=["gpt-4o"], key_alias="sdk-test")
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0,
                               http_client=httpx.Client(event_hooks={"response": [leaks.record]}))  # fmt: skip
        ok = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
        assert ok.http_response.status_code == 200 and ok.parse().choices[0].message.content
        before = len(emulator.requests)
        with pytest.raises(openai.PermissionDeniedError) as refused:
            client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
        assert refused.value.status_code == 403
        assert "'gpt-4o-mini'" in refused.value.message and refused.value.code == "model_not_allowed"
        assert len(emulator.requests) == before
        # An unknown, a deleted and an expired key: 401.
        stranger = openai.OpenAI(base_url=f"{server.url}/v1", api_key="sk-" + "x" * 32, max_retries=0)
        with stranger, pytest.raises(openai.AuthenticationError):
            stranger.models.list()
        with admin(server, leaks) as a:
            assert a.post("/key/delete", json={"key_aliases": ["sdk-test"]}).json()["deleted_keys"] == [info_token(key)]
        with pytest.raises(openai.AuthenticationError):
            client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
        client.close()
        expired = generate(server, leaks, duration="1s")
        time.sleep(1.1)
        with user(server, expired, leaks) as c:
            r = chat(c)
        assert r.status_code == 401 and r.json()["error"]["code"] == "key_expired"


def info_token(key: str) -> str:
    import hashlib

    return hashlib.sha256(key.encode()).hexdigest()


def test_admin_api_is_master_only_and_never_shows_the_key(api_base: str, backend: dict[str, Any], leaks: Leaks) -> None:
    with running_proxy(config(api_base, backend)) as server:
        with admin(server, leaks) as a:
            team = a.post("/team/new", json={"team_alias": "search", "models": ["gpt-4o"], "rpm_limit": 100}).json()
            created = a.post("/key/generate", json={"team_id": team["team_id"], "user_id": "ann", "max_budget": 1,
                                                    "budget_duration": "30d", "metadata": {"app": "x"}})  # fmt: skip
            key = created.json()["key"]
            assert key.startswith("sk-") and len(key) == 35
            assert created.json()["key_name"] == f"sk-...{key[-4:]}" and created.json()["token"] == info_token(key)
            shown = a.get("/key/info", params={"key": info_token(key)}).json()
            assert shown["key"] == info_token(key) and shown["info"]["team_id"] == team["team_id"]
            assert shown["info"]["budget_reset_at"] is not None and shown["info"]["metadata"] == {"app": "x"}
            listed = a.get("/key/list", params={"team_id": team["team_id"]}).json()
            assert listed["keys"] == [info_token(key)] and listed["total_count"] == 1
            # A key's models must be within its team's; unknown fields and bad values name the field.
            bad = a.post("/key/generate", json={"team_id": team["team_id"], "models": ["gpt-4o-mini"]})
            assert bad.status_code == 400 and bad.json()["error"]["param"] == "models"
            bad = a.post("/key/generate", json={"max_budgte": 1})
            assert bad.status_code == 400 and bad.json()["error"]["param"] == "max_budgte"
            bad = a.post("/key/generate", json={"budget_duration": "soon"})
            assert bad.status_code == 400 and bad.json()["error"]["param"] == "budget_duration"
            updated = a.post("/key/update", json={"key": key, "rpm_limit": 7, "key_alias": "renamed"}).json()
            assert updated["rpm_limit"] == 7 and updated["key_alias"] == "renamed"
            teams = a.get("/team/list").json()
            assert [t["team_alias"] for t in teams if t["team_id"] == team["team_id"]] == ["search"]
            assert a.get("/team/info", params={"team_id": team["team_id"]}).json()["keys"][0]["token"] == info_token(key)
        # A virtual key cannot use the admin API.
        with user(server, key, leaks) as u:
            r = u.post("/key/generate", json={})
            assert r.status_code == 403 and r.json()["error"]["code"] == "admin_only"
            assert chat(u).status_code == 200
            assert chat(u, "gpt-4o-mini").status_code == 403  # the team's models bound the key
        with admin(server, leaks) as a:
            gone = a.post("/team/delete", json={"team_ids": [team["team_id"]]}).json()
            assert gone["deleted_keys"] == [info_token(key)]
        with user(server, key, leaks) as u:
            assert chat(u).status_code == 401


# ---------------------------------------------------------------------- budgets


def _reservation(server: Any) -> float:
    from modelyard.proxy.keys import max_cost

    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
    return max_cost(server.app.deployments.get("gpt-4o"), "chat", body)


def _cost_of_one(server: Any) -> float:
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {MASTER_KEY}"}) as c:
        r = chat(c)
    return float(r.headers["x-modelyard-response-cost"])


def test_budget_covering_n_calls_refuses_the_rest_before_upstream(api_base: str, emulator: Emulator,
                                                                  backend: dict[str, Any], leaks: Leaks) -> None:  # fmt: skip
    n = 4
    with running_proxy(config(api_base, backend)) as server:
        cost, most = _cost_of_one(server), _reservation(server)
        assert 0 < cost < most
        budget = (n - 1) * cost + most + cost / 2  # call k+1 fits while k * cost + most <= budget: k < n
        key = generate(server, leaks, max_budget=budget)
        before = upstream_calls(emulator)
        statuses = []
        with user(server, key, leaks) as u:
            for _ in range(n + 5):
                r = chat(u)
                statuses.append(r.status_code)
                if r.status_code == 429:
                    error = r.json()["error"]
                    assert error["code"] == "budget_exceeded" and error["type"] == "insufficient_quota"
                    assert r.headers["x-should-retry"] == "false"
                else:
                    assert float(r.headers["x-litellm-key-remaining-budget"]) >= 0
        assert statuses == [200] * n + [429] * 5
        assert upstream_calls(emulator) - before == n  # none of the refused calls reached the emulator
        spent = info(server, leaks, key)["spend"]
        assert spent == pytest.approx(n * cost) and spent <= budget
        # Raising the budget takes effect at once (never a refusal from a stale spend).
        with admin(server, leaks) as a:
            assert a.post("/key/update", json={"key": key, "max_budget": budget + most}).status_code == 200
        with user(server, key, leaks) as u:
            assert chat(u).status_code == 200


def test_fifty_concurrent_calls_at_the_edge_stay_within_the_budget(api_base: str, emulator: Emulator,
                                                                   backend: dict[str, Any], leaks: Leaks) -> None:  # fmt: skip
    with running_proxy(config(api_base, backend)) as server:
        most = _reservation(server)
        budget = 10.5 * most
        key = generate(server, leaks, max_budget=budget)
        before = upstream_calls(emulator)

        async def burst() -> list[int]:
            async with httpx.AsyncClient(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=60,
                                         event_hooks={"response": [leaks.arecord]}) as c:  # fmt: skip
                body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
                answers = await asyncio.gather(*(c.post("/v1/chat/completions", json=body) for _ in range(50)))
            return [a.status_code for a in answers]

        statuses = asyncio.run(burst())
        admitted = statuses.count(200)
        assert set(statuses) <= {200, 429} and 10 <= admitted < 50
        assert upstream_calls(emulator) - before == admitted
        found = info(server, leaks, key)
        assert found["spend"] <= budget
        assert found["spend"] == pytest.approx(admitted * _cost_of_one(server))


def test_key_without_budget_is_never_refused_for_budget(api_base: str, backend: dict[str, Any], leaks: Leaks) -> None:
    with running_proxy(config(api_base, backend)) as server:
        with admin(server, leaks) as a:
            team = a.post("/team/new", json={"team_alias": "free"}).json()["team_id"]
        key = generate(server, leaks, team_id=team)
        with admin(server, leaks) as a:  # a spend far past anything: there is no budget to compare with
            assert a.post("/key/update", json={"key": key, "spend": 1e9}).status_code == 200
            assert a.post("/team/update", json={"team_id": team, "spend": 1e9}).status_code == 200
        with user(server, key, leaks) as u:
            for _ in range(3):
                r = chat(u)
                assert r.status_code == 200 and "x-litellm-key-remaining-budget" not in r.headers
        deadline = time.monotonic() + 5  # the spend of keys without a budget is written once a second
        while info(server, leaks, key)["spend"] <= 1e9 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert info(server, leaks, key)["spend"] > 1e9


def test_stream_and_failure_settle_to_their_real_cost(api_base: str, emulator: Emulator, backend: dict[str, Any],
                                                      leaks: Leaks) -> None:  # fmt: skip
    with running_proxy(config(api_base, backend)) as server:
        cost, most = _cost_of_one(server), _reservation(server)
        key = generate(server, leaks, max_budget=100 * most)
        with user(server, key, leaks) as u:
            with u.stream("POST", "/v1/chat/completions", json={
                "model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5, "stream": True,
            }) as r:  # fmt: skip
                assert r.status_code == 200
                assert "[DONE]" in "".join(r.iter_text())
            assert info(server, leaks, key)["spend"] == pytest.approx(cost)
            emulator.deployments["gpt-4o"].faults.script = [500]
            assert chat(u).status_code == 500
        found = info(server, leaks, key)
        assert found["spend"] == pytest.approx(cost)  # the failure cost nothing and its reservation is released
        with admin(server, leaks) as a:  # nothing is held any more: the whole rest of the budget is usable
            r = a.post("/key/update", json={"key": key, "max_budget": cost + most})
            assert r.status_code == 200
        with user(server, key, leaks) as u:
            assert chat(u).status_code == 200
            # A stream that cannot report its usage (api-version 2024-10-21) is charged its reservation.
            spent = info(server, leaks, key)["spend"]
            with admin(server, leaks) as a:
                assert a.post("/key/update", json={"key": key, "max_budget": spent + 10 * most}).status_code == 200
            body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5, "stream": True}
            with u.stream("POST", "/v1/chat/completions", json=body) as r:
                assert r.status_code == 200 and "[DONE]" in "".join(r.iter_text())
            assert info(server, leaks, key)["spend"] == pytest.approx(spent + most)


# ---------------------------------------------------------------------- across instances


def test_rpm_holds_across_two_instances_sharing_redis(api_base: str, redis_url: str, backend: dict[str, Any],
                                                      leaks: Leaks) -> None:  # fmt: skip
    cfg = config(api_base, backend)
    cfg["router_settings"]["redis_url"] = redis_url
    with ExitStack() as stack:
        a = stack.enter_context(running_proxy(cfg))
        b = stack.enter_context(running_proxy(cfg))
        key = generate(a, leaks, rpm_limit=4)
        statuses = []
        with user(a, key, leaks) as ua, user(b, key, leaks) as ub:
            for i in range(8):
                r = chat(ua if i % 2 else ub)
                statuses.append(r.status_code)
                if r.status_code == 429:
                    assert r.json()["error"]["code"] == "rate_limit_exceeded"
                    assert 1 <= int(r.headers["retry-after"]) <= 60
                else:
                    assert "x-ratelimit-remaining-requests" in r.headers
        assert statuses == [200] * 4 + [429] * 4


def test_revocation_through_one_instance_reaches_the_other_within_the_cache_ttl(
    api_base: str, backend: dict[str, Any], leaks: Leaks
) -> None:
    ttl = 1.0
    cfg = config(api_base, backend, user_api_key_cache_ttl=ttl)
    with ExitStack() as stack:
        a = stack.enter_context(running_proxy(cfg))
        b = stack.enter_context(running_proxy(cfg))
        key = generate(a, leaks)
        with user(b, key, leaks) as ub, user(a, key, leaks) as ua:
            assert chat(ub).status_code == 200  # b has the key in its cache now
            with admin(a, leaks) as admin_a:
                assert admin_a.post("/key/delete", json={"keys": [key]}).status_code == 200
            deleted = time.monotonic()
            assert chat(ua).status_code == 401  # at once on the instance that deleted it
            while chat(ub).status_code == 200:
                assert time.monotonic() - deleted <= ttl + 0.5
                time.sleep(0.05)
            assert chat(ub).status_code == 401


def test_requests_finding_no_cached_key_together_share_one_store_lookup(
    api_base: str, backend: dict[str, Any], leaks: Leaks
) -> None:
    """A key's first burst (or every request in flight when its cached entry expires) waits for one
    lookup of the key in the store, not one each: the SELECTs of the keys' table are those of one
    request, whether one request comes or twenty at once."""
    import sqlalchemy as sa

    selects: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "modelyard_keys" in statement:
            selects.append(statement)

    async def burst(server: Any, key: str, n: int) -> list[int]:
        async with httpx.AsyncClient(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=60,
                                     event_hooks={"response": [leaks.arecord]}) as client:  # fmt: skip
            body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
            answers = await asyncio.gather(*(client.post("/v1/chat/completions", json=body) for _ in range(n)))
        return [r.status_code for r in answers]

    with running_proxy(config(api_base, backend)) as server:
        one, twenty = generate(server, leaks), generate(server, leaks)
        sa.event.listen(sa.engine.Engine, "before_cursor_execute", seen)
        try:
            assert asyncio.run(burst(server, one, 1)) == [200]
            alone = len(selects)
            assert alone >= 1
            assert asyncio.run(burst(server, twenty, 20)) == [200] * 20
        finally:
            sa.event.remove(sa.engine.Engine, "before_cursor_execute", seen)
    assert len(selects) - alone == alone


def test_master_key_rotation_accepts_both_during_the_overlap(api_base: str, backend: dict[str, Any],
                                                             leaks: Leaks) -> None:  # fmt: skip
    new = "sk-new-master-" + "n" * 20
    cfg = config(api_base, backend, previous_master_key=MASTER_KEY, previous_master_key_expires="2999-01-01T00:00:00Z")
    with running_proxy(cfg, master_key=new) as server:
        for k in (new, MASTER_KEY):
            with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {k}"}) as c:
                assert chat(c).status_code == 200
        generate_with = httpx.post(f"{server.url}/key/generate", json={}, headers={"Authorization": f"Bearer {new}"})
        leaks.record(generate_with)
    cfg["general_settings"]["previous_master_key_expires"] = "2000-01-01T00:00:00Z"
    with running_proxy(cfg, master_key=new) as server:
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {MASTER_KEY}"}) as c:
            r = chat(c)
        assert r.status_code == 401 and MASTER_KEY not in r.text


def test_limits_on_parallel_calls_and_tokens(api_base: str, emulator: Emulator, leaks: Leaks, tmp_path: Any) -> None:
    backend = {"modelyard_settings": {"store_path": str(tmp_path / "s.db")}}
    with running_proxy(config(api_base, backend)) as server:
        key = generate(server, leaks, max_parallel_requests=1, tpm_limit=1)
        emulator.deployments["gpt-4o"].faults.drip = 0.3  # slow answers: the second call overlaps the first

        async def two() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=30,
                                         event_hooks={"response": [leaks.arecord]}) as c:  # fmt: skip
                body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
                first = asyncio.ensure_future(c.post("/v1/chat/completions", json=body))
                await asyncio.sleep(0.1)
                second = await c.post("/v1/chat/completions", json=body)
                return [await first, second]

        first, second = asyncio.run(two())
        emulator.deployments["gpt-4o"].faults.drip = 0
        assert first.status_code == 200
        assert second.status_code == 429 and "max_parallel_requests" in second.json()["error"]["message"]
        with user(server, key, leaks) as u:  # the first call's tokens spent this minute's tpm_limit of 1
            r = chat(u)
        assert r.status_code == 429 and "tpm_limit" in r.json()["error"]["message"] and int(r.headers["retry-after"]) >= 1


def test_budget_header_and_refusal_shape_name_no_key(api_base: str, leaks: Leaks, tmp_path: Any) -> None:
    backend = {"modelyard_settings": {"store_path": str(tmp_path / "s.db")}}
    with running_proxy(config(api_base, backend)) as server:
        key = generate(server, leaks, max_budget=0)
        with user(server, key, leaks) as u:
            r = chat(u)
        body = r.json()
        assert r.status_code == 429 and set(body["error"]) == {"message", "type", "param", "code"}
        assert json.dumps(body).count("sk-") == 0


def test_cli_creates_lists_and_revokes_through_the_admin_api(api_base: str, leaks: Leaks, tmp_path: Any,
                                                             capsys: pytest.CaptureFixture[str],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    from modelyard.cli import main

    backend = {"modelyard_settings": {"store_path": str(tmp_path / "s.db")}}
    monkeypatch.setenv("MODELYARD_MASTER_KEY", MASTER_KEY)
    with running_proxy(config(api_base, backend)) as server:
        assert main(["keys", "--url", server.url, "create", "--models", "gpt-4o", "--max-budget", "2",
                     "--alias", "cli"]) == 0  # fmt: skip
        key = capsys.readouterr().out.strip()
        leaks.keys.append(key)
        assert key.startswith("sk-")
        with user(server, key, leaks) as u:
            assert chat(u).status_code == 200 and chat(u, "gpt-4o-mini").status_code == 403
        assert main(["keys", "--url", server.url, "list"]) == 0
        listed = capsys.readouterr().out
        assert info_token(key)[:12] in listed and f"sk-...{key[-4:]}" in listed and " cli " in listed
        leaks.seen.append(listed)
        assert main(["keys", "--url", server.url, "revoke", "--alias", "cli"]) == 0
        assert "revoked 1 key(s)" in capsys.readouterr().out
        with user(server, key, leaks) as u:
            assert chat(u).status_code == 401
        assert main(["keys", "--url", server.url, "revoke", "--alias", "cli"]) == 1
        assert "404" in capsys.readouterr().err


def test_team_budget_holds_for_its_keys_together_and_models_list_is_filtered(
    api_base: str, emulator: Emulator, backend: dict[str, Any], leaks: Leaks
) -> None:
    with running_proxy(config(api_base, backend)) as server:
        most = _reservation(server)
        with admin(server, leaks) as a:
            team = a.post("/team/new", json={"max_budget": 6.5 * most}).json()["team_id"]
        keys = [generate(server, leaks, team_id=team, models=["gpt-4o"]) for _ in range(2)]
        before = upstream_calls(emulator)

        async def burst() -> list[int]:
            clients = [httpx.AsyncClient(base_url=server.url, headers={"Authorization": f"Bearer {k}"}, timeout=60,
                                         event_hooks={"response": [leaks.arecord]}) for k in keys]  # fmt: skip
            body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
            try:
                answers = await asyncio.gather(*(clients[i % 2].post("/v1/chat/completions", json=body) for i in range(30)))
            finally:
                for c in clients:
                    await c.aclose()
            return [r.status_code for r in answers]

        statuses = asyncio.run(burst())
        admitted = statuses.count(200)
        assert set(statuses) <= {200, 429} and 6 <= admitted < 30
        assert upstream_calls(emulator) - before == admitted
        with admin(server, leaks) as a:
            found = a.get("/team/info", params={"team_id": team}).json()
        assert found["team_info"]["spend"] <= 6.5 * most
        assert sum(k["spend"] for k in found["keys"]) == pytest.approx(found["team_info"]["spend"])
        with user(server, keys[0], leaks) as u:
            assert [m["id"] for m in u.get("/v1/models").json()["data"]] == ["gpt-4o"]


def test_budget_duration_starts_a_new_period(api_base: str, leaks: Leaks, tmp_path: Any) -> None:
    backend = {"modelyard_settings": {"store_path": str(tmp_path / "s.db")}}
    with running_proxy(config(api_base, backend)) as server:
        cost, most = _cost_of_one(server), _reservation(server)
        key = generate(server, leaks, max_budget=most + cost / 2, budget_duration="2s")
        with user(server, key, leaks) as u:
            assert chat(u).status_code == 200
            assert chat(u).status_code == 429  # the second call's reservation does not fit beside the first's cost
            time.sleep(2.2)
            assert chat(u).status_code == 200  # a new period: spend back to 0


def test_metrics_show_each_keys_budget_left(api_base: str, leaks: Leaks, tmp_path: Any) -> None:
    """``/metrics`` has ``modelyard_key_budget_remaining_usd``: the budget less what the key's calls cost."""
    from prometheus_client.parser import text_string_to_metric_families

    backend = {"modelyard_settings": {"store_path": str(tmp_path / "s.db")}}
    with running_proxy(config(api_base, backend)) as server:
        generate(server, leaks, max_budget=1.0, key_alias="search-app")
        plain = generate(server, leaks)  # no budget: never in the gauge
        key = leaks.keys[0]
        costs = []
        with user(server, key, leaks) as u:
            for _ in range(2):
                r = chat(u)
                assert r.status_code == 200, r.text
                costs.append(float(r.headers["x-modelyard-response-cost"]))
        with user(server, plain, leaks) as u:
            assert chat(u).status_code == 200
        with admin(server, leaks) as a:
            text = a.get("/metrics").text
    gauges = {s.labels["key"]: s.value for f in text_string_to_metric_families(text) for s in f.samples
              if s.name == "modelyard_key_budget_remaining_usd"}  # fmt: skip
    assert costs[0] > 0
    assert gauges == {"search-app": pytest.approx(1.0 - sum(costs), abs=1e-9)}


def test_responses_endpoints_hold_the_keys_models_and_budget(api_base: str, emulator: Emulator, leaks: Leaks,
                                                             tmp_path: Any) -> None:  # fmt: skip
    """``/responses`` (its own handler, beside the operation table's) checks the key like chat does."""
    backend = {"modelyard_settings": {"store_path": str(tmp_path / "s.db")}}
    with running_proxy(config(api_base, backend)) as server:
        limited = generate(server, leaks, models=["gpt-4o"])
        broke = generate(server, leaks, max_budget=0)
        with admin(server, leaks) as a:  # a response of a model the limited key may not use
            other = a.post("/v1/responses", json={"model": "gpt-4o-mini", "input": "hi"})
        assert other.status_code == 200, other.text
        before = len(emulator.requests)
        with user(server, limited, leaks) as u:
            refused = u.post("/v1/responses", json={"model": "gpt-4o-mini", "input": "hi"})
            read = u.get(f"/v1/responses/{other.json()['id']}")
            allowed = u.post("/v1/responses", json={"model": "gpt-4o", "input": "hi"})
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "model_not_allowed"
        assert read.status_code == 403 and "'gpt-4o-mini'" in read.json()["error"]["message"]
        assert allowed.status_code == 200, allowed.text
        with user(server, broke, leaks) as u:
            over = u.post("/v1/responses", json={"model": "gpt-4o", "input": "hi"})
        assert over.status_code == 429 and over.json()["error"]["code"] == "budget_exceeded"
        assert len(emulator.requests) == before + 1  # only the allowed call went upstream


def test_a_prompt_with_a_lone_surrogate_is_still_counted_in_the_reservation() -> None:
    # The proxy decodes bodies with surrogatepass, so a prompt can hold a lone surrogate, which
    # UTF-8 cannot encode: its bytes were counted as 0, and the reservation covered the output only.
    from modelyard.proxy.deployments import Deployment
    from modelyard.proxy.keys import max_cost

    deployment = Deployment(id="d", model_name="gpt-4o", model="azure/gpt-4o", kwargs={}, defaults={})

    def most(content: str) -> float:
        return max_cost([deployment], "chat", {"messages": [{"role": "user", "content": content}], "max_tokens": 1})

    output_only = max_cost([deployment], "chat", {"messages": [], "max_tokens": 1})
    plain = most("x" * 1000)
    assert plain > output_only > 0
    assert most("x" * 999 + "\ud800") >= plain
