"""What every pipeline module shares: a call's settings, its hook calls, its record.

:mod:`modelyard.api` (model calls) and :mod:`modelyard.files` (files and batches) both build
calls from the same arguments: connection settings completed from the module settings, control
settings (timeout, retries), and the first answer of a hook checked for its type. They live
here, below both, so neither pipeline module imports the other's privates.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from ._dispatch import call_hook
from ._percall import cached_connection
from .errors import APIError, BadRequestError, PluginError
from .plugins import get_plugins
from .pricing import PRICE_KEYS
from .types import Connection, Route

if TYPE_CHECKING:
    from .connection import ConnectionSchema
    from .observe import CallScope
    from .plugins import Plugins

DEFAULT_NUM_RETRIES = 2
_CONTROL_KEYS = frozenset(
    {"timeout", "request_timeout", "num_retries", "max_retries", "drop_params", "model_family",
     "base_model", "model_info", "extra_body", "custom_llm_provider", "retry_on_timeout"}
) | PRICE_KEYS  # fmt: skip


@dataclass
class CallRecord:
    """One finished call, as the ``on_success`` / ``on_failure`` observers see it.

    Attributes:
        retries: attempts after the first (429s, 5xx, connections that failed ...).
        resent: of those, retries of a request the upstream may already have received (a
            read timeout, a connection dropped after sending; only with ``retry_on_timeout``):
            each may have run, and been billed, twice.
        scope: the logical call around this one (:class:`~modelyard.observe.CallScope`), or None.
        state: the dict ``on_call_start`` got for this call.
        started: when the call started (``time.time()``).
        attempt_log: ``(start, end, status or error name)`` per retried attempt (``time.time()``).
        response_headers: the upstream's response headers, when there was a response.
        response: the normalized result of a call that was not streamed.
        response_model, response_id, finish_reasons: from the result or the stream's chunks.
        cancelled: a stream its reader closed, dropped or cancelled before the end (an
            ``on_success`` with the usage read so far, usually None).
        cost: what the call cost in USD (docs/spend.md); None when no price is known or the
            call failed.
    """

    route: Route
    duration: float
    status_code: int | None = None
    usage: dict[str, Any] | None = None
    error: APIError | None = None
    retries: int = 0
    resent: int = 0
    scope: CallScope | None = None
    state: dict[str, Any] | None = None
    started: float = 0.0
    attempt_log: list[tuple[float, float, str]] | None = None
    response_headers: Any = None
    response: Any = None
    response_model: str | None = None
    response_id: str | None = None
    finish_reasons: list[str] | None = None
    cancelled: bool = False
    cost: float | None = None


# Module settings (``modelyard.api_key = ...``, as ``litellm.api_key``) fill what a call leaves
# unset; the plugins fall back to the environment only for what is still unset, which gives
# call arguments > module settings > environment. They are read from the module's namespace at
# each call (a dict lookup per name), so a change takes effect on the next call and no lock is
# needed. Credentials are one group: a call that passes any credential gets none from the
# module (a module api_key must not turn a call's token into "two credentials"); likewise
# api_base / base_url. Which names are credentials the provider plugins declare
# (modelyard.connection).
_ENDPOINT_KEYS = frozenset({"api_base", "base_url"})


def _module_settings() -> dict[str, Any]:
    module = sys.modules.get("modelyard")
    return module.__dict__ if module is not None else {}


def _fill_from_module(conn_kw: dict[str, Any], settings: dict[str, Any], schema: ConnectionSchema | None = None) -> set[str]:
    """Add the module's connection settings the call did not pass; return the names added."""
    if schema is None:
        schema = get_plugins().connection_settings
    added: set[str] = set()
    values = list(map(settings.get, schema.lookups))
    if values.count(None) == len(values):  # no module setting is set (the usual case): nothing to fill
        return added
    credentials = schema.credentials
    extra_headers = conn_kw.get("extra_headers")
    given_credential = not credentials.isdisjoint(conn_kw) or (
        extra_headers is not None and any(k.lower() in ("api-key", "authorization") for k in extra_headers)
    )
    given_endpoint = not _ENDPOINT_KEYS.isdisjoint(conn_kw)
    aliases = schema.alias_names
    filled = schema.filled
    # Most module settings are unset (None): those cost one C-level lookup each here.
    for key, value in zip(filled, map(settings.get, filled), strict=True):
        if value is None:
            for alias in schema.aliases.get(key, ()):  # LiteLLM's second names (declared with alias_of)
                if value is None:
                    value = settings.get(alias)
            if value is None:
                continue
        if (
            key in conn_kw
            or key in aliases
            or (given_credential and key in credentials)
            or (given_endpoint and key in _ENDPOINT_KEYS)
        ):
            continue
        conn_kw[key] = value
        added.add(key)
    return added


def _connection(
    conn_kw: dict[str, Any], settings: dict[str, Any], model: str | None = None
) -> Connection:
    """The call's :class:`Connection`, completed from the module settings.

    Raises:
        BadRequestError: a value of the wrong type, naming the argument (``api_version``) or
            the module setting (``modelyard.api_version``) it came from.
    """
    schema = get_plugins().connection_settings
    from_module = _fill_from_module(conn_kw, settings, schema)
    return cached_connection(schema, conn_kw, lambda: _build_connection(schema, conn_kw, from_module, model))


def _build_connection(schema: ConnectionSchema, conn_kw: dict[str, Any], from_module: set[str], model: str | None) -> Connection:
    for name in schema.names.intersection(conn_kw):
        try:
            conn_kw[name] = schema.check(name, conn_kw[name])
        except ValueError as exc:
            field = f"modelyard.{name}" if name in from_module else name
            raise BadRequestError(f"Invalid value for {field!r}: {exc}.", param=field, model=model) from None
    try:
        return Connection(**conn_kw)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = _field(err["loc"])
        if err["loc"] and err["loc"][0] in from_module:
            field = f"modelyard.{field}"
        raise BadRequestError(
            f"Invalid value for {field!r}: {err['msg']}.", param=field, model=model
        ) from None


def _control_setting(
    control: dict[str, Any], settings: dict[str, Any], names: tuple[str, ...], module_name: str
) -> Any:
    """A control argument under any of ``names``, else the module setting ``module_name``."""
    for name in names:
        if name in control:
            return control[name]
    return settings.get(module_name)


def _retries(value: Any, from_call: bool) -> int:
    if value is None:
        return DEFAULT_NUM_RETRIES
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or value < 0
        or int(value) != value
    ):
        where = "num_retries" if from_call else "modelyard.num_retries"
        raise BadRequestError(
            f"{where} must be a non-negative integer, got {value!r}.", param=where
        )
    return int(value)


def _environ(name: str) -> str | None:
    """``os.environ.get(name)``, read where ``os.environ`` keeps its values when it can.

    ``os.environ.get`` of a name that is not set costs 2-3 µs (its ``__getitem__`` raises a
    ``KeyError`` that ``get`` catches); this reads ``os.environ``'s own mapping (the one its
    ``__setitem__`` / ``putenv`` keep current) in a fraction of that, so a change made at run
    time is still seen by the next call. Anything else standing in for ``os.environ`` is asked
    the usual way.
    """
    environ = os.environ
    data = getattr(environ, "_data", None)
    encode = getattr(environ, "encodekey", None)
    decode = getattr(environ, "decodevalue", None)
    if type(data) is not dict or encode is None or decode is None:
        return environ.get(name)
    value = data.get(encode(name))
    return None if value is None else decode(value)


def _retry_on_timeout(control: dict[str, Any]) -> bool:
    """``retry_on_timeout`` of a call: its own value, else ``MODELYARD_RETRY_ON_TIMEOUT``, else False."""
    value = control.get("retry_on_timeout")
    if value is None:
        return (_environ("MODELYARD_RETRY_ON_TIMEOUT") or "").strip().lower() in (
            "1",
            "true",
            "yes",
            "on",
        )
    if not isinstance(value, bool):
        raise BadRequestError(
            f"retry_on_timeout must be true or false, got {value!r}.", param="retry_on_timeout"
        )
    return value


def _field(loc: tuple[Any, ...]) -> str:
    # By position, not by what came before: a key may be "" (``{"": {"0": NaN}}`` is ``.0``).
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" if i else str(part) for i, part in enumerate(loc))


def _split(kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    connection_keys = get_plugins().connection_settings.all_names
    connection: dict[str, Any] = {}
    control: dict[str, Any] = {}
    params: dict[str, Any] = {}
    for key, value in kwargs.items():
        if value is None:
            continue
        if key in connection_keys:
            connection[key] = value
        elif key in _CONTROL_KEYS:
            control[key] = value
        else:
            params[key] = value
    if "extra_body" in control:
        params.update(control.pop("extra_body"))
    return connection, control, params


def _first(hook: Any, expected: type | tuple[type, ...], what: str, route: Route, *,
           unknown: Callable[[], APIError | None] | None = None, via: Plugins | None = None,
           **kwargs: Any) -> Any:  # fmt: skip
    """Call a firstresult hook and check its answer's type, naming the plugin at fault.

    ``unknown`` builds the error for no answer when the caller named a provider no loaded plugin
    knows (a client's mistake, not a missing plugin), or returns None when the provider is known;
    otherwise no answer is a :class:`PluginNotLoadedError` naming the distribution to install.
    ``via``: the plugin set ``hook`` belongs to, which calls it with less overhead
    (:meth:`Plugins.call`); else pluggy calls it.
    """
    kwargs["route"] = route
    # The plugin set's own dispatch (Plugins.call), called with this dict as it is.
    result = hook(**kwargs) if via is None else call_hook(via.plans, hook, not via.monitored, kwargs)
    if result is None and unknown is not None and (error := unknown()) is not None:
        raise error
    if result is None:
        # Names the distribution the provider's plugins declare for this hook, and why it is
        # not loaded: a 501 with the install line, not a broken-configuration 500.
        raise get_plugins().unserved(what, route)
    if not isinstance(result, expected):
        names = ", ".join(i.plugin_name for i in hook.get_hookimpls())
        raise PluginError(
            f"{what} returned {type(result).__name__}, expected {getattr(expected, '__name__', expected)} "
            f"(plugins implementing it: {names})",
        )
    return result
