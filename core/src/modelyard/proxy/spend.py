"""The proxy's spend tracking: a row per request (:class:`~modelyard.store.spend.SpendRecorder`),
and ``GET /spend/logs`` and ``GET /spend/report`` (master key only). See docs/spend.md.

Filters take LiteLLM's names where it has one (``start_date``, ``end_date``, ``request_id``,
``api_key``, ``user_id``, ``team_id``, ``group_by``), plus ``model`` (the model group),
``model_id`` (the deployment), ``call_type``, ``batch_id``, ``page`` and ``page_size``.
"""

from __future__ import annotations

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

__all__ = ["SpendEndpoints", "duration_seconds", "make_recorder", "open_store", "record_request"]

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
        import asyncio

        recorder = self.app.spend
        if recorder is not None:
            await asyncio.to_thread(recorder.flush)
