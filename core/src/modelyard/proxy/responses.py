"""The proxy's Responses API: ``POST /responses`` (JSON or SSE), ``GET`` / ``DELETE /responses/{id}``,
``GET /responses/{id}/input_items``, ``POST /responses/{id}/cancel``, each with and without ``/v1``,
and under the prefix of every path a loaded plugin adds for ``responses``
(:class:`~modelyard.operations.ProxyPath` ``<prefix>/responses``: a provider's own clients).

A new response goes through the Router (strategy, cooldowns, retries, fallbacks) to a deployment
of the model group whose ``model_info.mode`` serves the operation (``responses``, ``chat``,
``completion``; a ``chat`` one answers through the bridge to chat). Azure keeps a response on
the resource that made it, so the proxy records which deployment created each stored response
(:mod:`modelyard.store.responses`, SQLite or PostgreSQL: it survives a restart and is shared by
instances on one database) and sends every call naming that id there: retrieve, delete, input
items, cancel, and a new response chained to it by ``previous_response_id``. The client's
``metadata`` is the response's own (sent upstream), not the Router's.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from ..errors import APIError
from ..operations import OPERATIONS

if TYPE_CHECKING:
    from ..operations import ProxyPath
    from .app import ProxyApp, Receive, Scope, Send, _Ctx
    from .deployments import Deployment

__all__ = ["ResponsesEndpoints"]

log = logging.getLogger("modelyard.proxy")

_OP = OPERATIONS["responses"]
_ID = r"([A-Za-z0-9_.\-]{1,200})"


def _patterns(prefixes: Sequence[str]) -> list[tuple[str, re.Pattern[str], str]]:
    patterns: list[tuple[str, re.Pattern[str], str]] = []
    for prefix in map(re.escape, prefixes):
        patterns += [
            ("GET", re.compile(rf"^{prefix}/responses/{_ID}$"), "retrieve"),
            ("DELETE", re.compile(rf"^{prefix}/responses/{_ID}$"), "delete"),
            ("GET", re.compile(rf"^{prefix}/responses/{_ID}/input_items$"), "input_items"),
            ("POST", re.compile(rf"^{prefix}/responses/{_ID}/cancel$"), "cancel"),
        ]
    return patterns

_CONTROL_KEYS = frozenset({"extra_headers", "timeout", "num_retries", "custom_llm_provider"})
"""A deployment's control settings an id-addressed call takes, beside its connection settings
(every one the loaded provider plugins declare)."""


class ResponsesEndpoints:
    """The Responses endpoints of one :class:`~modelyard.proxy.app.ProxyApp`.

    Args:
        app: the proxy.
        paths: the plugins' proxy paths: each ``<prefix>/responses`` for ``responses`` (the
            model in the body) adds ``<prefix>`` for every Responses endpoint, as a provider
            serves the Responses API per resource, not per deployment.
    """

    def __init__(self, app: ProxyApp, paths: Sequence[ProxyPath] = ()) -> None:
        self.app = app
        extra = [p.template.removesuffix("/responses") for p in paths
                 if p.operation == "responses" and not p.model_in_path and p.template.endswith("/responses")]  # fmt: skip
        self._prefixes = tuple(dict.fromkeys(("", "/v1", *extra)))
        self._patterns = _patterns(self._prefixes)
        self._memory: dict[str, str] = {}  # the id map when no store can be opened (no SQLAlchemy)
        self._pending: dict[str, str] = {}  # recorded, not yet committed: read before the store
        self._store_lock = asyncio.Lock()
        self._write_lock = asyncio.Lock()

    def routes(self) -> dict[str, Any]:
        """The exact-path routes, with and without ``/v1``."""
        return {f"POST {prefix}/responses": self.create for prefix in self._prefixes}

    def match(self, method: str, path: str, scope: Scope) -> Any:
        """The handler for a path with a response id, or None; the id goes in the scope."""
        for verb, pattern, name in self._patterns:
            found = pattern.match(path)
            if found is not None and verb == method:
                scope["modelyard.id"] = found.group(1)
                return getattr(self, name)
        return None

    def allows(self, path: str) -> bool:
        """True when ``path`` is one of these endpoints' id paths (for 405 answers)."""
        return any(pattern.match(path) for _, pattern, _ in self._patterns)

    # ------------------------------------------------------------------ the id map

    async def _store(self) -> Any:
        """The proxy's store, opened on first use (None: SQLAlchemy is not installed)."""
        app = self.app
        if app.store is not None:
            return app.store
        async with self._store_lock:
            if app.store is None:
                try:
                    from ..store import Store
                except ImportError:
                    return None
                general = app.config.general_settings
                url = general.database_url.get_secret_value() if general.database_url is not None else None
                path = app.config.modelyard_settings.store_path
                app.store = await asyncio.to_thread(Store, url, path=path)
        return app.store

    def _remember(self, response_id: str, deployment: str | None) -> None:
        """Note where a response lives; :meth:`_persist` commits it once the client has its answer."""
        if response_id and deployment:
            self._pending[response_id] = deployment

    async def _persist(self) -> None:
        """Commit every pending id in one transaction (group commit: while one write runs, the ids
        of the responses finished meanwhile wait and go together in the next). Runs after the
        answer is sent: a create is not slowed by the database, and this instance reads
        ``_pending`` first, so an id is found even before its commit. A failed write keeps the
        ids pending (served from memory here, retried with the next write)."""
        if not self._pending:
            return
        async with self._write_lock:
            batch = dict(self._pending)
            if not batch:
                return
            try:
                store = await self._store()
                if store is None:
                    self._memory.update(batch)
                else:
                    from ..store.responses import put_responses

                    await asyncio.to_thread(put_responses, store, batch)
            except Exception:  # the database is down: kept in memory, retried later
                log.exception("recording %d response id(s) in the store failed; kept in memory", len(batch))
                return
            for key, value in batch.items():
                if self._pending.get(key) == value:
                    del self._pending[key]

    async def _holder_id(self, response_id: str) -> str | None:
        pending = self._pending.get(response_id)
        if pending is not None:
            return pending
        store = await self._store()
        if store is None:
            return self._memory.get(response_id)
        from ..store.responses import response_deployment

        return await asyncio.to_thread(response_deployment, store, response_id)

    async def _forget(self, response_id: str) -> None:
        """Forget a deleted id; after any write in flight, which could otherwise bring it back."""
        async with self._write_lock:
            self._pending.pop(response_id, None)
            self._memory.pop(response_id, None)
            store = await self._store()
            if store is None:
                return
            from ..store.responses import forget_response

            await asyncio.to_thread(forget_response, store, response_id)

    def _serving(self) -> list[Deployment]:
        return [d for d in self.app.deployments if d.mode in _OP.modes]

    async def _holder(self, ctx: _Ctx, response_id: str) -> Deployment:
        """The deployment holding ``response_id``: the recorded one, else the only one serving Responses."""
        from .app import _Reject

        known = await self._holder_id(response_id)
        serving = self._serving()
        by_id = {d.id: d for d in serving}
        found = by_id.get(known) if known is not None else (serving[0] if len(serving) == 1 else None)
        if found is None:
            raise _Reject(404, f"No response with id {response_id!r} was created through this proxy.",
                          param="response_id", code="not_found")  # fmt: skip
        ctx.model, ctx.deployment = found.model_name, found.id
        if ctx.admission is not None and not self.app.virtual_keys.allows_model(ctx.admission, found.model_name):
            # A key reads only what its models answered (the same 403 a create would get).
            await self.app.virtual_keys.admit_call(ctx.admission, found.model_name, [found], {}, "responses.get")
        return found

    @staticmethod
    def _call_kwargs(d: Deployment) -> dict[str, Any]:
        from ..connection import connection_schema

        keep = _CONTROL_KEYS | connection_schema().all_names
        return {"model": d.model, **{k: v for k, v in d.kwargs.items() if k in keep}}

    # ------------------------------------------------------------------ create

    async def create(self, ctx: _Ctx, scope: Scope, receive: Receive, send: Send) -> None:
        """``POST /responses``: through the Router, or to the deployment holding ``previous_response_id``."""
        from .app import _check_mode, _spend_headers, _wire

        app = self.app
        body = await app._read_json(scope, receive)
        model, stream, params = app._request(ctx, scope, body)
        deployments = app.deployments.get(model)
        if not deployments:
            raise app._unknown_model(model)
        _check_mode(_OP, model, deployments)
        if ctx.admission is not None:  # a virtual key: its models, then its budget reservation
            await app.virtual_keys.admit_call(ctx.admission, model, deployments, params, "responses")
        if "metadata" in params:  # the response's own metadata, not the Router's
            params["extra_body"] = {"metadata": params.pop("metadata")}
        pinned = None
        previous = params.get("previous_response_id")
        if isinstance(previous, str):
            held = await self._holder_id(previous)
            pinned = next((d for d in deployments if d.id == held), None) if held else None
        result = await app._until_disconnect(receive, self._create(ctx, model, stream, params, pinned))
        served = next((d for d in deployments if d.id == ctx.deployment), None)
        # A response bridged from chat (mode: chat) is stored nowhere upstream: nothing to remember.
        keep = params.get("store") is not False and (served is None or served.declared_mode != "chat")
        if stream:
            await self._stream(ctx, receive, send, result, keep)
        else:
            if keep:
                self._remember(getattr(result, "id", ""), ctx.deployment)
            await app._send_json(ctx, send, 200, _wire(result), _spend_headers(ctx, result))
        await self._persist()

    async def _create(self, ctx: _Ctx, model: str, stream: bool, params: dict[str, Any], pinned: Deployment | None) -> Any:
        from .. import responses_api

        if pinned is not None:  # the chain lives on this deployment's resource
            ctx.deployment = pinned.id
            kwargs = {**pinned.defaults, **params, **pinned.kwargs}
            if pinned.declared_mode:
                kwargs["model_info"] = {"mode": pinned.declared_mode}
            return await responses_api.aresponses(model=pinned.model, stream=stream, **kwargs)
        router = self.app.router
        assert router is not None  # there is a deployment, so there is a Router
        routed: dict[str, Any] = {}
        try:
            return await router.aresponses(model=model, stream=stream, metadata=routed, **params)
        finally:
            ctx.deployment = routed.get("model_id")

    async def _stream(self, ctx: _Ctx, receive: Receive, send: Send, stream: Any, keep: bool) -> None:
        """Forward typed events as OpenAI sends them (``event:`` and ``data:`` lines); an upstream
        failure mid-way becomes an ``error`` event; a client disconnect cancels the upstream read."""
        from .app import _SSE_HEADERS, _Disconnected, _spend_headers

        ctx.status = 200
        headers = [*_SSE_HEADERS, (b"x-request-id", ctx.request_id.encode()), *_spend_headers(ctx, None)]
        await send({"type": "http.response.start", "status": 200, "headers": headers})

        async def pump() -> None:
            try:
                async with stream:
                    async for event in stream:
                        if keep and event.type == "response.created":
                            self._remember(event.response.id, ctx.deployment)
                        data = event.model_dump_json(exclude_unset=True).encode()
                        chunk = b"event: " + event.type.encode() + b"\ndata: " + data + b"\n\n"
                        await send({"type": "http.response.body", "body": chunk, "more_body": True})
            except APIError as err:
                ctx.error = type(err).__name__
                detail = err.to_response_body()["error"]
                payload = {"type": "error", "code": detail.get("code"), "message": detail.get("message"), "param": detail.get("param")}
                chunk = b"event: error\ndata: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})

        try:
            await self.app._until_disconnect(receive, pump())
        except _Disconnected:
            ctx.status, ctx.error = 499, "client_disconnected"

    # ------------------------------------------------------------------ by id

    async def _by_id(self, ctx: _Ctx, scope: Scope, receive: Receive, send: Send, name: str, **query: Any) -> None:
        from .. import responses_api
        from .app import _wire

        response_id = scope["modelyard.id"]
        d = await self._holder(ctx, response_id)
        call = getattr(responses_api, name)
        result = await self.app._until_disconnect(receive, call(response_id, **query, **self._call_kwargs(d)))
        if name == "adelete_responses" and getattr(result, "deleted", False):
            await self._forget(response_id)  # before the answer: the client's next call must not find it
        await self.app._send_json(ctx, send, 200, _wire(result))

    async def retrieve(self, ctx: _Ctx, scope: Scope, receive: Receive, send: Send) -> None:
        """``GET /responses/{id}`` from the deployment that created it."""
        include = _include(scope)
        await self._by_id(ctx, scope, receive, send, "aget_responses", **({"include": include} if include else {}))

    async def delete(self, ctx: _Ctx, scope: Scope, receive: Receive, send: Send) -> None:
        """``DELETE /responses/{id}`` on the deployment that created it; the id is forgotten."""
        await self._by_id(ctx, scope, receive, send, "adelete_responses")

    async def input_items(self, ctx: _Ctx, scope: Scope, receive: Receive, send: Send) -> None:
        """``GET /responses/{id}/input_items`` (``after``, ``before``, ``limit``, ``order``, ``include``)."""
        from .app import _Reject

        pairs = parse_qsl(scope.get("query_string", b"").decode("latin-1"))
        query: dict[str, Any] = {k: v for k, v in pairs if k in ("after", "before", "order")}
        limit = next((v for k, v in pairs if k == "limit"), None)
        if limit is not None:
            if not limit.isdigit():
                raise _Reject(400, f"'limit' must be an integer, got {limit!r}.", param="limit", code="invalid_type")
            query["limit"] = int(limit)
        include = _include(scope)
        if include:
            query["include"] = include
        await self._by_id(ctx, scope, receive, send, "alist_input_items", **query)

    async def cancel(self, ctx: _Ctx, scope: Scope, receive: Receive, send: Send) -> None:
        """``POST /responses/{id}/cancel`` on the deployment that created it (a ``background`` response)."""
        await self._by_id(ctx, scope, receive, send, "acancel_responses")


def _include(scope: Scope) -> list[str]:
    pairs = parse_qsl(scope.get("query_string", b"").decode("latin-1"))
    return [v for k, v in pairs if k in ("include", "include[]")]
