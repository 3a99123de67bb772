"""docs/spend.md's example runs as written, and the figures it states are the shipped prices."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from modelyard import pricing

DOC = Path(__file__).resolve().parents[1] / "docs" / "spend.md"


@pytest.fixture(autouse=True)
def _fresh_prices(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("MODELYARD_PRICES", raising=False)
    pricing.reset_prices()
    yield
    pricing.reset_prices()


def test_spend_example_runs() -> None:
    code = re.search(r"```python\n(.*?)```", DOC.read_text(), re.S)
    assert code is not None
    exec(compile(code.group(1), str(DOC), "exec"), {})


def test_every_price_key_the_units_table_names_is_read() -> None:
    source = (Path(pricing.__file__)).read_text()
    table = DOC.read_text().split("## Units", 1)[1].split("\n## ", 1)[0]
    keys = set(re.findall(r"`((?:input|output|cache)_[a-z_]+)`", table)) - {"input_tokens_details", "output_tokens_details"}
    assert len(keys) >= 10
    assert [k for k in sorted(keys) if f'"{k}"' not in source and not k.endswith("_above_200k_tokens")] == []
