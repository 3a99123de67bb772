"""Response ids across a restart and across two Azure resources serving one model group.

Each resource is its own emulator with a deployment of the same name, so only the resource that
created a response holds it. The proxy records which deployment created each id in its store
(SQLite, and a real PostgreSQL), is restarted, and must still send retrieve, input items,
delete and a ``previous_response_id`` follow-up to that deployment.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from modelyard.testing import KEY, Emulator, EmulatorServer

from .conftest import MASTER_KEY, azure, running_proxy

NAMES = ("east", "west")


@pytest.fixture(scope="module")
def resources() -> Iterator[dict[str, EmulatorServer]]:
    servers = {name: EmulatorServer(Emulator(["gpt-4o"], api_keys=[KEY])) for name in NAMES}
    for server in servers.values():
        server.start()
    yield servers
    for server in servers.values():
        server.stop()


@pytest.fixture
def east_west(resources: dict[str, EmulatorServer]) -> dict[str, Emulator]:
    out = {}
    for name, server in resources.items():
        server.emulator.reset()
        out[name] = server.emulator
    return out


@pytest.fixture(params=["sqlite", "postgresql"])
def store_settings(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    if request.param == "sqlite":
        return {"modelyard_settings": {"store_path": str(tmp_path / "store.db")}}
    return {"general_settings": {"database_url": request.getfixturevalue("postgres_url")}}


def config(resources: dict[str, EmulatorServer], store: dict[str, Any]) -> dict[str, Any]:
    return {
        "model_list": [
            {"model_name": "g", "litellm_params": azure(resources[name].url, "gpt-4o"), "model_info": {"id": name}}
            for name in NAMES
        ],
        "router_settings": {"num_retries": 0},
        **store,
    }


def holder(east_west: dict[str, Emulator], response_id: str) -> str:
    [name] = [n for n, e in east_west.items() if response_id in e.responses.stored]
    return name


def test_created_before_a_restart_retrieved_after_it_from_its_own_resource(
    resources: dict[str, EmulatorServer], east_west: dict[str, Emulator], store_settings: dict[str, Any]
) -> None:
    cfg = config(resources, store_settings)
    made: dict[str, str] = {}
    with running_proxy(cfg) as proxy:
        c = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key=MASTER_KEY, max_retries=0)
        for i in range(40):  # until each resource holds some
            r = c.responses.create(model="g", input=f"n{i}")
            made[r.id] = holder(east_west, r.id)
            if len(set(made.values())) == 2 and len(made) >= 4:
                break
        c.close()
    assert set(made.values()) == {"east", "west"}
    for e in east_west.values():
        e.requests.clear()
    with running_proxy(cfg) as proxy:  # a new process state: only the store remembers
        c = openai.OpenAI(base_url=proxy.url, api_key=MASTER_KEY, max_retries=0)
        for rid, name in made.items():
            assert c.responses.retrieve(rid).id == rid
            assert len(c.responses.input_items.list(rid).data) == 1
            follow = c.responses.create(model="g", input="and then?", previous_response_id=rid)
            assert holder(east_west, follow.id) == name  # chained on the resource holding the chain
        victim = next(iter(made))
        c.responses.delete(victim)
        c.close()
    for name, e in east_west.items():
        mine = {rid for rid, n in made.items() if n == name}
        seen = {r.path.split("/")[4] for r in e.requests if r.method == "GET"}
        assert seen == mine  # every GET went to the resource that holds the id
        posts = [r.body["previous_response_id"] for r in e.requests if r.method == "POST"]
        assert set(posts) == mine
    assert victim not in east_west[made[victim]].responses.stored
