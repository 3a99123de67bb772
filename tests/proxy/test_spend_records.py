"""Spend records through the proxy (issue 14): a row per request with its cost, written off the
request path, readable at /spend/logs and /spend/report, surviving restarts (SQLite, PostgreSQL)."""

from __future__ import annotations

import io
import json
import logging
import time
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from modelyard import pricing
from modelyard.testing import Deployment, Emulator

from .conftest import MASTER_KEY, azure, running_proxy

AUTH = {"Authorization": f"Bearer {MASTER_KEY}"}
HELLO = [{"role": "user", "content": "hello there"}]
VERSION = "2025-04-01-preview"  # takes stream_options

# The exact figures of the shipped price data (LiteLLM's model_prices_and_context_window.json).
GPT4_1106_IN, GPT4_1106_OUT = 1e-05, 3e-05  # azure/gpt-4-1106-preview
DALLE3_HD_1024X1792_PER_PIXEL = 7.19343e-08  # azure/hd/1024-x-1792/dall-e-3
DALLE3_STD_1024_PER_PIXEL = 4.19617e-08  # azure/standard/1024-x-1024/dall-e-3
EMBEDDING_3_SMALL_IN = 2.2e-08  # azure/text-embedding-3-small
TTS1_PER_CHARACTER = 1.5e-05  # azure/tts-1
WHISPER_PER_SECOND = 0.0001  # azure/whisper-1


def test_the_figures_are_the_price_data() -> None:
    pricing.reset_prices()
    assert pricing.get_model_prices("azure/gpt-4-1106-preview") == {
        **pricing.get_model_prices("azure/gpt-4-1106-preview"),  # type: ignore[dict-item]
        "input_cost_per_token": GPT4_1106_IN, "output_cost_per_token": GPT4_1106_OUT,
    }  # fmt: skip
    assert pricing.get_model_prices("azure/hd/1024-x-1792/dall-e-3")["input_cost_per_pixel"] == DALLE3_HD_1024X1792_PER_PIXEL  # type: ignore[index]
    assert pricing.get_model_prices("azure/standard/1024-x-1024/dall-e-3")["input_cost_per_pixel"] == DALLE3_STD_1024_PER_PIXEL  # type: ignore[index]
    assert pricing.get_model_prices("azure/text-embedding-3-small")["input_cost_per_token"] == EMBEDDING_3_SMALL_IN  # type: ignore[index]
    assert pricing.get_model_prices("azure/tts-1")["input_cost_per_character"] == TTS1_PER_CHARACTER  # type: ignore[index]
    assert pricing.get_model_prices("azure/whisper-1")["input_cost_per_second"] == WHISPER_PER_SECOND  # type: ignore[index]


def _config(api_base: str, store: Path | None = None, database_url: str | None = None, **ms: Any) -> dict[str, Any]:
    """The Azure page's two base_model examples, plus one deployment per other operation."""
    settings: dict[str, Any] = {"spend_flush_interval": 0.05, **ms}
    if store is not None:
        settings["store_path"] = str(store)
    general: dict[str, Any] = {"database_url": database_url} if database_url else {}
    return {
        "model_list": [
            {"model_name": "gpt-4", "litellm_params": azure(api_base, "spend-gpt4", api_version=VERSION),
             "model_info": {"base_model": "azure/gpt-4-1106-preview"}},
            {"model_name": "dall-e-3", "litellm_params": azure(api_base, "spend-dalle"),
             "model_info": {"base_model": "dall-e-3", "mode": "image_generation"}},
            {"model_name": "embed", "litellm_params": azure(api_base, "spend-emb"), "model_info": {"mode": "embedding"}},
            {"model_name": "tts", "litellm_params": azure(api_base, "spend-tts", api_version=VERSION),
             "model_info": {"mode": "audio_speech", "base_model": "azure/tts-1"}},
            {"model_name": "whisper", "litellm_params": azure(api_base, "spend-whisper", api_version=VERSION),
             "model_info": {"mode": "audio_transcription", "base_model": "azure/whisper-1"}},
            {"model_name": "mystery", "litellm_params": azure(api_base, "spend-mystery")},
            {"model_name": "instruct", "litellm_params": {**azure(api_base, "spend-instruct"), "model": "azure_text/spend-instruct"}},
        ],
        "router_settings": {"num_retries": 0},
        "general_settings": general,
        "modelyard_settings": settings,
    }  # fmt: skip


@pytest.fixture
def spend_emulator(emulator: Emulator) -> Emulator:
    emulator.add_deployment(Deployment("spend-gpt4", model="gpt-4"))
    emulator.add_deployment(Deployment("spend-dalle", model="dall-e-3"))
    emulator.add_deployment(Deployment("spend-emb", model="text-embedding-3-small"))
    emulator.add_deployment(Deployment("spend-tts", model="tts-1"))
    emulator.add_deployment(Deployment("spend-whisper", model="whisper"))
    emulator.add_deployment(Deployment("spend-mystery", model="mystery-model-9"))
    emulator.add_deployment(Deployment("spend-instruct", model="gpt-35-turbo-instruct"))
    pricing.reset_prices()
    return emulator


@pytest.fixture
def spend_proxy(tmp_path: Path, api_base: str, spend_emulator: Emulator) -> Iterator[httpx.Client]:
    with running_proxy(_config(api_base, tmp_path / "spend.db")) as server, \
            httpx.Client(base_url=server.url, headers=AUTH, timeout=30) as client:
        yield client


def _row(client: httpx.Client, request_id: str) -> dict[str, Any]:
    page = client.get("/spend/logs", params={"request_id": request_id})
    assert page.status_code == 200, page.text
    (row,) = page.json()["data"]
    return row  # type: ignore[no-any-return]


def _cost(response: httpx.Response) -> float:
    assert response.headers["x-litellm-response-cost"] == response.headers["x-modelyard-response-cost"]
    return float(response.headers["x-modelyard-response-cost"])


def _wav(seconds: float) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(b"\0\0" * int(16000 * seconds))
    return out.getvalue()


# ------------------------------------------------------------------ the Azure page's examples


def test_chat_answering_gpt4_priced_at_gpt_4_1106_preview_and_header_equals_row(spend_proxy: httpx.Client) -> None:
    r = spend_proxy.post("/v1/chat/completions", json={"model": "gpt-4", "messages": HELLO})
    assert r.status_code == 200 and r.json()["model"].startswith("gpt-4")
    usage = r.json()["usage"]
    expected = usage["prompt_tokens"] * GPT4_1106_IN + usage["completion_tokens"] * GPT4_1106_OUT
    assert _cost(r) == pytest.approx(expected, rel=1e-12)
    row = _row(spend_proxy, r.headers["x-request-id"])
    assert row["spend"] == _cost(r)  # exactly: the header and the row are the same float
    assert row["model_group"] == "gpt-4" and row["model_id"] == r.headers["x-modelyard-deployment-id"]
    assert row["call_type"] == "chat" and row["status"] == 200 and row["stream"] is False
    assert (row["prompt_tokens"], row["completion_tokens"]) == (usage["prompt_tokens"], usage["completion_tokens"])
    assert row["key_id"] is None and row["team_id"] is None and row["user_id"] is None  # the master key
    assert row["latency_ms"] > 0 and row["endpoint"] == "/v1/chat/completions"


def test_generated_request_ids_sort_in_the_order_the_requests_came(spend_proxy: httpx.Client) -> None:
    # Time first (milliseconds), then random: the spend table's request_id index takes each new
    # row at its end, not on a random page (issue 17, round six).
    ids = []
    for _ in range(3):
        r = spend_proxy.post("/v1/chat/completions", json={"model": "gpt-4", "messages": HELLO})
        assert r.status_code == 200
        ids.append(r.headers["x-request-id"])
        time.sleep(0.002)
    assert ids == sorted(ids) and len(set(ids)) == 3
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
    assert abs(int(ids[0][:12], 16) / 1000 - time.time()) < 60  # the time it was made, in ms
    assert _row(spend_proxy, ids[1])["request_id"] == ids[1]


@pytest.mark.parametrize(("size", "quality", "per_pixel"), [
    ("1024x1792", "hd", DALLE3_HD_1024X1792_PER_PIXEL), (None, None, DALLE3_STD_1024_PER_PIXEL),
])  # fmt: skip
def test_dalle3_deployment_priced_per_image_for_size_and_quality(
    spend_proxy: httpx.Client, size: str | None, quality: str | None, per_pixel: float
) -> None:
    body: dict[str, Any] = {"model": "dall-e-3", "prompt": "a red fox", "n": 1}
    body.update({k: v for k, v in (("size", size), ("quality", quality)) if v})
    r = spend_proxy.post("/v1/images/generations", json=body)
    assert r.status_code == 200, r.text
    w, h = (int(x) for x in (size or "1024x1024").split("x"))
    assert _cost(r) == pytest.approx(per_pixel * w * h, rel=1e-12)
    row = _row(spend_proxy, r.headers["x-request-id"])
    assert row["spend"] == _cost(r) and row["call_type"] == "image_generation"


def test_stream_and_plain_call_cost_the_same_and_the_stream_row_is_written_at_its_end(spend_proxy: httpx.Client) -> None:
    plain = spend_proxy.post("/v1/chat/completions", json={"model": "gpt-4", "messages": HELLO, "max_tokens": 7})
    streamed = spend_proxy.post("/v1/chat/completions", json={"model": "gpt-4", "messages": HELLO, "max_tokens": 7, "stream": True})
    events = [json.loads(x[6:]) for x in streamed.text.splitlines() if x.startswith("data: {")]
    assert not any(e.get("usage") for e in events)  # the client did not ask for usage
    assert "x-modelyard-response-cost" not in streamed.headers  # headers leave before the usage
    plain_row, stream_row = _row(spend_proxy, plain.headers["x-request-id"]), _row(spend_proxy, streamed.headers["x-request-id"])
    assert stream_row["stream"] is True and stream_row["completion_tokens"] == plain_row["completion_tokens"]
    assert stream_row["spend"] == plain_row["spend"] == _cost(plain)


def test_completions_carry_their_cost(spend_proxy: httpx.Client) -> None:
    r = spend_proxy.post("/v1/completions", json={"model": "instruct", "prompt": "Say hi", "max_tokens": 5})
    assert r.status_code == 200, r.text
    usage = r.json()["usage"]
    prices = pricing.get_model_prices("azure/gpt-35-turbo-instruct")  # azure/gpt-3.5-turbo-instruct
    assert prices is not None
    expected = usage["prompt_tokens"] * prices["input_cost_per_token"] + usage["completion_tokens"] * prices["output_cost_per_token"]
    assert _cost(r) == pytest.approx(expected, rel=1e-12) and _cost(r) > 0
    assert _row(spend_proxy, r.headers["x-request-id"])["call_type"] == "completions"


def test_embeddings_speech_and_transcription_priced_in_their_units(spend_proxy: httpx.Client) -> None:
    emb = spend_proxy.post("/v1/embeddings", json={"model": "embed", "input": ["one two three", "four"]})
    assert emb.status_code == 200, emb.text
    assert _cost(emb) == pytest.approx(emb.json()["usage"]["prompt_tokens"] * EMBEDDING_3_SMALL_IN, rel=1e-12)

    text = "Hello from the spend test."
    speech = spend_proxy.post("/v1/audio/speech", json={"model": "tts", "input": text, "voice": "alloy"})
    assert speech.status_code == 200 and speech.content
    assert _row(spend_proxy, speech.headers["x-request-id"])["spend"] == pytest.approx(len(text) * TTS1_PER_CHARACTER, rel=1e-12)

    heard = spend_proxy.post("/v1/audio/transcriptions", data={"model": "whisper", "response_format": "verbose_json"},
                             files={"file": ("two.wav", _wav(2.0), "audio/wav")})  # fmt: skip
    assert heard.status_code == 200, heard.text
    seconds = heard.json()["duration"]
    assert seconds == pytest.approx(2.0)
    assert _cost(heard) == pytest.approx(seconds * WHISPER_PER_SECOND, rel=1e-12)
    assert _row(spend_proxy, heard.headers["x-request-id"])["spend"] == _cost(heard)


def test_unknown_model_costs_none_with_one_warning_and_the_request_is_unaffected(
    spend_proxy: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="modelyard.pricing"):
        answers = [spend_proxy.post("/v1/chat/completions", json={"model": "mystery", "messages": HELLO}) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert all("x-modelyard-response-cost" not in a.headers for a in answers)
    warnings = [r for r in caplog.records if "no price" in r.getMessage() and "mystery" in r.getMessage()]
    assert len(warnings) == 1
    row = _row(spend_proxy, answers[0].headers["x-request-id"])
    assert row["spend"] is None and row["prompt_tokens"] > 0


def test_failed_request_is_recorded_with_its_status(spend_proxy: httpx.Client, spend_emulator: Emulator) -> None:
    spend_emulator.deployments["spend-gpt4"].faults.script = [400]
    r = spend_proxy.post("/v1/chat/completions", json={"model": "gpt-4", "messages": HELLO})
    assert r.status_code == 400
    row = _row(spend_proxy, r.headers["x-request-id"])
    assert row["status"] == 400 and row["spend"] is None and row["error"]


# ------------------------------------------------------------------ /spend/logs and /spend/report


def test_logs_filter_and_page_and_report_groups(spend_proxy: httpx.Client) -> None:
    ids = []
    for model in ("gpt-4", "gpt-4", "gpt-4", "mystery"):
        ids.append(spend_proxy.post("/v1/chat/completions", json={"model": model, "messages": HELLO}).headers["x-request-id"])
    emb = spend_proxy.post("/v1/embeddings", json={"model": "embed", "input": "hi"})
    first = spend_proxy.get("/spend/logs", params={"model": "gpt-4", "page_size": 2}).json()
    second = spend_proxy.get("/spend/logs", params={"model": "gpt-4", "page_size": 2, "page": 2}).json()
    assert (first["total"], first["total_pages"], len(first["data"]), len(second["data"])) == (3, 2, 2, 1)
    assert {r["request_id"] for r in first["data"] + second["data"]} == set(ids[:3])
    assert first["data"][0]["start_time"] >= first["data"][1]["start_time"]  # newest first
    today = time.strftime("%Y-%m-%d", time.gmtime())
    assert spend_proxy.get("/spend/logs", params={"start_date": today, "end_date": today}).json()["total"] == 5
    assert spend_proxy.get("/spend/logs", params={"end_date": "2020-01-01"}).json()["total"] == 0
    deployment = emb.headers["x-modelyard-deployment-id"]
    assert spend_proxy.get("/v1/spend/logs", params={"model_id": deployment}).json()["total"] == 1

    report = spend_proxy.get("/spend/report", params={"group_by": "model"}).json()
    by_model = {r["model"]: r for r in report["data"]}
    gpt4 = spend_proxy.get("/spend/logs", params={"model": "gpt-4"}).json()["data"]
    assert by_model["gpt-4"]["requests"] == 3
    assert by_model["gpt-4"]["spend"] == pytest.approx(sum(r["spend"] for r in gpt4), rel=1e-12)
    assert by_model["mystery"]["priced_requests"] == 0 and by_model["mystery"]["spend"] == 0.0
    assert report["total_requests"] == 5
    days = spend_proxy.get("/spend/report", params={"group_by": "day,deployment"}).json()["data"]
    assert {r["day"] for r in days} == {today} and sum(r["requests"] for r in days) == 5
    keys = spend_proxy.get("/spend/report", params={"group_by": "api_key"}).json()["data"]
    assert keys == [{**keys[0], "api_key": None, "requests": 5}]


@pytest.mark.parametrize(("path", "params", "param"), [
    ("/spend/logs", {"start_date": "yesterday"}, "start_date"),
    ("/spend/logs", {"end_date": "2026-13-40"}, "end_date"),
    ("/spend/logs", {"start_date": "2026-12-06", "end_date": "2026-12-01"}, "end_date"),
    ("/spend/logs", {"page": "0"}, "page"),
    ("/spend/logs", {"page_size": "5000"}, "page_size"),
    ("/spend/logs", {"modle": "gpt-4"}, "modle"),
    ("/spend/report", {"group_by": "colour"}, "group_by"),
    ("/spend/report", {"page": "1"}, "page"),
])  # fmt: skip
def test_bad_filters_get_openai_errors_naming_the_field(spend_proxy: httpx.Client, path: str, params: dict[str, str], param: str) -> None:
    r = spend_proxy.get(path, params=params)
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["param"] == param and param in error["message"] and error["type"] == "invalid_request_error"


def test_spend_endpoints_need_the_master_key(spend_proxy: httpx.Client) -> None:
    for path in ("/spend/logs", "/spend/report"):
        r = httpx.get(f"{spend_proxy.base_url}{path}", headers={"Authorization": "Bearer sk-not-the-key"})
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"


def test_disable_spend_logs_records_nothing(tmp_path: Path, api_base: str, spend_emulator: Emulator) -> None:
    config = _config(api_base, tmp_path / "off.db")
    config["general_settings"]["disable_spend_logs"] = True
    with running_proxy(config) as server:
        assert server.app.spend is None
        with httpx.Client(base_url=server.url, headers=AUTH, timeout=30) as client:
            r = client.post("/v1/chat/completions", json={"model": "gpt-4", "messages": HELLO})
            assert r.status_code == 200 and "x-modelyard-response-cost" in r.headers
            assert client.get("/spend/logs").status_code == 404


# ------------------------------------------------------------------ restarts, PostgreSQL


def test_rows_survive_a_restart_on_sqlite(tmp_path: Path, api_base: str, spend_emulator: Emulator) -> None:
    # A long flush interval: the rows are still queued when the proxy stops, and written by its shutdown.
    config = _config(api_base, tmp_path / "restart.db", spend_flush_interval=3600)
    with running_proxy(config) as server:
        with httpx.Client(base_url=server.url, headers=AUTH, timeout=30) as client:
            costs = [_cost(client.post("/v1/chat/completions", json={"model": "gpt-4", "messages": HELLO})) for _ in range(5)]
        assert server.app.spend.written == 0
    with running_proxy(config) as server, httpx.Client(base_url=server.url, headers=AUTH, timeout=30) as client:
        report = client.get("/spend/report").json()
    assert report["total_requests"] == 5
    assert report["total_spend"] == pytest.approx(sum(costs), rel=1e-12)


def test_two_proxies_on_one_postgresql_report_both_exactly(postgres_url: str, api_base: str, spend_emulator: Emulator) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(postgres_url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE IF EXISTS modelyard_spend"))
    engine.dispose()
    config = _config(api_base, database_url=postgres_url)
    costs: list[float] = []
    with running_proxy(config) as a, running_proxy(config) as b:
        for server in (a, b, a, b, b):
            r = httpx.post(f"{server.url}/v1/chat/completions", json={"model": "gpt-4", "messages": HELLO}, headers=AUTH, timeout=30)
            costs.append(_cost(r))
        # Each instance's report flushes its own queue first; b's own rows are in even before a's flush.
    with running_proxy(config) as c:  # after both stopped: a third instance reads what both wrote
        report = httpx.get(f"{c.url}/spend/report", params={"group_by": "model"}, headers=AUTH, timeout=30).json()
    assert report["total_requests"] == 5
    assert report["data"][0]["spend"] == pytest.approx(sum(costs), rel=1e-12)
    assert report["total_spend"] == pytest.approx(sum(costs), rel=1e-12)


def test_sigterm_writes_every_queued_row_and_a_restart_reads_them(tmp_path: Path, api_base: str, spend_emulator: Emulator) -> None:
    """A real ``modelyard serve`` process: rows still queued at SIGTERM (the flush interval is an
    hour) are written by the graceful shutdown; the restarted proxy counts every one."""
    import signal

    from modelyard.testing import KEY

    from .test_lifecycle import serve

    config = tmp_path / "config.yaml"
    config.write_text(f"""
model_list:
  - model_name: gpt-4
    litellm_params: {{model: azure/spend-gpt4, api_base: "{api_base}", api_key: "{KEY}"}}
    model_info: {{base_model: azure/gpt-4-1106-preview}}
general_settings: {{master_key: "{MASTER_KEY}"}}
modelyard_settings: {{store_path: "{tmp_path / 'sigterm.db'}", spend_flush_interval: 3600, spend_flush_rows: 100000}}
""")
    costs: list[float] = []
    with serve("--config", str(config)) as (proc, url):
        with httpx.Client(base_url=url, headers=AUTH, timeout=30) as client:
            for i in range(20):
                r = client.post("/v1/chat/completions", json={"model": "gpt-4", "messages": [{"role": "user", "content": f"n{i}"}]})
                costs.append(_cost(r))
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    with serve("--config", str(config)) as (proc, url):
        page = httpx.get(f"{url}/spend/logs", params={"page_size": 100}, headers=AUTH, timeout=30).json()
    assert page["total"] == 20
    assert sorted(r["spend"] for r in page["data"]) == sorted(costs)
