"""modelyard-openai against the OpenAI twin: paths, auth, settings, families, errors, blocking."""

from __future__ import annotations

import pytest
from modelyard import acompletion, completion, embedding, errors, text_completion
from modelyard.plugins import get_plugins, reset_plugins
from modelyard.testing import KEY
from modelyard_openai.testing import OpenAITwin, TwinServer

HI = [{"role": "user", "content": "hi"}]


def test_chat_goes_to_openais_path_with_a_bearer_key(twin_server: TwinServer, twin: OpenAITwin) -> None:
    r = completion(model="openai/gpt-4o", messages=HI, api_base=twin_server.base, api_key=KEY, organization="org-1")
    assert r.choices[0].message.content
    seen = twin.requests[-1]
    assert (seen.method, seen.path) == ("POST", "/v1/chat/completions")
    assert seen.headers["authorization"] == f"Bearer {KEY}"
    assert "api-key" not in seen.headers
    assert seen.headers["openai-organization"] == "org-1"
    assert seen.body == {"model": "gpt-4o", "messages": HI}


async def test_async_and_streamed_chat(twin_server: TwinServer, twin: OpenAITwin) -> None:
    r = await acompletion(model="openai/gpt-4o", messages=HI, api_base=twin_server.base, api_key=KEY)
    assert r.choices[0].message.content
    stream = await acompletion(model="openai/gpt-4o", messages=HI, api_base=twin_server.base, api_key=KEY, stream=True)
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text
    assert twin.requests[-1].body["stream"] is True
    sync = completion(model="openai/gpt-4o", messages=HI, api_base=twin_server.base, api_key=KEY, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in sync if c.choices) == text


def test_environment_variables(twin_server: TwinServer, twin: OpenAITwin, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", twin_server.base)
    monkeypatch.setenv("OPENAI_PROJECT", "proj-9")
    completion(model="openai/gpt-4o", messages=HI)
    seen = twin.requests[-1]
    assert seen.headers["authorization"] == f"Bearer {KEY}"
    assert seen.headers["openai-project"] == "proj-9"


def test_bare_names_are_openai_as_litellm_reads_them(twin_server: TwinServer, twin: OpenAITwin) -> None:
    r = completion(model="gpt-3.5-turbo", messages=HI, api_base=twin_server.base, api_key=KEY)
    assert r.choices[0].message.content
    assert twin.requests[-1].body["model"] == "gpt-3.5-turbo"
    route, family = get_plugins().families.resolve("gpt-3.5-turbo")
    assert (route.provider, family.name, route.deployment) == ("openai", "openai_bare", "gpt-3.5-turbo")
    with pytest.raises(errors.BadRequestError, match="Unknown model 'my-deployment'"):
        get_plugins().families.resolve("my-deployment")  # not an OpenAI name: no provider guessed


def test_instruct_models_call_completions(twin_server: TwinServer, twin: OpenAITwin) -> None:
    r = text_completion(model="openai/gpt-3.5-turbo-instruct", prompt="Say hi", api_base=twin_server.base, api_key=KEY)
    assert r.choices[0].text
    assert twin.requests[-1].path == "/v1/completions"
    assert twin.requests[-1].body["prompt"] == "Say hi"


def test_embeddings(twin_server: TwinServer, twin: OpenAITwin) -> None:
    r = embedding(model="text-embedding-3-small", input=["a", "b"], api_base=twin_server.base, api_key=KEY)
    assert len(r.data) == 2
    assert twin.requests[-1].path == "/v1/embeddings"
    assert twin.requests[-1].body == {"model": "text-embedding-3-small", "input": ["a", "b"]}


def test_images_speech_and_transcription_at_openais_paths(twin_server: TwinServer, twin: OpenAITwin) -> None:
    from modelyard import image_generation, speech, transcription

    kw = {"api_base": twin_server.base, "api_key": KEY}
    image = image_generation(prompt="a red square", model="dall-e-3", **kw)
    assert image.data and twin.requests[-1].path == "/v1/images/generations"
    assert twin.requests[-1].body["model"] == "dall-e-3"
    audio = speech(model="tts-1", input="hello", voice="alloy", **kw)
    assert audio.content and twin.requests[-1].path == "/v1/audio/speech"
    wav = audio.content
    text = transcription(model="whisper-1", file=("hello.mp3", wav, "audio/mpeg"), **kw)
    assert isinstance(text.text, str) and twin.requests[-1].path == "/v1/audio/transcriptions"
    assert twin.requests[-1].headers["content-type"].startswith("multipart/form-data")


def test_a_wrong_key_is_an_authentication_error(twin_server: TwinServer, twin: OpenAITwin) -> None:
    with pytest.raises(errors.AuthenticationError) as info:
        completion(model="openai/gpt-4o", messages=HI, api_base=twin_server.base, api_key="wrong", num_retries=0)
    assert info.value.provider == "openai"
    assert "wrong" not in str(info.value)


def test_no_key_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(errors.AuthenticationError, match="OPENAI_API_KEY"):
        completion(model="openai/gpt-4o", messages=HI, api_base="http://127.0.0.1:9/v1")


def test_organization_is_a_secret_free_setting_a_proxy_client_may_not_send() -> None:
    schema = get_plugins().connection_settings
    assert "organization" in schema.names and "organization" not in schema.secrets
    assert schema.env("openai", "api_key") == ("OPENAI_API_KEY",)


def test_blocked_openai_fails_before_sending_naming_the_plugin(twin_server: TwinServer, twin: OpenAITwin) -> None:
    reset_plugins(block=["modelyard-openai"])
    try:
        with pytest.raises(errors.ModelyardError) as info:
            completion(model="openai/gpt-4o", messages=HI, api_base=twin_server.base, api_key=KEY)
        assert "modelyard-openai" in str(info.value) or "openai of modelyard-openai" in str(info.value)
        with pytest.raises(errors.BadRequestError, match="modelyard-openai"):
            completion(model="gpt-4o", messages=HI, api_base=twin_server.base, api_key=KEY)
        assert "project" not in get_plugins().connection_settings.names  # its settings went with it
        assert twin.requests == []
    finally:
        reset_plugins()


def test_the_proxy_serves_an_openai_deployment(twin_server: TwinServer, twin: OpenAITwin) -> None:
    import httpx
    from modelyard.testing import MASTER_KEY, running_proxy

    config = {"model_list": [{"model_name": "gpt-3.5-turbo", "litellm_params": {
        "model": "gpt-3.5-turbo", "api_base": twin_server.base, "api_key": KEY, "organization": "org-7"}}]}  # fmt: skip
    auth = {"Authorization": f"Bearer {MASTER_KEY}"}
    with running_proxy(config) as proxy:
        r = httpx.post(f"{proxy.url}/v1/chat/completions", json={"model": "gpt-3.5-turbo", "messages": HI}, headers=auth)
        with httpx.stream("POST", f"{proxy.url}/chat/completions", headers=auth,
                          json={"model": "gpt-3.5-turbo", "messages": HI, "stream": True}) as s:  # fmt: skip
            lines = [line for line in s.iter_lines() if line.startswith("data: ")]
        refused = httpx.post(f"{proxy.url}/v1/chat/completions", headers=auth,
                             json={"model": "gpt-3.5-turbo", "messages": HI, "organization": "org-evil"})  # fmt: skip
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"]
    assert lines[-1] == "data: [DONE]"
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "organization"
    assert [(s.path, s.headers["authorization"], s.headers["openai-organization"]) for s in twin.requests] == [
        ("/v1/chat/completions", f"Bearer {KEY}", "org-7")
    ] * 2


def test_a_config_for_openai_with_openai_blocked_fails_at_start_naming_it(twin_server: TwinServer) -> None:
    from modelyard.proxy import ProxyApp, parse_config
    from modelyard.testing import MASTER_KEY

    config = parse_config({
        "model_list": [{"model_name": "m", "litellm_params": {"model": "openai/gpt-4o", "api_base": twin_server.base}}],
        "modelyard_settings": {"block_plugins": ["modelyard-openai"]},
    })  # fmt: skip
    try:
        with pytest.raises(errors.ConfigError, match="openai of modelyard-openai is blocked"):
            ProxyApp(config, master_key=MASTER_KEY)
    finally:
        reset_plugins()
