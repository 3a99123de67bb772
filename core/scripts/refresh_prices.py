"""Refresh modelyard's shipped price table from LiteLLM's published price data.

Usage::

    python core/scripts/refresh_prices.py PATH/model_prices_and_context_window.json

The input is LiteLLM's ``model_prices_and_context_window.json`` (MIT licensed; it ships inside
the ``litellm`` wheel as ``litellm/model_prices_and_context_window_backup.json``). Only the
providers modelyard serves are kept, and of each entry only its prices and ``mode``, so that the
shipped file stays small (docs/spend.md). Nothing is fetched: pass a file you have.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

PROVIDERS = frozenset({"azure", "azure_text", "azure_ai", "openai", "text-completion-openai"})
KEEP = re.compile(r"(cost_per_|_cost$|_cost_)")
OUT = Path(__file__).resolve().parents[1] / "src" / "modelyard" / "data" / "model_prices.json"


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    source = json.loads(Path(argv[1]).read_text())
    out: dict[str, dict[str, object]] = {}
    for name, entry in sorted(source.items()):
        if not isinstance(entry, dict) or entry.get("litellm_provider") not in PROVIDERS:
            continue
        kept = {k: v for k, v in entry.items() if KEEP.search(k) and isinstance(v, int | float)}
        if kept:
            out[name] = {"mode": entry.get("mode"), "litellm_provider": entry["litellm_provider"], **kept}
    OUT.write_text(json.dumps(out, separators=(",", ":"), sort_keys=True) + "\n")
    print(f"wrote {len(out)} models to {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
