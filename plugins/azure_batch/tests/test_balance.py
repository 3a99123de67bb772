"""Batch load balancing over two emulated Azure resources: spread, affinity, restarts."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import modelyard
import pytest
from modelyard.files import Batch
from modelyard.store import Store
from modelyard.testing import KEY, Emulator, EmulatorServer, ManualClock, batch_jsonl
from modelyard_azure_batch.balance import BatchBalancer, BatchDeployment, batch_deployments

GROUP = "batch-gpt-4o-mini"


@pytest.fixture(scope="module")
def resources() -> Iterator[dict[str, EmulatorServer]]:
    """Two Azure resources (east, west), each with one batch deployment of its own name."""
    servers = {name: EmulatorServer(Emulator([f"batch-{name}"], api_keys=[KEY])) for name in ("east", "west")}
    for server in servers.values():
        server.emulator.batches.step_seconds, server.emulator.batches.line_seconds = 0.05, 0.005
        server.start()
    yield servers
    for server in servers.values():
        server.stop()


@pytest.fixture
def deployments(resources: dict[str, EmulatorServer]) -> list[BatchDeployment]:
    for server in resources.values():
        server.emulator.reset()
    params = {"api_key": KEY, "api_version": "2024-10-21"}
    return [
        BatchDeployment(GROUP, {**params, "model": f"azure/batch-{name}", "api_base": server.url}, id=f"{name}-1")
        for name, server in resources.items()
    ]


@pytest.fixture
def frozen(resources: dict[str, EmulatorServer], monkeypatch: pytest.MonkeyPatch) -> ManualClock:
    """Both resources on a clock only the test moves: a batch stays where it is until then."""
    clock = ManualClock()
    for server in resources.values():
        monkeypatch.setattr(server.emulator.batches, "clock", clock)
    return clock


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    if request.param == "sqlite":
        return {"path": str(tmp_path / "store.db")}
    return {"database_url": request.getfixturevalue("postgres_url")}


def _wait(balancer: BatchBalancer, batch_id: str) -> Batch:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        batch = balancer.retrieve_batch(batch_id)
        if batch.status in ("completed", "failed", "cancelled"):
            return batch
        time.sleep(0.02)
    raise AssertionError("batch did not finish")


def test_files_spread_and_each_batch_runs_where_its_file_lives(
    resources: dict[str, EmulatorServer], deployments: list[BatchDeployment], tmp_path: Path
) -> None:
    with Store(path=tmp_path / "store.db") as store:
        balancer = BatchBalancer(deployments, store)
        files = [balancer.create_file(("in.jsonl", batch_jsonl(3, model=GROUP))) for _ in range(4)]
        held = {name: server.emulator.batches.files for name, server in resources.items()}
        assert sorted(len(f) for f in held.values()) == [2, 2]  # spread over both resources
        for file in files:
            record = store.get_file(file.id)
            assert record is not None and file.id != record.upstream_id
            name = record.deployment.split("-")[0]
            upstream = held[name][record.upstream_id]  # the bytes are on the recorded resource ...
            models = {json.loads(line)["body"]["model"] for line in upstream.content.decode().splitlines()}
            assert models == {f"batch-{name}"}  # ... with every line's model rewritten to its deployment
        batches = [balancer.create_batch(input_file_id=f.id, metadata={"n": str(i)}) for i, f in enumerate(files)]
        for file, batch in zip(files, batches, strict=True):
            file_record, batch_record = store.get_file(file.id), store.get_batch(batch.id)
            assert file_record is not None and batch_record is not None
            assert batch_record.deployment == file_record.deployment and batch.input_file_id == file.id
            name = batch_record.deployment.split("-")[0]
            assert batch_record.upstream_id in resources[name].emulator.batches.batches
        done = _wait(balancer, batches[0].id)
        assert done.status == "completed" and done.id == batches[0].id and done.output_file_id
        output = balancer.file_content(done.output_file_id)
        assert sorted(json.loads(line)["custom_id"] for line in output.iter_lines()) == ["task-0", "task-1", "task-2"]
        assert balancer.file_retrieve(done.output_file_id).purpose == "batch_output"
        page = balancer.list_batches(limit=3)
        assert [b.id for b in page.data] == [b.id for b in batches[::-1][:3]] and page.has_more


def test_retrieve_and_content_survive_a_restart(deployments: list[BatchDeployment], database: dict[str, Any]) -> None:
    with Store(**database) as store:
        first = BatchBalancer(deployments, store)
        file = first.create_file(("in.jsonl", batch_jsonl(4, model=GROUP)))
        batch = first.create_batch(input_file_id=file.id)
    with Store(**database) as reopened:  # a new process: new store object, new balancer
        second = BatchBalancer(list(reversed(deployments)), reopened)
        done = _wait(second, batch.id)
        assert done.status == "completed" and done.request_counts == {"total": 4, "completed": 4, "failed": 0}
        assert done.output_file_id is not None
        lines = list(second.file_content(done.output_file_id).iter_lines())
        assert sorted(json.loads(line)["custom_id"] for line in lines) == [f"task-{i}" for i in range(4)]
        assert second.retrieve_batch(batch.id).output_file_id == done.output_file_id  # the same proxy id again


def test_batches_of_a_deployment_no_longer_configured_leave_the_list_working(
    deployments: list[BatchDeployment], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with Store(path=tmp_path / "s.db") as store:
        first = BatchBalancer(deployments, store)
        batches = [first.create_batch(input_file_id=first.create_file(("in.jsonl", batch_jsonl(1, model=GROUP))).id)
                   for _ in range(4)]  # fmt: skip
        by_deployment = {b.id: store.get_batch(b.id).deployment for b in batches}  # type: ignore[union-attr]
        assert set(by_deployment.values()) == {"east-1", "west-1"}
        kept = [d for d in deployments if d.id == "east-1"]
        later = BatchBalancer(kept, store)  # west removed from the config, its batches still stored
        east = [b.id for b in batches[::-1] if by_deployment[b.id] == "east-1"]
        with caplog.at_level("WARNING", logger="modelyard_azure_batch.balance"):
            assert [b.id for b in later.list_batches().data] == east
            assert [b.id for b in asyncio.run(later.alist_batches()).data] == east
            page = later.list_batches(limit=1)  # the cursor moves on past a batch left out
            seen = [b.id for b in page.data]
            while page.has_more:
                assert page.last_id is not None
                page = later.list_batches(after=page.last_id, limit=1)
                seen += [b.id for b in page.data]
            assert seen == east
        assert [r.getMessage() for r in caplog.records].count(caplog.records[0].getMessage()) == 1
        assert "'west-1', which is no longer configured" in caplog.records[0].getMessage()
        gone = next(b for b in batches if by_deployment[b.id] == "west-1")
        with pytest.raises(modelyard.NotFoundError, match="deployment 'west-1', which is no longer configured"):
            later.retrieve_batch(gone.id)


def test_a_batch_its_resource_no_longer_has_is_left_out_of_the_list(
    resources: dict[str, EmulatorServer], deployments: list[BatchDeployment], tmp_path: Path
) -> None:
    with Store(path=tmp_path / "s.db") as store:
        balancer = BatchBalancer(deployments, store)
        batches = [balancer.create_batch(input_file_id=balancer.create_file(("in.jsonl", batch_jsonl(1, model=GROUP))).id)
                   for _ in range(3)]  # fmt: skip
        forgotten = store.get_batch(batches[1].id)
        assert forgotten is not None
        resources[forgotten.deployment.split("-")[0]].emulator.batches.batches.pop(forgotten.upstream_id)
        kept = [batches[2].id, batches[0].id]
        assert [b.id for b in balancer.list_batches().data] == kept  # it was a 404 for the whole list
        assert [b.id for b in asyncio.run(balancer.alist_batches()).data] == kept
        with pytest.raises(modelyard.NotFoundError):
            balancer.retrieve_batch(batches[1].id)  # asked for by id, it is a 404


def test_cancel_delete_and_unknown_ids(deployments: list[BatchDeployment], frozen: ManualClock, tmp_path: Path) -> None:
    with Store(path=tmp_path / "s.db") as store:
        balancer = BatchBalancer(deployments, store)
        file = balancer.create_file(("in.jsonl", batch_jsonl(2, model=GROUP)))
        batch = balancer.create_batch(input_file_id=file.id)
        assert balancer.cancel_batch(batch.id).status == "cancelling"
        frozen.advance(1)
        assert balancer.retrieve_batch(batch.id).status == "cancelled"
        assert balancer.file_delete(file.id).deleted and store.get_file(file.id) is None
        with pytest.raises(modelyard.NotFoundError):
            balancer.retrieve_batch("batch_unknown")
        with pytest.raises(modelyard.NotFoundError):
            balancer.create_batch(input_file_id=file.id)
        with pytest.raises(modelyard.BadRequestError) as info:
            balancer.create_file(("in.jsonl", batch_jsonl(1, model="no-such-group")))
        assert GROUP in str(info.value)


def test_an_invalid_file_reaches_no_resource(resources: dict[str, EmulatorServer],
                                             deployments: list[BatchDeployment], tmp_path: Path) -> None:  # fmt: skip
    lines = batch_jsonl(10, model=GROUP).decode().splitlines()
    lines[6] = "{broken"
    with Store(path=tmp_path / "s.db") as store, pytest.raises(modelyard.BadRequestError) as info:
        BatchBalancer(deployments, store).create_file(("in.jsonl", "\n".join(lines).encode()))
    assert "line 7:" in str(info.value)
    assert all(server.emulator.requests == [] for server in resources.values())


async def test_async_twins(deployments: list[BatchDeployment], frozen: ManualClock, tmp_path: Path) -> None:
    with Store(path=tmp_path / "s.db") as store:
        balancer = BatchBalancer(deployments, store)
        file = await balancer.acreate_file(("in.jsonl", batch_jsonl(2, model=GROUP)))
        assert (await balancer.afile_retrieve(file.id)).id == file.id
        batch = await balancer.acreate_batch(input_file_id=file.id)
        assert (await balancer.acancel_batch(batch.id)).status == "cancelling"
        assert (await balancer.aretrieve_batch(batch.id)).id == batch.id
        assert [b.id for b in (await balancer.alist_batches()).data] == [batch.id]
        assert (await balancer.afile_content(file.id)).content.count(b"\n") == 2
        assert (await balancer.afile_delete(file.id)).deleted


def test_deployment_params_never_show_in_a_repr() -> None:
    d = BatchDeployment(GROUP, {"model": "azure/x", "api_key": "secret-key-123"})
    assert "secret-key-123" not in repr(d)
    with pytest.raises(modelyard.ConfigError):
        BatchDeployment(GROUP, {"model": "x"})


async def test_health_check_lists_files_and_spends_no_tokens(
    resources: dict[str, EmulatorServer], deployments: list[BatchDeployment]
) -> None:
    deployments[0].health_check()
    await deployments[1].ahealth_check()
    seen = [(r.method, r.path) for server in resources.values() for r in server.emulator.requests]
    assert seen == [("GET", "/openai/files"), ("GET", "/openai/files")]
    broken = BatchDeployment(GROUP, {**deployments[0].params, "api_key": "not-the-key"})
    with pytest.raises(modelyard.AuthenticationError):
        broken.health_check()


def test_batch_deployments_come_from_a_model_list(
    resources: dict[str, EmulatorServer], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("EAST_KEY", KEY)
    model_list = [
        {"model_name": "gpt-4o", "litellm_params": {"model": "azure/gpt-4o"}},  # a chat entry: ignored
        {"model_name": GROUP, "litellm_params": {"model": "azure/batch-east", "api_base": resources["east"].url,
                                                 "api_key": "os.environ/EAST_KEY", "api_version": "2024-10-21"},
         "model_info": {"mode": "batch", "id": "east-from-config"}},
    ]  # fmt: skip
    [east] = batch_deployments(model_list)
    assert (east.id, east.model_name, east.deployment_name) == ("east-from-config", GROUP, "batch-east")
    assert east.call_params()["api_key"] == KEY
    resources["east"].emulator.reset()
    with Store(path=tmp_path / "s.db") as store:
        file = BatchBalancer([east], store).create_file(("in.jsonl", batch_jsonl(1, model=GROUP)))
        assert store.get_file(file.id).deployment == "east-from-config"  # type: ignore[union-attr]
    monkeypatch.delenv("EAST_KEY")
    with pytest.raises(modelyard.ConfigError) as info:
        east.call_params()
    assert "EAST_KEY" in str(info.value)
