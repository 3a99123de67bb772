"""docs/spend.md: the price keys its units table names are the ones the code reads.

(Its example runs in tests/test_docs_examples.py, with every other page's.)
"""

from __future__ import annotations

import re
from pathlib import Path

from modelyard import pricing

DOC = Path(__file__).resolve().parents[1] / "docs" / "spend.md"


def test_every_price_key_the_units_table_names_is_read() -> None:
    source = (Path(pricing.__file__)).read_text()
    table = DOC.read_text().split("## Units", 1)[1].split("\n## ", 1)[0]
    keys = set(re.findall(r"`((?:input|output|cache)_[a-z_]+)`", table)) - {"input_tokens_details", "output_tokens_details"}
    assert len(keys) >= 10
    assert [k for k in sorted(keys) if f'"{k}"' not in source and not k.endswith("_above_200k_tokens")] == []
