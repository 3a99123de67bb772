"""The Router: load balancing over deployments, cooldowns, retries, fallbacks, shared state.

``from modelyard import Router`` (loaded on first use). See ``docs/router.md``.
"""

from __future__ import annotations

from .deployments import Deployment
from .router import Router
from .state import MemoryState, Quota, RedisState, Reservation, RouterState, Snapshot
from .strategies import STRATEGIES

__all__ = [
    "STRATEGIES",
    "Deployment",
    "MemoryState",
    "Quota",
    "RedisState",
    "Reservation",
    "Router",
    "RouterState",
    "Snapshot",
]
