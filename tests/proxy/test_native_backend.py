"""The proxy on the native HTTP/1.1 client (its default): no aiohttp loaded at all."""

from __future__ import annotations

import json
import subprocess
import sys

from modelyard.testing import Emulator

SCRIPT = """
import json, sys
import httpx
from modelyard import transport
from modelyard.testing import MASTER_KEY, litellm_params, running_proxy

config = {"model_list": [{"model_name": "gpt-4o", "litellm_params": litellm_params(API_BASE, "gpt-4o")}]}
with running_proxy(config) as proxy:
    headers = {"Authorization": f"Bearer {MASTER_KEY}"}
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
    chat = httpx.post(f"{proxy.url}/v1/chat/completions", json=body, headers=headers, timeout=60)
    stream = httpx.post(f"{proxy.url}/v1/chat/completions", json={**body, "stream": True}, headers=headers, timeout=60)
    backend = transport.get_transport()._async_backend
print(json.dumps({"chat": chat.status_code, "stream": stream.text.rstrip().endswith("data: [DONE]"), "backend": backend,
                  "aiohttp": sorted(m for m in sys.modules if m.split(".")[0] == "aiohttp")}))
"""


def test_the_proxy_serves_on_native_without_loading_aiohttp(api_base: str, emulator: Emulator) -> None:
    code = f"API_BASE = {api_base!r}\n" + SCRIPT
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"chat": 200, "stream": True, "backend": "native", "aiohttp": []}
    assert len(emulator.requests) == 2
