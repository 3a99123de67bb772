"""Run inside a fresh environment holding modelyard[server], this fixture and an in-process plugin.

Prints one line per check; exits non-zero on the first failure. Driven by
tests/test_out_of_tree_provider.py.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys

import httpx
import modelyard
from modelyard.testing import KEY, MASTER_KEY, Emulator, EmulatorServer, running_proxy

HI = [{"role": "user", "content": "hi"}]
inproc = sys.argv[1]  # the in-process provider's prefix

with EmulatorServer(Emulator(["gpt-4o"], api_keys=[KEY])) as server:
    emu = server.emulator
    r = modelyard.completion(model="ext/gpt-4o", messages=HI, api_base=server.url, api_key=KEY, ext_tenant="t1")
    assert r.choices[0].message.content.endswith("You said: hi"), r
    seen = emu.requests[-1]
    assert (seen.path, seen.headers["x-ext-tenant"], seen.body["model"]) == ("/openai/v1/chat/completions", "t1", "gpt-4o")
    print("sdk sync ok")

    async def both() -> tuple[str, str]:
        a = await modelyard.acompletion(model="ext/gpt-4o", messages=HI, api_base=server.url, api_key=KEY)
        s = await modelyard.acompletion(model="ext/gpt-4o", messages=HI, api_base=server.url, api_key=KEY, stream=True)
        return a.choices[0].message.content, "".join([c.choices[0].delta.content or "" async for c in s if c.choices])

    plain, streamed = asyncio.run(both())
    assert plain == streamed and plain.endswith("You said: hi")
    sync_stream = modelyard.completion(model="ext/gpt-4o", messages=HI, api_base=server.url, api_key=KEY, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in sync_stream if c.choices) == plain
    print("sdk async and stream ok")

    config = {"model_list": [
        {"model_name": "ext-model", "litellm_params": {"model": "ext/gpt-4o", "api_base": server.url, "api_key": KEY,
                                                       "ext_tenant": "t2"}},
        {"model_name": "local", "litellm_params": {"model": f"{inproc}/m"}},
    ]}  # fmt: skip
    with running_proxy(config) as proxy:
        auth = {"Authorization": f"Bearer {MASTER_KEY}"}
        r1 = httpx.post(f"{proxy.url}/v1/chat/completions", json={"model": "ext-model", "messages": HI}, headers=auth)
        assert r1.status_code == 200 and r1.json()["choices"][0]["message"]["content"].endswith("You said: hi"), r1.text
        assert emu.requests[-1].headers["x-ext-tenant"] == "t2"
        with httpx.stream("POST", f"{proxy.url}/v1/chat/completions", headers=auth,
                          json={"model": "ext-model", "messages": HI, "stream": True}) as s:  # fmt: skip
            events = [line[6:] for line in s.iter_lines() if line.startswith("data: ")]
        assert events[-1] == "[DONE]" and len(events) > 2
        text = "".join(json.loads(e)["choices"][0]["delta"].get("content") or "" for e in events[:-1] if json.loads(e)["choices"])
        assert text.endswith("You said: hi")
        r2 = httpx.post(f"{proxy.url}/v1/chat/completions", json={"model": "local", "messages": HI}, headers=auth)
        assert r2.json()["choices"][0]["message"]["content"] == "echo: hi", r2.text
        r3 = httpx.post(f"{proxy.url}/v1/chat/completions", json={"model": "ext-model", "messages": HI, "ext_tenant": "x"},
                        headers=auth)  # fmt: skip
        assert r3.status_code == 400 and r3.json()["error"]["param"] == "ext_tenant"
    print("proxy ok")


def no_network(*args: object, **kwargs: object) -> None:
    raise AssertionError("the in-process provider opened a connection")


socket.socket.connect = no_network  # type: ignore[method-assign]
r = modelyard.completion(model=f"{inproc}/m", messages=HI)
assert r.choices[0].message.content == "echo: hi"
stream = modelyard.completion(model=f"{inproc}/m", messages=HI, stream=True)
assert "".join(c.choices[0].delta.content or "" for c in stream) == "echo: hi"


async def in_process_async() -> str:
    s = await modelyard.acompletion(model=f"{inproc}/m", messages=HI, stream=True)
    return "".join([c.choices[0].delta.content or "" async for c in s])


assert asyncio.run(in_process_async()) == "echo: hi"
print("in-process ok")
