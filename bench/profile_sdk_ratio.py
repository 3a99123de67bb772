"""The SDK's CPU per call as a ratio to the raw client's, measured in alternating short bursts.

    python bench/profile_sdk_ratio.py [--bursts 15] [--calls 300]

One process, bench/upstream.py as the upstream: for each pair (raw httpx / ``completion``, raw
httpx / ``completion`` on the native sync backend, raw
``httpx.AsyncClient`` / ``acompletion``, raw aiohttp / ``acompletion`` on the aiohttp backend)
it alternates bursts of ``--calls`` calls of each and prints the median CPU µs per call of each
side and the ratio of the medians. Bursts a second long or less see the same load on a shared
machine, so the ratio moves far less than figures taken minutes apart.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from profile_sdk import IN_FLIGHT, KEY, MESSAGES, VERSION  # noqa: E402
from run import free_port, wait_ready  # noqa: E402


def _burst(call: Callable[[], Any], calls: int) -> float:
    start = time.process_time()
    for _ in range(calls):
        call()
    return (time.process_time() - start) / calls * 1e6


async def _aburst(call: Callable[[], Awaitable[Any]], calls: int) -> float:
    left = calls

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            await call()

    start = time.process_time()
    await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))
    return (time.process_time() - start) / calls * 1e6


def _report(name: str, raw: list[float], ours: list[float]) -> None:
    r, o = statistics.median(raw), statistics.median(ours)
    print(f"{name:26} raw {r:6.0f} µs  modelyard {o:6.0f} µs  ratio {o / r:5.2f}  (raw best {min(raw):.0f}, ours best {min(ours):.0f})")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bursts", type=int, default=15)
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(HERE / "upstream.py"), "--port", str(port)], stdout=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    url = f"{base}/openai/deployments/gpt-4o/chat/completions?api-version={VERSION}"
    body = {"messages": MESSAGES}
    try:
        wait_ready(base + "/", proc, timeout=30)
        import httpx
        import modelyard
        from modelyard import transport

        client = httpx.Client()

        def raw() -> Any:
            return client.post(url, json=body, headers={"api-key": KEY}).json()

        def ours() -> Any:
            return modelyard.completion(model="azure/gpt-4o", messages=MESSAGES, api_base=base, api_key=KEY, api_version=VERSION)

        for backend in ("httpx", "native"):
            transport.set_transport(transport.Transport(sync_backend=backend))
            for f in (raw, ours):
                _burst(f, 50)
            pairs = [(_burst(raw, args.calls), _burst(ours, args.calls)) for _ in range(args.bursts)]
            _report(f"sync ({backend})", [p[0] for p in pairs], [p[1] for p in pairs])
            transport.get_transport().close()
        asyncio.run(_async_pairs(base, url, body, args, transport))
    finally:
        proc.terminate()
        proc.wait()


async def _async_pairs(base: str, url: str, body: dict[str, Any], args: Any, transport: Any) -> None:
    import modelyard

    async def ours() -> Any:
        return await modelyard.acompletion(model="azure/gpt-4o", messages=MESSAGES, api_base=base, api_key=KEY, api_version=VERSION)

    for backend in ("httpx", "aiohttp"):
        transport.set_transport(transport.Transport(async_backend=backend))
        raw, close = _raw_async(backend, url, body)
        for f in (raw, ours):
            await _aburst(f, 100)
        pairs = [(await _aburst(raw, args.calls), await _aburst(ours, args.calls)) for _ in range(args.bursts)]
        _report(f"async 32 in flight ({backend})", [p[0] for p in pairs], [p[1] for p in pairs])
        await transport.get_transport().aclose()
        await close()


def _raw_async(backend: str, url: str, body: dict[str, Any]) -> tuple[Callable[[], Awaitable[Any]], Callable[[], Awaitable[None]]]:
    """The raw client's call and its close, for ``backend``."""
    import aiohttp
    import httpx

    if backend == "httpx":
        client = httpx.AsyncClient(limits=httpx.Limits(max_connections=1000, max_keepalive_connections=200))

        async def post() -> Any:
            return (await client.post(url, json=body, headers={"api-key": KEY})).json()

        return post, client.aclose
    session = aiohttp.ClientSession()

    async def apost() -> Any:
        async with session.post(url, json=body, headers={"api-key": KEY}) as r:
            return await r.json()

    return apost, session.close

if __name__ == "__main__":
    main()
