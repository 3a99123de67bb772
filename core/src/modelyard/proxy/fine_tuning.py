"""The proxy's fine-tuning endpoints: OpenAI's paths in front of :mod:`modelyard.fine_tuning`.

Each with and without ``/v1``: ``POST/GET /fine_tuning/jobs``, ``GET /fine_tuning/jobs/{id}``,
``POST /fine_tuning/jobs/{id}/cancel``, ``GET /fine_tuning/jobs/{id}/events``,
``GET /fine_tuning/jobs/{id}/checkpoints``.

The provider is chosen as for ``/files``: the ``custom-llm-provider`` header, else the
``custom_llm_provider`` query parameter or body field, else ``azure``, with the provider's
settings from the environment (``AZURE_API_BASE``, ``AZURE_API_KEY`` ...), as LiteLLM does.
Every job the proxy creates is recorded in the store (:mod:`modelyard.store.fine_tuning`:
job id -> provider), so a later call without a provider, after a restart or on another
instance, reaches the provider that holds the job. The store is opened at the first fine-tuning
call (the one batch load balancing uses, when that is on), never on the chat path.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ..errors import BadRequestError, ConfigError, NotFoundError
from .files import FilesEndpoints, _query

if TYPE_CHECKING:
    from .app import ProxyApp

__all__ = ["FineTuningEndpoints"]

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Handler = Callable[[Any, Scope, Receive, Send], Awaitable[None]]

log = logging.getLogger("modelyard.proxy")

_ID = r"([^/]+)"
_PATTERNS: list[tuple[str, re.Pattern[str], str]] = []
for _prefix in ("", "/v1"):
    _PATTERNS += [
        ("GET", re.compile(rf"^{_prefix}/fine_tuning/jobs/{_ID}$"), "retrieve"),
        ("POST", re.compile(rf"^{_prefix}/fine_tuning/jobs/{_ID}/cancel$"), "cancel"),
        ("GET", re.compile(rf"^{_prefix}/fine_tuning/jobs/{_ID}/events$"), "events"),
        ("GET", re.compile(rf"^{_prefix}/fine_tuning/jobs/{_ID}/checkpoints$"), "checkpoints"),
    ]
# The create body's fields that are arguments of acreate_fine_tuning_job; others go in extra_body.
_CREATE_FIELDS = ("model", "training_file", "hyperparameters", "suffix", "validation_file", "integrations", "seed")
_PROXY_FIELDS = frozenset({"custom_llm_provider"})


class FineTuningEndpoints:
    """The fine-tuning handlers of one :class:`~modelyard.proxy.ProxyApp`.

    Args:
        app: the proxy (its JSON helpers, store settings and error rendering are reused).
    """

    def __init__(self, app: ProxyApp) -> None:
        self.app = app
        self._store_lock = threading.Lock()
        self._store_failed = False

    def routes(self) -> dict[str, Handler]:
        """The exact-path routes (``METHOD path``), with and without ``/v1``."""
        out: dict[str, Handler] = {}
        for prefix in ("", "/v1"):
            out[f"POST {prefix}/fine_tuning/jobs"] = self.create
            out[f"GET {prefix}/fine_tuning/jobs"] = self.list
        return out

    def match(self, method: str, path: str, scope: Scope) -> Handler | None:
        """The handler for a path with a job id, or None; the id goes in the scope."""
        for verb, pattern, name in _PATTERNS:
            found = pattern.match(path)
            if found is not None and verb == method:
                scope["modelyard.id"] = found.group(1)
                handler: Handler = getattr(self, name)
                return handler
        return None

    def allows(self, path: str) -> bool:
        """True when ``path`` is one of these endpoints' paths (for 405 answers)."""
        return any(pattern.match(path) for _, pattern, _ in _PATTERNS)

    # ------------------------------------------------------------------ the store

    def _store(self) -> Any:
        """The proxy's store, opened on first use (None when it cannot be: logged once)."""
        if self.app.store is not None or self._store_failed:
            return self.app.store
        with self._store_lock:
            if self.app.store is None and not self._store_failed:
                from ..store import Store

                general = self.app.config.general_settings
                url = general.database_url.get_secret_value() if general.database_url is not None else None
                try:
                    self.app.store = Store(url, path=self.app.config.modelyard_settings.store_path)
                except (ConfigError, ImportError) as exc:
                    self._store_failed = True
                    log.warning("fine-tuning jobs are not recorded (retrieve them with a custom-llm-provider "
                                "header): %s", exc)  # fmt: skip
        return self.app.store

    def _record(self, job_id: str, provider: str) -> None:
        from ..store.fine_tuning import FineTuningJobRecord, put_fine_tuning_job

        store = self._store()
        if store is not None:
            put_fine_tuning_job(store, FineTuningJobRecord(id=job_id, provider=provider))

    def _recorded(self, job_id: str) -> str | None:
        from ..store.fine_tuning import get_fine_tuning_job

        store = self._store()
        record = get_fine_tuning_job(store, job_id) if store is not None else None
        return record.provider if record is not None else None

    async def _provider_for(self, scope: Scope) -> str:
        """The provider for a job id: the one named, else the one recorded, else ``azure``."""
        provider, named = FilesEndpoints._provider(scope)
        if named:
            return provider
        job_id = scope["modelyard.id"]
        try:
            recorded = await asyncio.to_thread(self._recorded, job_id)
        except Exception as exc:  # a store that cannot be read: decide as if the job were not recorded
            log.warning("the store could not be read for fine-tuning job %s (%s)", job_id, type(exc).__name__)
            recorded = None
        if recorded is not None:
            return recorded
        if self.app.files.router is not None:  # as for files: ids the proxy does not know need a provider
            raise NotFoundError(f"No fine-tuning job with id {job_id!r} on this proxy (send a 'custom-llm-provider' "
                                "header for a job created on a provider directly).", param="fine_tuning_job_id")  # fmt: skip
        return provider

    async def _json(self, ctx: Any, send: Send, result: Any) -> None:
        await self.app._send_json(ctx, send, 200, result.model_dump_json().encode())

    @staticmethod
    def _paging(scope: Scope) -> dict[str, Any]:
        query = _query(scope)
        return {"after": query.get("after") or None, "limit": FilesEndpoints._limit(query.get("limit"))}

    # ------------------------------------------------------------------ handlers

    async def create(self, ctx: Any, scope: Scope, receive: Receive, send: Send) -> None:
        """``POST /fine_tuning/jobs``: created on the provider, and recorded."""
        import modelyard

        body = await self.app._read_json(scope, receive)
        if not isinstance(body.get("training_file"), str) or not body.get("training_file"):
            raise BadRequestError("'training_file' is required: the id POST /files (purpose 'fine-tune') returned.",
                                  param="training_file", code="missing_required_parameter")  # fmt: skip
        provider, _ = FilesEndpoints._provider(scope, body)
        args: dict[str, Any] = {k: body.get(k) for k in _CREATE_FIELDS}  # missing ones are None: the SDK names them (400)
        extra = {k: v for k, v in body.items() if k not in _CREATE_FIELDS and k not in _PROXY_FIELDS}
        job = await modelyard.acreate_fine_tuning_job(**args, custom_llm_provider=provider, extra_body=extra or None)
        try:
            await asyncio.to_thread(self._record, job.id, provider)
        except Exception as exc:  # the job exists upstream: answer with it rather than lose its id
            log.warning("fine-tuning job %s was created but not recorded in the store (%s); later calls for it "
                        "need a custom-llm-provider header", job.id, type(exc).__name__)  # fmt: skip
        await self._json(ctx, send, job)

    async def list(self, ctx: Any, scope: Scope, receive: Receive, send: Send) -> None:
        """``GET /fine_tuning/jobs[?after=&limit=]``: the provider's jobs, newest first."""
        import modelyard

        provider, _ = FilesEndpoints._provider(scope)
        await self._json(ctx, send, await modelyard.alist_fine_tuning_jobs(**self._paging(scope), custom_llm_provider=provider))

    async def retrieve(self, ctx: Any, scope: Scope, receive: Receive, send: Send) -> None:
        """``GET /fine_tuning/jobs/{id}``."""
        import modelyard

        provider = await self._provider_for(scope)
        await self._json(ctx, send, await modelyard.aretrieve_fine_tuning_job(scope["modelyard.id"], custom_llm_provider=provider))

    async def cancel(self, ctx: Any, scope: Scope, receive: Receive, send: Send) -> None:
        """``POST /fine_tuning/jobs/{id}/cancel``."""
        import modelyard

        provider = await self._provider_for(scope)
        await self._json(ctx, send, await modelyard.acancel_fine_tuning_job(scope["modelyard.id"], custom_llm_provider=provider))

    async def events(self, ctx: Any, scope: Scope, receive: Receive, send: Send) -> None:
        """``GET /fine_tuning/jobs/{id}/events[?after=&limit=]``."""
        import modelyard

        provider = await self._provider_for(scope)
        result = await modelyard.alist_fine_tuning_job_events(scope["modelyard.id"], **self._paging(scope),
                                                               custom_llm_provider=provider)  # fmt: skip
        await self._json(ctx, send, result)

    async def checkpoints(self, ctx: Any, scope: Scope, receive: Receive, send: Send) -> None:
        """``GET /fine_tuning/jobs/{id}/checkpoints[?after=&limit=]``."""
        import modelyard

        provider = await self._provider_for(scope)
        result = await modelyard.alist_fine_tuning_job_checkpoints(scope["modelyard.id"], **self._paging(scope),
                                                                    custom_llm_provider=provider)  # fmt: skip
        await self._json(ctx, send, result)
