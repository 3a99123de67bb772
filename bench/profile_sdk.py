"""The SDK's own CPU per call, in process, beside the raw clients it is compared with.

Starts bench/upstream.py (or uses ``--upstream URL``) and makes ``--calls`` chat calls in each
mode, reporting this process's CPU time per call (``time.process_time``, which moves far less
with the machine's load than the calls-per-second of bench/sdk.py). Modes: ``httpx`` (raw
sync ``httpx.Client``), ``modelyard`` (sequential ``completion``), ``modelyard-native-sync``
(the same on ``Transport(sync_backend="native")``), ``httpx-async`` and
``modelyard-async`` (32 in flight, default httpx backend), ``aiohttp-async`` and
``modelyard-aiohttp`` (32 in flight, the aiohttp backend), ``native-async`` (the native
backend's ``send`` alone, plus ``json.loads``) and ``modelyard-native`` (32 in flight, the
native backend). ``--rounds N`` interleaves the modes
N times and prints best and median; ``--profile FILE`` writes a cProfile of one mode's loop.

    python bench/profile_sdk.py [--modes httpx,modelyard] [--calls 3000] [--rounds 3] [--profile out.prof]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import free_port, wait_ready  # noqa: E402

KEY = "bench-upstream-key"
VERSION = "2024-10-21"
MESSAGES = [{"role": "user", "content": "Hello, how are you?"}]
IN_FLIGHT = 32
MODES = ("httpx", "modelyard", "modelyard-native-sync", "httpx-async", "modelyard-async", "aiohttp-async",
         "modelyard-aiohttp", "native-async", "modelyard-native")


def _sync(call: Callable[[], Any], calls: int, profile: cProfile.Profile | None) -> float:
    for _ in range(50):
        call()
    if profile is not None:
        profile.enable()
    start = time.process_time()
    for _ in range(calls):
        call()
    spent = time.process_time() - start
    if profile is not None:
        profile.disable()
    return spent / calls * 1e6


async def _async(call: Callable[[], Awaitable[Any]], calls: int, profile: cProfile.Profile | None) -> float:
    for _ in range(50):
        await call()
    left = calls

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            await call()

    if profile is not None:
        profile.enable()
    start = time.process_time()
    await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))
    spent = time.process_time() - start
    if profile is not None:
        profile.disable()
    return spent / calls * 1e6


def measure(mode: str, base: str, calls: int, profile: cProfile.Profile | None = None) -> float:
    """CPU µs per call of ``mode``."""
    url = f"{base}/openai/deployments/gpt-4o/chat/completions?api-version={VERSION}"
    body = {"messages": MESSAGES}
    if mode == "httpx":
        import httpx

        with httpx.Client() as client:
            return _sync(lambda: client.post(url, json=body, headers={"api-key": KEY}).json(), calls, profile)
    if mode in ("modelyard", "modelyard-native-sync"):
        import modelyard
        from modelyard import transport

        t = transport.Transport(sync_backend="native" if mode == "modelyard-native-sync" else "httpx")
        previous = transport.set_transport(t)

        def call() -> Any:
            return modelyard.completion(model="azure/gpt-4o", messages=MESSAGES, api_base=base, api_key=KEY, api_version=VERSION)

        try:
            return _sync(call, calls, profile)
        finally:
            transport.set_transport(previous)
            t.close()
    return asyncio.run(_measure_async(mode, base, url, body, calls, profile))


async def _measure_async(mode: str, base: str, url: str, body: dict[str, Any], calls: int,
                         profile: cProfile.Profile | None) -> float:  # fmt: skip
    if mode == "httpx-async":
        import httpx

        limits = httpx.Limits(max_connections=1000, max_keepalive_connections=200)
        async with httpx.AsyncClient(limits=limits) as client:

            async def call() -> Any:
                return (await client.post(url, json=body, headers={"api-key": KEY})).json()

            return await _async(call, calls, profile)
    if mode == "aiohttp-async":
        import aiohttp

        async with aiohttp.ClientSession() as session:

            async def acall() -> Any:
                async with session.post(url, json=body, headers={"api-key": KEY}) as r:
                    return await r.json()

            return await _async(acall, calls, profile)
    if mode == "native-async":
        import json

        import httpx
        from modelyard._wire import NativeBackend
        from modelyard.types import ProviderRequest

        backend = NativeBackend()
        path, _, _ = url.partition("?")
        request = ProviderRequest(url=path, params={"api-version": VERSION}, json_body=body)
        timeout = httpx.Timeout(600.0, connect=10.0)

        async def ncall() -> Any:
            return json.loads((await backend.send(request, {"api-key": KEY}, timeout, idle=False)).content)

        try:
            return await _async(ncall, calls, profile)
        finally:
            await backend.aclose()
    import modelyard
    from modelyard import transport

    backend_name = "aiohttp" if mode.endswith("aiohttp") else "native" if mode.endswith("native") else "httpx"
    transport.set_transport(transport.Transport(async_backend=backend_name))

    async def mcall() -> Any:
        return await modelyard.acompletion(model="azure/gpt-4o", messages=MESSAGES, api_base=base, api_key=KEY, api_version=VERSION)

    try:
        return await _async(mcall, calls, profile)
    finally:
        await transport.get_transport().aclose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--upstream")
    parser.add_argument("--profile", help="write a cProfile of the (first) mode's loop to this file")
    args = parser.parse_args()
    modes = args.modes.split(",")
    proc = None
    base = args.upstream
    if base is None:
        port = free_port()
        proc = subprocess.Popen([sys.executable, str(HERE / "upstream.py"), "--port", str(port)], stdout=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        wait_ready(base + "/", proc, timeout=30)
    try:
        if args.profile:
            profile = cProfile.Profile()
            print(f"{modes[0]}: {measure(modes[0], base, args.calls, profile):.0f} µs CPU per call (profiled)")
            profile.dump_stats(args.profile)
            return
        figures: dict[str, list[float]] = {m: [] for m in modes}
        for _ in range(args.rounds):
            for mode in modes:
                figures[mode].append(measure(mode, base, args.calls))
        for mode, values in figures.items():
            print(f"{mode:18} median {statistics.median(values):6.0f} µs  best {min(values):6.0f} µs  "
                  f"({', '.join(f'{v:.0f}' for v in values)})")  # fmt: skip
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait()


if __name__ == "__main__":
    main()
