"""The proxy's spend tracking: a row per request (:class:`~modelyard.store.spend.SpendRecorder`),
and ``GET /spend/logs`` and ``GET /spend/report`` (master key only). See docs/spend.md.

Filters take LiteLLM's names where it has one (``start_date``, ``end_date``, ``request_id``,
``api_key``, ``user_id``, ``team_id``, ``group_by``), plus ``model`` (the model group),
``model_id`` (the deployment), ``call_type``, ``batch_id``, ``page`` and ``page_size``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

if TYPE_CHECKING:
    from ..store import Store
    from ..store.spend import SpendLog, SpendQuery, SpendRecorder
    from .app import ProxyApp
    from .config import ProxyConfig

__all__ = ["BatchSpend", "SpendEndpoints", "duration_seconds", "make_recorder", "open_store", "price_batch_output", "record_request"]

Scope = dict[str, Any]
Handler = Callable[[Any, Scope, Any, Any], Awaitable[None]]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_FILTERS = {
    "model": "model_group", "model_group": "model_group", "model_id": "model_id", "deployment": "model_id",
    "request_id": "request_id", "api_key": "key_id", "key_id": "key_id", "team_id": "team_id",
    "user_id": "user_id", "batch_id": "batch_id", "call_type": "call_type",
}  # fmt: skip
_LOGS_PARAMS = frozenset({*_FILTERS, "start_date", "end_date", "page", "page_size"})
_REPORT_PARAMS = frozenset({*_FILTERS, "start_date", "end_date", "group_by"})
MAX_PAGE_SIZE = 1000


def duration_seconds(value: str) -> float:
    """``30d``, ``12h``, ``90m``, ``45s`` or ``3600`` in seconds (LiteLLM's retention format)."""
    match = _DURATION.match(value)
    if match is None:
        raise ValueError(value)
    return float(match.group(1)) * _UNIT[match.group(2)]


def open_store(config: ProxyConfig) -> Store:
    """The store of ``config``: ``general_settings.database_url``, else SQLite at ``modelyard_settings.store_path``."""
    from ..store import Store

    url = config.general_settings.database_url
    return Store(url.get_secret_value() if url is not None else None, path=config.modelyard_settings.store_path)


def make_recorder(config: ProxyConfig, store: Store) -> SpendRecorder:
    """The recorder for ``config``'s spend settings, writing to ``store``."""
    from ..store.spend import SpendRecorder

    general, ms = config.general_settings, config.modelyard_settings
    retention = general.maximum_spend_logs_retention_period
    return SpendRecorder(
        store, flush_interval=ms.spend_flush_interval, flush_rows=ms.spend_flush_rows,
        retention_days=duration_seconds(retention) / 86400 if retention else None,
        purge_interval=duration_seconds(general.maximum_spend_logs_retention_interval),
    )  # fmt: skip


def record_request(recorder: SpendRecorder, ctx: Any, started_at: float, end: float) -> None:
    """Queue the spend row of one finished proxy request (``ctx`` is the app's request state).

    The usage, cost and reported model come from the pipeline call that answered (the last
    one without an error; the Router's retries and fallbacks before it cost nothing).
    """
    usage: Mapping[str, Any] | None = None
    spend: float | None = None
    model: str | None = None
    for _, _, call in reversed(ctx.scope.calls):
        if call.error is None:
            usage, spend, model = call.usage, call.cost, call.response_model
            break
    recorder.record(
        request_id=ctx.request_id, call_type=ctx.operation, status=ctx.status, start_time=started_at, end_time=end,
        model_group=ctx.model, model_id=ctx.deployment, model=model, endpoint=ctx.path, usage=usage,
        spend=spend, stream=ctx.stream, error=ctx.error,
        key_id=ctx.key_id, team_id=ctx.team_id, user_id=ctx.user_id,
    )  # fmt: skip


def _reject(message: str, param: str | None, status: int = 400, code: str = "invalid_value") -> Exception:
    from .app import _Reject

    return _Reject(status, message, param=param, code=code)


def _time(name: str, value: str, *, end: bool) -> float:
    """A ``start_date`` / ``end_date``: ``YYYY-MM-DD`` (an end date includes its day), an ISO
    8601 time (UTC unless it says), or UNIX seconds."""
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        if math.isfinite(seconds):
            return seconds
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            day = datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
            return (day + timedelta(days=1) if end else day).timestamp()
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise _reject(f"{name!r} must be a date (2026-12-06), an ISO 8601 time or UNIX seconds, got {value!r}.", name) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _int(name: str, value: str, low: int, high: int) -> int:
    try:
        number = int(value)
    except ValueError:
        number = low - 1
    if not low <= number <= high:
        raise _reject(f"{name!r} must be an integer from {low} to {high}, got {value!r}.", name)
    return number


def _params(scope: Scope, allowed: frozenset[str]) -> dict[str, str]:
    raw = scope.get("query_string", b"").decode("latin-1")
    params: dict[str, str] = {}
    for name, values in parse_qs(raw, keep_blank_values=True).items():
        if name not in allowed:
            known = ", ".join(sorted(allowed))
            raise _reject(f"Unknown query parameter {name!r}; known: {known}.", name, code="unsupported_parameter")
        if len(values) > 1:
            raise _reject(f"{name!r} is given {len(values)} times; give it once.", name)
        params[name] = values[0]
    return params


def _query(params: Mapping[str, str]) -> SpendQuery:
    from ..store.spend import SpendQuery

    fields: dict[str, Any] = {}
    for name, column in _FILTERS.items():
        if name in params:
            if column in fields:
                raise _reject(f"{name!r} and another name for the same filter are both given.", name)
            fields[column] = params[name]
    if "start_date" in params:
        fields["start_time"] = _time("start_date", params["start_date"], end=False)
    if "end_date" in params:
        fields["end_time"] = _time("end_date", params["end_date"], end=True)
    if "start_time" in fields and "end_time" in fields and fields["end_time"] <= fields["start_time"]:
        raise _reject("'end_date' must be after 'start_date'.", "end_date")
    return SpendQuery(**fields)


class SpendEndpoints:
    """``GET /spend/logs`` and ``GET /spend/report`` over the store's spend rows."""

    def __init__(self, app: ProxyApp, store: Store) -> None:
        from ..store.spend import SpendLog

        self.app = app
        self.log: SpendLog = SpendLog(store)

    def routes(self) -> dict[str, Handler]:
        """The routes, with and without ``/v1``."""
        out: dict[str, Handler] = {}
        for prefix in ("", "/v1"):
            out[f"GET {prefix}/spend/logs"] = self.logs
            out[f"GET {prefix}/spend/report"] = self.report
        return out

    def _master_only(self, ctx: Any) -> None:
        if getattr(ctx, "key_id", None) is not None:
            raise _reject("Spend logs and reports need the proxy's master key.", None, 403, "forbidden")

    async def logs(self, ctx: Any, scope: Scope, receive: Any, send: Any) -> None:
        """A page of spend rows, newest first: ``{"data", "total", "page", "page_size", "total_pages"}``."""
        import asyncio

        self._master_only(ctx)
        params = _params(scope, _LOGS_PARAMS)
        query = _query(params)
        page = _int("page", params["page"], 1, 10**9) if "page" in params else 1
        size = _int("page_size", params["page_size"], 1, MAX_PAGE_SIZE) if "page_size" in params else 50
        await self._flush()
        rows, total = await asyncio.to_thread(self.log.logs, query, page=page, page_size=size)
        body = {"data": rows, "total": total, "page": page, "page_size": size, "total_pages": -(-total // size)}
        await self.app._send_json(ctx, send, 200, body)

    async def report(self, ctx: Any, scope: Scope, receive: Any, send: Any) -> None:
        """Totals per ``group_by`` (``model``, ``model_id``/``deployment``, ``api_key``, ``team``,
        ``user``, ``day``, ``call_type``; comma-separated for several; default ``model``)."""
        import asyncio

        from ..store.spend import GROUPS

        self._master_only(ctx)
        params = _params(scope, _REPORT_PARAMS)
        query = _query(params)
        groups = [g.strip() for g in params.get("group_by", "model").split(",") if g.strip()]
        for group in groups:
            if group not in GROUPS:
                raise _reject(f"'group_by' must be one or more of {', '.join(GROUPS)} (comma-separated), got {group!r}.",
                              "group_by")  # fmt: skip
        await self._flush()
        rows = await asyncio.to_thread(self.log.report, query, groups)
        body = {
            "group_by": groups, "data": rows,
            "total_spend": sum(r["spend"] for r in rows), "total_requests": sum(r["requests"] for r in rows),
        }  # fmt: skip
        await self.app._send_json(ctx, send, 200, body)

    async def _flush(self) -> None:
        """This instance's queued rows first, so a report includes the requests just answered."""
        recorder = self.app.spend
        if recorder is not None:
            await recorder.aflush()


# --------------------------------------------------------------------------- batches


def price_batch_output(
    data: bytes, *, base_model: str | None = None, overrides: Mapping[str, Any] | None = None,
    deployment: str | None = None,
) -> tuple[float | None, dict[str, Any], str | None]:  # fmt: skip
    """The cost of a batch's output file (JSONL), each line's usage at the Batch API's price.

    Returns:
        (the sum of the lines' costs, None when a line with usage has no price; the lines'
        usage summed, in chat's shape with ``lines``; the model the lines report).
    """
    from ..pricing import Units, cost
    from ..store.spend import usage_columns

    total = 0.0
    unpriced = False
    sums: dict[str, int] = {}
    model: str | None = None
    lines = 0
    for raw in data.splitlines():
        if not raw.strip():
            continue
        line = json.loads(raw)
        response = line.get("response") if isinstance(line, dict) else None
        body = response.get("body") if isinstance(response, dict) else None
        usage = body.get("usage") if isinstance(body, dict) else None
        if not isinstance(usage, dict):
            continue
        lines += 1
        model = body.get("model") or model  # type: ignore[union-attr]
        price = cost(Units(usage=usage, batch=True), overrides=overrides, base_model=base_model,
                     reported_model=body.get("model") or None, deployment=deployment)  # type: ignore[union-attr]  # fmt: skip
        if price is None:
            unpriced = True
        else:
            total += price
        for name, value in usage_columns(usage).items():
            sums[name] = sums.get(name, 0) + value
    usage_out: dict[str, Any] = {
        "prompt_tokens": sums.get("prompt_tokens", 0), "completion_tokens": sums.get("completion_tokens", 0),
        "total_tokens": sums.get("total_tokens", 0),
        "prompt_tokens_details": {"cached_tokens": sums.get("cached_tokens", 0), "audio_tokens": sums.get("audio_input_tokens", 0)},
        "completion_tokens_details": {"reasoning_tokens": sums.get("reasoning_tokens", 0),
                                      "audio_tokens": sums.get("audio_output_tokens", 0)},
        "lines": lines,
    }  # fmt: skip
    return (None if unpriced else total), usage_out, model


class BatchSpend:
    """Records a batch's spend once, when a retrieve first sees it ``completed``: its output
    lines' usage at the batch price, against the batch id and the principal that created it."""

    def __init__(self, app: ProxyApp, store: Store) -> None:
        from ..store.spend import BatchOwners

        self.app = app
        self.owners = BatchOwners(store)

    async def created(self, ctx: Any, batch: Any) -> None:
        """Remember who created ``batch`` (``ctx.key_id`` / ``team_id`` / ``user_id``)."""
        import asyncio

        batch_id = getattr(batch, "id", None)
        if isinstance(batch_id, str) and batch_id:
            await asyncio.to_thread(self.owners.created, batch_id, key_id=ctx.key_id, team_id=ctx.team_id, user_id=ctx.user_id)

    async def retrieved(self, ctx: Any, batch: Any, content: Callable[[str], Awaitable[bytes]]) -> None:
        """Price and record a batch seen ``completed`` for the first time (any instance)."""
        import asyncio
        import logging
        import time

        recorder = self.app.spend
        output = getattr(batch, "output_file_id", None)
        if recorder is None or getattr(batch, "status", None) != "completed" or not output:
            return
        batch_id = str(batch.id)
        owner = await asyncio.to_thread(self.owners.claim, batch_id)
        if owner is None:
            return
        try:
            deployment = self._deployment(batch_id)
            kwargs = deployment.kwargs if deployment is not None else {}
            info = kwargs.get("model_info") or {}
            from ..pricing import price_overrides

            spend, usage, model = price_batch_output(
                await content(output), base_model=kwargs.get("base_model") or info.get("base_model"),
                overrides=price_overrides(kwargs, info) or None,
                deployment=deployment.model.partition("/")[2] if deployment is not None else None,
            )  # fmt: skip
            created = getattr(batch, "created_at", None)
            recorder.record(
                request_id=batch_id, call_type="batch", status=200,
                start_time=float(created) if isinstance(created, int | float) and created else time.time(),
                end_time=time.time(), model_group=deployment.model_name if deployment is not None else model,
                model_id=deployment.id if deployment is not None else None, model=model,
                endpoint=getattr(batch, "endpoint", None), usage=usage, spend=spend, batch_id=batch_id,
                key_id=owner.get("key_id"), team_id=owner.get("team_id"), user_id=owner.get("user_id"),
            )  # fmt: skip
        except Exception:
            logging.getLogger("modelyard.spend").exception("pricing batch %s failed; tried again at its next retrieve", batch_id)
            await asyncio.to_thread(self.owners.release, batch_id)

    def _deployment(self, batch_id: str) -> Any:
        """The ``mode: batch`` deployment a load-balanced batch runs on, or None."""
        store = self.app.store
        record = store.get_batch(batch_id) if store is not None else None
        if record is None:
            return None
        return next((d for d in self.app.deployments if d.id == record.deployment), None)
