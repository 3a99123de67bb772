"""Budgets through the per-process ledger (issue 17): leases in the store, spend written in batches.

Each proxy process holds a lease of a budgeted key's budget and admits calls against it in memory
(``modelyard.proxy.ledger``); the store's ``reserved`` is the sum of the live leases, so several
instances on one store never spend past the budget together. These tests read the store itself
(``KeyStore``, ``LeaseStore``) beside the proxies' answers.
"""

# ruff: noqa: F811  (the fixtures backend and leaks come from test_keys, imported below)

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import httpx
import pytest
from modelyard.store import Store
from modelyard.store.keys import KeyStore
from modelyard.store.ledger import LEASE_TTL, LeaseStore, LeaseSync
from modelyard.testing import Emulator

from .conftest import running_proxy
from .test_keys import (  # noqa: F401  (backend and leaks are fixtures)
    Leaks,
    _cost_of_one,
    _reservation,
    admin,
    backend,
    chat,
    config,
    generate,
    info,
    info_token,
    leaks,
    upstream_calls,
    user,
)


@contextmanager
def opened(backend: dict[str, Any]) -> Iterator[tuple[KeyStore, LeaseStore]]:
    """The proxies' store, opened by the test: its keys, and its leases (as an owner of no process)."""
    if "general_settings" in backend:
        store = Store(backend["general_settings"]["database_url"])
    else:
        store = Store(path=backend["modelyard_settings"]["store_path"])
    try:
        yield KeyStore(store), LeaseStore(store, owner="the-test")
    finally:
        store.close()


def body() -> dict[str, Any]:
    return {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}


def test_two_instances_on_one_store_never_spend_past_the_budget_together(
    api_base: str, emulator: Emulator, backend: dict[str, Any], leaks: Leaks
) -> None:
    """Two proxies, one key, 40 concurrent calls spread over both: the admitted ones fit the budget,
    each instance admitted some, the refused never went upstream, and at shutdown both gave their
    leases back and wrote their spend."""
    cfg = config(api_base, backend)
    with ExitStack() as stack:
        a = stack.enter_context(running_proxy(cfg))
        b = stack.enter_context(running_proxy(cfg))
        cost, most = _cost_of_one(a), _reservation(a)
        budget = 12.5 * most
        key = generate(a, leaks, max_budget=budget)
        before = upstream_calls(emulator)

        async def burst() -> list[tuple[int, int]]:
            clients = [httpx.AsyncClient(base_url=s.url, headers={"Authorization": f"Bearer {key}"}, timeout=60,
                                         event_hooks={"response": [leaks.arecord]}) for s in (a, b)]  # fmt: skip
            try:
                answers = await asyncio.gather(
                    *(clients[i % 2].post("/v1/chat/completions", json=body()) for i in range(40))
                )
            finally:
                for c in clients:
                    await c.aclose()
            return [(i % 2, r.status_code) for i, r in enumerate(answers)]

        statuses = asyncio.run(burst())
        admitted = [who for who, status in statuses if status == 200]
        assert {status for _, status in statuses} <= {200, 429}
        assert 10 <= len(admitted) < 40 and set(admitted) == {0, 1}  # both instances admitted calls
        assert upstream_calls(emulator) - before == len(admitted)
    with opened(backend) as (keys, leases):  # both shut down: leases given back, spend written
        row = keys.get_key(info_token(key))
        assert row is not None and row.reserved == 0 and leases.leases("key", row.token) == {}
        assert row.spend == pytest.approx(len(admitted) * cost) and row.spend <= budget


def test_a_lease_is_held_while_serving_and_given_back_at_shutdown(api_base: str, backend: dict[str, Any],
                                                                   leaks: Leaks) -> None:  # fmt: skip
    cfg = config(api_base, backend)
    with running_proxy(cfg) as server:
        cost, most = _cost_of_one(server), _reservation(server)
        key = generate(server, leaks, max_budget=100 * most)
        token = info_token(key)
        with user(server, key, leaks) as u:
            for _ in range(3):
                assert chat(u).status_code == 200
        with opened(backend) as (keys, leases):
            held = leases.leases("key", token)
            row = keys.get_key(token)
        assert len(held) == 1  # one lease, of this process
        ((amount, expires),) = held.values()
        assert row is not None and row.reserved == pytest.approx(amount) and amount >= most
        assert time.time() < expires <= time.time() + LEASE_TTL
        assert info(server, leaks, key)["spend"] == pytest.approx(3 * cost)  # /key/info writes the spend first
    with opened(backend) as (keys, leases):
        row = keys.get_key(token)
        assert leases.leases("key", token) == {}
        assert row is not None and row.reserved == 0 and row.spend == pytest.approx(3 * cost)


def test_an_abandoned_lease_blocks_the_budget_only_until_it_expires(api_base: str, backend: dict[str, Any],
                                                                     leaks: Leaks) -> None:  # fmt: skip
    """A process that died holding a lease: its share is unusable until the lease's expiry, then the
    next call to sync the key reclaims it."""
    with running_proxy(config(api_base, backend)) as server:
        most = _reservation(server)
        key = generate(server, leaks, max_budget=3 * most)
        token = info_token(key)
        with opened(backend) as (keys, _):
            dead = LeaseStore(keys.store, owner="a-process-that-died")
            # It took its lease LEASE_TTL - 2 s ago and never renewed it: it expires 2 s from now.
            taken = time.time() - LEASE_TTL + 2
            (state,) = dead.sync([LeaseSync("key", token, want=2.5 * most)], now=taken)
            assert state.granted and state.lease == pytest.approx(2.5 * most)
            with user(server, key, leaks) as u:
                first = chat(u)
                assert first.status_code == 429 and first.json()["error"]["code"] == "budget_exceeded"
                while (answer := chat(u)).status_code == 429:
                    assert time.time() < taken + LEASE_TTL + 5
                    time.sleep(0.2)
            assert answer.status_code == 200 and time.time() >= taken + LEASE_TTL
            assert "a-process-that-died" not in dead.leases("key", token)


def test_spend_is_written_in_batches_and_shown_after_the_flush(api_base: str, tmp_path: Any, leaks: Leaks) -> None:
    """Calls write nothing to the store; the spend appears there at the ledger's sync (here: when
    /key/info on the serving instance asks for it); another instance sees it from then on."""
    backend = {"modelyard_settings": {"store_path": str(tmp_path / "s.db")}}
    cfg = config(api_base, backend)
    with ExitStack() as stack:
        a = stack.enter_context(running_proxy(cfg))
        b = stack.enter_context(running_proxy(cfg))
        a.app.virtual_keys.ledger.interval = 3600.0  # no timed sync during the test
        cost, most = _cost_of_one(a), _reservation(a)
        key = generate(a, leaks, max_budget=100 * most)
        with user(a, key, leaks) as u:
            for _ in range(5):
                assert chat(u).status_code == 200
        with opened(backend) as (keys, _):
            row = keys.get_key(info_token(key))
        assert row is not None and row.spend == 0 and row.reserved > 0  # nothing written per call; a lease
        assert info(b, leaks, key)["spend"] == 0  # b reads the store: not written yet
        assert info(a, leaks, key)["spend"] == pytest.approx(5 * cost)  # a writes its spend, then reads
        assert info(b, leaks, key)["spend"] == pytest.approx(5 * cost)


def test_a_budget_lowered_through_another_instance_applies_within_a_second(api_base: str, tmp_path: Any,
                                                                           leaks: Leaks) -> None:  # fmt: skip
    backend = {"modelyard_settings": {"store_path": str(tmp_path / "s.db")}}
    cfg = config(api_base, backend, user_api_key_cache_ttl=0.5)
    with ExitStack() as stack:
        a = stack.enter_context(running_proxy(cfg))
        b = stack.enter_context(running_proxy(cfg))
        most = _reservation(a)
        key = generate(a, leaks, max_budget=100 * most)
        with user(a, key, leaks) as u:
            assert chat(u).status_code == 200  # a holds a lease of a quarter of the budget or more
            with admin(b, leaks) as through_b:
                assert through_b.post("/key/update", json={"key": key, "max_budget": 0}).status_code == 200
            changed = time.monotonic()
            while (answer := chat(u)).status_code == 200:
                assert time.monotonic() - changed < 5  # a's next sync (each second) shrinks its lease
                time.sleep(0.1)
            error = answer.json()["error"]
            assert answer.status_code == 429 and error["code"] == "budget_exceeded"
            assert "max_budget $0.000000" in error["message"]


@pytest.mark.parametrize("processes", [1, 3])
def test_ledgers_sharing_a_store_admit_within_the_budget_and_refuse_early_by_less_than_a_call_each(
    backend: dict[str, Any], processes: int
) -> None:
    """Ledgers of several processes (owners) on one store, 60 concurrent calls that each cost
    all they reserve: never past the budget; with one process exactly up to its edge; with N,
    at most N - 1 calls refused early (each process can be left with less than a call's worth)."""
    from modelyard.proxy.ledger import Ledger
    from modelyard.store.keys import KeyRecord

    amount, fits = 0.25, 20  # the budget: 20.5 calls
    token = "ab" * 32
    with opened(backend) as (keys, _):
        keys.put_key(KeyRecord(token=token, key_name="sk-...test", max_budget=(fits + 0.5) * amount))
        store = keys.store

        async def run() -> list[bool]:
            ledgers = [Ledger(lambda i=i: LeaseStore(store, owner=f"process-{i}")) for i in range(processes)]

            async def call(n: int) -> bool:
                ledger = ledgers[n % processes]
                entry = ledger.entry("key", token, None)
                if await ledger.reserve(entry, amount) is not None:
                    return False
                await asyncio.sleep(0.01 * (n % 3))  # in flight a while
                ledger.settle(entry, amount, amount)
                return True

            admitted = await asyncio.gather(*(call(n) for n in range(60)))
            for ledger in ledgers:
                await ledger.aclose()
            return admitted

        admitted = asyncio.run(run()).count(True)
        row = keys.get_key(token)
        try:
            assert fits - (processes - 1) <= admitted <= fits
            assert row is not None and row.spend == pytest.approx(admitted * amount) and row.reserved == 0
        finally:
            keys.delete_keys([token])


def test_batches_are_refused_once_the_budget_is_spent_and_hold_nothing(api_base: str, tmp_path: Any,
                                                                       leaks: Leaks) -> None:  # fmt: skip
    """``POST /batches`` reserves nothing but needs budget left: a spent key is refused before
    the request is read; a key with budget left gets through to the batch's own checks."""
    backend = {"modelyard_settings": {"store_path": str(tmp_path / "s.db")}}
    with running_proxy(config(api_base, backend)) as server:
        spent = generate(server, leaks, max_budget=0)
        funded = generate(server, leaks, max_budget=1.0)
        batch = {"input_file_id": "file-none", "endpoint": "/v1/chat/completions", "completion_window": "24h"}
        with user(server, spent, leaks) as u:
            refused = u.post("/v1/batches", json=batch)
        assert refused.status_code == 429 and refused.json()["error"]["code"] == "budget_exceeded"
        with user(server, funded, leaks) as u:
            passed = u.post("/v1/batches", json=batch)
        assert passed.status_code != 429, passed.text
        entries = server.app.virtual_keys.ledger._entries
        assert all(e.calls == 0 and e.held == 0 for e in entries.values())  # both requests settled
