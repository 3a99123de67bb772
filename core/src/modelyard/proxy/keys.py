"""Virtual keys, teams and budgets: who may call which model, how often, for how much (docs/keys.md).

A client may send, instead of the master key, a virtual key made with ``POST /key/generate``
(``sk-`` and 32 random URL-safe characters: 192 bits). The store keeps only its SHA-256: for a
random key of that entropy a fast hash is as safe as a slow one (there is no dictionary to
try, and 2^192 guesses are out of reach), while bcrypt or argon2 would add tens of
milliseconds to every request. The key is shown once, in the answer that creates it; ``/key/info``
shows ``sk-...abcd``; logs, errors and spend rows carry the hash (``token``) at most.

Per request (:class:`VirtualKeys`):

1. **Authenticate** (every endpoint but the public health paths): the key's row and its team's
   come from a short in-process cache (``general_settings.user_api_key_cache_ttl``, 5 s by
   default; 0 turns the cache off), else from the store in a worker thread. Unknown, deleted, expired or blocked:
   401. A key deleted through any instance is refused by every instance at most that many
   seconds later (at once on the instance that deleted it).
2. **Rate limits** (:mod:`.key_limits`): ``rpm_limit``, ``tpm_limit``,
   ``max_parallel_requests`` of the key and its team; 429 with ``retry-after``.
3. **Model and budget**, where the model is known (every model call): a model outside the
   key's or team's ``models`` is refused with 403 naming it. Then the most the call can cost
   is reserved against the key's and the team's remaining budget, in memory, from this
   process's lease of it (:mod:`.ledger`; a renewal, one store transaction, when the lease
   cannot cover the call); when it does not fit, 429 ``insufficient_quota`` /
   ``budget_exceeded`` with ``x-should-retry: false``, nothing sent upstream. A key and team
   without ``max_budget`` never reserve and are never refused for budget.
4. **Settle** when the answer is complete (a stream at its end, a failure at once): the
   reservation is released and the real cost of the pipeline calls (retries and fallbacks
   included) is added to the ledger's pending spend, written to the store with its next sync
   (within a second); a call answered without a usage to price it (a stream on an api-version
   that cannot send its usage) is charged its reservation. Spend of rows without a budget is
   batched likewise and written once a second.

The request's principal (:class:`Principal`: key hash, alias, team id, user id) is on the
request's context as ``ctx.principal`` and in the ASGI scope as ``scope["modelyard.principal"]``;
None for the master key.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import logging
import math
import secrets
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import to_json

from ..pricing import price_overrides, resolve
from .key_limits import Limiter, LimitHit, Usage, Want
from .ledger import Entry, Ledger

if TYPE_CHECKING:
    from ..store.keys import KeyRecord, KeyStore, TeamRecord
    from ..store.ledger import LeaseStore
    from .app import ProxyApp
    from .deployments import Deployment

__all__ = ["Principal", "Refusal", "VirtualKeys", "hash_key", "mask_key", "new_key"]

log = logging.getLogger("modelyard.proxy.keys")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

DEFAULT_OUTPUT_TOKENS = 16384
"""Output tokens reserved for a call that sets no ``max_tokens`` on a model whose output limit is unknown."""
_CACHE_MAX = 10_000
_ALL_MODELS = frozenset({"*", "all-proxy-models"})


def new_key() -> str:
    """A fresh virtual key: ``sk-`` and 32 URL-safe characters (192 random bits)."""
    return "sk-" + secrets.token_urlsafe(24)


def hash_key(key: str) -> str:
    """The SHA-256 (hex) the store keeps for ``key``; a 64-hex-digit string is taken as a hash already."""
    if len(key) == 64 and all(c in "0123456789abcdef" for c in key):
        return key
    return hashlib.sha256(key.encode()).hexdigest()


def mask_key(key: str) -> str:
    """``sk-...abcd``: enough to tell keys apart, nothing to use."""
    return f"{key[:3]}...{key[-4:]}"


@dataclass(frozen=True)
class Principal:
    """Who a request authenticated as (None on the request: the master key).

    Attributes:
        token: the key's SHA-256 (its id in the store and in spend rows); never the key.
        key_alias: the key's alias, if any.
        team_id: the key's team, if any.
        user_id: the key's user, if any.
    """

    token: str
    key_alias: str | None = None
    team_id: str | None = None
    user_id: str | None = None


class Refusal(Exception):
    """A request refused by a key, team, limit or budget: status, OpenAI error body, headers."""

    def __init__(self, status: int, message: str, *, type: str, code: str, param: str | None = None,
                 headers: list[tuple[bytes, bytes]] | None = None) -> None:  # fmt: skip
        super().__init__(message)
        self.status = status
        self.code = code
        self.body = {"error": {"message": message, "type": type, "param": param, "code": code}}
        self.headers = headers or []


def _invalid_key(message: str = "Invalid API key.", code: str = "invalid_api_key") -> Refusal:
    return Refusal(401, message, type="authentication_error", code=code)


@dataclass
class Admission:
    """What one request of a virtual key holds: its rows, rate-limit slots and budget reservation."""

    principal: Principal
    key: KeyRecord
    team: TeamRecord | None
    wants: list[Want]
    usage: Usage
    key_reserved: float | None = None
    team_reserved: float | None = None
    key_entry: Entry | None = None  # the ledger entries holding the reservations
    team_entry: Entry | None = None
    key_state: tuple[float, float, float] | None = (
        None  # spend, reserved, max_budget after reserving
    )
    team_state: tuple[float, float, float] | None = None
    done: bool = False


# ---------------------------------------------------------------------- admin request bodies


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")

    models: list[str] | None = None
    max_budget: float | None = Field(default=None, ge=0)
    budget_duration: str | None = None
    rpm_limit: int | None = Field(default=None, ge=0)
    tpm_limit: int | None = Field(default=None, ge=0)
    max_parallel_requests: int | None = Field(default=None, ge=0)
    metadata: dict[str, Any] | None = None
    blocked: bool | None = None

    @field_validator("budget_duration")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        from ..store.keys import parse_duration

        if value is not None:
            parse_duration(value, "budget_duration")
        return value


class _KeyBody(_Body):
    key_alias: str | None = Field(default=None, max_length=255)
    team_id: str | None = None
    user_id: str | None = None
    duration: str | None = None
    expires: datetime | None = None

    @field_validator("duration")
    @classmethod
    def _key_duration(cls, value: str | None) -> str | None:
        from ..store.keys import parse_duration

        if value is not None:
            parse_duration(value, "duration")
        return value


class _KeyUpdate(_KeyBody):
    key: str
    spend: float | None = Field(default=None, ge=0)


class _TeamBody(_Body):
    team_id: str | None = Field(default=None, max_length=128)
    team_alias: str | None = Field(default=None, max_length=255)


class _TeamUpdate(_TeamBody):
    team_id: str = Field(max_length=128)
    spend: float | None = Field(default=None, ge=0)


class _KeyDelete(BaseModel):
    model_config = ConfigDict(extra="forbid")
    keys: list[str] | None = None
    key_aliases: list[str] | None = None


class _TeamDelete(BaseModel):
    model_config = ConfigDict(extra="forbid")
    team_ids: list[str]


def _iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, UTC).isoformat() if ts is not None else None


def _limits_out(record: Any) -> dict[str, Any]:
    return {
        "models": record.models, "max_budget": record.max_budget, "spend": round(record.spend, 10),
        "budget_duration": record.budget_duration, "budget_reset_at": _iso(record.budget_reset_at),
        "rpm_limit": record.rpm_limit, "tpm_limit": record.tpm_limit,
        "max_parallel_requests": record.max_parallel_requests, "metadata": record.metadata,
        "blocked": record.blocked, "created_at": _iso(record.created_at), "updated_at": _iso(record.updated_at),
    }  # fmt: skip


def key_info(record: KeyRecord) -> dict[str, Any]:
    """A key as the admin API shows it: hash (``token``), masked ``key_name``, limits; never the key."""
    return {"token": record.token, "key_name": record.key_name, "key_alias": record.key_alias,
            "team_id": record.team_id, "user_id": record.user_id, "expires": _iso(record.expires),
            **_limits_out(record)}  # fmt: skip


def team_info(record: TeamRecord) -> dict[str, Any]:
    """A team as the admin API shows it."""
    return {"team_id": record.team_id, "team_alias": record.team_alias, **_limits_out(record)}


def _validation(exc: ValidationError) -> Refusal:
    err = exc.errors()[0]
    field_name = ".".join(str(p) for p in err["loc"]) or "(body)"
    message = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        message = "unknown field"
    return Refusal(400, f"Invalid {field_name!r}: {message}.", type="invalid_request_error",
                   code="invalid_value", param=field_name)  # fmt: skip


# ---------------------------------------------------------------------- cost bound


_PRICING_ARGS: dict[int, tuple[Deployment, dict[str, Any]]] = {}
_RATES: dict[int, tuple[dict[str, Any], tuple[float, float, Any]]] = {}
_prompt_json = json.JSONEncoder(ensure_ascii=False, default=str).encode
"""``json.dumps(prompt, ensure_ascii=False, default=str)``, its encoder built once: for the
prompts pydantic-core's encoder refuses (a lone surrogate, which the proxy's body decoding keeps)."""


def _prompt_bytes(prompt: Any) -> int:
    """The length of the prompt's compact UTF-8 JSON: pydantic-core's encoder, a sixth of the time
    of ``json.dumps``'s (issue 17, round twelve); 0 for what JSON cannot hold."""
    try:
        return len(to_json(prompt))
    except (TypeError, ValueError):
        pass
    try:
        return len(_prompt_json(prompt).encode("utf-8", "surrogatepass"))
    except (TypeError, ValueError):
        return 0


def _rates(prices: dict[str, Any]) -> tuple[float, float, Any]:
    """A price entry's input price per token, dearest output price per token (text or reasoning),
    and ``max_output_tokens``: worked out once per entry (pricing hands out the same dict until
    the prices change, then a new one)."""
    found = _RATES.get(id(prices))
    if found is not None and found[0] is prices:
        return found[1]
    rates = (
        float(prices.get("input_cost_per_token") or 0),
        max(float(prices.get("output_cost_per_token") or 0), float(prices.get("output_cost_per_reasoning_token") or 0)),
        prices.get("max_output_tokens"),
    )
    if len(_RATES) > 4096:
        _RATES.clear()
    _RATES[id(prices)] = (prices, rates)
    return rates


def max_cost(deployments: list[Deployment], operation: str, params: dict[str, Any]) -> float:
    """The most one call can cost on any deployment of its group, in USD (0 when unknown).

    Prompt tokens are bounded by the UTF-8 length in bytes of the prompt's JSON (``messages``,
    ``prompt``, ``input``): a token of a BPE vocabulary covers at least one byte, and the JSON
    punctuation pays for the per-message overhead. Output: ``max_tokens`` /
    ``max_completion_tokens`` / ``max_output_tokens``, else the model's ``max_output_tokens``
    from its prices, else :data:`DEFAULT_OUTPUT_TOKENS`; times ``n``. Priced at the dearest of the
    group's deployments (input at the full, uncached price; output at the dearer of the text and
    reasoning prices). Operations billed per image, character or second reserve 0 (refused only
    once the budget is spent).
    """
    if operation not in ("chat", "completions", "embeddings", "responses"):
        return 0.0
    prompt_tokens = _prompt_bytes(params.get("messages") or params.get("prompt") or params.get("input") or "")
    asked = (
        params.get("max_tokens")
        or params.get("max_completion_tokens")
        or params.get("max_output_tokens")
    )
    n = params["n"] if isinstance(params.get("n"), int) and params["n"] > 0 else 1
    worst = 0.0
    for d in deployments:
        found = _PRICING_ARGS.get(id(d))
        if found is None or found[0] is not d:  # a deployment's kwargs are fixed: read them once
            info = d.kwargs.get("model_info") or {}
            provider, _, name = d.model.partition("/")
            if len(_PRICING_ARGS) > 4096:
                _PRICING_ARGS.clear()
            found = _PRICING_ARGS[id(d)] = (d, {"overrides": price_overrides(d.kwargs, info) or None,
                                                "base_model": d.kwargs.get("base_model"),
                                                "deployment": name.rsplit("/", 1)[-1], "provider": provider})  # fmt: skip
        _, prices = resolve(**found[1])  # cached by pricing, which drops it when prices change
        if prices is None:
            continue
        input_rate, output_rate, model_limit = _rates(prices)
        cost = prompt_tokens * input_rate
        if operation != "embeddings":
            limit = asked if isinstance(asked, int) and asked > 0 else model_limit
            out = int(limit) if isinstance(limit, int | float) and limit > 0 else DEFAULT_OUTPUT_TOKENS
            cost += out * n * output_rate
        worst = max(worst, cost)
    return worst


# ---------------------------------------------------------------------- the per-request side


class VirtualKeys:
    """Virtual keys for one :class:`~modelyard.proxy.app.ProxyApp`: authentication, limits, budgets, admin API.

    Args:
        app: the proxy (its config, JSON helpers and master key check).
    """

    def __init__(self, app: ProxyApp) -> None:
        self.app = app
        general = app.config.general_settings
        self.cache_ttl = float(general.user_api_key_cache_ttl)
        self._cache: dict[str, tuple[float, *_Who]] = {}  # token: (expiry, key, team, principal, limits)
        self._lookups: dict[str, asyncio.Future[Any]] = {}  # token -> its store lookup in flight
        self._store: KeyStore | None = None
        self._owned: Any = None
        # Two first requests at once (the dashboard lists keys while creating a team) must not
        # both open the store: SQLite refuses the second table creation ("Cannot open the store").
        self._opening = threading.Lock()
        self._leases: LeaseStore | None = None
        self.ledger = Ledger(self._leasestore)
        self._periods: dict[str, float] = {}
        self._pending_keys: dict[str, float] = {}
        self._pending_teams: dict[str, float] = {}
        self._flusher: asyncio.Task[None] | None = None
        rs = app.config.router_settings
        redis: dict[str, Any] | None = None
        if rs.redis_url is not None:
            redis = {"url": rs.redis_url.get_secret_value()}
        elif rs.redis_host:
            redis = {"host": rs.redis_host, "port": rs.redis_port,
                     "password": rs.redis_password.get_secret_value() if rs.redis_password else None}  # fmt: skip
        self.limiter = Limiter(redis)

    def __repr__(self) -> str:
        return f"VirtualKeys(cache_ttl={self.cache_ttl:g}, {self.limiter!r})"

    # ------------------------------------------------------------------ the store

    def _keystore(self) -> KeyStore:
        """The key store, opened on first use (in a worker thread: it may create the tables)."""
        if self._store is not None:
            return self._store
        with self._opening:
            if self._store is None:
                from ..store import Store
                from ..store.keys import KeyStore

                shared = self.app.store  # the proxy's store (spend records, files), when it has one open
                if shared is None:
                    general = self.app.config.general_settings
                    url = general.database_url.get_secret_value() if general.database_url is not None else None
                    shared = self._owned = Store(url, path=self.app.config.modelyard_settings.store_path)
                self._store = KeyStore(shared)
        return self._store

    def _leasestore(self) -> LeaseStore:
        """The budget leases of this process, in the key store (opened on first use, in a worker thread)."""
        if self._leases is None:
            import uuid

            from ..store.ledger import LeaseStore

            self._leases = LeaseStore(self._keystore().store, owner=uuid.uuid4().hex)
        return self._leases

    async def _db(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """Call a :class:`~modelyard.store.keys.KeyStore` method in a worker thread."""

        def run() -> Any:
            return getattr(self._keystore(), method)(*args, **kwargs)

        return await asyncio.to_thread(run)

    async def aclose(self) -> None:
        """Write the batched spend, close Redis and the store (at shutdown)."""
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
            self._flusher = None
        await self._flush()
        await self.ledger.aclose()
        await self.limiter.aclose()
        if self._owned is not None:
            self._owned.close()
        self._owned, self._store = None, None

    def forget(self, *tokens: str) -> None:
        """Drop keys from this instance's cache (after an update or delete here); a lookup of
        one still in flight is not cached, and the next request looks it up anew."""
        if not tokens:
            self._cache.clear()
            self._lookups.clear()
        for token in tokens:
            self._cache.pop(token, None)
            self._lookups.pop(token, None)

    async def _lookup(self, token: str, now: float) -> _Who:
        """The key, its team, its principal and limits, from the store, one lookup per key at a
        time: the requests that find no cached entry together (a key's first burst, or every
        request in flight when its entry expires) wait for the same one, rather than each
        queueing its own for the threads."""
        pending = self._lookups.get(token)
        if pending is None:
            pending = self._lookups[token] = asyncio.ensure_future(self._fetch(token))
            pending.add_done_callback(functools.partial(self._looked_up, token, now))
        found: _Who = await asyncio.shield(pending)
        return found

    async def _fetch(self, token: str) -> _Who:
        key, team = await self._db("key_with_team", token)
        return (key, team, *_who(key, team))

    def _looked_up(self, token: str, started: float, lookup: asyncio.Future[Any]) -> None:
        if self._lookups.get(token) is not lookup:
            return  # forgotten meanwhile (updated or deleted here): not cached
        del self._lookups[token]
        if lookup.cancelled() or lookup.exception() is not None:
            return
        if len(self._cache) >= _CACHE_MAX:
            self._cache.clear()
        self._cache[token] = (started + self.cache_ttl, *lookup.result())

    # ------------------------------------------------------------------ authentication

    async def authenticate(self, presented: bytes | None, method: str, path: str) -> Admission:
        """The admission of a request carrying a key that is not the master key.

        Raises:
            Refusal: 401 for a missing, unknown, deleted, expired or blocked key (or team);
                429 for a rate limit or (``POST /batches``) a spent budget.
        """
        if presented is None:
            raise _invalid_key(
                "Missing API key: send the proxy's master key or a virtual key as 'Authorization: Bearer <key>' "
                "or in an 'api-key' or 'x-api-key' header.")  # fmt: skip
        try:
            key_text = presented.decode()
        except UnicodeDecodeError:
            raise _invalid_key() from None
        if not key_text.startswith("sk-") or len(key_text) > 256:
            raise _invalid_key()
        token = hashlib.sha256(presented).hexdigest()
        now = time.monotonic()
        cached = self._cache.get(token)
        if cached is not None and cached[0] > now:
            _, key, team, principal, wants = cached
        else:
            key, team, principal, wants = await self._lookup(token, now)
        if key is None:
            raise _invalid_key()
        if key.blocked:
            raise _invalid_key("This API key is blocked.", "key_blocked")
        if key.expires is not None and key.expires <= time.time():
            raise _invalid_key(f"This API key expired at {_iso(key.expires)}.", "key_expired")
        if key.team_id is not None and (team is None or team.blocked):
            raise _invalid_key(f"The team {key.team_id!r} of this API key is {'blocked' if team else 'deleted'}.",
                               "team_blocked")  # fmt: skip
        assert principal is not None
        try:
            usage = await self.limiter.acquire(wants) if wants else Usage(parallel=[])
        except LimitHit as hit:
            raise Refusal(
                429, f"This API key's {hit.want.kind} reached its {hit.limit} of {hit.value}; retry in {hit.retry_after} s.",
                type="rate_limit_error", code="rate_limit_exceeded",
                headers=[(b"retry-after", str(hit.retry_after).encode())],
            ) from None  # fmt: skip
        admission = Admission(principal, key, team, wants, usage)
        if method == "POST" and path.rstrip("/").endswith("/batches"):
            try:
                await self._reserve(admission, 0.0)
            except BaseException:
                await self.finish(admission, [])
                raise
        return admission

    # ------------------------------------------------------------------ models and budgets

    @staticmethod
    def allows_model(admission: Admission, model: str) -> bool:
        """Whether the key and its team may use ``model`` (empty ``models``: every model)."""
        for allowed in (admission.key.models, admission.team.models if admission.team else []):
            if allowed and model not in allowed and not _ALL_MODELS.intersection(allowed):
                return False
        return True

    async def admit_call(self, admission: Admission, model: str, deployments: list[Deployment],
                         params: dict[str, Any], operation: str) -> None:  # fmt: skip
        """Check the model against the key's and team's ``models``; reserve the call's most cost.

        Raises:
            Refusal: 403 ``model_not_allowed`` naming the model; 429 ``budget_exceeded``.
        """
        for owner, allowed in (
            ("key", admission.key.models),
            ("team", admission.team.models if admission.team else []),
        ):
            if allowed and model not in allowed and not _ALL_MODELS.intersection(allowed):
                raise Refusal(403, f"This API key's {owner} is not allowed to use the model {model!r}; "
                              f"it may use: {', '.join(allowed)}.", type="permission_error",
                              code="model_not_allowed", param="model")  # fmt: skip
        if admission.key.max_budget is None and (
            admission.team is None or admission.team.max_budget is None
        ):
            return
        await self._reserve(admission, max_cost(deployments, operation, params))

    def _period(self, duration: str | None) -> float | None:
        if duration is None:
            return None
        found = self._periods.get(duration)
        if found is None:
            from ..store.keys import parse_duration

            found = self._periods[duration] = parse_duration(duration, "budget_duration")
        return found

    async def _reserve(self, admission: Admission, amount: float) -> None:
        """Hold ``amount`` against the key's and the team's budget (:mod:`.ledger`), or refuse the call."""
        key, team = admission.key, admission.team
        ledger = self.ledger
        if key.max_budget is not None:
            entry = ledger.entry("key", key.token, self._period(key.budget_duration))
            refused = await ledger.reserve(entry, amount)
            if refused is not None:
                self._refuse("key", refused, amount)
            admission.key_entry, admission.key_reserved = entry, amount
            admission.key_state = ledger.view(entry)
        if team is not None and team.max_budget is not None:
            entry = ledger.entry("team", team.team_id, self._period(team.budget_duration))
            refused = await ledger.reserve(entry, amount)
            if refused is not None:
                if admission.key_entry is not None:
                    ledger.release(admission.key_entry, amount)
                    admission.key_entry = admission.key_reserved = admission.key_state = None
                self._refuse(f"team {team.team_id!r}", refused, amount)
            admission.team_entry, admission.team_reserved = entry, amount
            admission.team_state = ledger.view(entry)

    @staticmethod
    def _refuse(owner: str, state: tuple[float, float, float], amount: float) -> None:
        spend, reserved, budget = state
        raise Refusal(
            429, f"Budget exceeded: this API key's {owner} has spent ${spend:.6f} of its max_budget ${budget:.6f}"
            f" (${reserved:.6f} held by calls in flight); this call may cost up to ${amount:.6f}.",
            type="insufficient_quota", code="budget_exceeded", headers=[(b"x-should-retry", b"false")],
        )  # fmt: skip

    # ------------------------------------------------------------------ settlement

    async def finish(self, admission: Admission, calls: list[tuple[Any, Any, Any]]) -> None:
        """Settle a request once: the real cost of its pipeline ``calls`` replaces its reservation."""
        if admission.done:
            return
        admission.done = True
        cost = 0.0
        tokens = 0
        unknown = False
        for _, _, record in calls:
            if isinstance(record.cost, int | float) and math.isfinite(record.cost):
                cost += float(record.cost)
            elif record.error is None:
                unknown = True  # answered, but without usage to price (a stream without its usage chunk)
            usage = record.usage or {}
            total = usage.get("total_tokens") if isinstance(usage, dict) else None
            if isinstance(total, int):
                tokens += total
        try:
            if admission.wants:
                await self.limiter.release(admission.usage, tokens, admission.wants)
        except Exception:
            log.exception("releasing the rate-limit slots of a request failed")
        key, team = admission.key, admission.team
        if unknown:  # charged the most it could have cost: a budget never gains from a missing usage
            cost = max(cost, admission.key_reserved or 0.0, admission.team_reserved or 0.0)
        ledger = self.ledger
        key_entry, team_entry = admission.key_entry, admission.team_entry
        if key_entry is None and team_entry is None:
            if cost:
                self._queue(key.token, team.team_id if team else None, cost)
        else:  # written with the ledger's next sync (within a second)
            if key_entry is not None:
                ledger.settle(key_entry, admission.key_reserved or 0.0, cost)
            elif cost:
                self._queue(key.token, None, cost)
            if team_entry is not None:
                ledger.settle(team_entry, admission.team_reserved or 0.0, cost)
            elif team is not None and cost:
                self._queue(None, team.team_id, cost)
        metrics = self.app.metrics
        if metrics is not None:
            # What is left once this call settled: the budget, less the spend so far (this call's
            # included), less what the key's (team's) calls in flight still hold.
            if key_entry is not None:
                spend, reserved, budget = ledger.view(key_entry)
                metrics.budget(key=key.key_alias or key.token[:12], remaining=max(0.0, budget - spend - reserved))
            if team_entry is not None and team is not None:
                spend, reserved, budget = ledger.view(team_entry)
                metrics.budget(team=team.team_id, remaining=max(0.0, budget - spend - reserved))

    def _queue(self, token: str | None, team_id: str | None, cost: float) -> None:
        """Spend of rows without a budget: added up here, written once a second off the request path."""
        if token is not None:
            self._pending_keys[token] = self._pending_keys.get(token, 0.0) + cost
        if team_id is not None:
            self._pending_teams[team_id] = self._pending_teams.get(team_id, 0.0) + cost
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_every(1.0))

    async def _flush_every(self, seconds: float) -> None:
        while self._pending_keys or self._pending_teams:
            await asyncio.sleep(seconds)
            await self._flush()

    async def _flush(self) -> None:
        keys, teams = self._pending_keys, self._pending_teams
        if not keys and not teams:
            return
        self._pending_keys, self._pending_teams = {}, {}
        try:
            await self._db("add_spend", keys, teams)
        except Exception:
            log.exception("writing the spend of %d keys and %d teams failed", len(keys), len(teams))

    def headers(self, admission: Admission) -> list[tuple[bytes, bytes]]:
        """The key's budget and limits as response headers (LiteLLM's names where it has them)."""
        out: list[tuple[bytes, bytes]] = []
        if admission.key_state is not None:
            spend, reserved, budget = admission.key_state
            out += [(b"x-litellm-key-spend", _num(spend)), (b"x-litellm-key-max-budget", _num(budget)),
                    (b"x-litellm-key-remaining-budget", _num(max(0.0, budget - spend - reserved)))]  # fmt: skip
        elif admission.key.max_budget is not None:
            out.append((b"x-litellm-key-max-budget", _num(admission.key.max_budget)))
        if admission.team_state is not None:
            spend, reserved, budget = admission.team_state
            out.append(
                (b"x-litellm-team-remaining-budget", _num(max(0.0, budget - spend - reserved)))
            )
        rpm = [w.rpm for w in admission.wants if w.rpm is not None]
        if rpm and admission.usage.remaining_requests is not None:
            out += [(b"x-ratelimit-limit-requests", str(min(rpm)).encode()),
                    (b"x-ratelimit-remaining-requests", str(max(0, admission.usage.remaining_requests)).encode())]  # fmt: skip
        tpm = [w.tpm for w in admission.wants if w.tpm is not None]
        if tpm and admission.usage.remaining_tokens is not None:
            out += [(b"x-ratelimit-limit-tokens", str(min(tpm)).encode()),
                    (b"x-ratelimit-remaining-tokens", str(max(0, admission.usage.remaining_tokens)).encode())]  # fmt: skip
        return out

    def wrap_send(self, admission: Admission, send: Send, calls: list[tuple[Any, Any, Any]]) -> Send:
        """``send`` with the key's headers added to the response start (computed when it is sent),
        and the request settled (:meth:`finish`, with the pipeline ``calls`` so far) before its
        last byte: a stream's cost is known by then, and the client's next call sees it."""

        async def send_with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), *self.headers(admission)]}
            elif not message.get("more_body") and not admission.done:
                await self.finish(admission, calls)
            await send(message)

        return send_with_headers

    # ------------------------------------------------------------------ admin API

    def routes(self) -> dict[str, Callable[[Any, Scope, Receive, Send], Awaitable[None]]]:
        """The admin endpoints (master key only)."""
        return {
            "POST /key/generate": self._key_generate, "GET /key/info": self._key_info,
            "POST /key/update": self._key_update, "POST /key/delete": self._key_delete,
            "GET /key/list": self._key_list, "POST /team/new": self._team_new, "GET /team/info": self._team_info,
            "POST /team/update": self._team_update, "POST /team/delete": self._team_delete,
            "GET /team/list": self._team_list,
        }  # fmt: skip

    def _admin(self, ctx: Any) -> None:
        if getattr(ctx, "admission", None) is not None:
            raise Refusal(403, "Only the master key may manage keys and teams.", type="permission_error",
                          code="admin_only")  # fmt: skip
        if not self.app.keys.enabled:
            raise Refusal(400, "Virtual keys need a master key: set general_settings.master_key.",
                          type="invalid_request_error", code="master_key_required")  # fmt: skip

    async def _body(self, ctx: Any, scope: Scope, receive: Receive, model: type[BaseModel]) -> Any:
        self._admin(ctx)
        body = await self.app._read_json(scope, receive)
        try:
            return model.model_validate(body)
        except ValidationError as exc:
            raise _validation(exc) from None

    def _query(self, ctx: Any, scope: Scope) -> dict[str, str]:
        self._admin(ctx)
        return {
            k: v[-1] for k, v in parse_qs(scope.get("query_string", b"").decode("latin-1")).items()
        }

    async def _written(self, *, release: bool = False) -> None:
        """This process's spend written now (the ledger's and the batched one), before an admin
        read shows it; ``release``: the unused leases given back too, so that a changed budget or
        spend applies to the next call here."""
        await self.ledger.flush(release=release)
        await self._flush()

    async def _send(self, ctx: Any, send: Send, body: Any, status: int = 200) -> None:
        await self.app._send_json(ctx, send, status, body)

    async def _check_team(self, team_id: str | None, models: list[str] | None) -> None:
        if team_id is None:
            return
        team = await self._db("get_team", team_id)
        if team is None:
            raise Refusal(400, f"'team_id' {team_id!r} does not exist; create it with POST /team/new.",
                          type="invalid_request_error", code="team_not_found", param="team_id")  # fmt: skip
        for model in models or ():
            if (
                team.models
                and model not in team.models
                and not _ALL_MODELS.intersection(team.models)
            ):
                raise Refusal(400, f"'models': the team {team_id!r} may not use the model {model!r}.",
                              type="invalid_request_error", code="model_not_allowed", param="models")  # fmt: skip

    @staticmethod
    def _values(body: BaseModel, *, skip: tuple[str, ...] = ()) -> dict[str, Any]:
        values = body.model_dump(exclude_unset=True, exclude={"duration", "expires", *skip})
        if "budget_duration" in values:
            from ..store.keys import parse_duration

            duration = values["budget_duration"]
            values["budget_reset_at"] = (
                time.time() + parse_duration(duration, "budget_duration") if duration else None
            )
        if "models" in values and values["models"] is None:
            values["models"] = []
        if "metadata" in values and values["metadata"] is None:
            values["metadata"] = {}
        return values

    @staticmethod
    def _expiry(body: _KeyBody) -> tuple[bool, float | None]:
        """Whether the body sets an expiry, and which (``duration`` from now, or ``expires``)."""
        from ..store.keys import parse_duration

        if "duration" in body.model_fields_set:
            return True, time.time() + parse_duration(
                body.duration, "duration"
            ) if body.duration else None
        if "expires" in body.model_fields_set:
            expires = body.expires
            if expires is not None and expires.tzinfo is None:
                expires = expires.replace(tzinfo=UTC)
            return True, expires.timestamp() if expires is not None else None
        return False, None

    async def _key_generate(self, ctx: Any, scope: Scope, receive: Receive, send: Send) -> None:
        from ..store.keys import KeyRecord

        body: _KeyBody = await self._body(ctx, scope, receive, _KeyBody)
        await self._check_team(body.team_id, body.models)
        key = new_key()
        _, expires = self._expiry(body)
        record = KeyRecord(
            token=hash_key(key), key_name=mask_key(key), expires=expires, **self._values(body)
        )
        try:
            record = await self._db("put_key", record)
        except ValueError as exc:
            raise Refusal(
                400, str(exc), type="invalid_request_error", code="invalid_value", param="key_alias"
            ) from None
        await self._send(ctx, send, {"key": key, **key_info(record)})

    async def _find_key(self, ident: str, param: str = "key") -> KeyRecord:
        record = await self._db("get_key", hash_key(ident))
        if record is None:
            raise Refusal(404, "No such key (deleted, or never created here).", type="invalid_request_error",
                          code="key_not_found", param=param)  # fmt: skip
        return record  # type: ignore[no-any-return]

    async def _key_info(self, ctx: Any, scope: Scope, receive: Receive, send: Send) -> None:
        query = self._query(ctx, scope)
        if not query.get("key"):
            raise Refusal(400, "'key' is required: the key or its token (hash).", type="invalid_request_error",
                          code="missing_required_parameter", param="key")  # fmt: skip
        await self._written()
        record = await self._find_key(query["key"])
        await self._send(ctx, send, {"key": record.token, "info": key_info(record)})

    async def _key_update(self, ctx: Any, scope: Scope, receive: Receive, send: Send) -> None:
        body: _KeyUpdate = await self._body(ctx, scope, receive, _KeyUpdate)
        await self._written(release=True)
        current = await self._find_key(body.key)
        team_id = body.team_id if "team_id" in body.model_fields_set else current.team_id
        await self._check_team(team_id, body.models if body.models is not None else current.models)
        values = self._values(body, skip=("key",))
        sets, expires = self._expiry(body)
        if sets:
            values["expires"] = expires
        try:
            record = await self._db("update_key", current.token, values)
        except ValueError as exc:
            raise Refusal(
                400, str(exc), type="invalid_request_error", code="invalid_value", param="key_alias"
            ) from None
        if record is None:
            raise Refusal(
                404,
                "No such key (deleted meanwhile).",
                type="invalid_request_error",
                code="key_not_found",
            )
        self.forget(current.token)
        await self._send(ctx, send, key_info(record))

    async def _key_delete(self, ctx: Any, scope: Scope, receive: Receive, send: Send) -> None:
        body: _KeyDelete = await self._body(ctx, scope, receive, _KeyDelete)
        if not body.keys and not body.key_aliases:
            raise Refusal(400, "Give 'keys' (keys or tokens) or 'key_aliases' to delete.", type="invalid_request_error",
                          code="missing_required_parameter", param="keys")  # fmt: skip
        tokens = [hash_key(k) for k in body.keys or ()]
        for alias in body.key_aliases or ():
            record = await self._db("key_by_alias", alias)
            if record is not None:
                tokens.append(record.token)
        await self._written(release=True)
        deleted = await self._db("delete_keys", tokens)
        self.forget(*deleted)
        missing = len(set(tokens)) - len(deleted)
        if not deleted:
            raise Refusal(404, "None of these keys exists.", type="invalid_request_error", code="key_not_found",
                          param="keys")  # fmt: skip
        await self._send(ctx, send, {"deleted_keys": deleted, "not_found": missing})

    async def _key_list(self, ctx: Any, scope: Scope, receive: Receive, send: Send) -> None:
        query = self._query(ctx, scope)
        try:
            page = max(1, int(query.get("page", "1")))
            size = min(1000, max(1, int(query.get("size", "100"))))
        except ValueError:
            raise Refusal(400, "'page' and 'size' must be whole numbers.", type="invalid_request_error",
                          code="invalid_value", param="page") from None  # fmt: skip
        await self._written()
        rows, total = await self._db("list_keys", team_id=query.get("team_id"), user_id=query.get("user_id"),
                                     key_alias=query.get("key_alias"), offset=(page - 1) * size, limit=size)  # fmt: skip
        full = query.get("return_full_object", "false").lower() == "true"
        await self._send(ctx, send, {
            "keys": [key_info(r) if full else r.token for r in rows], "total_count": total,
            "current_page": page, "total_pages": max(1, math.ceil(total / size)),
        })  # fmt: skip

    async def _team_new(self, ctx: Any, scope: Scope, receive: Receive, send: Send) -> None:
        import uuid

        from ..store.keys import TeamRecord

        body: _TeamBody = await self._body(ctx, scope, receive, _TeamBody)
        values = self._values(body)
        values["team_id"] = body.team_id or str(uuid.uuid4())
        try:
            record = await self._db("put_team", TeamRecord(**values))
        except ValueError as exc:
            raise Refusal(
                400, str(exc), type="invalid_request_error", code="invalid_value", param="team_id"
            ) from None
        await self._send(ctx, send, team_info(record))

    async def _team(self, team_id: str | None) -> TeamRecord:
        if not team_id:
            raise Refusal(400, "'team_id' is required.", type="invalid_request_error",
                          code="missing_required_parameter", param="team_id")  # fmt: skip
        record = await self._db("get_team", team_id)
        if record is None:
            raise Refusal(404, f"No team {team_id!r}.", type="invalid_request_error", code="team_not_found",
                          param="team_id")  # fmt: skip
        return record  # type: ignore[no-any-return]

    async def _team_info(self, ctx: Any, scope: Scope, receive: Receive, send: Send) -> None:
        record = await self._team(self._query(ctx, scope).get("team_id"))
        await self._written()
        record = await self._team(record.team_id)
        keys, _ = await self._db("list_keys", team_id=record.team_id, limit=1000)
        await self._send(ctx, send, {"team_id": record.team_id, "team_info": team_info(record),
                                     "keys": [key_info(k) for k in keys]})  # fmt: skip

    async def _team_update(self, ctx: Any, scope: Scope, receive: Receive, send: Send) -> None:
        body: _TeamUpdate = await self._body(ctx, scope, receive, _TeamUpdate)
        await self._team(body.team_id)
        await self._written(release=True)
        record = await self._db("update_team", body.team_id, self._values(body, skip=("team_id",)))
        self.forget()  # every cached key of the team carries the team's old row
        await self._send(ctx, send, {"team_id": body.team_id, "data": team_info(record)})

    async def _team_delete(self, ctx: Any, scope: Scope, receive: Receive, send: Send) -> None:
        body: _TeamDelete = await self._body(ctx, scope, receive, _TeamDelete)
        await self._written(release=True)
        teams, keys = await self._db("delete_teams", body.team_ids)
        if not teams:
            raise Refusal(404, "None of these teams exists.", type="invalid_request_error", code="team_not_found",
                          param="team_ids")  # fmt: skip
        self.forget()
        await self._send(ctx, send, {"deleted_teams": teams, "deleted_keys": keys})

    async def _team_list(self, ctx: Any, scope: Scope, receive: Receive, send: Send) -> None:
        self._query(ctx, scope)
        await self._written()
        teams = await self._db("list_teams")
        await self._send(ctx, send, [team_info(t) for t in teams])


if TYPE_CHECKING:  # a key looked up: the key and its team, and (made once per lookup) its principal and limits
    _Who = tuple[KeyRecord | None, TeamRecord | None, Principal | None, list[Want]]


def _who(key: KeyRecord | None, team: TeamRecord | None) -> tuple[Principal | None, list[Want]]:
    """The principal of a key (None for no key) and the limits its requests fall under."""
    if key is None:
        return None, []
    wants = [Want("key", key.token, key.rpm_limit, key.tpm_limit, key.max_parallel_requests)]
    if team is not None:
        wants.append(Want("team", team.team_id, team.rpm_limit, team.tpm_limit, team.max_parallel_requests))
    limited = [w for w in wants if w.rpm is not None or w.tpm is not None or w.parallel is not None]
    return Principal(key.token, key.key_alias, key.team_id, key.user_id), limited


def _num(value: float) -> bytes:
    return repr(round(float(value), 10)).encode()
