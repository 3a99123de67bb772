"""The end of a call, step by step: CPU µs of each step after the upstream's answer arrives.

Times, in a tight loop (best of 5 x ``--loops``, ``time.process_time``), what the SDK and the
proxy do once an answer is in: the pipeline's ``_normalize`` of bench/upstream.py's chat answer
(validation, cost, call record) and its parts, the cost of a stream that reported no usage, a
stream's assembler, the Router's ``_result_stats`` (with the bench's headers and with an Azure
answer's fifteen), and the proxy's end of request (``ProxyApp._log``: spend row, metrics, access
line) on the state of a real request through the app. Run it with another checkout's
interpreter to compare (issue 17, round five: "answers")::

    python bench/profile_answers.py [--loops 20000]
    (cd ../base && .venv/bin/python ../answers/bench/profile_answers.py)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import profile_proxy  # noqa: E402
from run import free_port, write_config  # noqa: E402
from upstream import _BODY  # noqa: E402

AZURE_HEADERS = [
    (b"Content-Length", b"1000"), (b"Content-Type", b"application/json"), (b"x-ms-region", b"East US"),
    (b"apim-request-id", b"abc"), (b"x-ratelimit-remaining-requests", b"99"), (b"x-ratelimit-remaining-tokens", b"9000"),
    (b"x-ms-rai-invoked", b"true"), (b"X-Request-ID", b"x"), (b"x-ms-client-request-id", b"y"),
    (b"Strict-Transport-Security", b"max-age=31536000"), (b"azureml-model-session", b"d"),
    (b"x-content-type-options", b"nosniff"), (b"x-ms-deployment-name", b"gpt-4o"), (b"Date", b"Mon"),
    (b"cmp-upstream-response-duration", b"300"),
]  # fmt: skip
BENCH_HEADERS = [(b"content-type", b"application/json"), (b"apim-request-id", b"bench"), (b"content-length", b"300")]


def best_us(fn: Callable[[], Any], loops: int) -> float:
    """The best of five runs of ``loops`` calls, in CPU µs per call."""
    best = float("inf")
    for _ in range(5):
        start = time.process_time()
        for _ in range(loops):
            fn()
        best = min(best, (time.process_time() - start) / loops * 1e6)
    return round(best, 2)


def pipeline_steps(loops: int) -> dict[str, float]:
    import httpx
    from modelyard import api
    from modelyard.observe import CallScope
    from modelyard.router.router import _result_stats
    from modelyard.types import ChatCompletion

    logging.disable(logging.WARNING)  # the one "no usage" warning of the stream's cost
    kwargs = {"api_base": "http://127.0.0.1:1", "api_key": "k", "api_version": "2024-10-21"}
    call = api._prepare("azure/gpt-4o", [{"role": "user", "content": "hi"}], False, dict(kwargs))
    streamed = api._prepare("azure/gpt-4o", [{"role": "user", "content": "hi"}], True, dict(kwargs))
    response = httpx.Response(200, headers=BENCH_HEADERS, content=_BODY)
    answer = ChatCompletion.model_validate_json(_BODY)
    usage = answer.usage
    call.scope = CallScope()
    calls = call.scope.calls
    out: dict[str, float] = {}

    def normalize() -> None:
        api._normalize(call, response)
        calls.clear()

    def observe() -> None:
        api._observe(call, status=200, usage=usage, headers=response.headers, response=answer, cost=0.1)
        calls.clear()

    out["_normalize (chat answer, in a scope)"] = best_us(normalize, loops)
    out["  _kept_response"] = best_us(lambda: api._kept_response(call, response), loops)
    out["  _Call.cost"] = best_us(lambda: call.cost(usage, answer.model, answer), loops)
    out["  _observe"] = best_us(observe, loops)
    out["stream: _Call.cost without usage"] = best_us(lambda: streamed.cost(None, "gpt-4o-2024-08-06"), loops)
    out["stream: _ChunkAssembler()"] = best_us(lambda: api._ChunkAssembler(streamed), loops)
    answer._response_headers = httpx.Headers(BENCH_HEADERS)
    out["Router _result_stats (bench headers)"] = best_us(lambda: _result_stats(answer, 0.0, 10), loops)
    answer._response_headers = httpx.Headers(AZURE_HEADERS)
    out["Router _result_stats (Azure headers)"] = best_us(lambda: _result_stats(answer, 0.0, 10), loops)
    logging.disable(logging.NOTSET)
    return out


async def proxy_end(upstream: str, loops: int) -> dict[str, float]:
    from modelyard.proxy import serve

    master = "sk-bench-profile-0123456789abcdef"
    serve._configure_logging("warning", access_log=True)
    handler = logging.getLogger("modelyard.proxy.access").handlers[0]
    handler.stream = open(os.devnull, "w")  # type: ignore[attr-defined]  # noqa: SIM115
    app = serve.build(str(write_config(upstream, master))).app
    await profile_proxy._lifespan(app, "startup")
    seen: list[tuple[Any, list[Any]]] = []
    log = app._log

    def keep(ctx: Any) -> None:  # the request's state before _log clears its calls
        seen.append((ctx, list(ctx.scope.calls)))
        log(ctx)

    app._log = keep  # type: ignore[method-assign]
    body = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "Hello"}]}).encode()
    for _ in range(3):
        await profile_proxy._call(app, "/v1/chat/completions", body, master)
    app._log = log  # type: ignore[method-assign]
    ctx, calls = seen[-1]
    recorder, metrics = app.spend, app.metrics
    assert recorder is not None and metrics is not None and calls

    def end() -> None:
        ctx.scope.calls[:] = calls
        log(ctx)
        recorder._queue.clear()  # the rows the writer would take

    def request() -> None:
        metrics.request(path=ctx.path, status=ctx.status, model=ctx.model, deployment=ctx.deployment,
                        seconds=0.002, scope=ctx.scope)  # fmt: skip

    out = {"proxy _log (spend row, metrics, access line)": best_us(end, loops // 4)}
    ctx.scope.calls[:] = calls
    out["  ProxyMetrics.request"] = best_us(request, loops // 4)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loops", type=int, default=20000)
    args = parser.parse_args()
    port = free_port()
    upstream = subprocess.Popen([sys.executable, str(HERE / "upstream.py"), "--port", str(port)])
    try:
        time.sleep(0.5)
        results = pipeline_steps(args.loops)
        results.update(asyncio.run(proxy_end(f"http://127.0.0.1:{port}", args.loops)))
    finally:
        upstream.kill()
    width = max(map(len, results))
    for name, value in results.items():
        print(f"{name.ljust(width)}  {value:7.2f} µs")


if __name__ == "__main__":
    main()
