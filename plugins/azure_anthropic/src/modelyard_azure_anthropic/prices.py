"""Claude's prices on Azure AI Foundry, contributed through ``register_prices`` (USD per token).

Foundry bills Claude at Anthropic's list prices (per million tokens: input, output, cache read,
cache write of 5 minutes); the chat translation reports cache writes as
``prompt_tokens_details.cache_write_tokens``, priced with ``cache_creation_input_token_cost``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["PRICES"]


def _per_million(inp: float, out: float, read: float, write: float, max_output: int) -> dict[str, Any]:
    return {
        "input_cost_per_token": inp / 1e6,
        "output_cost_per_token": out / 1e6,
        "cache_read_input_token_cost": read / 1e6,
        "cache_creation_input_token_cost": write / 1e6,
        "max_output_tokens": max_output,
        "mode": "chat",
    }


PRICES: dict[str, dict[str, Any]] = {
    "claude-opus-4-5": _per_million(5, 25, 0.50, 6.25, 64_000),
    "claude-opus-4-1": _per_million(15, 75, 1.50, 18.75, 32_000),
    "claude-sonnet-4-5": _per_million(3, 15, 0.30, 3.75, 64_000),
    "claude-haiku-4-5": _per_million(1, 5, 0.10, 1.25, 64_000),
}
"""Model -> LiteLLM price keys."""
