"""Images end to end: Router, the proxy driven by the openai SDK (OpenAI and AzureOpenAI shapes),
model_info.mode routing, /health probes, the Azure page's Spend Tracking example, and the plugin
blocked."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from typing import Any

import httpx
import modelyard
import openai
import pytest
from modelyard import errors
from modelyard.testing import KEY, MASTER_KEY, Emulator, litellm_params, running_proxy
from modelyard.testing.emulator import Deployment, Faults
from modelyard.testing.images import png

DALLE = "dall-e-3-test"  # the deployment name of the Azure page's Spend Tracking example
GPT_IMAGE = "gpt-image-1"
PREVIEW = "2025-04-01-preview"  # the first classic api-version serving image edits


@pytest.fixture
def img(emulator: Emulator) -> Iterator[Emulator]:
    emulator.add_deployment(Deployment(DALLE, model="dall-e-3"))
    emulator.add_deployment(Deployment("dalle-b", model="dall-e-3"))
    emulator.add_deployment(Deployment(GPT_IMAGE, model="gpt-image-1"))
    yield emulator
    for name in (DALLE, "dalle-b", GPT_IMAGE):
        emulator.deployments.pop(name, None)


def config(api_base: str, **settings: Any) -> dict[str, Any]:
    """The Azure page's Spend Tracking example (``azure/dall-e-3-test``, ``mode: image_generation``) beside a chat model."""
    return {
        "model_list": [
            {"model_name": "gpt-4o", "litellm_params": litellm_params(api_base, "gpt-4o")},
            {"model_name": "dall-e-3", "litellm_params": litellm_params(api_base, DALLE),
             "model_info": {"mode": "image_generation"}},
        ],
        "router_settings": {"num_retries": 0},
        **settings,
    }


def _post(proxy: Any, path: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{proxy.url}{path}", json=body, headers={"Authorization": f"Bearer {MASTER_KEY}"}, timeout=30)


# ------------------------------------------------------------------------ Router


def test_router_image_generation_fails_over_to_the_next_deployment(api_base: str, img: Emulator) -> None:
    img.deployments[DALLE].faults = Faults(script=[503])
    router = modelyard.Router(
        model_list=[
            {"model_name": "i", "litellm_params": litellm_params(api_base, DALLE), "model_info": {"id": "a"}, "order": 1},
            {"model_name": "i", "litellm_params": litellm_params(api_base, "dalle-b"), "model_info": {"id": "b"}, "order": 2},
        ],
        num_retries=1,
    )
    r = router.image_generation(prompt="a boat", model="i", response_format="b64_json")
    assert base64.b64decode(r.data[0].b64_json or "") == png("0:a boat")
    body = {"prompt": "a boat", "response_format": "b64_json"}
    assert [(q.method, q.path, q.query, q.body) for q in img.requests] == [
        ("POST", f"/openai/deployments/{DALLE}/images/generations", {"api-version": "2024-10-21"}, body),
        ("POST", "/openai/deployments/dalle-b/images/generations", {"api-version": "2024-10-21"}, body),
    ]
    router.close()


async def test_router_aimage_generation_and_aimage_edit(api_base: str, img: Emulator) -> None:
    router = modelyard.Router(model_list=[
        {"model_name": "i", "litellm_params": litellm_params(api_base, DALLE)},
        {"model_name": "g", "litellm_params": {**litellm_params(api_base, GPT_IMAGE, api_version=PREVIEW), "api_version": "2025-04-01-preview"}},
    ])  # fmt: skip
    r = await router.aimage_generation("hi", "i")  # LiteLLM's order: prompt, model
    assert r.data[0].url and img.requests[-1].body == {"prompt": "hi"}
    e = await router.aimage_edit(png("x"), "edit it", "g")
    seen = img.requests[-1]
    assert (seen.path, seen.body["prompt"], seen.body["image"]["size"]) == (
        f"/openai/deployments/{GPT_IMAGE}/images/edits", "edit it", len(png("x"))
    )
    assert e.data[0].b64_json
    sync = router.image_edit(image=io.BytesIO(png("y")), prompt="again", model="g")
    assert sync.data[0].b64_json and img.requests[-1].body["image"]["size"] == len(png("y"))
    await router.aclose()


# ------------------------------------------------------------------------ proxy


def test_proxy_images_with_the_openai_sdk(api_base: str, img: Emulator) -> None:
    with running_proxy(config(api_base)) as proxy:
        c = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key=MASTER_KEY, max_retries=0)
        r = c.images.generate(model="dall-e-3", prompt="a red kite", size="1024x1792", quality="hd",
                              style="vivid", response_format="b64_json", n=1)  # fmt: skip
        plain = _post(proxy, "/images/generations", {"model": "dall-e-3", "prompt": "z"})
    assert base64.b64decode(r.data[0].b64_json or "") == png("0:a red kite")
    assert r.data[0].revised_prompt == "A detailed picture of a red kite"
    first = img.requests[0]
    assert (first.method, first.path, first.query) == (
        "POST", f"/openai/deployments/{DALLE}/images/generations", {"api-version": "2024-10-21"}
    )
    assert first.body == {"prompt": "a red kite", "size": "1024x1792", "quality": "hd", "style": "vivid",
                          "response_format": "b64_json", "n": 1}  # fmt: skip
    assert first.headers["api-key"] == KEY
    assert plain.status_code == 200, plain.text
    url = plain.json()["data"][0]["url"]
    assert httpx.get(url).content == png("0:z")
    assert img.requests[1].body == {"prompt": "z"}


def test_proxy_images_on_the_azure_route(api_base: str, img: Emulator) -> None:
    with running_proxy(config(api_base)) as proxy:
        az = openai.AzureOpenAI(azure_endpoint=proxy.url, api_key=MASTER_KEY, api_version="2024-10-21", max_retries=0)
        r = az.images.generate(model="dall-e-3", prompt="from azure", response_format="url")
    assert r.data[0].url
    sent = img.requests[-1]
    assert (sent.method, sent.path, sent.query) == (
        "POST", f"/openai/deployments/{DALLE}/images/generations", {"api-version": "2024-10-21"}
    )
    assert sent.body == {"prompt": "from azure", "response_format": "url"}


def test_proxy_content_filter_on_an_image_prompt(api_base: str, img: Emulator) -> None:
    with running_proxy(config(api_base)) as proxy:
        c = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key=MASTER_KEY, max_retries=0)
        with pytest.raises(openai.BadRequestError) as info:
            c.images.generate(model="dall-e-3", prompt="emulator:filter-prompt")
    assert info.value.status_code == 400
    assert info.value.code == "content_policy_violation"


def test_proxy_bad_input_names_the_field_and_the_next_request_is_served(api_base: str, img: Emulator) -> None:
    cases = [
        ({"model": "dall-e-3"}, "prompt"),
        ({"model": "dall-e-3", "prompt": 3}, "prompt"),
        ({"model": "dall-e-3", "prompt": "x", "n": "1"}, "n"),
        ({"model": "dall-e-3", "prompt": "x", "response_format": "gif"}, "response_format"),
        ({"model": "dall-e-3", "prompt": "x", "size": "2x2"}, "size"),  # Azure's refusal, relayed
        ({"model": "dall-e-3", "prompt": "x", "api_key": "sk-leak"}, "api_key"),
    ]
    with running_proxy(config(api_base)) as proxy:
        for body, param in cases:
            bad = _post(proxy, "/v1/images/generations", body)
            assert bad.status_code == 400, (body, bad.text)
            assert bad.json()["error"]["param"] == param
            assert param in bad.json()["error"]["message"]
        chat_to_image = _post(proxy, "/v1/chat/completions", {"model": "dall-e-3", "messages": [{"role": "user", "content": "hi"}]})
        image_to_chat = _post(proxy, "/v1/images/generations", {"model": "gpt-4o", "prompt": "x"})
        good = _post(proxy, "/v1/images/generations", {"model": "dall-e-3", "prompt": "fine"})
    # Only the size reached Azure (and was refused there); then the good request.
    assert [r.body for r in img.requests] == [{"prompt": "x", "size": "2x2"}, {"prompt": "fine"}]
    assert chat_to_image.status_code == 400
    assert chat_to_image.json()["error"]["param"] == "model"
    assert "'image_generation'" in chat_to_image.json()["error"]["message"]
    assert image_to_chat.status_code == 400 and "'chat'" in image_to_chat.json()["error"]["message"]
    assert good.status_code == 200


def test_proxy_refuses_an_edit_sent_as_json_without_reading_a_path(api_base: str, img: Emulator) -> None:
    """A JSON string in ``image`` would be a file path on the proxy's host: never read."""
    with running_proxy(config(api_base)) as proxy:
        r = _post(proxy, "/v1/images/edits", {"model": "dall-e-3", "image": "/etc/hostname", "prompt": "x"})
    assert r.status_code == 400 and "multipart/form-data" in r.json()["error"]["message"]
    assert r.json()["error"]["param"] == "image"
    assert img.requests == []


def _file(entry: dict[str, Any], name: str, data: bytes, content_type: str = "image/png") -> None:
    assert entry == {"filename": name, "content_type": content_type, "size": len(data), "head": data[:8].hex()}


def _edits_config(api_base: str, **settings: Any) -> dict[str, Any]:
    cfg = config(api_base, **settings)
    cfg["model_list"].append({"model_name": "gpt-image", "litellm_params": litellm_params(api_base, GPT_IMAGE, api_version=PREVIEW),
                              "model_info": {"mode": "image_generation"}})  # fmt: skip
    return cfg


def test_proxy_image_edit_with_the_openai_sdk(api_base: str, img: Emulator, tmp_path: Any) -> None:
    room, mask = png("room"), png("mask")
    path = tmp_path / "room.png"
    path.write_bytes(room)
    with running_proxy(_edits_config(api_base)) as proxy:
        c = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key=MASTER_KEY, max_retries=0)
        with path.open("rb") as image, io.BytesIO(mask) as m:
            r = c.images.edit(model="gpt-image", image=image, mask=("mask.png", m, "image/png"), prompt="add a lamp",
                              n=2, size="1024x1024", quality="low")  # fmt: skip
    assert len(r.data) == 2 and r.data[0].b64_json
    seen = img.requests[-1]
    assert (seen.method, seen.path, seen.query) == (
        "POST", f"/openai/deployments/{GPT_IMAGE}/images/edits", {"api-version": PREVIEW}
    )
    assert seen.headers["content-type"].startswith("multipart/form-data; boundary=")
    assert seen.headers["api-key"] == KEY
    assert set(seen.body) == {"image", "mask", "prompt", "n", "size", "quality"}
    assert (seen.body["prompt"], seen.body["n"], seen.body["size"], seen.body["quality"]) == ("add a lamp", "2", "1024x1024", "low")
    _file(seen.body["image"], "room.png", room)
    _file(seen.body["mask"], "mask.png", mask)


def test_proxy_image_edit_with_several_images_and_unnamed_bytes(api_base: str, img: Emulator) -> None:
    """``image[]`` parts stay in order; bytes the openai SDK sends unnamed reach Azure named as images."""
    one, two, jpeg = png("1"), png("2"), b"\xff\xd8\xff" + b"0" * 50
    with running_proxy(_edits_config(api_base)) as proxy:
        c = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key=MASTER_KEY, max_retries=0)
        r = c.images.edit(model="gpt-image", image=[("a.png", one), ("b.png", two, "image/png"), jpeg], prompt="merge")
    assert r.data
    seen = img.requests[-1]
    assert set(seen.body) == {"image[]", "prompt"} and seen.body["prompt"] == "merge"
    names = [(e["filename"], e["content_type"], e["size"]) for e in seen.body["image[]"]]
    assert names == [("a.png", "image/png", len(one)), ("b.png", "image/png", len(two)), ("image-2.jpg", "image/jpeg", len(jpeg))]


def test_proxy_image_edit_on_the_azure_route(api_base: str, img: Emulator) -> None:
    with running_proxy(_edits_config(api_base)) as proxy:
        az = openai.AzureOpenAI(azure_endpoint=proxy.url, api_key=MASTER_KEY, api_version="2025-04-01-preview", max_retries=0)
        r = az.images.edit(model="gpt-image", image=("photo.png", png("az")), prompt="from azure")
    assert r.data[0].b64_json
    sent = img.requests[-1]
    assert (sent.method, sent.path, sent.query) == (
        "POST", f"/openai/deployments/{GPT_IMAGE}/images/edits", {"api-version": PREVIEW}
    )
    assert set(sent.body) == {"image", "prompt"} and sent.body["prompt"] == "from azure"
    _file(sent.body["image"], "photo.png", png("az"))


def test_proxy_never_reads_an_image_text_field_as_a_file_on_its_host(api_base: str, img: Emulator, tmp_path: Any) -> None:
    """A form's text field named like a file part (``image``, ``image[]``, ``mask``) is a path to
    the SDK: the proxy refuses it, sends nothing, and serves the next request."""
    secret = tmp_path / "secret.png"
    secret.write_bytes(png("secret"))  # a file the proxy's host could read and upload if it took the path
    auth = {"Authorization": f"Bearer {MASTER_KEY}"}
    with running_proxy(_edits_config(api_base)) as proxy:
        cases = [
            ("image", {"unrelated": ("x.txt", b"x", "text/plain")}),
            ("image[]", {"unrelated": ("x.txt", b"x", "text/plain")}),
            ("mask", {"image": ("a.png", png("a"), "image/png")}),
        ]
        answers = [
            httpx.post(f"{proxy.url}/v1/images/edits", headers=auth, files=files, timeout=30,
                       data={"model": "gpt-image", "prompt": "x", field: str(secret)})
            for field, files in cases
        ]
        good = httpx.post(f"{proxy.url}/v1/images/edits", headers=auth, data={"model": "gpt-image", "prompt": "ok"},
                          files={"image": ("a.png", png("a"), "image/png")}, timeout=30)  # fmt: skip
    for answer, param in zip(answers, ["image", "image", "mask"], strict=True):
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"]["param"] == param and "file part" in answer.json()["error"]["message"]
    assert good.status_code == 200, good.text
    assert len(img.requests) == 1 and img.requests[0].body["prompt"] == "ok"


def test_proxy_image_edit_upload_limit_is_the_rows(api_base: str, img: Emulator) -> None:
    """Above ``/images/edits``' 50 MB (Azure's per-image limit): 413 while reading, nothing sent upstream."""
    big = b"\x89PNG" + b"\0" * (51 * 1024 * 1024)
    with running_proxy(_edits_config(api_base, general_settings={"max_upload_size_mb": 200})) as proxy:
        r = httpx.post(f"{proxy.url}/v1/images/edits", headers={"Authorization": f"Bearer {MASTER_KEY}"},
                       data={"model": "gpt-image", "prompt": "x"}, files={"image": ("big.png", big, "image/png")}, timeout=60)  # fmt: skip
    assert r.status_code == 413, r.text
    assert "50" in r.json()["error"]["message"]
    assert img.requests == []


def test_health_probes_the_image_deployment_without_generating(api_base: str, img: Emulator) -> None:
    with running_proxy(config(api_base)) as proxy:
        health = httpx.get(f"{proxy.url}/health", headers={"Authorization": f"Bearer {MASTER_KEY}"}).json()
    assert health["unhealthy_count"] == 0 and health["healthy_count"] == 2, health
    probes = sorted((r.path, r.body.get("prompt"), r.body.get("size")) for r in img.requests)
    assert probes == [
        ("/openai/deployments/dall-e-3-test/images/generations", "ping", "1x1"),
        ("/openai/deployments/gpt-4o/chat/completions", None, None),
    ]


def test_health_reports_an_image_deployment_that_is_down_or_not_an_image_model(api_base: str, img: Emulator) -> None:
    img.deployments[DALLE].faults = Faults(script=[500])
    cfg = config(api_base)
    cfg["model_list"].append({"model_name": "wrong", "litellm_params": litellm_params(api_base, "gpt-4o"),
                              "model_info": {"mode": "image_generation"}})  # fmt: skip
    with running_proxy(cfg) as proxy:
        health = httpx.get(f"{proxy.url}/health", headers={"Authorization": f"Bearer {MASTER_KEY}"}).json()
    errors_seen = sorted(e["error"] for e in health["unhealthy_endpoints"])
    assert health["unhealthy_count"] == 2, health
    assert any("OperationNotSupported" in e or "does not work" in e for e in errors_seen), errors_seen
    assert any("(500)" in e for e in errors_seen), errors_seen


# ------------------------------------------------------------------------ blocked plugin


def test_blocked_images_plugin_fails_before_sending_and_everything_else_works(
    api_base: str, img: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    img.add_deployment(Deployment("emb", model="text-embedding-3-small"))
    cfg = config(api_base, modelyard_settings={"block_plugins": ["modelyard-azure-images"]})
    cfg["model_list"].append({"model_name": "embed", "litellm_params": litellm_params(api_base, "emb"), "model_info": {"mode": "embedding"}})
    try:
        with running_proxy(cfg) as proxy:
            blocked = _post(proxy, "/v1/images/generations", {"model": "dall-e-3", "prompt": "x"})
            chat = _post(proxy, "/v1/chat/completions", {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]})
            emb = _post(proxy, "/v1/embeddings", {"model": "embed", "input": "x"})
    finally:
        img.deployments.pop("emb", None)
    assert blocked.status_code == 501
    assert blocked.json()["error"]["code"] == "plugin_not_loaded"
    assert "modelyard-azure-images" in blocked.json()["error"]["message"]
    assert chat.status_code == 200 and emb.status_code == 200
    assert [r.path for r in img.requests] == ["/openai/deployments/gpt-4o/chat/completions", "/openai/deployments/emb/embeddings"]
    monkeypatch.setenv("MODELYARD_BLOCK_PLUGINS", "modelyard-azure-images")
    from modelyard.plugins import reset_plugins

    reset_plugins()
    try:
        for call in (
            lambda: modelyard.image_generation(model=f"azure/{DALLE}", prompt="x", api_base=api_base, api_key=KEY),
            lambda: modelyard.image_edit(model=f"azure/{GPT_IMAGE}", image=png("x"), prompt="x", api_base=api_base, api_key=KEY),
        ):
            with pytest.raises(errors.PluginNotLoadedError) as info:
                call()
            assert "modelyard-azure-images" in str(info.value)
        ok = modelyard.completion(model="azure/gpt-4o", messages=[{"role": "user", "content": "hi"}], api_base=api_base, api_key=KEY)
        assert ok.choices[0].message.content
    finally:
        monkeypatch.delenv("MODELYARD_BLOCK_PLUGINS")
        reset_plugins()
    assert len(img.requests) == 3


# ------------------------------------------------------------------------ ./dev serve defaults


def test_embedded_defaults_serve_a_dall_e_3_deployment(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    from modelyard.proxy.serve import build
    from modelyard.testing.server import serve_in_thread

    monkeypatch.chdir(tmp_path)
    built = build(dev=True)
    try:
        headers = {"Authorization": f"Bearer {built.master_key}"}
        with serve_in_thread(built.app, lifespan="on") as server:
            r = httpx.post(f"{server.url}/v1/images/generations", json={"model": "dall-e-3", "prompt": "hi",
                           "response_format": "b64_json"}, headers=headers, timeout=30)  # fmt: skip
            chat = httpx.post(f"{server.url}/v1/chat/completions", json={"model": "dall-e-3", "messages": [
                {"role": "user", "content": "hi"}]}, headers=headers, timeout=30)  # fmt: skip
            health = httpx.get(f"{server.url}/health", headers=headers, timeout=60).json()
    finally:
        built.emulator.stop()
    assert r.status_code == 200, r.text
    assert base64.b64decode(r.json()["data"][0]["b64_json"]) == png("0:hi")
    assert chat.status_code == 400 and "image_generation" in chat.json()["error"]["message"]
    assert health["unhealthy_count"] == 0, health
    assert any(e["model"] == "azure/dall-e-3" for e in health["healthy_endpoints"]), health
