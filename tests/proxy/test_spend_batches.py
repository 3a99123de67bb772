"""A batch's spend (issue 14): when a retrieve first sees it completed, its output lines' usage
is priced at the Batch API's price and recorded once, against the batch id and its creator."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from modelyard import pricing
from modelyard.testing import Emulator, EmulatorServer, batch_jsonl

from .conftest import MASTER_KEY, running_proxy
from .test_batches import GROUP, _close_clients, client, east_west, lb_config, resources, wait

__all__ = ["_close_clients", "east_west", "resources"]  # fixtures used by name

# azure/gpt-4o-mini in the shipped price data: the Batch API's own prices (half the standard).
IN_BATCHES, OUT_BATCHES = 7.5e-08, 3e-07


def test_the_batch_figures_are_the_price_data() -> None:
    prices = pricing.get_model_prices("azure/gpt-4o-mini")
    assert prices is not None
    assert (prices["input_cost_per_token_batches"], prices["output_cost_per_token_batches"]) == (IN_BATCHES, OUT_BATCHES)


def _config(resources: dict[str, EmulatorServer], store: Path) -> dict[str, Any]:
    config = lb_config(resources, {"modelyard_settings": {"store_path": str(store), "spend_flush_interval": 0.05}})
    for entry in config["model_list"]:
        entry["model_info"]["base_model"] = "azure/gpt-4o-mini"
    return config


def test_completed_batch_recorded_once_at_the_batch_price(
    resources: dict[str, EmulatorServer], east_west: dict[str, Emulator], tmp_path: Path
) -> None:
    config = _config(resources, tmp_path / "store.db")
    with running_proxy(config) as proxy:
        c = client(proxy)
        uploaded = c.files.create(file=("requests.jsonl", io.BytesIO(batch_jsonl(6, model=GROUP))), purpose="batch")
        batch = c.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h")
        done = wait(c, batch.id)
        assert done.status == "completed" and done.output_file_id
        for _ in range(3):  # later retrieves record nothing more
            c.batches.retrieve(batch.id)
        output = c.files.content(done.output_file_id).content
        auth = {"Authorization": f"Bearer {MASTER_KEY}"}
        rows = httpx.get(f"{proxy.url}/spend/logs", params={"batch_id": batch.id}, headers=auth).json()["data"]
        deployment = proxy.app.store.get_batch(batch.id).deployment

    usages = [json.loads(line)["response"]["body"]["usage"] for line in output.decode().splitlines() if line.strip()]
    assert len(usages) == 6
    expected = sum(u["prompt_tokens"] * IN_BATCHES + u["completion_tokens"] * OUT_BATCHES for u in usages)
    (row,) = rows
    assert row["spend"] == pytest.approx(expected, rel=1e-12)
    assert row["request_id"] == row["batch_id"] == batch.id and row["call_type"] == "batch"
    assert row["prompt_tokens"] == sum(u["prompt_tokens"] for u in usages)
    assert row["completion_tokens"] == sum(u["completion_tokens"] for u in usages)
    assert row["model_group"] == GROUP and row["model_id"] == deployment
    assert row["key_id"] is None  # created with the master key
    assert row["usage"]["lines"] == 6

