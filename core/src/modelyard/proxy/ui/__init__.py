"""The dashboard at ``/ui``: deployments, quota headroom, traffic, spend, keys (docs/dashboard.md).

Served by the proxy itself, from files shipped in this package (``static/``): one HTML page,
one script of plain JavaScript and uPlot (MIT, vendored as one 50 kB file) for the charts. No
build step, no server of its own, nothing loaded from elsewhere: it works offline. The page
draws what the JSON endpoints below answer, and scripts can call them too.

Endpoints (``/ui/api/...``, JSON; each needs the session cookie, or the master key as for any
other endpoint):

* ``POST /ui/api/login`` ``{"key": "<master key>"}``: sets the session cookie; ``POST
  /ui/api/logout`` ends it; ``GET /ui/api/session``: the session and its CSRF token.
* ``GET /ui/api/deployments``: per model group and deployment, status, cooldown remaining,
  calls in flight, the upstream's latest ``x-ratelimit-remaining-*``, priority tier, mode;
  and the plugins, loaded or not, with versions.
* ``GET /ui/api/traffic?minutes=5``: requests/s, p50/p99 latency, error rate per model group.
* ``GET /ui/api/spend?start_date=&end_date=``: spend by model group, deployment, key and day.
* ``GET /ui/api/keys``: virtual keys (masked) and teams with their budgets used; ``POST
  /ui/api/keys`` (the fields of ``POST /key/generate``: the answer holds the new key, shown
  once), ``POST /ui/api/keys/delete`` (``{"keys": [token]}``), ``POST /ui/api/teams`` (the
  fields of ``POST /team/new``).

A change made with the session cookie (``POST``) must carry the session's CSRF token in
``X-CSRF-Token`` and, when the browser says where it comes from (``Origin``,
``Sec-Fetch-Site``), come from this origin. See :mod:`.session` for the cookie.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import hashlib
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from ..auth import extract_key
from .session import COOKIE, SESSION_SECONDS, Sessions
from .traffic import Traffic

if TYPE_CHECKING:
    from ..app import ProxyApp

__all__ = ["Dashboard"]

log = logging.getLogger("modelyard.proxy.ui")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Handler = Callable[[Any, Scope, Receive, Send], Awaitable[None]]

_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
_SECURITY = [
    (b"content-security-policy", _CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
]
_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
          ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml", ".txt": "text/plain; charset=utf-8"}  # fmt: skip
_LOGIN_FAILURES = 10
"""Failed sign-ins per client address within :data:`_LOGIN_WINDOW` before it is refused (429)."""
_LOGIN_WINDOW = 300.0


class _Refused(Exception):
    """A dashboard request refused: status and OpenAI-shaped error fields."""

    def __init__(self, status: int, message: str, code: str, *, type: str = "invalid_request_error",
                 param: str | None = None, headers: list[tuple[bytes, bytes]] | None = None) -> None:  # fmt: skip
        super().__init__(message)
        self.status = status
        self.body = {"error": {"message": message, "type": type, "param": param, "code": code}}
        self.headers = headers or []


def _unauthenticated() -> _Refused:
    return _Refused(401, "Sign in to the dashboard (POST /ui/api/login), or send the proxy's master key as "
                    "'Authorization: Bearer <key>'.", "invalid_api_key", type="authentication_error")  # fmt: skip


class _Static:
    """One shipped file: its bytes, gzipped bytes and ETag."""

    __slots__ = ("body", "ctype", "etag", "gz")

    def __init__(self, body: bytes, ctype: str) -> None:
        self.body = body
        self.ctype = ctype
        self.gz = gzip.compress(body, 9, mtime=0) if len(body) > 512 else None
        self.etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'


def _headers(scope: Scope) -> dict[bytes, bytes]:
    return {k.lower(): v for k, v in scope["headers"]}


def _cookie(headers: dict[bytes, bytes], name: str) -> str | None:
    raw = headers.get(b"cookie")
    if raw is None:
        return None
    for part in raw.decode("latin-1").split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None


def _query(scope: Scope) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(scope.get("query_string", b"").decode("latin-1")).items()}


class Dashboard:
    """The ``/ui`` routes of one :class:`~modelyard.proxy.app.ProxyApp`.

    Args:
        app: the proxy (its config, deployments, Router, master key check).
        master_key: the proxy's master key (signs the session cookies), or None in development.
    """

    def __init__(self, app: ProxyApp, master_key: str | None) -> None:
        from ...router.state import RedisState

        self.app = app
        self.sessions = Sessions(master_key)
        state = app.router.state if app.router is not None else None
        self.traffic = Traffic(app.deployments.model_names(), state if isinstance(state, RedisState) else None)
        self._static: dict[str, _Static] = {}
        self._files = [f.name for f in resources.files(__package__).joinpath("static").iterdir() if f.is_file()]
        self._failures: dict[str, list[float]] = {}
        self._peaks: dict[str, tuple[int, int]] = {}  # deployment id -> highest remaining requests, tokens seen
        self._task: asyncio.Task[None] | None = None
        self._spend_log: Any = None

    def __repr__(self) -> str:
        return f"Dashboard(files={len(self._files)}, {self.traffic!r})"

    def routes(self) -> dict[str, Handler]:
        """Every ``/ui`` route (the proxy lets them through: each checks its own access)."""
        out: dict[str, Handler] = {"GET /ui": self._page}
        for name in self._files:
            out[f"GET /ui/static/{name}"] = self._file
        api: dict[str, Callable[[Any, Scope, Receive], Awaitable[Any]]] = {
            "POST /ui/api/logout": self._logout,
            "GET /ui/api/deployments": self._deployments,
            "GET /ui/api/traffic": self._traffic,
        }
        api["GET /ui/api/keys"] = self._keys
        api["GET /ui/api/spend"] = self._spend
        for route, handler in api.items():
            out[route] = self._guarded(handler)
        vk = self.app.virtual_keys  # the admin API's own handlers, behind the dashboard's access check
        out["POST /ui/api/keys"] = self._delegate(vk._key_generate)
        out["POST /ui/api/keys/delete"] = self._delegate(vk._key_delete)
        out["POST /ui/api/teams"] = self._delegate(vk._team_new)
        out["POST /ui/api/login"] = self._login
        out["GET /ui/api/session"] = self._session_info
        return out

    def paths(self) -> set[str]:
        """The paths of :meth:`routes`."""
        return {route.split(" ", 1)[1] for route in self.routes()}

    # ------------------------------------------------------------------ lifecycle

    def startup(self) -> None:
        """Start folding traffic figures once a second (off the request path)."""
        if self._task is None:
            self._task = asyncio.ensure_future(self.traffic.run())

    async def shutdown(self) -> None:
        """Stop the fold task; push the last figures."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.traffic.aclose()

    # ------------------------------------------------------------------ responses

    async def _send(self, ctx: Any, send: Send, status: int, body: bytes, ctype: str,
                    headers: list[tuple[bytes, bytes]] | None = None) -> None:  # fmt: skip
        ctx.status = status
        await send({"type": "http.response.start", "status": status, "headers": [
            (b"content-type", ctype.encode()), (b"content-length", str(len(body)).encode()),
            (b"x-request-id", ctx.request_id.encode()), *_SECURITY, *(headers or ()),
        ]})  # fmt: skip
        await send({"type": "http.response.body", "body": body})

    async def _json(self, ctx: Any, send: Send, status: int, body: Any,
                    headers: list[tuple[bytes, bytes]] | None = None) -> None:  # fmt: skip
        payload = json.dumps(body, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
        await self._send(ctx, send, status, payload, "application/json",
                         [(b"cache-control", b"no-store"), *(headers or ())])  # fmt: skip

    async def _refuse(self, ctx: Any, send: Send, exc: _Refused) -> None:
        ctx.error = exc.body["error"]["code"]
        await self._json(ctx, send, exc.status, exc.body, exc.headers)

    def _load(self, name: str) -> _Static:
        item = self._static.get(name)
        if item is None:
            suffix = name[name.rfind(".") :]
            body = resources.files(__package__).joinpath("static", name).read_bytes()
            item = self._static[name] = _Static(body, _TYPES.get(suffix, "application/octet-stream"))
        return item

    async def _serve(self, ctx: Any, scope: Scope, send: Send, name: str) -> None:
        item = self._load(name)
        headers = _headers(scope)
        common = [(b"etag", item.etag.encode()), (b"cache-control", b"no-cache"), (b"vary", b"accept-encoding")]
        if headers.get(b"if-none-match", b"").decode("latin-1") == item.etag:
            ctx.status = 304
            await send({"type": "http.response.start", "status": 304, "headers": [*common, *_SECURITY]})
            await send({"type": "http.response.body", "body": b""})
            return
        if item.gz is not None and b"gzip" in headers.get(b"accept-encoding", b""):
            await self._send(ctx, send, 200, item.gz, item.ctype, [*common, (b"content-encoding", b"gzip")])
        else:
            await self._send(ctx, send, 200, item.body, item.ctype, common)

    async def _page(self, ctx: Any, scope: Scope, receive: Receive, send: Send) -> None:
        """``GET /ui``: the page (no data in it; the script asks the API once signed in)."""
        await self._serve(ctx, scope, send, "index.html")

    async def _file(self, ctx: Any, scope: Scope, receive: Receive, send: Send) -> None:
        await self._serve(ctx, scope, send, ctx.path.rsplit("/", 1)[1])

    # ------------------------------------------------------------------ access

    def _same_origin(self, scope: Scope, headers: dict[bytes, bytes]) -> bool:
        """False when the browser says the request comes from another site."""
        site = headers.get(b"sec-fetch-site")
        if site is not None and site not in (b"same-origin", b"none"):
            return False
        origin = headers.get(b"origin")
        if origin is None:
            return True
        host = headers.get(b"host", b"")
        scheme = scope.get("scheme", "http")
        return origin.decode("latin-1").lower() == f"{scheme}://{host.decode('latin-1')}".lower()

    def _session(self, headers: dict[bytes, bytes]) -> tuple[str, str] | None:
        """The (session id, cookie value) of a request's valid session cookie."""
        value = _cookie(headers, COOKIE)
        sid = self.sessions.check(value)
        return (sid, value) if sid is not None and value is not None else None

    def _check(self, ctx: Any, scope: Scope) -> tuple[str, str] | None:
        """Let a request through, or raise: the master key in a header, else the session cookie
        (and for a change, its CSRF token and this origin).

        Returns:
            The session (id, cookie value), or None for a request authenticated by the master key.
        """
        headers = _headers(scope)
        presented = extract_key(headers)
        if presented is not None:
            # A header no other site's page can add without a CORS preflight, which is never granted.
            if self.app.keys.allows(presented):
                return None
            raise _unauthenticated()
        session = self._session(headers)
        if session is None:
            raise _unauthenticated()
        if ctx.method != "GET":
            if not self._same_origin(scope, headers):
                raise _Refused(403, "Cross-site request refused.", "csrf_failed", type="permission_error")
            token = headers.get(b"x-csrf-token")
            if not self.sessions.csrf_ok(session[0], token.decode("latin-1") if token is not None else None):
                raise _Refused(403, "Missing or invalid CSRF token: send the session's token (GET /ui/api/session) "
                               "in 'X-CSRF-Token'.", "csrf_failed", type="permission_error")  # fmt: skip
        return session

    def _guarded(self, handler: Callable[[Any, Scope, Receive], Awaitable[Any]]) -> Handler:
        async def guarded(ctx: Any, scope: Scope, receive: Receive, send: Send) -> None:
            try:
                scope["modelyard.ui_session"] = self._check(ctx, scope)
                answer = await handler(ctx, scope, receive)
            except _Refused as exc:
                await self._refuse(ctx, send, exc)
                return
            if isinstance(answer, tuple):
                body, headers = answer
                await self._json(ctx, send, 200, body, headers)
            else:
                await self._json(ctx, send, 200, answer)

        return guarded

    def _delegate(self, handler: Handler) -> Handler:
        """An admin API handler (``/key/generate`` ...) behind the dashboard's access check,
        its answer sent with the dashboard's headers (``no-store``: a new key is never cached)."""
        from ..keys import Refusal

        async def delegated(ctx: Any, scope: Scope, receive: Receive, send: Send) -> None:
            try:
                scope["modelyard.ui_session"] = self._check(ctx, scope)
            except _Refused as exc:
                await self._refuse(ctx, send, exc)
                return

            async def send_with_headers(message: dict[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    message = {**message, "headers": [*message["headers"], (b"cache-control", b"no-store"), *_SECURITY]}
                await send(message)

            try:
                await handler(ctx, scope, receive, send_with_headers)
            except Refusal as exc:
                ctx.error = exc.code
                await self._json(ctx, send, exc.status, exc.body, exc.headers)

        return delegated

    async def _read_json(self, scope: Scope, receive: Receive) -> dict[str, Any]:
        headers = _headers(scope)
        if not headers.get(b"content-type", b"").split(b";")[0].strip() == b"application/json":
            raise _Refused(415, "Send a JSON body with 'Content-Type: application/json'.", "unsupported_media_type")
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Refused(400, "The client went away.", "client_disconnected")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > 65536:
                raise _Refused(413, "The request body is larger than 64 kB.", "request_too_large")
            chunks.append(chunk)
            if not message.get("more_body"):
                break
        try:
            body = json.loads(b"".join(chunks) or b"{}")
        except ValueError:
            raise _Refused(400, "The request body is not valid JSON.", "invalid_json") from None
        if not isinstance(body, dict):
            raise _Refused(400, "The request body must be a JSON object.", "invalid_json")
        return body

    def _cookie_header(self, scope: Scope, value: str, max_age: int) -> tuple[bytes, bytes]:
        secure = "; Secure" if scope.get("scheme") == "https" else ""
        return (b"set-cookie", f"{COOKIE}={value}; Path=/ui; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}".encode())

    def _client(self, scope: Scope) -> str:
        client = scope.get("client")
        return str(client[0]) if client else "?"

    async def _login(self, ctx: Any, scope: Scope, receive: Receive, send: Send) -> None:
        """``POST /ui/api/login`` ``{"key": "..."}``: the master key for a session cookie."""
        try:
            if not self._same_origin(scope, _headers(scope)):
                raise _Refused(403, "Cross-site request refused.", "csrf_failed", type="permission_error")
            now = time.monotonic()
            client = self._client(scope)
            recent = [t for t in self._failures.get(client, []) if now - t < _LOGIN_WINDOW]
            if len(recent) >= _LOGIN_FAILURES:
                raise _Refused(429, "Too many failed sign-ins from this address; wait a few minutes.",
                               "rate_limit_exceeded", type="rate_limit_error",
                               headers=[(b"retry-after", str(int(_LOGIN_WINDOW)).encode())])  # fmt: skip
            body = await self._read_json(scope, receive)
            key = body.get("key")
            if not isinstance(key, str) or (self.app.keys.enabled and not key):
                raise _Refused(400, "'key' is required: the proxy's master key.", "missing_required_parameter", param="key")
            if not self.app.keys.allows(key.encode()):
                recent.append(now)
                self._failures[client] = recent
                if len(self._failures) > 10_000:
                    self._failures.clear()
                raise _Refused(401, "That is not the proxy's master key.", "invalid_api_key", type="authentication_error")
        except _Refused as exc:
            await self._refuse(ctx, send, exc)
            return
        self._failures.pop(client, None)
        value, expires = self.sessions.issue()
        sid = value.split(".", 1)[0]
        body = {"signed_in": True, "expires_at": expires, "csrf_token": self.sessions.csrf(sid)}
        await self._json(ctx, send, 200, body, [self._cookie_header(scope, value, SESSION_SECONDS)])

    async def _logout(self, ctx: Any, scope: Scope, receive: Receive) -> Any:
        session = scope["modelyard.ui_session"]
        if session is not None:
            self.sessions.revoke(session[0], self.sessions.expiry(session[1]))
        return {"signed_in": False}, [self._cookie_header(scope, "", 0)]

    async def _session_info(self, ctx: Any, scope: Scope, receive: Receive, send: Send) -> None:
        """``GET /ui/api/session``: whether the request is signed in, and the session's CSRF token.

        Not signed in is a 200 ``{"signed_in": false}`` (the page asks this first; nothing else is in it).
        """
        try:
            session = self._check(ctx, scope)
        except _Refused as exc:
            if extract_key(_headers(scope)) is not None:  # a wrong key: refused as everywhere
                await self._refuse(ctx, send, exc)
                return
            await self._json(ctx, send, 200, {"signed_in": False, "auth": self.app.keys.enabled})
            return
        if session is None:
            body: dict[str, Any] = {"signed_in": True, "via": "master_key", "auth": self.app.keys.enabled}
        else:
            body = {"signed_in": True, "via": "session", "expires_at": self.sessions.expiry(session[1]),
                    "csrf_token": self.sessions.csrf(session[0]), "auth": self.app.keys.enabled}  # fmt: skip
        await self._json(ctx, send, 200, body)

    # ------------------------------------------------------------------ data

    async def _deployments(self, ctx: Any, scope: Scope, receive: Receive) -> Any:
        """``GET /ui/api/deployments``: every model group's deployments as the Router sees them now."""
        from ... import plugins

        app = self.app
        router = app.router
        ids = [d.id for d in app.deployments]
        snaps = await router.state.asnapshot(ids) if router is not None and ids else {}
        recent = self.traffic.deployment_counts(60)
        now = time.time()
        ttl = router.quota_ttl if router is not None else 10.0
        groups = []
        for name in app.deployments.model_names():
            rows = []
            for d in app.deployments.get(name):
                snap = snaps.get(d.id)
                rows.append(self._deployment_row(d, snap, recent.get(d.id, (0, 0)), now, ttl))
            groups.append({"model_name": name, "deployments": rows})
        infos = plugins.get_plugins().infos
        plugin_rows = [{"name": i.name, "distribution": i.distribution, "version": i.version, "status": i.status,
                        "reason": i.reason or None, "hook_api": list(i.hook_api) if i.hook_api else None}
                       for i in infos]  # fmt: skip
        return {
            "time": now,
            "router": {"routing_strategy": router.routing_strategy if router else None,
                       "state": type(router.state).__name__ if router else None},
            "groups": groups, "plugins": plugin_rows,
        }  # fmt: skip

    def _deployment_row(self, d: Any, snap: Any, recent: tuple[int, int], now: float, ttl: float) -> dict[str, Any]:
        routing = d.routing
        order = routing.get("order", routing.get("priority"))
        rpm, tpm = routing.get("rpm"), routing.get("tpm")
        status = "healthy"
        cooldown = 0.0
        quota_out: dict[str, Any] | None = None
        in_flight = 0
        if snap is not None:
            in_flight = snap.in_flight
            if snap.cooldown_until > now:
                status, cooldown = "cooling_down", round(snap.cooldown_until - now, 1)
            elif (rpm is not None and snap.requests >= rpm) or (tpm is not None and snap.tokens >= tpm):
                status = "at_limit"
            q = snap.quota
            if q is not None:
                fresh = now - q.at < ttl
                if fresh and status == "healthy" and (q.remaining_requests == 0 or q.remaining_tokens == 0):
                    status = "out_of_quota"
                peak_r, peak_t = self._peaks.get(d.id, (0, 0))
                peak_r, peak_t = max(peak_r, q.remaining_requests or 0), max(peak_t, q.remaining_tokens or 0)
                self._peaks[d.id] = (peak_r, peak_t)
                quota_out = {
                    "remaining_requests": q.remaining_requests, "remaining_tokens": q.remaining_tokens,
                    "age_s": round(max(0.0, now - q.at), 1), "fresh": fresh,
                    "requests_fraction": _fraction(q.remaining_requests, rpm or peak_r),
                    "tokens_fraction": _fraction(q.remaining_tokens, tpm or peak_t),
                }  # fmt: skip
        if status == "healthy" and recent[1] and recent[1] == recent[0]:
            status = "failing"  # every call of the last minute failed, though not cooled down (a single deployment)
        return {
            **d.describe(), "mode": d.mode, "priority": order, "weight": routing.get("weight", d.weight),
            "rpm": rpm, "tpm": tpm, "status": status, "cooldown_remaining_s": cooldown, "in_flight": in_flight,
            "requests_this_window": snap.requests if snap else 0, "tokens_this_window": snap.tokens if snap else 0,
            "latency_ms": round(snap.latency * 1000, 1) if snap and snap.latency is not None else None,
            "quota": quota_out, "last_minute": {"requests": recent[0], "errors": recent[1]},
        }  # fmt: skip

    async def _keys(self, ctx: Any, scope: Scope, receive: Receive) -> Any:
        """``GET /ui/api/keys``: every virtual key (masked, never the key) and team, with budgets used."""
        from ..keys import key_info, team_info

        if not self.app.keys.enabled:
            return {"available": False, "keys": [], "teams": [],
                    "reason": "Virtual keys need a master key: set general_settings.master_key."}  # fmt: skip
        vk = self.app.virtual_keys
        keys, total = await vk._db("list_keys", offset=0, limit=1000)
        teams = await vk._db("list_teams")
        return {"available": True, "reason": None, "total_keys": total,
                "keys": [key_info(k) for k in keys], "teams": [team_info(t) for t in teams]}  # fmt: skip

    async def _spend(self, ctx: Any, scope: Scope, receive: Receive) -> Any:
        """``GET /ui/api/spend?start_date=&end_date=``: spend totals by model group, deployment,
        key and day (``YYYY-MM-DD``, UTC, both days included; the last 7 days by default)."""
        from ...store.spend import SpendLog, SpendQuery

        query = _query(scope)
        today = datetime.now(UTC).date()
        end = _day(query, "end_date", today)
        start = _day(query, "start_date", end - timedelta(days=6))
        if start > end:
            raise _Refused(400, "'start_date' must not be after 'end_date'.", "invalid_value", param="start_date")
        out: dict[str, Any] = {"start_date": start.isoformat(), "end_date": end.isoformat()}
        recorder, store = getattr(self.app, "spend", None), getattr(self.app, "store", None)
        if recorder is None or store is None:
            return {**out, "available": False, "reason": "Spend records are off (general_settings.disable_spend_logs).",
                    "total": {"spend": 0.0, "requests": 0}, "by_model": [], "by_deployment": [], "by_key": [],
                    "by_day": []}  # fmt: skip
        if self._spend_log is None:
            self._spend_log = SpendLog(store)
        log_ = self._spend_log
        since = datetime.combine(start, datetime.min.time(), UTC).timestamp()
        until = datetime.combine(end + timedelta(days=1), datetime.min.time(), UTC).timestamp()
        spend_query = SpendQuery(start_time=since, end_time=until)

        def read() -> dict[str, list[dict[str, Any]]]:
            recorder.flush()  # this instance's queued rows first: the requests just answered count
            return {group: log_.report(spend_query, [group]) for group in ("model", "deployment", "api_key", "day")}

        reports = await asyncio.to_thread(read)
        names = await self._key_names() if reports["api_key"] else {}

        def rows(group: str) -> list[dict[str, Any]]:
            out_rows = []
            for r in reports[group]:
                name = r[group]
                if group == "api_key":
                    name = "master key" if name is None else names.get(name, f"{name[:8]}... (deleted)")
                out_rows.append({"name": name, "spend": r["spend"], "requests": r["requests"],
                                 "total_tokens": r["total_tokens"]})  # fmt: skip
            return out_rows

        total = {"spend": sum(r["spend"] for r in reports["model"]), "requests": sum(r["requests"] for r in reports["model"])}
        return {**out, "available": True, "total": total, "by_model": rows("model"),
                "by_deployment": rows("deployment"), "by_key": rows("api_key"), "by_day": rows("day")}  # fmt: skip

    async def _key_names(self) -> dict[str, str]:
        """Key hash -> its alias, else its masked name (``sk-...Ab3x``)."""
        if not self.app.keys.enabled:
            return {}
        try:
            keys, _ = await self.app.virtual_keys._db("list_keys", offset=0, limit=10_000)
        except Exception:  # the names are a nicety: a store that cannot list keys leaves hashes
            log.exception("listing the keys' names for the spend view failed")
            return {}
        return {k.token: k.key_alias or k.key_name for k in keys}

    async def _traffic(self, ctx: Any, scope: Scope, receive: Receive) -> Any:
        """``GET /ui/api/traffic?minutes=5``: per model group, the last minutes in 5-second points."""
        query = _query(scope)
        try:
            minutes = float(query.get("minutes", "5"))
        except ValueError:
            minutes = math.nan
        if not 0 < minutes <= 10:
            raise _Refused(400, "'minutes' must be a number from 0 to 10.", "invalid_value", param="minutes")
        seconds = max(5, int(minutes * 60) // 5 * 5)
        return await self.traffic.series(seconds=seconds, step=5)


def _day(query: dict[str, str], name: str, default: date) -> date:
    value = query.get(name)
    if not value:
        return default
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise _Refused(400, f"{name!r} must be a date like 2026-12-06, got {value[:40]!r}.", "invalid_value",
                       param=name) from None  # fmt: skip


def _fraction(value: int | None, full: int | None) -> float | None:
    if value is None or not full:
        return None
    return round(min(1.0, max(0.0, value / full)), 4)
