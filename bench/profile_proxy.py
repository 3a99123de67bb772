"""The proxy's own CPU per request, in process: no uvicorn, no load generator, no other process in the figure.

Starts bench/upstream.py, builds the app the way ``modelyard serve`` does from the bench's config
(spend to SQLite, metrics and the access log on, the log written to /dev/null), and calls it as
an ASGI app ``--requests`` times, ``--concurrency`` at a time. Prints CPU µs per request (this
process's CPU time, which does not move with the machine's load the way wall-clock rates do),
optionally with a virtual key, and with ``--profile FILE`` writes a cProfile of the loop.

    python bench/profile_proxy.py [--stream] [--vkey [--budget]] [--concurrency 64] [--requests 5000] [--redis-url URL] [--profile out.prof] [--canned]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import free_port, wait_ready, write_config  # noqa: E402


async def _lifespan(app: Any, kind: str) -> None:
    done = asyncio.Event()
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": f"lifespan.{kind}"}
        await asyncio.Event().wait()
        return {}

    async def send(message: dict[str, Any]) -> None:
        done.set()

    task = asyncio.create_task(app({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send))
    await done.wait()
    if kind == "shutdown":
        await task
    else:
        _lifespans.append(task)


_lifespans: list[asyncio.Task[None]] = []


async def _call(app: Any, path: str, body: bytes, key: str) -> int:
    headers = [(b"host", b"bench"), (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               (b"authorization", f"Bearer {key}".encode())]  # fmt: skip
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "", "headers": headers,
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 4000)}  # fmt: skip
    given = False
    forever = asyncio.Event()
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": body, "more_body": False}
        await forever.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


async def _main(args: argparse.Namespace, upstream: str) -> dict[str, Any]:
    from modelyard.proxy import serve

    master = "sk-bench-profile-0123456789abcdef"
    # --redis-url: the Router's state in Redis, as with several workers (one round trip or two per call)
    extra = "  disable_spend_logs: true\n  metrics: false\n" if args.bare else ""
    if args.redis_url:
        extra += f"router_settings:\n  redis_url: {args.redis_url}\n"
    config = write_config(upstream, master, extra)
    serve._configure_logging("warning", access_log=not args.bare)
    import logging

    if not args.bare:
        handler = logging.getLogger("modelyard.proxy.access").handlers[0]
        handler.stream = open(os.devnull, "w")  # type: ignore[attr-defined]  # noqa: SIM115
    app = serve.build(str(config)).app
    if not args.no_freeze and hasattr(serve, "freeze_heap"):
        serve.freeze_heap()  # as modelyard serve does
    await _lifespan(app, "startup")
    key = master
    if args.vkey:
        from modelyard.proxy.keys import VirtualKeys  # noqa: F401  (the admin API below makes the key)

        status_body: list[bytes] = []

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.body":
                status_body.append(message.get("body", b""))

        wanted: dict[str, Any] = {"models": ["gpt-4o", "embed"], "key_alias": "bench"}
        if args.budget:
            wanted["max_budget"] = 1e6  # as ./dev bench --virtual-key budget: reserved and settled per call
        fields = json.dumps(wanted).encode()
        scope = {"type": "http", "method": "POST", "path": "/key/generate", "raw_path": b"/key/generate", "query_string": b"",
                 "headers": [(b"authorization", f"Bearer {master}".encode()), (b"content-type", b"application/json")]}  # fmt: skip
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": fields}
            await asyncio.Event().wait()
            return {}

        await app(scope, receive, send)
        key = json.loads(b"".join(status_body))["key"]
    payload: dict[str, Any] = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Hello, how are you?"}]}
    path = "/v1/chat/completions"
    if args.stream:
        payload["stream"] = True
    if args.embeddings:
        payload, path = {"model": "embed", "input": "Hello, how are you?"}, "/v1/embeddings"
    body = json.dumps(payload).encode()

    async def worker(n: int) -> None:
        for _ in range(n):
            assert await _call(app, path, body, key) == 200

    await asyncio.gather(*(worker(50 // args.concurrency + 1) for _ in range(args.concurrency)))  # warm-up
    if args.canned:
        await _can(app, path, body, key, args)
    profiler = None
    if args.profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    per = args.requests // args.concurrency
    import gc

    gc_time = [0.0, 0.0, 0.0]
    gc_count = [0, 0, 0]
    started = [0.0]

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.process_time()
        else:
            gc_time[info["generation"]] += time.process_time() - started[0]
            gc_count[info["generation"]] += 1

    gc.callbacks.append(on_gc)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker(per) for _ in range(args.concurrency)))
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    gc.callbacks.remove(on_gc)
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(args.profile)
    await _lifespan(app, "shutdown")
    n = per * args.concurrency
    return {"requests": n, "cpu_us_per_req": round(cpu / n * 1e6, 1), "wall_us_per_req": round(wall / n * 1e6, 1),
            "gc_us_per_req": [round(t / n * 1e6, 1) for t in gc_time], "gc_collections": gc_count}  # fmt: skip


async def _can(app: Any, path: str, body: bytes, key: str, args: argparse.Namespace) -> None:
    """From now on the Router's model call answers with a captured answer, and its call record, at once.

    What is left is the proxy's own work (ASGI handling, the Router, metrics, the access log,
    the spend row): no SDK pipeline, no upstream I/O.
    """
    import modelyard.api as api
    import modelyard.router.router as router_module
    from modelyard.observe import current_scope

    if args.stream:
        raise SystemExit("--canned: not for streams (a stream is read once)")
    target, name = (api, "aembedding") if args.embeddings else (router_module, "acompletion")
    real = getattr(target, name)
    captured: list[Any] = []

    async def capture(**kwargs: Any) -> Any:
        result = await real(**kwargs)
        scope = current_scope()
        assert scope is not None
        captured[:] = [result, scope.calls[-1][2]]
        return result

    setattr(target, name, capture)
    assert await _call(app, path, body, key) == 200
    result, record = captured

    async def canned(**kwargs: Any) -> Any:
        scope = current_scope()
        assert scope is not None
        scope.calls.append((scope.model_group, scope.deployment_id, record))
        return result

    setattr(target, name, canned)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("--embeddings", action="store_true")
    parser.add_argument("--vkey", action="store_true", help="call with a virtual key rather than the master key")
    parser.add_argument("--budget", action="store_true", help="with --vkey: the key has a max_budget")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--redis-url", help="share the Router's state in this Redis (as several workers do)")
    parser.add_argument("--no-freeze", action="store_true", help="skip gc.freeze() after start-up (modelyard serve does it)")
    parser.add_argument("--profile", help="write a cProfile of the measured loop here")
    parser.add_argument("--bare", action="store_true",
                        help="spend, metrics and the access log off (./dev bench's 'bare' row): what the features cost")
    parser.add_argument("--canned", action="store_true",
                        help="the model call answers from a captured answer: the proxy's own work alone (not --stream)")
    args = parser.parse_args()
    port = free_port()
    upstream_proc = subprocess.Popen([sys.executable, str(HERE / "upstream.py"), "--port", str(port)], stdout=subprocess.DEVNULL)
    try:
        upstream = f"http://127.0.0.1:{port}"
        wait_ready(upstream + "/", upstream_proc, timeout=30)
        import uvloop

        print(json.dumps(uvloop.run(_main(args, upstream))))
    finally:
        upstream_proc.terminate()
        upstream_proc.wait()


if __name__ == "__main__":
    main()
