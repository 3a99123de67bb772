"""LiteLLM's proxy ``config.yaml``, parsed into pydantic models.

The format is LiteLLM's, unchanged::

    model_list:
      - model_name: gpt-4o                 # the public name clients send as "model"
        litellm_params:                    # (or "params")
          model: azure/my-gpt4o-deployment
          api_base: os.environ/AZURE_API_BASE
          api_key: os.environ/AZURE_API_KEY
          api_version: "2024-10-21"
          rpm: 600                         # weight in the shuffle (weight > rpm > tpm)
        model_info: {id: eastus-1, mode: chat, base_model: azure/gpt-4o}
    litellm_settings: {drop_params: true, num_retries: 2, request_timeout: 600}
    router_settings: {routing_strategy: simple-shuffle, num_retries: 2}
    general_settings: {master_key: os.environ/PROXY_MASTER_KEY, database_url: ...}
    modelyard_settings: {load_plugins: [...], block_plugins: [...]}

Rules:

* a string ``os.environ/NAME`` anywhere is replaced by that variable at load; a missing one is
  a :class:`~modelyard.errors.ConfigError` naming the variable and where it was used;
* an invalid value is a ``ConfigError`` naming its path (``model_list[2].litellm_params.api_version``);
* an unknown key is accepted with a logged warning naming its path;
* secrets (keys, tokens, client secrets, passwords, the master key, the database URL) are
  ``SecretStr``: they never show in a repr, a log line or an error; keys kept outside the
  declared fields (``dataSources[].parameters.key`` ...) are masked by name in every repr.
"""

from __future__ import annotations

import datetime
import hashlib
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
)

from ..connection import connection_schema
from ..errors import ConfigError
from ..pricing import PRICE_KEYS
from ..redact import clean_secret
from ..types import ChatParams, Connection, ConnectionSettings, _one_line, _redacted, _secret_name

__all__ = [
    "GeneralSettings",
    "LiteLLMParams",
    "LiteLLMSettings",
    "ModelEntry",
    "ModelInfo",
    "ModelyardSettings",
    "ProxyConfig",
    "RouterSettings",
    "load_config",
    "parse_config",
]

log = logging.getLogger("modelyard.proxy")

ENV_PREFIX = "os.environ/"


class _Section(BaseModel):
    """A config section: unknown keys are kept (and warned about), assignment is checked."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, hide_input_in_errors=True)

    def __repr_args__(self) -> Any:
        # Declared secrets are SecretStr; kept extra keys (``dataSources`` with a vision key,
        # a ``redis_password`` ...) are masked by name, at any depth.
        extra = self.__pydantic_extra__ or {}
        for name, value in super().__repr_args__():
            if name is not None and name in extra:
                value = _redacted({name: value})[name]
            yield name, value


def _version_string(value: Any) -> Any:
    # YAML reads an unquoted 2024-10-21 as a date; api-versions are strings.
    if isinstance(value, datetime.date):
        return value.isoformat()
    return value


class LiteLLMParams(_Section, ConnectionSettings):
    """One deployment's ``litellm_params``: where it is, how to authenticate (the fields of
    :class:`~modelyard.types.ConnectionSettings`), how to call it."""

    model: str = Field(min_length=1)
    extra_headers: dict[str, str] | None = None
    rpm: int | None = Field(default=None, ge=0)
    tpm: int | None = Field(default=None, ge=0)
    weight: float | None = Field(default=None, ge=0)
    order: int | None = Field(default=None, ge=0)
    priority: int | None = Field(default=None, ge=0)
    cooldown_time: float | None = Field(default=None, ge=0)
    allowed_fails: int | None = Field(default=None, ge=0)
    timeout: float | None = Field(default=None, gt=0)
    stream_timeout: float | None = Field(default=None, gt=0)
    num_retries: int | None = Field(default=None, ge=0)
    max_retries: int | None = Field(default=None, ge=0)
    drop_params: bool | None = None
    base_model: str | None = None
    model_family: str | None = None

    _version = field_validator("api_version", mode="before")(_version_string)


# LiteLLM settings that configure its router or billing and that modelyard accepts without
# passing them on to the upstream.
_LITELLM_ONLY_PARAMS = frozenset(
    {"region_name", "max_parallel_requests", "tags", "custom_llm_provider", "use_in_pass_through",
     "organization", "merge_reasoning_content_in_choices", "max_budget", "budget_duration"}
) | PRICE_KEYS  # fmt: skip
# Request-body parameters beyond ChatParams a deployment may carry in config (vision
# enhancements, On Your Data): sent like default params; keys inside them may be os.environ/
# values and stay masked.
_BODY_PARAMS = frozenset({"enhancements", "dataSources", "data_sources"})
_DEFAULT_PARAMS = frozenset(ChatParams.model_fields) | _BODY_PARAMS


class ModelInfo(_Section):
    """``model_info``: the deployment's id, its mode, the model it bills as and its family."""

    id: str | None = None
    mode: str | None = None
    base_model: str | None = None
    model_family: str | None = None


class ModelEntry(_Section):
    """One ``model_list`` entry (a deployment)."""

    model_name: str = Field(min_length=1)
    litellm_params: LiteLLMParams
    model_info: ModelInfo = Field(default_factory=ModelInfo)
    tpm: int | None = Field(default=None, ge=0)
    rpm: int | None = Field(default=None, ge=0)

    def deployment_id(self, index: int) -> str:
        """``model_info.id``, else a stable hash of the non-secret parameters and the position."""
        if self.model_info.id:
            return self.model_info.id
        p = self.litellm_params
        seed = f"{index}|{self.model_name}|{p.model}|{p.api_base}|{p.base_url}|{p.api_version}"
        return hashlib.sha256(seed.encode()).hexdigest()[:16]


# ``[{"gpt-4o": ["gpt-4o-mini"]}]`` (LiteLLM's shape) or ``{"gpt-4o": ["gpt-4o-mini"]}``.
Fallbacks = list[dict[str, list[str] | str]] | dict[str, list[str] | str]


class LiteLLMSettings(_Section):
    """``litellm_settings``: module-wide defaults (the keys modelyard uses; others are warned about).

    ``drop_params``, ``api_base``, ``api_key``, ``api_version`` and the module settings the
    provider plugins declare (``enable_azure_ad_token_refresh`` ...) set the module settings of
    the same names while the proxy runs (as
    LiteLLM's ``litellm.api_base`` ...): calls that pass their own (every deployment does) are
    unaffected; the files and batches endpoints, which name no deployment, use them. ``num_retries``,
    ``request_timeout`` and the ``*fallbacks`` lists are the Router's defaults when
    ``router_settings`` does not set them (LiteLLM accepts them in either section).
    """

    drop_params: bool | None = None
    num_retries: int | None = Field(default=None, ge=0)
    request_timeout: float | None = Field(default=None, gt=0)
    api_base: str | None = None
    api_key: SecretStr | None = None
    api_version: str | None = None
    fallbacks: Fallbacks | None = None
    context_window_fallbacks: Fallbacks | None = None
    content_policy_fallbacks: Fallbacks | None = None
    default_fallbacks: list[str] | None = None
    set_verbose: bool | None = None
    json_logs: bool | None = None
    enable_loadbalancing_on_batch_endpoints: bool = False


class RouterSettings(_Section):
    """``router_settings``: the :class:`modelyard.Router` behind the proxy (same names, same meaning)."""

    routing_strategy: str = "simple-shuffle"
    routing_strategy_args: dict[str, Any] | None = None
    num_retries: int | None = Field(default=None, ge=0)
    timeout: float | None = Field(default=None, gt=0)
    allowed_fails: int | None = Field(default=None, ge=0)
    cooldown_time: float | None = Field(default=None, ge=0)
    disable_cooldowns: bool | None = None
    retry_on_timeout: bool | None = None
    fallbacks: Fallbacks | None = None
    context_window_fallbacks: Fallbacks | None = None
    content_policy_fallbacks: Fallbacks | None = None
    default_fallbacks: list[str] | None = None
    max_fallbacks: int | None = Field(default=None, ge=0)
    redis_url: SecretStr | None = None
    redis_host: str | None = None
    redis_port: int | None = Field(default=None, gt=0, lt=65536)
    redis_password: SecretStr | None = None
    usage_window: float | None = Field(default=None, gt=0)
    quota_ttl: float | None = Field(default=None, ge=0)

    _secrets = field_validator("redis_url", "redis_password")(_one_line)


class GeneralSettings(_Section):
    """``general_settings``: the proxy itself."""

    master_key: SecretStr | None = None
    database_url: SecretStr | None = None
    allow_insecure_master_key: bool = False
    max_request_size_mb: float = Field(default=32.0, gt=0)
    max_upload_size_mb: float = Field(default=200.0, gt=0)
    graceful_shutdown_timeout: float = Field(default=30.0, ge=0)
    """Seconds requests in flight get to finish after SIGTERM before the proxy exits anyway."""
    shutdown_delay: float = Field(default=0.0, ge=0)
    """Seconds the proxy keeps serving after SIGTERM, ``/health/readiness`` answering 503, before
    it stops accepting connections: time for a load balancer to take it out of rotation."""
    http_backend: str = Field(default="native", pattern="^(native|aiohttp|httpx)$")
    """The async client of upstream calls: ``native`` (modelyard's own HTTP/1.1 client, the
    default), ``aiohttp`` or ``httpx`` (see :class:`modelyard.transport.Transport`)."""
    max_header_size_kb: float = Field(default=16.0, gt=0)
    """The most a request line and its headers may take together, in KiB (16: h11's and Node's default)."""
    request_header_timeout: float = Field(default=10.0, gt=0)
    """Seconds a client has to send a whole request line and headers (a slow-loris bound)."""
    request_body_timeout: float = Field(default=120.0, gt=0)
    """Seconds a client has, once its headers are in, to send the whole body (a slow-loris bound
    on bodies; raise it for large ``/files`` uploads over slow links)."""
    metrics: bool | None = None
    """``GET /metrics`` in Prometheus format: None (default) on when ``prometheus-client`` is installed."""
    public_metrics: bool = False
    """Serve ``/metrics`` without the master key (for a scraper on a private network)."""
    disable_admin_ui: bool = False
    """Turn the dashboard at ``/ui`` off (its paths answer 404, no traffic figures are kept)."""
    previous_master_key: SecretStr | None = None
    """The master key being rotated out: accepted beside ``master_key`` until
    ``previous_master_key_expires`` (docs/keys.md)."""
    previous_master_key_expires: datetime.datetime | None = None
    """When ``previous_master_key`` stops being accepted (ISO 8601; UTC when no offset is given)."""
    user_api_key_cache_ttl: float = Field(default=5.0, ge=0)
    """Seconds a virtual key's row is kept in each instance's memory: the longest a key deleted
    or changed through another instance is still honoured here (docs/keys.md)."""
    disable_spend_logs: bool = False
    """LiteLLM's name: record no spend rows (costs still go in the response headers)."""
    maximum_spend_logs_retention_period: str | None = Field(default=None, pattern=r"^\s*\d+(\.\d+)?\s*[smhd]?\s*$")
    """LiteLLM's name: delete spend rows older than this (``30d``, ``12h``, ``90m``, seconds
    without a unit); None keeps them all."""
    maximum_spend_logs_retention_interval: str = Field(default="1d", pattern=r"^\s*\d+(\.\d+)?\s*[smhd]?\s*$")
    """LiteLLM's name: how often old spend rows are looked for and deleted."""

    _secrets = field_validator("master_key", "database_url", "previous_master_key")(_one_line)

    @property
    def max_request_bytes(self) -> int:
        """The request body limit in bytes (``max_request_size_mb``, 32 MiB by default)."""
        return int(self.max_request_size_mb * 1024 * 1024)

    @property
    def max_header_bytes(self) -> int:
        """The request-head limit in bytes (``max_header_size_kb``, 16 KiB by default)."""
        return int(self.max_header_size_kb * 1024)

    @property
    def max_upload_bytes(self) -> int:
        """The limit on a ``POST /files`` upload in bytes (``max_upload_size_mb``, 200 MB: Azure's batch file limit)."""
        return int(self.max_upload_size_mb * 1024 * 1024)


class ModelyardSettings(_Section):
    """``modelyard_settings``: which plugins load (see :mod:`modelyard.plugins`)."""

    load_plugins: list[str] | None = None
    block_plugins: list[str] | None = None
    store_path: str | None = None
    """The SQLite file of the store when ``general_settings.database_url`` is not set (default:
    ``MODELYARD_STORE_PATH``, else ``$XDG_DATA_HOME/modelyard/modelyard.db``)."""
    spend_flush_interval: float = Field(default=1.0, gt=0)
    """Seconds between writes of the queued spend rows (docs/spend.md)."""
    spend_flush_rows: int = Field(default=500, gt=0)
    """Write the queued spend rows as soon as this many wait."""
    prices: str | None = None
    """A price file or URL (LiteLLM's ``model_prices_and_context_window.json`` format) laid over
    the shipped prices at start-up, in place of ``MODELYARD_PRICES`` (docs/spend.md)."""

    @field_validator("load_plugins", "block_plugins", mode="before")
    @classmethod
    def _csv(cls, value: Any) -> Any:
        return [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else value


class ProxyConfig(_Section):
    """A whole ``config.yaml``."""

    model_list: list[ModelEntry] = Field(default_factory=list)
    litellm_settings: LiteLLMSettings = Field(default_factory=LiteLLMSettings)
    router_settings: RouterSettings = Field(default_factory=RouterSettings)
    general_settings: GeneralSettings = Field(default_factory=GeneralSettings)
    modelyard_settings: ModelyardSettings = Field(default_factory=ModelyardSettings)
    environment_variables: dict[str, str] | None = None

    def deployment_kwargs(self, entry: ModelEntry) -> tuple[dict[str, Any], dict[str, Any]]:
        """What :func:`modelyard.acompletion` gets for ``entry``: (fixed kwargs, default params).

        Fixed kwargs (connection, timeout, retries, drop_params, model_info) always win; default
        params (``temperature: 0`` in ``litellm_params``) apply unless the client sends its own.
        """
        p = entry.litellm_params
        fixed: dict[str, Any] = {}
        defaults: dict[str, Any] = {}
        for name in Connection.model_fields:
            value = getattr(p, name, None)
            if value is not None:
                fixed[name] = value
        schema = connection_schema()
        for name, value in (p.model_extra or {}).items():
            if name in schema.names and value is not None:  # a setting a loaded provider declares
                try:
                    fixed[name] = schema.check(name, value)
                except ValueError as exc:
                    raise ConfigError(f"{entry.model_name}: litellm_params.{name}: {exc}.", key=f"litellm_params.{name}") from None
        settings = self.litellm_settings
        drop = p.drop_params if p.drop_params is not None else settings.drop_params
        if drop is not None:
            fixed["drop_params"] = drop
        timeout = p.timeout or self.router_settings.timeout or settings.request_timeout
        if timeout is not None:
            fixed["timeout"] = timeout
        if p.base_model or entry.model_info.base_model:
            fixed["base_model"] = p.base_model or entry.model_info.base_model
        if p.model_family or entry.model_info.model_family:
            fixed["model_family"] = p.model_family or entry.model_info.model_family
        info = entry.model_info.model_dump(exclude_none=True)
        if info:
            fixed["model_info"] = info
        for name, value in (p.model_extra or {}).items():
            if name in _DEFAULT_PARAMS:
                defaults[name] = value
            elif name in PRICE_KEYS:  # the deployment's own price (docs/spend.md), never sent upstream
                fixed[name] = value
        return fixed, defaults


# --------------------------------------------------------------------------- loading


def _path(loc: tuple[Any, ...] | list[Any]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _resolve_env(value: Any, loc: list[Any], env: Mapping[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: _resolve_env(v, [*loc, k], env) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve_env(v, [*loc, i], env) for i, v in enumerate(value)]
    if isinstance(value, str) and value.startswith(ENV_PREFIX):
        name = value[len(ENV_PREFIX) :].strip()
        where = _path(loc)
        if not name:
            raise ConfigError(f"{where}: 'os.environ/' names no variable.", key=where)
        if name not in env:
            raise ConfigError(
                f"{where}: environment variable {name} is not set (the config says os.environ/{name}).", key=where
            )
        return env[name]
    return value


def _normalise(raw: dict[str, Any]) -> dict[str, Any]:
    models = raw.get("model_list")
    if isinstance(models, list):
        fixed = []
        for entry in models:
            if isinstance(entry, dict) and "litellm_params" not in entry and "params" in entry:
                entry = {**entry, "litellm_params": entry["params"]}
                del entry["params"]
            fixed.append(entry)
        raw = {**raw, "model_list": fixed}
    return raw


def _secret_settings(config: ProxyConfig) -> None:
    """Hold a provider's secret settings in ``litellm_params`` (``client_secret``, ``azure_ad_token``
    ...: extras there) as one-line ``SecretStr`` from the start, like the declared ``api_key``.

    Raises:
        ConfigError: a secret with a control character inside, naming its path (never the value).
    """
    for index, entry in enumerate(config.model_list):
        extra = entry.litellm_params.__pydantic_extra__
        if not extra:
            continue
        for name, value in extra.items():
            if isinstance(value, str) and _secret_name(name) and name not in _DEFAULT_PARAMS:
                where = f"model_list[{index}].litellm_params.{name}"
                try:
                    extra[name] = SecretStr(clean_secret(value, name))
                except ValueError as exc:
                    raise ConfigError(f"invalid value at {where}: {exc}.", key=where) from None


def _warn_unknown(model: BaseModel, loc: list[Any], source: str, declared: frozenset[str] | None) -> None:
    extra = model.model_extra or {}
    for name in extra:
        if isinstance(model, LiteLLMParams) and (name in _DEFAULT_PARAMS or name in _LITELLM_ONLY_PARAMS):
            continue
        # Maybe a connection setting a provider plugin declares: known once the config's plugin
        # set is loaded (``declared`` None: proxy.settings.check_settings warns then).
        if isinstance(model, LiteLLMParams | LiteLLMSettings) and (declared is None or name in declared):
            continue
        if isinstance(model, ModelInfo):
            continue  # LiteLLM keeps many informational keys here (supports_*, health_check_* ...)
        log.warning("%s: unknown key %r in %s is ignored", source, _path([*loc, name]), source)
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            _warn_unknown(value, [*loc, name], source, declared)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, BaseModel):
                    _warn_unknown(item, [*loc, name, i], source, declared)


def parse_config(
    raw: Mapping[str, Any] | None, *, source: str = "config", env: Mapping[str, str] | None = None
) -> ProxyConfig:
    """Validate a parsed config mapping.

    Args:
        raw: the YAML document as Python data (None or empty: no deployments).
        source: what to call it in messages (the file name).
        env: the environment ``os.environ/NAME`` reads (``os.environ`` by default).

    Raises:
        ConfigError: a missing variable or an invalid value; ``key`` holds its path.
    """
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{source}: the top level must be a mapping, got {type(raw).__name__}.", key=source)
    environment = dict(os.environ if env is None else env)
    extra_env = raw.get("environment_variables")
    if isinstance(extra_env, Mapping):
        # LiteLLM sets these before reading the rest; we only use them for os.environ/ lookups.
        environment.update({str(k): str(v) for k, v in extra_env.items() if str(k) not in environment})
    data = _normalise(_resolve_env(dict(raw), [], environment))
    try:
        config = ProxyConfig.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = _path(err["loc"])
        # Never echo the input: it may be a secret.
        raise ConfigError(f"{source}: invalid value at {where}: {err['msg']}.", key=where) from None
    _secret_settings(config)
    ms = config.modelyard_settings
    # The settings the providers declare are known from the plugin set this config runs with: the
    # process's, unless the config names its own (then the proxy checks them once it loads it).
    own_set = ms.load_plugins is not None or ms.block_plugins is not None
    _warn_unknown(config, [], source, None if own_set else connection_schema().names)
    return config


def load_config(path: str | os.PathLike[str]) -> ProxyConfig:
    """Read and validate a ``config.yaml``.

    Raises:
        ConfigError: the file is missing, is not YAML, or fails :func:`parse_config`.
    """
    import yaml  # type: ignore[import-untyped]  # no stubs installed; only safe_load is used

    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"Cannot read config file {p}: {exc.strerror}.", key=str(p)) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        raise ConfigError(f"{p}: not valid YAML{where}.", key=str(p)) from None
    return parse_config(raw, source=p.name)
