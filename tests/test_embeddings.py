"""Embeddings end to end: Router, the proxy driven by the openai SDK (OpenAI and AzureOpenAI
shapes), model_info.mode routing, /health probes, and the plugin blocked."""

from __future__ import annotations

import base64
import struct
from collections.abc import Iterator
from typing import Any

import httpx
import modelyard
import openai
import pytest
from modelyard import errors
from modelyard.testing import KEY, MASTER_KEY, Emulator, litellm_params, running_proxy
from modelyard.testing.embeddings import vector
from modelyard.testing.emulator import Deployment, Faults

EMB = "text-embedding-3-small"


@pytest.fixture
def emb(emulator: Emulator) -> Iterator[Emulator]:
    emulator.add_deployment(Deployment(EMB, model="text-embedding-3-small"))
    emulator.add_deployment(Deployment("emb-b", model="text-embedding-3-small"))
    yield emulator
    emulator.deployments.pop(EMB, None)
    emulator.deployments.pop("emb-b", None)


def config(api_base: str, **settings: Any) -> dict[str, Any]:
    return {
        "model_list": [
            {"model_name": "gpt-4o", "litellm_params": litellm_params(api_base, "gpt-4o")},
            {"model_name": "embed", "litellm_params": litellm_params(api_base, EMB), "model_info": {"mode": "embedding"}},
        ],
        "router_settings": {"num_retries": 0},
        **settings,
    }


# ------------------------------------------------------------------------ Router


def test_router_embedding_fails_over_to_the_next_deployment(api_base: str, emb: Emulator) -> None:
    emb.deployments[EMB].faults = Faults(script=[503])
    router = modelyard.Router(
        model_list=[
            {"model_name": "e", "litellm_params": litellm_params(api_base, EMB), "model_info": {"id": "a"}, "order": 1},
            {"model_name": "e", "litellm_params": litellm_params(api_base, "emb-b"), "model_info": {"id": "b"}, "order": 2},
        ],
        num_retries=1,
    )
    r = router.embedding("e", input=["x"], dimensions=3)
    assert r.data[0].embedding == vector("x", 3)
    assert [(q.method, q.path, q.query, q.body) for q in emb.requests] == [
        ("POST", f"/openai/deployments/{EMB}/embeddings", {"api-version": "2024-10-21"}, {"input": ["x"], "dimensions": 3}),
        ("POST", "/openai/deployments/emb-b/embeddings", {"api-version": "2024-10-21"}, {"input": ["x"], "dimensions": 3}),
    ]
    router.close()


async def test_router_aembedding(api_base: str, emb: Emulator) -> None:
    router = modelyard.Router(model_list=[{"model_name": "e", "litellm_params": litellm_params(api_base, EMB)}])
    r = await router.aembedding("e", "hi")
    assert len(r.data[0].embedding) == 1536
    assert emb.requests[-1].body == {"input": "hi"}
    await router.aclose()


# ------------------------------------------------------------------------ proxy


def test_proxy_embeddings_with_the_openai_sdk(api_base: str, emb: Emulator) -> None:
    with running_proxy(config(api_base)) as proxy:
        c = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key=MASTER_KEY, max_retries=0)
        r = c.embeddings.create(model="embed", input=["a b", "c"], dimensions=4)
        plain = httpx.post(f"{proxy.url}/embeddings", json={"model": "embed", "input": "z"},
                           headers={"Authorization": f"Bearer {MASTER_KEY}"})  # fmt: skip
    # The openai SDK asks for base64 and decodes it itself.
    assert r.data[0].embedding == pytest.approx(vector("a b", 4), abs=1e-6)
    assert r.usage.prompt_tokens == 3
    first = emb.requests[0]
    assert (first.method, first.path, first.query) == ("POST", f"/openai/deployments/{EMB}/embeddings", {"api-version": "2024-10-21"})
    assert first.body == {"input": ["a b", "c"], "dimensions": 4, "encoding_format": "base64"}
    assert first.headers["api-key"] == KEY
    assert plain.status_code == 200 and plain.json()["data"][0]["embedding"] == vector("z", 1536)
    assert emb.requests[1].body == {"input": "z"}


def test_proxy_embeddings_on_the_azure_route(api_base: str, emb: Emulator) -> None:
    with running_proxy(config(api_base)) as proxy:
        az = openai.AzureOpenAI(azure_endpoint=proxy.url, api_key=MASTER_KEY, api_version="2024-10-21", max_retries=0)
        r = az.embeddings.create(model="embed", input="from azure", encoding_format="float")
    assert r.data[0].embedding == vector("from azure", 1536)
    sent = emb.requests[-1]
    assert (sent.method, sent.path, sent.query) == ("POST", f"/openai/deployments/{EMB}/embeddings", {"api-version": "2024-10-21"})
    assert sent.body == {"input": "from azure", "encoding_format": "float"}


def _post(proxy: Any, path: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{proxy.url}{path}", json=body, headers={"Authorization": f"Bearer {MASTER_KEY}"})


def test_proxy_bad_input_names_the_field_and_the_next_request_is_served(api_base: str, emb: Emulator) -> None:
    cases = [
        ({"model": "embed"}, "input"),
        ({"model": "embed", "input": 3}, "input"),
        ({"model": "embed", "input": "x", "encoding_format": "hex"}, "encoding_format"),
        ({"model": "embed", "input": "x", "dimensions": "4"}, "dimensions"),
        ({"model": "embed", "input": "x", "api_key": "sk-leak"}, "api_key"),
    ]
    with running_proxy(config(api_base)) as proxy:
        for body, param in cases:
            bad = _post(proxy, "/v1/embeddings", body)
            assert bad.status_code == 400, (body, bad.text)
            assert bad.json()["error"]["param"] == param
            assert param in bad.json()["error"]["message"]
        chat_to_embed = _post(proxy, "/v1/chat/completions", {"model": "embed", "messages": [{"role": "user", "content": "hi"}]})
        embed_to_chat = _post(proxy, "/v1/embeddings", {"model": "gpt-4o", "input": "x"})
        good = _post(proxy, "/v1/embeddings", {"model": "embed", "input": "fine"})
    assert emb.requests[-1].body == {"input": "fine"} and len(emb.requests) == 1
    assert chat_to_embed.status_code == 400
    assert chat_to_embed.json()["error"]["param"] == "model"
    assert "'embedding'" in chat_to_embed.json()["error"]["message"]
    assert embed_to_chat.status_code == 400 and "'chat'" in embed_to_chat.json()["error"]["message"]
    assert good.status_code == 200


def test_health_probes_an_embedding_deployment_with_an_embeddings_call(api_base: str, emb: Emulator) -> None:
    with running_proxy(config(api_base)) as proxy:
        health = httpx.get(f"{proxy.url}/health", headers={"Authorization": f"Bearer {MASTER_KEY}"}).json()
    assert health["unhealthy_count"] == 0 and health["healthy_count"] == 2
    probes = sorted((r.path, r.body.get("input")) for r in emb.requests)
    assert (f"/openai/deployments/{EMB}/embeddings", "ping") in probes
    assert ("/openai/deployments/gpt-4o/chat/completions", None) in probes


# ------------------------------------------------------------------------ blocked plugin


def test_blocked_embeddings_plugin_fails_before_sending_and_chat_keeps_working(
    api_base: str, emb: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    with running_proxy(config(api_base, modelyard_settings={"block_plugins": ["modelyard-azure-embeddings"]})) as proxy:
        blocked = _post(proxy, "/v1/embeddings", {"model": "embed", "input": "x"})
        chat = _post(proxy, "/v1/chat/completions", {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]})
    assert blocked.status_code == 501
    assert blocked.json()["error"]["code"] == "plugin_not_loaded"
    assert "modelyard-azure-embeddings" in blocked.json()["error"]["message"]
    assert chat.status_code == 200
    assert [r.path for r in emb.requests] == ["/openai/deployments/gpt-4o/chat/completions"]
    monkeypatch.setenv("MODELYARD_BLOCK_PLUGINS", "modelyard-azure-embeddings")
    from modelyard.plugins import reset_plugins

    reset_plugins()
    try:
        with pytest.raises(errors.PluginNotLoadedError) as info:
            modelyard.embedding(model=f"azure/{EMB}", input="x", api_base=api_base, api_key=KEY)
    finally:
        monkeypatch.delenv("MODELYARD_BLOCK_PLUGINS")
        reset_plugins()
    assert "modelyard-azure-embeddings" in str(info.value)
    assert len(emb.requests) == 1


def test_base64_through_the_sdk_is_the_emulators_float32(api_base: str, emb: Emulator) -> None:
    r = modelyard.embedding(model=f"azure/{EMB}", input="b", encoding_format="base64", dimensions=2,
                            api_base=api_base, api_key=KEY)  # fmt: skip
    assert struct.unpack("<2f", base64.b64decode(r.data[0].embedding)) == pytest.approx(vector("b", 2), abs=1e-6)


# ------------------------------------------------------------------------ ./dev serve defaults


def test_embedded_defaults_serve_embeddings_and_files_on_the_emulator(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    """Before: POST /v1/embeddings was 404 "Unknown path" and GET /v1/files a 500 "No Azure endpoint"."""
    from modelyard.proxy.serve import build
    from modelyard.testing.server import serve_in_thread

    monkeypatch.chdir(tmp_path)  # the defaults' SQLite file lands here
    built = build(dev=True)
    try:
        assert built.mode == "emulator"
        headers = {"Authorization": f"Bearer {built.master_key}"}
        with serve_in_thread(built.app, lifespan="on") as server:
            emb = httpx.post(f"{server.url}/v1/embeddings", json={"model": "text-embedding-3-small", "input": "hi"},
                             headers=headers)  # fmt: skip
            files = httpx.get(f"{server.url}/v1/files", headers=headers)
            health = httpx.get(f"{server.url}/health", headers=headers).json()
    finally:
        built.emulator.stop()
    assert emb.status_code == 200, emb.text
    assert len(emb.json()["data"][0]["embedding"]) == 1536
    assert files.status_code == 200, files.text
    assert files.json()["object"] == "list"
    assert health["unhealthy_count"] == 0
    sent = [(r.path, r.body) for r in built.emulator.emulator.requests if r.path.endswith("/embeddings")]
    assert ("/openai/deployments/text-embedding-3-small/embeddings", {"input": "hi"}) in sent
