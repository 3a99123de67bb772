"""The soak (bench/soak.py, ``./dev soak``) at CI size, 10,000 requests: memory and file descriptors stay flat (issue 18).

``MODELYARD_SOAK_REQUESTS=N`` runs another size.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

SOAK = Path(__file__).parents[2] / "bench" / "soak.py"
# Read at import: the clean environment of each test (modelyard_clean_env) drops MODELYARD_* variables.
REQUESTS = int(os.environ.get("MODELYARD_SOAK_REQUESTS", "10000"))


def test_soak_small() -> None:
    spec = importlib.util.spec_from_file_location("modelyard_bench_soak", SOAK)
    assert spec is not None and spec.loader is not None
    soak = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("modelyard_bench_soak", soak)  # dataclasses look their module up
    spec.loader.exec_module(soak)
    result = soak.run(REQUESTS, concurrency=8)
    print("\n" + result.table())
    assert result.unexpected == 0, result.outcomes
    assert len(result.samples) >= 4  # sampled each second while the load ran
    assert result.ok, result.table()
