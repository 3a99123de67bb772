"""Closed-loop load: ``concurrency`` clients post the same request for ``duration`` seconds
(a chat request, with ``--body stream`` a streamed one read to its end, or with ``--body
embeddings`` an embeddings one).

Prints one JSON object: requests, errors, req_per_s, p50_ms, p99_ms. Runs in its own process
(aiohttp on uvloop when available) so the generator does not share a GIL with what it measures.

    python bench/load.py URL --concurrency 16 --duration 5 [--key sk-...]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

BODIES = {
    "chat": {"model": "gpt-4o", "messages": [{"role": "user", "content": "Hello, how are you?"}]},
    "embeddings": {"model": "embed", "input": "Hello, how are you?"},
    "stream": {"model": "gpt-4o", "messages": [{"role": "user", "content": "Hello, how are you?"}], "stream": True},
}


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _run(url: str, concurrency: int, duration: float, warmup: float, key: str | None, body: str = "chat") -> dict[str, float]:
    import aiohttp

    headers = {"content-type": "application/json"}
    if key:
        headers["authorization"] = f"Bearer {key}"
        headers["api-key"] = key
    payload = json.dumps(BODIES[body]).encode()
    latencies: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    async with aiohttp.ClientSession(connector=connector) as session:
        start = time.perf_counter()
        measure_from = start + warmup
        stop = measure_from + duration

        async def worker() -> None:
            nonlocal errors
            while True:
                t0 = time.perf_counter()
                if t0 >= stop:
                    return
                try:
                    async with session.post(url, data=payload, headers=headers) as r:
                        await r.read()
                        ok = r.status == 200
                except aiohttp.ClientError:
                    ok = False
                t1 = time.perf_counter()
                if t0 >= measure_from:
                    if ok:
                        latencies.append(t1 - t0)
                    else:
                        errors += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return {
        "requests": len(latencies),
        "errors": errors,
        "req_per_s": len(latencies) / duration,
        "p50_ms": _percentile(latencies, 0.50) * 1000,
        "p99_ms": _percentile(latencies, 0.99) * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--key")
    parser.add_argument("--body", choices=sorted(BODIES), default="chat")
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    result = asyncio.run(_run(args.url, args.concurrency, args.duration, args.warmup, args.key, args.body))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
