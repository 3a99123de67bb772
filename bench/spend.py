"""What spend tracking adds to the proxy's CPU per request, timed in-process (stable to ~1 us).

    .venv/bin/python bench/spend.py [--rows 20000] [--database-url postgresql://...]

Two parts, both per request: recording the row on the request path (``record_request``: reading
the call record, building the row, a queue append), and writing it off the request path (the
background task's share of one INSERT of ``flush_rows`` rows, in its thread: CPU of this
process, so SQLite's work counts, PostgreSQL's server does not). ``./dev bench --spend`` measures
the same end to end (spend on vs off), where the shared machine's noise is larger than the cost.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

from modelyard._calls import CallRecord
from modelyard.observe import CallScope
from modelyard.proxy.spend import record_request
from modelyard.store import Store
from modelyard.store.spend import SpendRecorder
from modelyard.types import Route

USAGE = {"prompt_tokens": 19, "completion_tokens": 9, "total_tokens": 28,
         "prompt_tokens_details": {"cached_tokens": 0}, "completion_tokens_details": {"reasoning_tokens": 0}}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    route = Route(model="azure/gpt-4o", provider="azure", family="azure", deployment="gpt-4o", operation="chat")
    scope = CallScope()
    scope.calls.append(("gpt-4o", "dep-1", CallRecord(route, 0.01, 200, USAGE, cost=0.000137, response_model="gpt-4o-2024-08-06")))
    ctx = SimpleNamespace(scope=scope, request_id="0123456789abcdef", operation="chat", status=200, model="gpt-4o",
                          deployment="dep-1", path="/v1/chat/completions", stream=False, error=None,
                          key_id=None, team_id=None, user_id=None)  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp, Store(args.database_url, path=Path(tmp) / "bench.db") as store:
        recorder = SpendRecorder(store, max_queue=args.rows + 1)
        record_request(recorder, ctx, time.time(), time.time())  # warm
        recorder.flush()
        best_record = best_write = float("inf")
        for _ in range(3):
            t0 = time.process_time()
            for _ in range(args.rows):
                now = time.time()
                record_request(recorder, ctx, now - 0.01, now)
            best_record = min(best_record, (time.process_time() - t0) / args.rows)
            t0 = time.process_time()
            recorder.flush()
            best_write = min(best_write, (time.process_time() - t0) / args.rows)
        print(f"store: {store.url}")
        print(f"record on the request path: {best_record * 1e6:.1f} us per request")
        print(f"batched write off the path: {best_write * 1e6:.1f} us per request ({recorder.flush_rows} rows per INSERT)")
        print(f"total: {(best_record + best_write) * 1e6:.1f} us per request")


if __name__ == "__main__":
    main()
