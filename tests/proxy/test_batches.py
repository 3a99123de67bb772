"""Files and batches through the proxy, load-balanced over two emulated Azure resources.

Driven with the official openai SDK (and httpx for the curl flows). Each resource is its own
emulator on its own port, with one batch deployment of its own name, so where a file or a batch
went can be seen on the resource itself. The proxy is restarted between create and retrieve,
with its store on SQLite and on a real PostgreSQL.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from modelyard.testing import KEY, Emulator, EmulatorServer, ManualClock, batch_jsonl

from .conftest import MASTER_KEY, azure, running_proxy

GROUP = "batch-gpt-4o-mini"
NAMES = ("east", "west")


@pytest.fixture(scope="module")
def resources() -> Iterator[dict[str, EmulatorServer]]:
    """Two Azure resources, each with one batch deployment (``batch-east``, ``batch-west``)."""
    servers = {name: EmulatorServer(Emulator([f"batch-{name}"], api_keys=[KEY])) for name in NAMES}
    for server in servers.values():
        server.start()
    yield servers
    for server in servers.values():
        server.stop()


@pytest.fixture
def east_west(resources: dict[str, EmulatorServer]) -> dict[str, Emulator]:
    """The two resources' emulators, emptied, with batches that finish in a fraction of a second."""
    out = {}
    for name, server in resources.items():
        emulator: Emulator = server.emulator
        emulator.reset()
        emulator.batches.step_seconds, emulator.batches.line_seconds = 0.05, 0.005
        emulator.batches.clock = time.monotonic
        out[name] = emulator
    return out


@pytest.fixture(params=["sqlite", "postgresql"])
def store_settings(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    """Where the proxy keeps its id maps: a SQLite file, or a real PostgreSQL server."""
    if request.param == "sqlite":
        return {"modelyard_settings": {"store_path": str(tmp_path / "store.db")}}
    return {"general_settings": {"database_url": request.getfixturevalue("postgres_url")}}


def lb_config(resources: dict[str, EmulatorServer], store: dict[str, Any], **general: Any) -> dict[str, Any]:
    """The Azure page's load-balancing config, with one batch deployment per resource."""
    config: dict[str, Any] = {
        "model_list": [
            {"model_name": GROUP, "litellm_params": azure(resources[name].url, f"batch-{name}"),
             "model_info": {"id": name, "mode": "batch"}}
            for name in NAMES
        ],
        "litellm_settings": {"enable_loadbalancing_on_batch_endpoints": True},
        **store,
    }  # fmt: skip
    config["general_settings"] = {**config.get("general_settings", {}), **general}
    return config


_clients: list[openai.OpenAI] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _clients:
        _clients.pop().close()


def client(server: Any, *, v1: bool = True) -> openai.OpenAI:
    """An openai client of the proxy (closed after the test)."""
    c = openai.OpenAI(base_url=server.url + ("/v1" if v1 else ""), api_key=MASTER_KEY, max_retries=0)
    _clients.append(c)
    return c


def wait(c: openai.OpenAI, batch_id: str, **kw: Any) -> Any:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        batch = c.batches.retrieve(batch_id, **kw)
        if batch.status in ("completed", "failed", "cancelled", "expired"):
            return batch
        time.sleep(0.02)
    raise AssertionError(f"batch {batch_id} did not finish")


def custom_ids(content: bytes) -> list[str]:
    return sorted(json.loads(line)["custom_id"] for line in content.decode().splitlines() if line.strip())


def holder(east_west: dict[str, Emulator], upstream_file_id: str) -> str:
    return next(name for name, e in east_west.items() if upstream_file_id in e.batches.files)


# --------------------------------------------------------------------------- load balancing


def test_upload_create_restart_retrieve_download(
    resources: dict[str, EmulatorServer], east_west: dict[str, Emulator], store_settings: dict[str, Any]
) -> None:
    config = lb_config(resources, store_settings)
    data = batch_jsonl(5, model=GROUP)
    with running_proxy(config) as proxy:
        c = client(proxy)
        uploaded = c.files.create(file=("requests.jsonl", io.BytesIO(data)), purpose="batch")
        batch = c.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions",
                                 completion_window="24h", metadata={"run": "restart"})  # fmt: skip
        assert batch.input_file_id == uploaded.id and batch.metadata == {"run": "restart"}
        store = proxy.app.store
        file_record, batch_record = store.get_file(uploaded.id), store.get_batch(batch.id)
    assert file_record is not None and batch_record is not None
    where = file_record.deployment
    assert batch_record.deployment == where  # the batch was created where its file lives ...
    upstream = east_west[where].batches
    assert batch_record.upstream_id in upstream.batches  # ... and it runs there
    assert upstream.batches[batch_record.upstream_id].obj["input_file_id"] == file_record.upstream_id
    held = upstream.files[file_record.upstream_id].content  # every line names that resource's deployment
    assert {json.loads(line)["body"]["model"] for line in held.decode().splitlines()} == {f"batch-{where}"}
    other = next(n for n in NAMES if n != where)
    assert not east_west[other].batches.files and not east_west[other].batches.batches

    with running_proxy(config) as proxy:  # a new process would see the same: only the store carries over
        c = client(proxy)
        done = wait(c, batch.id)
        assert done.status == "completed" and done.id == batch.id and done.input_file_id == uploaded.id
        assert done.request_counts is not None and (done.request_counts.completed, done.request_counts.total) == (5, 5)
        assert done.output_file_id is not None and done.output_file_id.startswith("file-")
        content = c.files.content(done.output_file_id)
        assert custom_ids(content.content) == [f"task-{i}" for i in range(5)]
        assert c.files.retrieve(done.output_file_id).purpose == "batch_output"
        assert c.files.retrieve(uploaded.id).id == uploaded.id
    with running_proxy(config) as proxy:  # the output file id survives a restart too
        assert custom_ids(client(proxy).files.content(done.output_file_id).content) == [f"task-{i}" for i in range(5)]
    assert all(r.headers["api-key"] == KEY for r in east_west[where].requests)


def test_files_spread_over_both_resources_and_batches_follow_their_files(
    resources: dict[str, EmulatorServer], east_west: dict[str, Emulator], tmp_path: Path
) -> None:
    config = lb_config(resources, {"modelyard_settings": {"store_path": str(tmp_path / "store.db")}})
    with running_proxy(config) as proxy:
        c = client(proxy)
        files = [c.files.create(file=(f"f{i}.jsonl", io.BytesIO(batch_jsonl(3, model=GROUP))), purpose="batch")
                 for i in range(4)]  # fmt: skip
        batches = [c.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h")
                   for f in files]  # fmt: skip
        store = proxy.app.store
        placed = [store.get_file(f.id).deployment for f in files]
        assert sorted(placed) == ["east", "east", "west", "west"]  # spread over both
        for f, b in zip(files, batches, strict=True):
            file_record, batch_record = store.get_file(f.id), store.get_batch(b.id)
            emulator = east_west[file_record.deployment].batches
            assert batch_record.deployment == file_record.deployment
            assert emulator.batches[batch_record.upstream_id].obj["input_file_id"] == file_record.upstream_id
        for name in NAMES:  # no resource saw a file or a batch that is not its own
            assert len(east_west[name].batches.files) == 2 and len(east_west[name].batches.batches) == 2
        for b in batches:
            done = wait(c, b.id)
            assert done.status == "completed"
            assert custom_ids(c.files.content(done.output_file_id).content) == ["task-0", "task-1", "task-2"]
        listed = c.batches.list(limit=3)
        assert [x.id for x in listed.data] == [b.id for b in batches[::-1][:3]] and listed.has_more
        rest = c.batches.list(limit=3, after=listed.data[-1].id)
        assert [x.id for x in rest.data] == [batches[0].id] and not rest.has_more
        assert {f.id for f in c.files.list(purpose="batch").data} == {f.id for f in files}
        gone = c.files.delete(files[0].id)
        assert gone.deleted and gone.id == files[0].id
        assert store.get_file(files[0].id) is None
        with pytest.raises(openai.NotFoundError):
            c.files.retrieve(files[0].id)


def test_an_invalid_line_7_is_named_and_nothing_reaches_the_upstream(
    resources: dict[str, EmulatorServer], east_west: dict[str, Emulator], tmp_path: Path
) -> None:
    lines = batch_jsonl(10, model=GROUP).decode().splitlines(keepends=True)
    lines[6] = json.dumps({"custom_id": "task-6", "method": "POST", "url": "/chat/completions", "body": {}}) + "\n"
    config = lb_config(resources, {"modelyard_settings": {"store_path": str(tmp_path / "store.db")}})
    with running_proxy(config) as proxy:
        with pytest.raises(openai.BadRequestError) as info:
            client(proxy).files.create(file=("bad.jsonl", io.BytesIO("".join(lines).encode())), purpose="batch")
        assert info.value.status_code == 400
        error = info.value.body
        assert isinstance(error, dict) and error["param"] == "file"
        assert "line 7:" in error["message"] and "body.model" in error["message"] and "line 1" not in error["message"]
        assert proxy.app.store.list_files() == []
    assert east_west["east"].requests == [] and east_west["west"].requests == []


def test_cancel_through_the_balancer_is_deterministic(
    resources: dict[str, EmulatorServer], east_west: dict[str, Emulator], tmp_path: Path
) -> None:
    clock = ManualClock()
    for emulator in east_west.values():
        emulator.batches.clock = clock  # no phase ends unless the test moves the clock
    config = lb_config(resources, {"modelyard_settings": {"store_path": str(tmp_path / "store.db")}})
    with running_proxy(config) as proxy:
        c = client(proxy)
        uploaded = c.files.create(file=("r.jsonl", io.BytesIO(batch_jsonl(3, model=GROUP))), purpose="batch")
        batch = c.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h")
        assert c.batches.retrieve(batch.id).status == "validating"
        cancelling = c.batches.cancel(batch.id)
        assert cancelling.status == "cancelling" and cancelling.id == batch.id
        clock.advance(1)
        assert c.batches.retrieve(batch.id).status == "cancelled"
        with pytest.raises(openai.BadRequestError, match="cancelled and cannot be cancelled"):
            c.batches.cancel(batch.id)


def test_unknown_ids_are_404_without_a_provider(
    resources: dict[str, EmulatorServer], east_west: dict[str, Emulator], tmp_path: Path
) -> None:
    config = lb_config(resources, {"modelyard_settings": {"store_path": str(tmp_path / "store.db")}})
    with running_proxy(config) as proxy:
        c = client(proxy)
        with pytest.raises(openai.NotFoundError, match="No batch with id 'batch_nope'"):
            c.batches.retrieve("batch_nope")
        with pytest.raises(openai.NotFoundError, match="No file with id 'file-nope'"):
            c.batches.create(input_file_id="file-nope", endpoint="/v1/chat/completions", completion_window="24h")
        with pytest.raises(openai.BadRequestError, match="not a batch model group of this proxy"):
            c.files.create(file=("x.jsonl", io.BytesIO(batch_jsonl(2, model="gpt-4o"))), purpose="batch")
    assert east_west["east"].requests == [] and east_west["west"].requests == []


def test_the_azure_page_load_balancing_curl_flow(
    resources: dict[str, EmulatorServer], east_west: dict[str, Emulator], tmp_path: Path
) -> None:
    """The page's config and curl commands, with only the host (and the master key) changed.

    The page's create body has a typo (``"model: "batch-gpt-4o-mini"`` is not JSON); it is sent
    here as meant, ``"model": "batch-gpt-4o-mini"``.
    """
    system = "You are an AI assistant that helps people find information."
    mydata = tmp_path / "mydata.jsonl"
    mydata.write_text("".join(
        json.dumps({"custom_id": f"task-{i}", "method": "POST", "url": "/chat/completions",
                    "body": {"model": GROUP, "messages": [{"role": "system", "content": system},
                                                          {"role": "user", "content": q}]}}) + "\n"
        for i, q in enumerate(["When was Microsoft founded?", "When was the first XBOX released?",
                               "What is Altair Basic?"])
    ))  # fmt: skip
    config = lb_config(resources, {"modelyard_settings": {"store_path": str(tmp_path / "store.db")}})
    auth = {"Authorization": f"Bearer {MASTER_KEY}"}
    with running_proxy(config) as proxy, httpx.Client(base_url=proxy.url, headers=auth) as http:
        with open(mydata, "rb") as f:  # curl -F purpose="batch" -F file="@mydata.jsonl"
            r = http.post("/v1/files", data={"purpose": "batch"}, files={"file": ("mydata.jsonl", f)})
        assert r.status_code == 200, r.text
        file_id = r.json()["id"]
        assert file_id.startswith("file-") and r.json()["object"] == "file"
        r = http.post("/v1/batches", json={"input_file_id": file_id, "endpoint": "/v1/chat/completions",
                                            "completion_window": "24h", "model": GROUP})  # fmt: skip
        assert r.status_code == 200, r.text
        batch_id = r.json()["id"]
        assert batch_id.startswith("batch_")
        r = http.get(f"/v1/batches/{batch_id}", headers={"Content-Type": "application/json"})
        assert r.status_code == 200 and r.json()["id"] == batch_id
        r = http.get("/v1/batches", params={"limit": 2})
        assert r.status_code == 200 and [b["id"] for b in r.json()["data"]] == [batch_id]
        # The curl of the page's typo is refused clearly, naming where the JSON breaks.
        typo = ('{"input_file_id": "' + file_id + '", "endpoint": "/v1/chat/completions", "completion_window": "24h",'
                ' "model: "batch-gpt-4o-mini"}')  # fmt: skip
        r = http.post("/v1/batches", content=typo, headers={"Content-Type": "application/json"})
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"
    where = next(n for n in NAMES if east_west[n].batches.batches)
    uploaded = next(iter(east_west[where].batches.files.values()))
    assert uploaded.content.decode().count(f'"model":"batch-{where}"') == 3


def test_health_probes_batch_deployments_with_a_files_listing(
    resources: dict[str, EmulatorServer], east_west: dict[str, Emulator], tmp_path: Path
) -> None:
    config = lb_config(resources, {"modelyard_settings": {"store_path": str(tmp_path / "store.db")}})
    with running_proxy(config) as proxy:
        r = httpx.get(proxy.url + "/health", headers={"Authorization": f"Bearer {MASTER_KEY}"})
    body = r.json()
    assert r.status_code == 200 and body["healthy_count"] == 2 and body["unhealthy_count"] == 0
    assert sorted(e["id"] for e in body["healthy_endpoints"]) == ["east", "west"]
    for emulator in east_west.values():  # one files listing each, no chat: no tokens spent
        assert [(q.method, q.path) for q in emulator.requests] == [("GET", "/openai/files")]
    assert KEY not in r.text


def test_health_reports_a_batch_deployment_with_a_bad_key(
    resources: dict[str, EmulatorServer], east_west: dict[str, Emulator], tmp_path: Path
) -> None:
    config = lb_config(resources, {"modelyard_settings": {"store_path": str(tmp_path / "store.db")}})
    config["model_list"][1]["litellm_params"]["api_key"] = "wrong-key-0000000000000000000000"
    with running_proxy(config) as proxy:
        body = httpx.get(proxy.url + "/health", headers={"Authorization": f"Bearer {MASTER_KEY}"}).json()
    assert [e["id"] for e in body["healthy_endpoints"]] == ["east"]
    [bad] = body["unhealthy_endpoints"]
    assert bad["id"] == "west" and "401" in bad["error"] and "wrong-key" not in json.dumps(body)


def test_upload_limit_is_separate_from_the_json_limit(
    resources: dict[str, EmulatorServer], east_west: dict[str, Emulator], tmp_path: Path
) -> None:
    store = {"modelyard_settings": {"store_path": str(tmp_path / "store.db")}}
    data = batch_jsonl(2000, model=GROUP)  # ~250 kB: over the JSON limit, under the upload limit
    config = lb_config(resources, store, max_request_size_mb=0.05, max_upload_size_mb=1)
    with running_proxy(config) as proxy:
        uploaded = client(proxy).files.create(file=("big.jsonl", io.BytesIO(data)), purpose="batch")
        assert uploaded.bytes is not None and uploaded.bytes > 0.05 * 1024 * 1024  # rewritten, more compact
    [held] = [f for e in east_west.values() for f in e.batches.files.values()]
    assert len(held.content.splitlines()) == 2000
    config = lb_config(resources, store, max_upload_size_mb=0.1)
    with running_proxy(config) as proxy:
        with pytest.raises(openai.APIStatusError) as info:
            client(proxy).files.create(file=("big.jsonl", io.BytesIO(data)), purpose="batch")
        assert info.value.status_code == 413 and "max_upload_size_mb" in str(info.value)
    assert sum(len(e.batches.files) for e in east_west.values()) == 1


# --------------------------------------------------------------------------- no balancing: the provider


@pytest.fixture
def plain_proxy(azure_env: Emulator, api_base: str) -> Iterator[Any]:
    """A proxy without batch load balancing: files and batches go to AZURE_API_BASE."""
    config = {"model_list": [{"model_name": "gpt-4o", "litellm_params": azure(api_base, "gpt-4o")}]}
    with running_proxy(config) as proxy:
        yield proxy


def test_the_azure_page_proxy_tab(plain_proxy: Any, azure_env: Emulator, tmp_path: Path) -> None:
    """The page's "LiteLLM PROXY Server" batch snippets, with only the host changed."""
    clock = ManualClock()
    azure_env.batches.clock = clock  # the batch stays where it is until the test moves the clock
    try:
        mydata = tmp_path / "mydata.jsonl"
        mydata.write_bytes(batch_jsonl(3, model="gpt-4o-mini"))
        # Initialize the client
        client = openai.OpenAI(base_url=plain_proxy.url, api_key=MASTER_KEY)
        _clients.append(client)

        with open(mydata, "rb") as f:
            batch_input_file = client.files.create(file=f, purpose="batch", extra_headers={"custom-llm-provider": "azure"})
        file_id = batch_input_file.id

        batch = client.batches.create(  # re use client from above
            input_file_id=file_id,
            endpoint="/v1/chat/completions",
            completion_window="24h",
            metadata={"description": "My batch job"},
            extra_headers={"custom-llm-provider": "azure"},
        )
        retrieved_batch = client.batches.retrieve(batch.id, extra_headers={"custom-llm-provider": "azure"})
        cancelled_batch = client.batches.cancel(batch.id, extra_headers={"custom-llm-provider": "azure"})
        listed = client.batches.list(extra_headers={"custom-llm-provider": "azure"})

        assert file_id in azure_env.batches.files and batch.id in azure_env.batches.batches  # upstream ids
        assert batch.metadata == {"description": "My batch job"} and retrieved_batch.status == "validating"
        assert cancelled_batch.status == "cancelling"
        assert [b.id for b in listed.data] == [batch.id]
        clock.advance(1)
        assert client.batches.retrieve(batch.id, extra_headers={"custom-llm-provider": "azure"}).status == "cancelled"
        seen = [(r.method, r.path) for r in azure_env.requests]
        assert seen[:2] == [("POST", "/openai/files"), ("POST", "/openai/batches")]
        assert ("POST", f"/openai/batches/{batch.id}/cancel") in seen
        assert azure_env.requests[0].body["file"]["content"] == mydata.read_text()
        assert all(r.query.get("api-version") == "2024-10-21" and r.headers["api-key"] == KEY for r in azure_env.requests)
    finally:
        azure_env.batches.clock = time.monotonic


def test_provider_passthrough_runs_a_batch_to_completion(plain_proxy: Any, azure_env: Emulator) -> None:
    azure_env.batches.step_seconds, azure_env.batches.line_seconds = 0.05, 0.005
    try:
        c = client(plain_proxy)
        az = {"extra_headers": {"custom-llm-provider": "azure"}}
        uploaded = c.files.create(file=("r.jsonl", io.BytesIO(batch_jsonl(4))), purpose="batch", **az)
        assert c.files.retrieve(uploaded.id, **az).status == "processed"
        assert uploaded.id in {f.id for f in c.files.list(**az).data}
        batch = c.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions",
                                 completion_window="24h", extra_body={"custom_llm_provider": "azure"})  # fmt: skip
        done = wait(c, batch.id, extra_query={"custom_llm_provider": "azure"})
        assert done.status == "completed"
        assert custom_ids(c.files.content(done.output_file_id, **az).content) == [f"task-{i}" for i in range(4)]
        assert c.files.delete(uploaded.id, **az).deleted
        with pytest.raises(openai.NotFoundError):
            c.files.retrieve(uploaded.id, **az)
    finally:
        azure_env.batches.step_seconds, azure_env.batches.line_seconds = 0.2, 0.01


def test_provider_passthrough_refuses_line_7_before_sending(plain_proxy: Any, azure_env: Emulator) -> None:
    lines = batch_jsonl(10).decode().splitlines(keepends=True)
    lines[6] = '{"custom_id": "task-6", "method": "POST", "url": "/chat/completions", "body": \n'
    with pytest.raises(openai.BadRequestError) as info:
        client(plain_proxy).files.create(file=("bad.jsonl", io.BytesIO("".join(lines).encode())), purpose="batch",
                                         extra_headers={"custom-llm-provider": "azure"})  # fmt: skip
    assert "line 7: not valid JSON" in str(info.value)
    assert azure_env.requests == []


def test_bad_uploads_are_400_naming_the_field(plain_proxy: Any, azure_env: Emulator) -> None:
    auth = {"Authorization": f"Bearer {MASTER_KEY}"}
    with httpx.Client(base_url=plain_proxy.url, headers=auth) as http:
        r = http.post("/v1/files", json={"purpose": "batch"})
        assert r.status_code == 400 and r.json()["error"]["param"] == "file"
        r = http.post("/v1/files", data={"purpose": "batch"}, files={"other": ("x", b"")})
        assert r.status_code == 400 and "'file' is required" in r.json()["error"]["message"]
        r = http.post("/v1/files", files={"file": ("x.jsonl", batch_jsonl(1))})
        assert r.status_code == 400 and r.json()["error"]["param"] == "purpose"
        r = http.post("/v1/batches", json={"endpoint": "/v1/chat/completions"})
        assert r.status_code == 400 and r.json()["error"]["param"] == "input_file_id"
        r = http.get("/v1/batches", params={"limit": "lots"})
        assert r.status_code == 400 and r.json()["error"]["param"] == "limit"
        r = http.put("/v1/batches/batch_1")
        assert r.status_code == 405
        assert http.post("/files", json={}, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert azure_env.requests == []


def test_config_without_a_batch_plugin_is_refused(resources: dict[str, EmulatorServer], tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    from modelyard.errors import ConfigError

    config = lb_config(resources, {"modelyard_settings": {"store_path": str(tmp_path / "store.db"),
                                                          "block_plugins": ["modelyard-azure-batch"]}})  # fmt: skip
    try:
        with pytest.raises(ConfigError, match="enable_loadbalancing_on_batch_endpoints"), running_proxy(config):
            pass
    finally:
        from modelyard import plugins

        plugins.reset_plugins()


def test_sigkill_between_create_and_retrieve_loses_nothing(
    resources: dict[str, EmulatorServer], east_west: dict[str, Emulator], store_settings: dict[str, Any],
    tmp_path: Path,
) -> None:  # fmt: skip
    """The restart is a real second OS process, and the first one dies by SIGKILL: no shutdown
    hook runs, so only what the store had committed when create answered carries over."""
    import signal

    import yaml

    from .test_lifecycle import serve

    config = lb_config(resources, store_settings, master_key=MASTER_KEY)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    created: list[tuple[str, str]] = []
    with serve("--config", str(path)) as (proc, url):
        c = openai.OpenAI(base_url=url + "/v1", api_key=MASTER_KEY, max_retries=0)
        for i in range(3):
            uploaded = c.files.create(file=("requests.jsonl", io.BytesIO(batch_jsonl(4, model=GROUP))), purpose="batch")
            batch = c.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions",
                                     completion_window="24h", metadata={"n": str(i)})  # fmt: skip
            created.append((uploaded.id, batch.id))
        c.close()
        proc.send_signal(signal.SIGKILL)  # at once, right after the last create answered
        assert proc.wait(timeout=30) == -signal.SIGKILL
    with serve("--config", str(path)) as (_, url):
        c = openai.OpenAI(base_url=url + "/v1", api_key=MASTER_KEY, max_retries=0)
        try:
            for i, (file_id, batch_id) in enumerate(created):
                done = wait(c, batch_id)
                assert done.status == "completed" and done.input_file_id == file_id and done.metadata == {"n": str(i)}
                assert done.output_file_id is not None
                assert custom_ids(c.files.content(done.output_file_id).content) == [f"task-{j}" for j in range(4)]
                assert c.files.retrieve(file_id).id == file_id
            # the shared PostgreSQL holds other tests' batches, of deployments this config lacks:
            # the list leaves them out rather than failing (it was a 404 for the whole list)
            assert {b.id for b in c.batches.list()} >= {b for _, b in created}
        finally:
            c.close()
