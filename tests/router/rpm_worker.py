"""One Router process for the shared-Redis test: ``python rpm_worker.py EMULATOR_URL REDIS_URL N START_AT``.

Builds the same Router as its twin, waits until START_AT (epoch seconds) so that both run at
once, sends N calls and prints how many succeeded.
"""

from __future__ import annotations

import sys
import time

from modelyard import Router
from modelyard.testing import KEY


def main() -> None:
    api_base, redis_url, n, start_at = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    common = {"api_key": KEY, "api_base": api_base, "api_version": "2024-10-21"}
    router = Router(
        model_list=[
            {"model_name": "gpt-4o", "litellm_params": {"model": "azure/capped", **common}, "rpm": 5},
            {"model_name": "gpt-4o", "litellm_params": {"model": "azure/spare", **common}},
        ],
        routing_strategy="usage-based-routing-v2",
        redis_url=redis_url,
    )
    time.sleep(max(0.0, start_at - time.time()))
    ok = sum(1 for _ in range(n) if router.completion(model="gpt-4o", messages=[{"role": "user", "content": "hi"}]))
    print(ok)


if __name__ == "__main__":
    main()
