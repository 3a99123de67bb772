"""SDK throughput against the canned upstream: one measurement per process, printed as JSON.

    python bench/sdk.py MODE BASE_URL [--duration 3]

Modes: ``httpx`` (raw sync httpx), ``modelyard``, ``modelyard-native-sync`` (on
``Transport(sync_backend="native")``), ``openai``, ``litellm`` (sequential sync calls);
``httpx-async``, ``aiohttp-async``, ``modelyard-async``, ``modelyard-async-aiohttp``,
``modelyard-async-native``, ``litellm-async`` (32 calls in flight); ``import-modelyard``, ``import-litellm``;
``first-call-modelyard`` / ``first-call-litellm`` (a fresh process: the import of ``completion``
and its first call, best of 5).
The litellm modes run in bench/.litellm-venv; the others in the workspace.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

KEY = "bench-upstream-key"
VERSION = "2024-10-21"
MESSAGES = [{"role": "user", "content": "Hello, how are you?"}]
IN_FLIGHT = 32


def _sync_rate(call: Callable[[], Any], duration: float) -> float:
    for _ in range(20):
        call()
    n = 0
    start = time.perf_counter()
    end = start + duration
    while time.perf_counter() < end:
        call()
        n += 1
    return n / (time.perf_counter() - start)


async def _async_rate(call: Callable[[], Awaitable[Any]], duration: float) -> float:
    for _ in range(20):
        await call()
    n = 0
    start = time.perf_counter()
    end = start + duration

    async def worker() -> None:
        nonlocal n
        while time.perf_counter() < end:
            await call()
            n += 1

    await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))
    return n / (time.perf_counter() - start)


def _import_time(module: str) -> float:
    best = float("inf")
    for _ in range(5):
        code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        best = min(best, float(out.stdout.strip()))
    return best * 1000


_FIRST_CALL = """
import sys, time
started = time.perf_counter()
from {package} import completion
imported = time.perf_counter()
answer = completion(model="azure/gpt-4o", messages=[{{"role": "user", "content": "Hello"}}], api_base=sys.argv[1],
                    api_key="{key}", api_version="{version}")
assert answer.choices[0].message.content
print(imported - started, time.perf_counter() - started)
"""


def _first_call(package: str, base: str) -> dict[str, float]:
    """``from <package> import completion`` and its first call in a fresh process (best of 5)."""
    best: tuple[float, float] = (float("inf"), float("inf"))
    code = _FIRST_CALL.format(package=package, key=KEY, version=VERSION)
    for _ in range(5):
        out = subprocess.run([sys.executable, "-c", code, base], capture_output=True, text=True, check=True)
        imported, total = map(float, out.stdout.split())
        best = min(best, (total, imported))
    return {"first_call_ms": best[0] * 1000, "import_ms": best[1] * 1000}


def measure(mode: str, base: str, duration: float) -> dict[str, Any]:
    url = f"{base}/openai/deployments/gpt-4o/chat/completions?api-version={VERSION}"
    body = {"messages": MESSAGES}
    if mode.startswith("first-call-"):
        return _first_call(mode.split("-", 2)[2], base)
    if mode.startswith("import-"):
        return {"import_ms": _import_time(mode.split("-", 1)[1])}
    if mode == "httpx":
        import httpx

        client = httpx.Client()
        return {"calls_per_s": _sync_rate(lambda: client.post(url, json=body, headers={"api-key": KEY}).json(), duration)}
    if mode in ("modelyard", "modelyard-native-sync"):
        import modelyard
        from modelyard import transport

        if mode == "modelyard-native-sync":
            transport.set_transport(transport.Transport(sync_backend="native"))

        def call() -> Any:
            return modelyard.completion(model="azure/gpt-4o", messages=MESSAGES, api_base=base, api_key=KEY, api_version=VERSION)

        return {"calls_per_s": _sync_rate(call, duration)}
    if mode == "openai":
        import openai

        az = openai.AzureOpenAI(azure_endpoint=base, api_key=KEY, api_version=VERSION)
        return {"calls_per_s": _sync_rate(lambda: az.chat.completions.create(model="gpt-4o", messages=MESSAGES), duration)}  # type: ignore[arg-type]
    if mode == "litellm":
        import litellm

        def lcall() -> Any:
            return litellm.completion(model="azure/gpt-4o", messages=MESSAGES, api_base=base, api_key=KEY, api_version=VERSION)

        return {"calls_per_s": _sync_rate(lcall, duration)}
    return asyncio.run(_measure_async(mode, base, url, body, duration))


async def _measure_async(mode: str, base: str, url: str, body: dict[str, Any], duration: float) -> dict[str, Any]:
    if mode == "httpx-async":
        import httpx

        client = httpx.AsyncClient(limits=httpx.Limits(max_connections=1000, max_keepalive_connections=200))

        async def call() -> Any:
            return (await client.post(url, json=body, headers={"api-key": KEY})).json()

        return {"calls_per_s": await _async_rate(call, duration)}
    if mode == "aiohttp-async":
        import aiohttp

        async with aiohttp.ClientSession() as session:

            async def acall() -> Any:
                async with session.post(url, json=body, headers={"api-key": KEY}) as r:
                    return await r.json()

            return {"calls_per_s": await _async_rate(acall, duration)}
    if mode.startswith("modelyard-async"):
        import modelyard
        from modelyard import transport

        if mode.endswith(("aiohttp", "native")):
            transport.set_transport(transport.Transport(async_backend=mode.rsplit("-", 1)[1]))

        async def mcall() -> Any:
            return await modelyard.acompletion(
                model="azure/gpt-4o", messages=MESSAGES, api_base=base, api_key=KEY, api_version=VERSION
            )

        try:
            return {"calls_per_s": await _async_rate(mcall, duration)}
        finally:
            await transport.get_transport().aclose()
    if mode == "litellm-async":
        import litellm

        async def lcall() -> Any:
            return await litellm.acompletion(
                model="azure/gpt-4o", messages=MESSAGES, api_base=base, api_key=KEY, api_version=VERSION
            )

        return {"calls_per_s": await _async_rate(lcall, duration)}
    raise SystemExit(f"unknown mode {mode!r}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode")
    parser.add_argument("base")
    parser.add_argument("--duration", type=float, default=3.0)
    args = parser.parse_args()
    print(json.dumps(measure(args.mode, args.base, args.duration)))


if __name__ == "__main__":
    main()
