"""The proxy as a plain ASGI application: OpenAI's paths and wire format in front of the SDK.

Every model call goes through :func:`modelyard.acompletion`, the same pipeline as the SDK,
with the deployment's ``litellm_params`` as keyword arguments. The app is raw ASGI rather than
Starlette or FastAPI routes: a dozen exact paths need no router, and skipping the framework's
request/response objects keeps the proxy's CPU per request low (see bench/README.md).

Endpoints (each with and without ``/v1``): ``POST /chat/completions``, ``POST /completions``,
every other operation of :data:`modelyard.operations.OPERATIONS` on its paths (``POST
/embeddings`` ...), each allowed only to deployments whose ``model_info.mode`` serves it,
``GET /models``, ``GET /models/{id}``, ``GET /health``, ``GET /health/liveliness`` (and
``/health/liveness``), ``GET /health/readiness``; files and batches (:mod:`.files`); fine-tuning jobs (:mod:`.fine_tuning`); and the
paths the loaded provider plugins add for their own clients (:class:`~modelyard.operations.ProxyPath`:
the model in the path or the body; :mod:`.paths`).

Failures answer OpenAI's error JSON, ``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import functools
import json
import logging
import math
import random
import re
import sys
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import SecretStr, ValidationError
from pydantic_core import to_json

from .._sse import END
from ..connection import connection_schema
from ..errors import APIError, BadRequestError, ConfigError, ModelyardError
from ..observe import CallScope, enter_scope, leave_scope, no_scope
from ..operations import CORE_OPERATIONS, OPERATIONS, Operation, operation_for_mode
from .auth import KeyCheck, extract_key
from .config import ProxyConfig
from .deployments import Deployment, Deployments, build_router
from .disconnect import Disconnected, DisconnectWatch
from .keys import Refusal, VirtualKeys
from .logs import line_writer
from .spend import record_request

if TYPE_CHECKING:
    from ..router import Router

__all__ = ["ProxyApp"]

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

_T = TypeVar("_T")

log = logging.getLogger("modelyard.proxy")
access_log = logging.getLogger("modelyard.proxy.access")

_JSON = (b"content-type", b"application/json")
_WATCH_AFTER = 0.05
"""Seconds a model call runs before a task watches for its client leaving (``_until_disconnect``)."""
_SSE_HEADERS = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# Modes some operation other than chat claims: a deployment of one of them serves no chat.
# (Responses is bridged both ways: its deployments take chat, chat deployments take it.) The
# core's rows: read at import, when no plugin is loaded.
_BRIDGED = ("chat", "completions", "responses")
_NON_CHAT_MODES = frozenset().union(
    *(op.modes for op in CORE_OPERATIONS.values() if op.name not in _BRIDGED and "chat" not in op.modes)
)
# Fields a client may not set: they choose where the call goes and with which credential. With
# them, every connection setting the loaded provider plugins declare (ProxyApp._forbidden).
_CLIENT_FORBIDDEN = frozenset(
    {"api_base", "base_url", "api_version", "api_key", "extra_headers", "extra_body", "model_family", "base_model",
     "model_info", "custom_llm_provider", "num_retries", "max_retries", "timeout", "request_timeout", "drop_params"}
)  # fmt: skip


class _Reject(Exception):
    """A request refused before any model call: status and OpenAI error fields."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error",
                 param: str | None = None, code: str | None = None) -> None:  # fmt: skip
        super().__init__(message)
        self.status = status
        self.body = {"error": {"message": message, "type": type, "param": param, "code": code or str(status)}}


_Disconnected = Disconnected
"""The client went away while we read its request or served it."""


class _NonFinite(ValueError):
    """A ``NaN``, ``Infinity`` or ``-Infinity`` literal in a request body."""


def _refuse_constant(name: str) -> Any:
    # Python's json accepts these, JSON does not: forwarded, they make the upstream's body invalid.
    raise _NonFinite(name)


_BODY_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)
"""``json.loads(raw, parse_constant=...)`` builds a decoder per call; this one is built once."""

_NAN = object()


def _non_finite_field(raw: bytes) -> str:
    """The path (``temperature``, ``messages[0].content``) of the first non-finite number in ``raw``."""

    def find(value: Any, path: str) -> str | None:
        if value is _NAN:
            return path
        items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
        for key, item in items:
            found = find(item, f"{path}[{key}]" if isinstance(key, int) else (f"{path}.{key}" if path else str(key)))
            if found is not None:
                return found
        return None

    try:
        return find(json.loads(raw, parse_constant=lambda _: _NAN), "") or "(body)"
    except RecursionError:
        return "(body)"


def _request_id() -> str:
    """A fresh request id: 32 hex digits, unique but not secret (a client may send its own), so
    from ``random`` rather than ``uuid4``'s system call; ``random`` reseeds in forked workers.

    The first 12 digits are the time in milliseconds (as in a UUIDv7), the other 20 random (80
    bits): ids made one after another sort together, so the spend table's ``request_id`` index
    takes each new row at its end rather than on a random page (with 100,000 rows in the table,
    random ids cost the writer about twice the CPU per row; issue 17, round six)."""
    return f"{time.time_ns() // 1_000_000:012x}{random.getrandbits(80):020x}"


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


class _Ctx:
    """Per-request state for the access log."""

    __slots__ = ("admission", "deployment", "error", "method", "model", "operation", "path", "principal", "request_id",
                 "scope", "started", "status", "stream")  # fmt: skip

    def __init__(self, method: str, path: str, request_id: str, scope: CallScope) -> None:
        self.scope = scope
        self.method = method
        self.path = path
        self.request_id = request_id
        self.started = time.perf_counter()
        self.status = 0
        self.model: str | None = None
        self.deployment: str | None = None
        self.stream = False
        self.error: str | None = None
        self.admission: Any = None
        self.principal: Any = None
        """The virtual key's :class:`~modelyard.proxy.keys.Principal`; None for the master key."""
        self.operation: str | None = None

    # Who called, for the spend rows: a virtual key's id (its hash), team and user; None for the
    # master key.
    @property
    def key_id(self) -> str | None:
        return None if self.principal is None else self.principal.token

    @property
    def team_id(self) -> str | None:
        return None if self.principal is None else self.principal.team_id

    @property
    def user_id(self) -> str | None:
        return None if self.principal is None else self.principal.user_id


class ProxyApp:
    """The proxy: construct it from a :class:`ProxyConfig` and serve it with any ASGI server.

    Args:
        config: the parsed ``config.yaml``.
        master_key: the key clients must send; None turns authentication off (refused unless
            ``insecure_ok``).
        insecure_ok: local development: allow no key or a publicly known one.

    Raises:
        ConfigError: no model in ``model_list`` uses a model the installed plugins know, or the
            master key is refused (see :mod:`modelyard.proxy.auth`).
    """

    def __init__(self, config: ProxyConfig, *, master_key: str | None = None, insecure_ok: bool = False) -> None:
        from .auth import check_master_key

        check_master_key(master_key, insecure_ok=insecure_ok or config.general_settings.allow_insecure_master_key)
        self.config = config
        self._load_plugins(config)
        self._forbidden = _CLIENT_FORBIDDEN | connection_schema().all_names
        self.deployments = Deployments(config)
        general = config.general_settings
        previous = general.previous_master_key.get_secret_value() if general.previous_master_key else None
        until = general.previous_master_key_expires
        if until is not None and until.tzinfo is None:
            until = until.replace(tzinfo=datetime.UTC)
        self.keys = KeyCheck(master_key, previous, until.timestamp() if until is not None else None)
        self.virtual_keys = VirtualKeys(self)
        self.max_body = config.general_settings.max_request_bytes
        self.shutting_down = False
        self._previous_transport: Any = None
        self._installed_transport: Any = None
        self._previous_globals: dict[str, Any] = {}
        self._flushers: list[asyncio.Task[None]] = []
        self._watch = DisconnectWatch(_WATCH_AFTER)
        self._apply_settings()
        # The Router picks deployments, retries, fails over, cools down and falls back.
        self.router: Router | None = build_router(config, self.deployments) if len(self.deployments) else None
        self._routes: dict[str, Callable[[_Ctx, Scope, Receive, Send], Awaitable[None]]] = {}
        for prefix in ("", "/v1"):
            self._routes[f"POST {prefix}/chat/completions"] = self._chat
            self._routes[f"POST {prefix}/completions"] = self._completions
            for op in OPERATIONS.values():  # every other operation, from its row
                if op.name not in ("chat", "completions"):
                    for op_path in op.paths:
                        self._routes[f"POST {prefix}{op_path}"] = functools.partial(self._operation, op)
            self._routes[f"GET {prefix}/models"] = self._models
            self._routes[f"GET {prefix}/health"] = self._health
        for path in ("/health/liveliness", "/health/liveness"):
            self._routes[f"GET {path}"] = self._liveliness
        self._routes["GET /health/readiness"] = self._readiness
        self._routes["GET /openapi.json"] = self._openapi
        self._openapi_body: bytes | None = None
        self._public = {"/health/liveliness", "/health/liveness", "/health/readiness"}
        self.metrics = self._metrics()
        self._active = 0  # HTTP requests in flight (the metrics flush when none is)
        if self.metrics is not None:
            self._routes["GET /metrics"] = self._metrics_page
            if config.general_settings.public_metrics:
                self._public.add("/metrics")
        from .files import FilesEndpoints

        self.store: Any = None
        self.files = FilesEndpoints(self, self._files_router())
        self._routes.update(self.files.routes())
        from .. import plugins
        from .paths import PathRoutes
        from .responses import ResponsesEndpoints

        contributed = plugins.get_plugins().operations.paths
        self.responses = ResponsesEndpoints(self, contributed)
        self._routes.update(self.responses.routes())
        # The paths the provider plugins add for their own clients (ProxyPath): built once here.
        self.paths = PathRoutes(contributed, self._handler)
        for key, handler in self.paths.exact.items():
            self._routes.setdefault(key, handler)  # a plugin's path never replaces the core's
        from .fine_tuning import FineTuningEndpoints

        self.fine_tuning = FineTuningEndpoints(self)
        self._routes.update(self.fine_tuning.routes())
        self._routes.update(self.virtual_keys.routes())
        self.spend: Any = None  # the SpendRecorder (docs/spend.md), unless general_settings.disable_spend_logs
        self.batch_spend: Any = None
        if not config.general_settings.disable_spend_logs and not self._store_installed():
            # The default (spend records on) must not stop a proxy installed without the store.
            log.warning("Spend records are off: they need the 'store' extra (pip install 'modelyard[store]'); "
                        "costs are still sent in the response headers.")  # fmt: skip
        elif not config.general_settings.disable_spend_logs:
            from .spend import BatchSpend, SpendEndpoints, make_recorder, open_store

            self.store = self.store or open_store(config)
            self.spend = make_recorder(config, self.store)
            self.batch_spend = BatchSpend(self, self.store)
            self._routes.update(SpendEndpoints(self, self.store).routes())
        self.ui: Any = None
        if not config.general_settings.disable_admin_ui:
            from .ui import Dashboard

            self.ui = Dashboard(self, master_key)  # /ui: each of its routes checks its own access
            self._routes.update(self.ui.routes())
            self._public |= self.ui.paths()

    def _handler(self, op: Operation) -> Callable[[_Ctx, Scope, Receive, Send], Awaitable[None]]:
        """The handler of an operation row (for the paths plugins add)."""
        if op.name == "chat":
            return self._chat
        if op.name == "completions":
            return self._completions
        if op.name == "responses":
            return self.responses.create
        return functools.partial(self._operation, op)

    def _store_installed(self) -> bool:
        """Whether the store can open: SQLAlchemy is installed, or a store was asked for by name."""
        import importlib.util

        if self.config.general_settings.database_url is not None:
            return True  # configured explicitly: opening it names what is missing
        return importlib.util.find_spec("sqlalchemy") is not None

    def _metrics(self) -> Any:
        """The Prometheus metrics (``general_settings.metrics``), or None when off."""
        from . import metrics

        wanted = self.config.general_settings.metrics
        if wanted is False:
            return None
        if not metrics.available():
            if wanted:
                raise ConfigError(
                    "general_settings.metrics is on, but prometheus-client is not installed: "
                    "pip install 'modelyard[server]'.", key="general_settings.metrics",
                )  # fmt: skip
            return None
        return metrics.ProxyMetrics(self.deployments.model_names(), endpoints=self._endpoint_labels())

    def _endpoint_labels(self) -> Callable[[str], str | None]:
        """The metrics' endpoint label of the operations' paths and the plugins' paths (:mod:`.paths`)."""
        from .. import plugins
        from .paths import PathRoutes

        own = {prefix + path: path for op in OPERATIONS.values() for path in op.paths for prefix in ("", "/v1")}
        contributed = PathRoutes(plugins.get_plugins().operations.paths, lambda op: None)
        return lambda path: own.get(path) or contributed.label(path)

    def _files_router(self) -> Any:
        """The plugin's files router over the ``mode: batch`` deployments, when batch load balancing is on."""
        if not self.config.litellm_settings.enable_loadbalancing_on_batch_endpoints:
            return None
        from .. import plugins
        from ..files_router import FilesDeployment
        from ..store import Store
        from ..types import Connection, Route

        batch = [d for d in self.deployments if d.mode == "batch"]
        if not batch:
            log.warning("enable_loadbalancing_on_batch_endpoints is on, but no model_list entry has model_info.mode: batch")
            return None
        keep = set(Connection.model_fields) | {"timeout"}
        targets = [FilesDeployment(id=d.id, model_name=d.model_name, model=d.model, weight=d.weight,
                                   params={k: v for k, v in d.kwargs.items() if k in keep}) for d in batch]  # fmt: skip
        general = self.config.general_settings
        url = general.database_url.get_secret_value() if general.database_url is not None else None
        self.store = Store(url, path=self.config.modelyard_settings.store_path)
        loaded = plugins.get_plugins()
        router = loaded.hook.files_router(deployments=targets, store=self.store)
        if router is None:
            self.store.close()
            # The provider's plugins say which distribution balances its batches; the core names none.
            provider = batch[0].model.partition("/")[0]
            route = Route(model=batch[0].model, provider=provider, family="files", deployment="", operation="batch load balancing")
            raise ConfigError(
                f"litellm_settings.enable_loadbalancing_on_batch_endpoints: {loaded.unserved('files_router', route)}",
                key="litellm_settings.enable_loadbalancing_on_batch_endpoints",
            )
        return router

    @staticmethod
    def check(config: ProxyConfig, *, master_key: str | None = None, insecure_ok: bool = False) -> Deployments:
        """Refuse what constructing the app from ``config`` would refuse, without building it; the deployments.

        The master key, the plugin set and the settings it declares, the models, the prices and
        the Router's settings: what the parent of ``modelyard serve --num_workers N`` checks
        before it starts the workers, which build the app each (no store opened, no upstream
        client, no routes here).

        Raises:
            ConfigError: as the constructor would, naming the setting.
        """
        from .auth import check_master_key

        check_master_key(master_key, insecure_ok=insecure_ok or config.general_settings.allow_insecure_master_key)
        ProxyApp._load_plugins(config)
        deployments = Deployments(config)
        ProxyApp._load_prices(config.modelyard_settings.prices)
        if len(deployments):
            build_router(config, deployments)
        return deployments

    @staticmethod
    def _load_plugins(config: ProxyConfig) -> None:
        """Load the plugin set the config names, then check the config against what it declares."""
        from .. import plugins
        from .settings import check_settings

        ms = config.modelyard_settings
        if ms.load_plugins is not None or ms.block_plugins is not None:
            plugins.reset_plugins(load=ms.load_plugins, block=ms.block_plugins)
        check_settings(config)

    def _apply_settings(self) -> None:
        from .. import plugins
        from .settings import module_settings

        # litellm_settings.drop_params, api_base ... and the module settings the providers declare
        # are module-wide, as in LiteLLM: modelyard.drop_params ... (put back at shutdown).
        module = sys.modules["modelyard"]
        ls = self.config.litellm_settings
        ms = self.config.modelyard_settings
        for name, value in module_settings(ls):
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            if value is not None:
                self._previous_globals.setdefault(name, getattr(module, name, False))
                setattr(module, name, value)
        self._load_prices(ms.prices)
        families = plugins.get_plugins().families
        for d in self.deployments:
            try:
                families.resolve(d.model, family=d.kwargs.get("model_family"), base_model=d.kwargs.get("base_model"))
            except APIError as exc:
                field = "model_family" if exc.param == "model_family" else "model"
                where = f"model_list (model_name {d.model_name!r}).litellm_params.{field}"
                raise ConfigError(f"{where}: {exc.message}", key=where) from None

    @staticmethod
    def _load_prices(source: str | None) -> None:
        """Load prices at start-up (``modelyard_settings.prices``, else ``MODELYARD_PRICES``), so a
        bad price file stops the start rather than leaving every request unpriced."""
        from ..pricing import load_prices

        try:
            load_prices(source)
        except ConfigError as exc:
            raise ConfigError(f"modelyard_settings.prices: {exc.message}", key="modelyard_settings.prices") from None

    # ------------------------------------------------------------------ lifecycle

    async def startup(self) -> None:
        """Install the transport the config asks for (``general_settings.http_backend``)."""
        from .. import transport

        backend = self.config.general_settings.http_backend
        if backend != "httpx":
            current = transport.get_transport()
            if getattr(current, "_async_backend", "httpx") != backend:
                self._installed_transport = transport.Transport(async_backend=backend)
                self._previous_transport = transport.set_transport(self._installed_transport)
        if self.spend is not None:
            self.spend.start()
        if self.ui is not None:
            self.ui.startup()
        for handler in access_log.handlers:
            run_flusher = getattr(handler, "run_flusher", None)
            if run_flusher is not None:
                self._flushers.append(asyncio.ensure_future(run_flusher()))

    async def shutdown(self) -> None:
        """Close this loop's upstream connections; put back the transport replaced at startup."""
        from .. import transport

        self.shutting_down = True
        if self.metrics is not None:
            self.metrics.flush()  # what this worker counted stays in the multiprocess files
        for task in self._flushers:
            task.cancel()
        for task in self._flushers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._flushers.clear()
        if self.ui is not None:
            await self.ui.shutdown()
        if self.router is not None:
            self.router.close()  # a Redis connection made outside the loop (state read by a test, a health check)
            await self.router.aclose()
        module = sys.modules["modelyard"]
        for name, value in self._previous_globals.items():
            setattr(module, name, value)
        self._previous_globals.clear()
        await transport.get_transport().aclose()
        await self.responses._persist()  # response ids not committed yet
        await self.virtual_keys.aclose()
        if self.spend is not None:
            await self.spend.aclose()  # every queued spend row is written before the exit
        if self.store is not None:
            self.store.close()
        if self._installed_transport is not None:
            transport.set_transport(self._previous_transport)
            self._installed_transport = None

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": f"{type(exc).__name__}: {exc}"})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # ------------------------------------------------------------------ ASGI entry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(receive, send)
            return
        if kind != "http":
            return
        headers: dict[bytes, bytes] = dict(scope["headers"])
        rid = headers.get(b"x-request-id", b"").decode("latin-1")
        call_scope = CallScope()
        parent = headers.get(b"traceparent")
        if parent is not None:
            # Only well-formed W3C trace context is passed on (to the tracing plugin, the log).
            call_scope.trace_headers["traceparent"] = parent.decode("latin-1")[:128]
            call_scope.__post_init__()
            if call_scope.trace_id is None:
                call_scope.trace_headers.clear()
            elif (state := headers.get(b"tracestate")) is not None:
                call_scope.trace_headers["tracestate"] = state.decode("latin-1")[:512]
        ctx = _Ctx(scope["method"], scope["path"], rid if _REQUEST_ID.match(rid) else _request_id(), call_scope)
        _, token = enter_scope(call_scope)
        self._active += 1
        try:
            handler = self._route(ctx, scope)
            if ctx.path not in self._public and not self.keys.allows(presented := extract_key(headers)):
                # Not the master key: a virtual key (docs/keys.md), or a 401.
                ctx.admission = await self.virtual_keys.authenticate(presented, ctx.method, ctx.path)
                ctx.principal = scope["modelyard.principal"] = ctx.admission.principal
                send = self.virtual_keys.wrap_send(ctx.admission, send, ctx.scope.calls)
            await handler(ctx, scope, receive, send)
        except Refusal as exc:
            ctx.error = exc.code
            await self._send_json(ctx, send, exc.status, exc.body, exc.headers)
        except _Reject as exc:
            ctx.error = exc.body["error"]["code"]
            await self._send_json(ctx, send, exc.status, exc.body)
        except APIError as exc:
            ctx.error = type(exc).__name__
            await self._send_json(ctx, send, _status(exc), exc.to_response_body(), _retry_after(exc))
        except _Disconnected:
            ctx.status, ctx.error = 499, "client_disconnected"
        except ValidationError as exc:
            # Clients' values are refused as BadRequestError (400) before anything is sent: what
            # fails validation here is the upstream's answer, so the gateway answers for it.
            ctx.error = "invalid_upstream_answer"
            body = _invalid_answer(exc)
            log.warning("request %s: %s", ctx.request_id, body["error"]["message"])
            if not ctx.status:
                await self._send_json(ctx, send, 502, body)
        except ModelyardError as exc:  # ConfigError / PluginError: the deployment is misconfigured
            log.error("request %s: %s: %s", ctx.request_id, type(exc).__name__, exc)
            ctx.error = type(exc).__name__
            if not ctx.status:
                body = {"error": {"message": f"The proxy's configuration for this model is broken: {exc}",
                                  "type": "api_error", "param": None, "code": "500"}}  # fmt: skip
                await self._send_json(ctx, send, 500, body)
        except Exception:
            log.exception("request %s failed", ctx.request_id)
            ctx.error = "internal"
            if not ctx.status:
                body = {"error": {"message": f"Internal error in the proxy (request id {ctx.request_id}).",
                                  "type": "api_error", "param": None, "code": "500"}}  # fmt: skip
                await self._send_json(ctx, send, 500, body)
        finally:
            self._active -= 1
            if ctx.admission is not None:  # settle the budget and limits with what the calls cost
                await self.virtual_keys.finish(ctx.admission, ctx.scope.calls)
            leave_scope(token)
            self._log(ctx)
            # Each CallRecord points back at its scope: unlinked, the request's objects (the
            # response, its headers) go with their last reference, not in a garbage collection.
            call_scope.calls.clear()

    def _route(self, ctx: _Ctx, scope: Scope) -> Callable[[_Ctx, Scope, Receive, Send], Awaitable[None]]:
        path = ctx.path.rstrip("/") or "/"
        ctx.path = path
        handler = self._routes.get(f"{ctx.method} {path}")
        if handler is not None:
            return handler
        templated = self.paths.match(path)  # a plugin's path with the model in it (ProxyPath)
        if templated is not None:
            if ctx.method != "POST":
                raise _Reject(405, f"Method {ctx.method} is not allowed on {path}; use POST.", code="method_not_allowed")
            scope["modelyard.model"], handler = templated
            return handler  # type: ignore[no-any-return]
        for prefix in ("/v1/models/", "/models/"):
            if path.startswith(prefix) and ctx.method == "GET":
                scope["modelyard.model"] = path[len(prefix) :]
                return self._model
        files = (
            self.files.match(ctx.method, path, scope)
            or self.fine_tuning.match(ctx.method, path, scope)
            or self.responses.match(ctx.method, path, scope)
        )
        if files is not None:
            return files
        if (
            any(k.split(" ", 1)[1] == path for k in self._routes)
            or self.files.allows(path)
            or self.fine_tuning.allows(path)
            or self.responses.allows(path)
        ):
            raise _Reject(405, f"Method {ctx.method} is not allowed on {path}.", code="method_not_allowed")
        raise _Reject(404, f"Unknown path {path}.", code="not_found")

    # ------------------------------------------------------------------ I/O helpers

    async def _send_json(self, ctx: _Ctx, send: Send, status: int, body: Any, headers: list[tuple[bytes, bytes]] | None = None) -> None:
        payload = body if isinstance(body, bytes) else _dumps(body)
        ctx.status = status
        await send({
            "type": "http.response.start",
            "status": status,
            "headers": [_JSON, (b"content-length", str(len(payload)).encode()),
                        (b"x-request-id", ctx.request_id.encode()), *(headers or ())],
        })  # fmt: skip
        await send({"type": "http.response.body", "body": payload})

    async def _read_json(self, scope: Scope, receive: Receive) -> dict[str, Any]:
        limit = self.max_body
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                raise self._too_large()
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Disconnected
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise self._too_large()
            chunks.append(chunk)
            if not message.get("more_body"):
                break
        raw = b"".join(chunks)
        # As json.loads(bytes): its encoding detection, skipped for a body opening with "{" and
        # an ASCII byte (UTF-8 then: no BOM, no UTF-16/32 zero byte).
        encoding = "utf-8" if len(raw) > 1 and raw[0] == 0x7B and raw[1] else json.detect_encoding(raw)
        try:
            body = _BODY_DECODER.decode(raw.decode(encoding, "surrogatepass"))
        except _NonFinite:
            field = _non_finite_field(raw)
            raise _Reject(400, f"{field!r} is NaN or Infinity, which JSON does not allow; send a finite number.",
                          param=field, code="invalid_json") from None  # fmt: skip
        except RecursionError:
            raise _Reject(400, "The request body is not valid JSON: it is nested too deeply.", code="invalid_json") from None
        except (ValueError, UnicodeDecodeError) as exc:
            where = f" (line {exc.lineno}, column {exc.colno})" if isinstance(exc, json.JSONDecodeError) else ""
            raise _Reject(400, f"The request body is not valid JSON{where}.", code="invalid_json") from None
        if not isinstance(body, dict):
            raise _Reject(400, f"The request body must be a JSON object, got {type(body).__name__}.", code="invalid_json")
        return body

    def _too_large(self) -> _Reject:
        mb = self.config.general_settings.max_request_size_mb
        return _Reject(413, f"The request body is larger than the proxy's limit of {mb:g} MB "
                       "(general_settings.max_request_size_mb).", code="request_too_large")  # fmt: skip

    def _log(self, ctx: _Ctx) -> None:
        seconds = time.perf_counter() - ctx.started
        if self.spend is not None and ctx.operation is not None:
            end = time.time()
            try:
                record_request(self.spend, ctx, end - seconds, end)
            except Exception:  # spend tracking must not break a request
                log.exception("recording the spend of request %s failed", ctx.request_id)
        if ctx.model is not None and self.ui is not None:  # the dashboard's traffic: one append, folded later
            self.ui.traffic.record((time.time(), ctx.model, ctx.deployment, ctx.status, seconds))
        if self.metrics is not None:
            try:
                self.metrics.request(path=ctx.path, status=ctx.status, model=ctx.model, deployment=ctx.deployment,
                                     seconds=seconds, scope=ctx.scope, idle=not self._active)  # fmt: skip
            except Exception:  # metrics must not break a request
                log.exception("recording the metrics of request %s failed", ctx.request_id)
        if not access_log.isEnabledFor(logging.INFO):
            return
        record = {
            "ts": round(time.time(), 3),
            "request_id": ctx.request_id,
            "method": ctx.method,
            "path": ctx.path,
            "status": ctx.status,
            "latency_ms": round(seconds * 1000, 2),
            "model": ctx.model,
            "deployment": ctx.deployment,
        }
        if ctx.scope.trace_id is not None:
            record["trace_id"] = ctx.scope.trace_id
        if ctx.stream:
            record["stream"] = True
        if ctx.error:
            record["error"] = ctx.error
        # pydantic-core's JSON encoder: a quarter of json.dumps's time (issue 17).
        try:
            line = to_json(record).decode()
        except ValueError:  # a lone surrogate in a client's model name: escaped, as json.dumps does
            line = json.dumps(record, separators=(",", ":"))
        write = line_writer(access_log)
        if write is not None:  # our batched handler alone: what logging would do, without its LogRecord
            write(line)
        else:  # what access_log.info(line) does, without looking up the caller's frame
            access_log.handle(access_log.makeRecord(access_log.name, logging.INFO, __file__, 0, line, (), None, "_log"))

    # ------------------------------------------------------------------ model calls

    def _request(self, ctx: _Ctx, scope: Scope, body: dict[str, Any]) -> tuple[str, bool, dict[str, Any]]:
        model = scope.get("modelyard.model") or body.get("model")
        if model is None:
            raise _Reject(400, "'model' is required: one of the names GET /v1/models lists.", param="model", code="missing_required_parameter")
        if not isinstance(model, str) or not model:
            raise _Reject(400, f"'model' must be a non-empty string, got {type(model).__name__}.", param="model", code="invalid_type")
        stream = body.get("stream", False)
        if stream is None:
            stream = False
        if not isinstance(stream, bool):
            raise _Reject(400, f"'stream' must be a boolean, got {type(stream).__name__}.", param="stream", code="invalid_type")
        for key in body:
            if key in self._forbidden:
                raise _Reject(400, f"{key!r} is set by the proxy's configuration and cannot be sent by a client.",
                              param=key, code="unsupported_parameter")  # fmt: skip
        ctx.model, ctx.stream = model, stream
        params = {k: v for k, v in body.items() if k not in ("model", "stream")}
        return model, stream, params

    def _unknown_model(self, model: str) -> _Reject:
        names = ", ".join(self.deployments.model_names()) or "(none configured)"
        return _Reject(404, f"The model {model!r} does not exist on this proxy. Available models: {names}.",
                       param="model", code="model_not_found")  # fmt: skip

    async def _call(self, ctx: _Ctx, model: str, stream: bool, params: dict[str, Any], operation: str) -> Any:
        """Call ``model`` through the Router: it picks the deployment, retries, fails over, falls back."""
        deployments = self.deployments.get(model)
        if not deployments:
            raise self._unknown_model(model)
        _check_mode(OPERATIONS[operation], model, deployments)
        admission = ctx.admission
        if admission is not None:  # a virtual key: its models, then its budget reservation
            await self.virtual_keys.admit_call(admission, model, deployments, params, operation)
        ctx.operation = operation
        # The Router writes the deployment of each try here (a client's own "metadata" is the
        # Router's too, as in LiteLLM: it is not sent upstream).
        assert self.router is not None  # there is a deployment, so there is a Router
        routed: dict[str, Any] = {}
        params["metadata"] = routed
        result: Any
        try:
            if operation == "completions":
                result = await self.router.atext_completion(model, stream=stream, **params)
            elif operation == "chat":
                result = await self.router.acompletion(model, stream=stream, **params)
            else:
                # By name: an operation's positional order may not start with model (image_generation).
                result = await getattr(self.router, OPERATIONS[operation].async_sdk)(model=model, **params)
        finally:
            ctx.deployment = routed.get("model_id")
        if admission is not None and not stream and OPERATIONS[operation].answer != "binary":
            # The cost is known: settle before answering, so the client's next call sees it.
            await self.virtual_keys.finish(admission, ctx.scope.calls)
        return result

    async def _chat(self, ctx: _Ctx, scope: Scope, receive: Receive, send: Send) -> None:
        body = await self._read_json(scope, receive)
        model, stream, params = self._request(ctx, scope, body)
        if "messages" not in params:
            raise _Reject(400, "'messages' is required: a non-empty list of chat messages.", param="messages",
                          code="missing_required_parameter")  # fmt: skip
        ctx.scope.forwards_answers = True  # an answer kept as sent goes out as its bytes (_wire)
        result = await self._until_disconnect(receive, self._call(ctx, model, stream, params, "chat"))
        if stream:
            await self._stream(ctx, receive, send, result, _spend_headers(ctx, None))
        else:
            await self._send_json(ctx, send, 200, _wire(result), _spend_headers(ctx, result))

    async def _completions(self, ctx: _Ctx, scope: Scope, receive: Receive, send: Send) -> None:
        body = await self._read_json(scope, receive)
        model, stream, params = self._request(ctx, scope, body)
        if "prompt" not in params:
            raise _Reject(400, "'prompt' is required for /completions.", param="prompt", code="missing_required_parameter")
        result = await self._until_disconnect(receive, self._call(ctx, model, stream, params, "completions"))
        if stream:
            await self._stream(ctx, receive, send, result, _spend_headers(ctx, None))
        else:
            await self._send_json(ctx, send, 200, _wire(result), _spend_headers(ctx, result))

    async def _operation(self, op: Operation, ctx: _Ctx, scope: Scope, receive: Receive, send: Send) -> None:
        """Any operation of :data:`modelyard.operations.OPERATIONS` but chat (``/embeddings`` ...), from its row.

        The body is JSON or, for a ``multipart`` row, an upload read as it arrives into spooled
        temporary files (:meth:`_read_upload`); the answer is JSON, plain text for the row's
        ``text_formats``, or binary streamed through as it arrives (:meth:`_send_binary`).
        """
        form = None
        if op.body == "multipart" and not op.files:
            # A row whose file fields the proxy does not know (image edits, for now): never read
            # from JSON, where a string would be taken as a file path on this host.
            raise _Reject(415, f"{op.paths[0]} takes a multipart upload, not served by this proxy yet.",
                          code="unsupported_media_type")  # fmt: skip
        if op.body == "multipart":
            form, body = await self._read_upload(op, scope, receive)
        else:
            body = await self._read_json(scope, receive)
        try:
            model, stream, params = self._request(ctx, scope, body)
            if stream and not op.streams_through:
                raise _Reject(400, f"'stream' is not supported by {op.paths[0]}.", param="stream", code="invalid_value")
            if stream:  # a native format (Messages API): its own events are streamed through
                params["stream"] = True
            if op.forward_headers:  # the row's headers a client may pass on (Operation.forward_headers)
                passed = {n.decode("latin-1"): v.decode("latin-1") for n, v in scope["headers"]
                          if n.decode("latin-1") in op.forward_headers}  # fmt: skip
                if passed:
                    params["extra_headers"] = passed
            for name in op.payload:
                if params.get(name) is None:
                    raise _Reject(400, f"{name!r} is required for {op.paths[0]}.", param=name, code="missing_required_parameter")
            result = await self._until_disconnect(receive, self._call(ctx, model, False, params, op.name))
        finally:
            if form is not None:
                form.close()  # the upload has been sent: the answer has started
        if op.answer == "binary":
            await self._send_binary(ctx, receive, send, result)
        elif params.get("response_format") in op.text_formats:
            await self._send_text(ctx, send, str(result.text), _spend_headers(ctx, result))
        else:
            await self._send_json(ctx, send, 200, _wire(result), _spend_headers(ctx, result))

    async def _read_upload(self, op: Operation, scope: Scope, receive: Receive) -> tuple[Any, dict[str, Any]]:
        """A ``multipart`` row's upload as the request body its operation takes, and the form to close.

        The limit is the row's ``max_upload_mb`` (Azure's 25 MB for audio) within
        ``general_settings.max_upload_size_mb``, enforced while reading (413, nothing sent
        upstream). Text fields are typed by the row's request model (``temperature`` "0.2" is
        0.2; a repeated ``name[]`` a list under ``name``); file parts become ``(filename, file,
        content_type)`` under their field name (a list for ``name[]``).
        """
        from pydantic import ValidationError

        from .files import read_multipart

        general = self.config.general_settings
        limit_mb, setting = general.max_upload_size_mb, "general_settings.max_upload_size_mb"
        if op.max_upload_mb is not None and op.max_upload_mb < limit_mb:
            limit_mb, setting = op.max_upload_mb, f"the provider's limit for {op.paths[0]}"
        names = tuple(dict.fromkeys(n.removesuffix("[]") for n in op.files))
        form = await read_multipart(
            scope, receive, limit=int(limit_mb * 1024 * 1024), limit_mb=limit_mb, files=(*names, *(f"{n}[]" for n in names)),
            required=None, endpoint=f"POST {op.paths[0]}", setting=setting,
        )  # fmt: skip
        try:
            fields: dict[str, Any] = {}
            for name, value in form.items:
                if name.endswith("[]"):
                    fields.setdefault(name[:-2], []).append(value)
                else:
                    fields[name] = value
            if fields.get("stream") in ("true", "false"):
                fields["stream"] = fields["stream"] == "true"
            typed = {k: v for k, v in fields.items() if k in op.request.model_fields}
            try:  # form fields are text: typed as the request model reads them (lax), then sent on strictly
                typed = op.request.model_validate(typed, strict=False).model_dump(exclude_unset=True)
            except ValidationError as exc:
                err = exc.errors()[0]
                field = ".".join(str(p) for p in err["loc"][:1]) or "(form)"
                raise _Reject(400, f"Invalid value for {field!r}: {err['msg']}.", param=field, code="invalid_value") from None
            for name in names:
                if name in fields:  # a text field where a file part belongs would be read as a path here
                    raise _Reject(400, f"{name!r} must be a file part of the upload, not a text field.",
                                  param=name, code="invalid_value")  # fmt: skip
            body: dict[str, Any] = {**fields, **typed}
            for field, filename, ctype, fileobj in form.parts:
                part = (filename or "upload", fileobj, ctype)
                if field.endswith("[]"):
                    body.setdefault(field[:-2], []).append(part)
                else:
                    body[field] = part
        except BaseException:
            form.close()
            raise
        return form, body

    async def _send_text(self, ctx: _Ctx, send: Send, text: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
        payload = text.encode()
        ctx.status = 200
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(payload)).encode()),
            (b"x-request-id", ctx.request_id.encode()), *(headers or ()),
        ]})  # fmt: skip
        await send({"type": "http.response.body", "body": payload})

    async def _send_binary(self, ctx: _Ctx, receive: Receive, send: Send, result: Any) -> None:
        """Stream a :class:`~modelyard.binary.BinaryResponse` to the client piece by piece as it arrives.

        Never read whole: each chunk the upstream sends is passed on at once (a slow speech
        answer starts playing before it is finished). A client disconnect stops the upstream
        read; an upstream that breaks off mid-body leaves the response incomplete, so the client
        sees a cut transfer rather than a short file taken for whole.
        """
        ctx.status = 200
        ctype = result.content_type or "application/octet-stream"
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", ctype.encode("latin-1")), (b"x-request-id", ctx.request_id.encode()),
        ]})  # fmt: skip

        async def pump() -> None:
            async for chunk in result.aiter_bytes():
                if chunk:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})

        try:
            await self._until_disconnect(receive, pump())
        except _Disconnected:
            ctx.status, ctx.error = 499, "client_disconnected"
        except APIError as err:
            ctx.error = type(err).__name__
            log.warning("request %s: the upstream broke off a binary answer: %s", ctx.request_id, err.message)
        finally:
            await result.aclose()

    def _until_disconnect(self, receive: Receive, work: Awaitable[_T]) -> Awaitable[_T]:
        """Await ``work`` (a model call, a stream being forwarded) unless the client leaves first.

        Once the request body is read, ``receive()`` only returns when the client disconnects;
        a watcher waiting on it cancels ``work`` at once instead of letting the upstream call run
        (and hold its deployment's in-flight slot) for a client that is gone. ``work`` runs in
        this task; the watcher is a task of its own, started only once ``work`` has run for
        about ``_WATCH_AFTER`` seconds, by a timer shared with the requests that started
        within a few milliseconds (:class:`~modelyard.proxy.disconnect.DisconnectWatch`): a
        call that answers sooner (a fast upstream, where the proxy's CPU per request matters
        most) costs a list append, not a task or a timer (issue 17).

        Raises:
            _Disconnected: the client disconnected first; ``work`` was cancelled.
        """
        return self._watch.run(receive, work)  # its coroutine, awaited by the caller: no frame of our own

    async def _stream(
        self, ctx: _Ctx, receive: Receive, send: Send, stream: Any, headers: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        """Forward a stream as server-sent events; a client disconnect cancels the upstream read."""
        ctx.status = 200
        await send({"type": "http.response.start", "status": 200,
                    "headers": [*_SSE_HEADERS, (b"x-request-id", ctx.request_id.encode()), *(headers or ())]})  # fmt: skip

        async def pump() -> None:
            ended = False
            try:
                async with stream:
                    # The pipeline's streams give a list per upstream read, with the events no
                    # plugin changes as JSON already: one send (one write) per read; the last one,
                    # when the upstream's [DONE] came with it, ends with END ("[DONE]") and the body.
                    items = stream._wire_items() if hasattr(stream, "_wire_items") else stream
                    async for chunk in items:  # read to its end, even after END: nothing is left to asyncio to close
                        if ended:
                            continue
                        if type(chunk) is list:
                            ended = chunk[-1] is END
                            data = b"\n\ndata: ".join([c if type(c) is bytes else _wire(c) for c in chunk])
                        else:
                            data = _wire(chunk)
                        await send({"type": "http.response.body", "body": b"data: " + data + b"\n\n", "more_body": not ended})
            except APIError as err:
                if ended:  # the answer is complete: nothing more can be sent
                    log.warning("request %s: the stream failed after its end: %s", ctx.request_id, err.message)
                    return
                ctx.error = type(err).__name__
                event = b"data: " + _dumps(err.to_response_body()) + b"\n\n"
                await send({"type": "http.response.body", "body": event, "more_body": True})
            if not ended:
                await send({"type": "http.response.body", "body": b"data: [DONE]\n\n", "more_body": False})

        try:
            await self._until_disconnect(receive, pump())
        except _Disconnected:
            ctx.status, ctx.error = 499, "client_disconnected"

    # ------------------------------------------------------------------ other endpoints

    async def _models(self, ctx: _Ctx, scope: Scope, receive: Receive, send: Send) -> None:
        names = self.deployments.model_names()
        if ctx.admission is not None:  # a virtual key sees the models it may use
            names = [n for n in names if self.virtual_keys.allows_model(ctx.admission, n)]
        data = [_model_object(name) for name in names]
        await self._send_json(ctx, send, 200, {"object": "list", "data": data})

    async def _model(self, ctx: _Ctx, scope: Scope, receive: Receive, send: Send) -> None:
        name = scope["modelyard.model"]
        if not self.deployments.get(name):
            raise self._unknown_model(name)
        await self._send_json(ctx, send, 200, _model_object(name))

    async def _metrics_page(self, ctx: _Ctx, scope: Scope, receive: Receive, send: Send) -> None:
        self.metrics.flush()  # here, on the loop that tallies
        payload, content_type = await asyncio.to_thread(self.metrics.render)  # multiprocess: reads files
        ctx.status = 200
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", content_type.encode()), (b"content-length", str(len(payload)).encode()),
                                (b"x-request-id", ctx.request_id.encode())]})  # fmt: skip
        await send({"type": "http.response.body", "body": payload})

    async def _openapi(self, ctx: _Ctx, scope: Scope, receive: Receive, send: Send) -> None:
        """The OpenAPI document of these endpoints, built once from the request models (see .openapi)."""
        if self._openapi_body is None:
            from importlib.metadata import version

            from .openapi import openapi_document

            document = openapi_document(self.deployments.model_names(), version=version("modelyard"), paths=self.paths.rows)
            self._openapi_body = _dumps(document)
        await self._send_json(ctx, send, 200, self._openapi_body)

    async def _liveliness(self, ctx: _Ctx, scope: Scope, receive: Receive, send: Send) -> None:
        await self._send_json(ctx, send, 200, "I'm alive!")

    async def _readiness(self, ctx: _Ctx, scope: Scope, receive: Receive, send: Send) -> None:
        db = "configured" if self.config.general_settings.database_url else "not configured"
        if self.shutting_down:
            await self._send_json(ctx, send, 503, {"status": "shutting down", "db": db})
            return
        await self._send_json(ctx, send, 200, {"status": "healthy", "db": db, "deployments": len(self.deployments)})

    async def _health(self, ctx: _Ctx, scope: Scope, receive: Receive, send: Send) -> None:
        """Probe every deployment concurrently (chat: a one-token request; batch: a files listing)."""
        results = await asyncio.gather(*(self._probe(d) for d in self.deployments))
        if self.metrics is not None:
            for d, (ok, _) in zip(self.deployments, results, strict=True):
                self.metrics.health(d.id, ok)
        healthy = [r for ok, r in results if ok]
        unhealthy = [r for ok, r in results if not ok]
        body = {"healthy_endpoints": healthy, "unhealthy_endpoints": unhealthy,
                "healthy_count": len(healthy), "unhealthy_count": len(unhealthy)}  # fmt: skip
        await self._send_json(ctx, send, 200, body)

    async def _probe(self, d: Deployment) -> tuple[bool, dict[str, Any]]:
        info = d.describe()
        probe = operation_for_mode(d.mode)
        if probe is None and d.mode != "batch":
            info["status"] = f"not probed (mode {d.mode})"
            return True, info
        started = time.perf_counter()
        kwargs = {**d.kwargs, "timeout": min(float(d.kwargs.get("timeout") or 30), 30.0), "num_retries": 0}
        with no_scope():  # a probe is not part of the /health request's upstream time
            return await self._probe_call(d, probe, info, kwargs, started)

    async def _probe_call(
        self, d: Deployment, probe: Operation | None, info: dict[str, Any], kwargs: dict[str, Any], started: float
    ) -> tuple[bool, dict[str, Any]]:
        from .. import api

        try:
            if d.mode == "batch":
                # A batch-only deployment refuses chat; listing its resource's files spends no tokens.
                from .. import files
                from ..types import Connection

                keep = set(Connection.model_fields) | {"timeout", "num_retries"}
                provider = d.model.split("/", 1)[0]
                await files.afile_list(custom_llm_provider=provider, **{k: v for k, v in kwargs.items() if k in keep})
            elif probe is not None and probe.name == "embeddings":
                # The cheapest real call: one one-word input, one token billed.
                await api.aembedding(model=d.model, input="ping", **kwargs)
            elif probe is not None and probe.name == "image_generation":
                # A picture costs money (dall-e-3: $0.04 at 1024x1024); a size no image model
                # makes is checked by the deployment and refused with a 400 naming ``size``
                # before anything is generated or billed. That answer proves the endpoint, the
                # credentials, the deployment, its api-version and that it serves images.
                try:
                    await api.aimage_generation(model=d.model, prompt="ping", size=_PROBE_SIZE, **kwargs)
                except BadRequestError as err:
                    if not _refused_size(err):
                        raise
            elif probe is not None and probe.name == "speech":
                # One character of speech (tts-1: $15 per million characters), read and dropped.
                audio = await api.aspeech(model=d.model, input=".", voice="alloy", response_format="wav", **kwargs)
                await audio.aread()
            elif probe is not None and probe.name == "responses":
                # A deployment serving only the Responses API (codex): the smallest response the upstream
                # takes (max_output_tokens >= 16), not stored.
                await api.aresponses(model=d.model, input="ping", max_output_tokens=16, store=False, **kwargs)
            elif probe is not None and probe.name == "transcriptions":
                # A tenth of a second of generated silence (billed as the shortest audio).
                await api.atranscription(model=d.model, file=("probe.wav", _probe_wav()), response_format="text", **kwargs)
            else:
                await api.acompletion(model=d.model, messages=[{"role": "user", "content": "ping"}], max_tokens=1, **kwargs)
        except APIError as err:
            info["error"] = f"{type(err).__name__} ({err.status_code}): {err.message}"
            return False, info
        except Exception as err:  # a plugin or config problem must not break the health page
            info["error"] = type(err).__name__
            return False, info
        info["latency_ms"] = round((time.perf_counter() - started) * 1000, 1)
        return True, info


_ALWAYS = ("id", "object", "created", "model", "choices")
_PROBE_SIZE = "1x1"
"""The image size ``/health`` asks an image deployment for: refused before generation, free."""


def _refused_size(err: BadRequestError) -> bool:
    """Whether a probe's 400 is the deployment refusing :data:`_PROBE_SIZE` (healthy), not another fault."""
    if err.status_code != 400 or err.code in ("OperationNotSupported", "DeploymentNotFound"):
        return False
    return err.param == "size" or "size" in (err.code or "").lower() or "size" in err.message.lower()


@functools.cache
def _probe_wav() -> bytes:
    """A tenth of a second of 16 kHz mono silence as a WAV file: the transcription probe's upload."""
    import io
    import wave

    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(b"\0\0" * 1600)
    return out.getvalue()


def _serves(op: Operation, mode: str) -> bool:
    """Whether a deployment of ``model_info.mode`` ``mode`` may take ``op``.

    Chat and completions go to every deployment whose mode no other operation claims (no mode
    is ``chat``; ``batch``, ``responses`` ... as today); every other operation only to its modes.
    """
    if op.name in ("chat", "completions"):
        return mode not in _NON_CHAT_MODES
    return mode in op.modes


def _check_mode(op: Operation, model: str, deployments: list[Deployment]) -> None:
    """A 400 naming the model's mode when one of its deployments cannot serve ``op``: never a misroute."""
    for d in deployments:
        if not _serves(op, d.mode):
            wanted = " or ".join(sorted(op.modes))
            raise _Reject(400, f"The model {model!r} is a {d.mode!r} deployment (model_info.mode: {d.mode}); "
                          f"{op.paths[0]} needs a deployment of mode {wanted}.", param="model",
                          code="invalid_model_mode")  # fmt: skip


def _spend_headers(ctx: _Ctx, result: Any) -> list[tuple[bytes, bytes]]:
    """The deployment that served the call and, once known, its cost (docs/spend.md).

    ``x-modelyard-response-cost`` and LiteLLM's ``x-litellm-response-cost`` carry the USD cost
    (absent when no price is known, and on streams, whose cost is known only after the headers
    are sent); ``x-modelyard-deployment-id`` and LiteLLM's ``x-litellm-model-id`` the deployment.
    """
    headers: list[tuple[bytes, bytes]] = []
    if ctx.deployment:
        deployment = ctx.deployment.encode("ascii", "replace")
        headers += [(b"x-modelyard-deployment-id", deployment), (b"x-litellm-model-id", deployment)]
    # A pipeline result's cost is its _hidden_params' response_cost (what its ``cost`` property
    # reads): from pydantic's private dict, skipping the model's slow __getattr__.
    private = getattr(result, "__pydantic_private__", None)
    hidden = private.get("_hidden_params") if private else None
    cost = hidden.get("response_cost") if type(hidden) is dict else getattr(result, "cost", None)
    if isinstance(cost, float | int):
        value = repr(float(cost)).encode()
        headers += [(b"x-modelyard-response-cost", value), (b"x-litellm-response-cost", value)]
    return headers


def _wire(result: Any) -> bytes:
    """A response or chunk as JSON: the fields the upstream sent (no invented nulls), plus the
    envelope fields OpenAI clients expect even when the pipeline built the object itself
    (simulated streams, text-to-chat conversion)."""
    private = getattr(result, "__pydantic_private__", None)
    upstream = private.get("_upstream") if private else None
    if upstream is not None and upstream[0] == id(result):  # the upstream's answer, no plugin changed it
        return upstream[1]  # type: ignore[no-any-return]
    fields = type(result).model_fields
    result.__pydantic_fields_set__.update(f for f in _ALWAYS if f in fields)
    return result.model_dump_json(exclude_unset=True).encode()  # type: ignore[no-any-return]


def _invalid_answer(exc: ValidationError) -> dict[str, Any]:
    """The 502 body for an upstream answer that does not validate: its first error, by field."""
    err = exc.errors(include_url=False, include_input=False)[0]
    field = ".".join(str(p) for p in err["loc"]) or "(the answer)"
    message = f"The upstream's answer is not a valid {exc.title}: {field!r}: {err['msg']}."
    return {"error": {"message": message, "type": "api_error", "param": None, "code": "invalid_upstream_answer"}}


def _model_object(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": 1677610602, "owned_by": "modelyard"}


def _status(err: APIError) -> int:
    status = int(err.status_code)
    return status if 400 <= status <= 599 else 500


def _retry_after(err: APIError) -> list[tuple[bytes, bytes]] | None:
    """A ``retry-after`` header for an error that says when to come back.

    An upstream's 429, or the Router's 429 / 5xx when no deployment of the group is available
    (every one cooling down, at its limits or out of quota).

    A 501 for a call no loaded plugin serves (``PluginNotLoadedError``) gets ``x-should-retry:
    false`` instead: the openai SDKs honour it rather than retrying a 5xx that cannot change.
    """
    if err.code == "plugin_not_loaded" and err.status_code >= 500:
        return [(b"x-should-retry", b"false")]
    seconds = getattr(err, "retry_after", None)
    if (err.status_code != 429 and err.status_code < 500) or not isinstance(seconds, int | float) or seconds < 0:
        return None
    return [(b"retry-after", str(max(1, math.ceil(seconds))).encode())]
