"""The contract between the core and its plugins: pluggy hook specifications.

Specs are listed in pipeline order (resolve, transform, auth, normalize, errors, observe).
A plugin module implements any subset with ``@modelyard.hookimpl`` and declares the
``HOOK_API`` it was written against; see ``docs/plugins/hooks.md``.

``HOOK_API`` is ``(major, minor)``, independent of the package version: minor goes up when a
hook or argument is added, major on a removal, rename or change of meaning.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import pluggy

if TYPE_CHECKING:
    import argparse

    from .connection import ConnectionSetting
    from .errors import APIError
    from .families import Family, Provider
    from .file_types import FilesRequest
    from .files_router import FilesDeployment, FilesRouter
    from .observe import CallScope
    from .operations import Operation, OperationRef, ProxyPath
    from .pricing import PriceNames
    from .store import Store
    from .types import (
        ChatRequest,
        Connection,
        ProviderRequest,
        ProviderResponse,
        Route,
    )

__all__ = [
    "HOOK_API",
    "Authenticator",
    "CallEvent",
    "CallStart",
    "EnvironmentConfig",
    "HeaderView",
    "RegisterCommand",
    "RegisterConnectionSetting",
    "RegisterFamily",
    "RegisterHeaderView",
    "RegisterOperation",
    "RegisterPriceNames",
    "RegisterPrices",
    "RegisterProvider",
    "StreamTranslator",
    "active_when",
    "answers_for",
    "claims_only_with",
    "hookimpl",
    "hookspec",
]

HOOK_API: tuple[int, int] = (1, 13)
"""The hook contract version this core implements."""

PROJECT = "modelyard"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

ANSWERS_ATTR = "modelyard_answers"
"""The attribute :func:`answers_for` sets on an implementation: a frozenset of
``(provider, operation or None)`` pairs."""

_F = TypeVar("_F", bound=Callable[..., Any])


def answers_for(provider: str, *operations: str) -> Callable[[_F], _F]:
    """Declare the routes a hook implementation answers for, so that it is asked for those only.

    For the hooks that take a ``route`` (``transform_request``, ``transform_files_request``,
    ``resolve_auth``, ``normalize_response``, ``normalize_chunk``, ``translate_stream``,
    ``keeps_answers``, ``map_error``): an implementation marked ``@answers_for("azure", "chat",
    "completions")`` promises to return None (and do nothing else) for every route whose
    ``provider`` is not ``"azure"`` or whose ``operation`` is not one of those, and the core then
    skips it for those routes. With no operation named, every operation of ``provider`` is
    declared. Stack the decorator to declare several providers. An implementation declaring
    nothing is asked for every route, as before; a wrapper (``wrapper=True``) may be marked too
    (it then wraps only the declared routes). Monitored hook calls (``MODELYARD_TRACE_PLUGINS=1``)
    still ask every implementation, which a correct declaration cannot tell apart.
    Since HOOK_API 1.11.

    Raises:
        TypeError: ``provider`` or an operation is not a non-empty string.
    """
    for name in (provider, *operations):
        if not isinstance(name, str) or not name:
            raise TypeError(f"answers_for() takes non-empty strings (a provider, then operations), got {name!r}")
    pairs = frozenset((provider, op) for op in operations) if operations else frozenset({(provider, None)})

    def mark(function: _F) -> _F:
        before: frozenset[tuple[str, str | None]] = getattr(function, ANSWERS_ATTR, frozenset())
        setattr(function, ANSWERS_ATTR, before | pairs)
        return function

    return mark


MARKERS_ATTR = "modelyard_markers"
"""The attribute :func:`claims_only_with` sets on a ``keeps_answers`` check: a tuple of bytes."""


def claims_only_with(*markers: bytes) -> Callable[[_F], _F]:
    """Declare what a ``keeps_answers`` check looks for, so that most answers are not parsed for it.

    A check marked ``@claims_only_with(b'"finish_details"', b'"extensions.')`` promises to return
    False for every answer whose JSON body, as the upstream sent it, contains none of
    ``markers`` (answers the operation's model refuses aside: those are checked anyway). The
    core then validates such an answer straight from its bytes, without parsing it into a dict
    for the check first (a JSON parse and a walk per answer, ~2-3 µs for a chat answer). A body
    with a ``\\u`` escape in it (a marker may hide behind one) and an answer carrying a marker
    are parsed and checked as before; so is every answer when any check of the route declares
    nothing. Non-streamed answers only (a stream's events are parsed anyway). Since HOOK_API 1.12.

    Raises:
        TypeError: no marker, or one that is not non-empty bytes.
    """
    if not markers or not all(isinstance(m, bytes) and m for m in markers):
        raise TypeError(f"claims_only_with() takes one or more non-empty bytes, got {markers!r}")

    def mark(function: _F) -> _F:
        setattr(function, MARKERS_ATTR, tuple(markers))
        return function

    return mark


ACTIVE_ATTR = "modelyard_active_when"
"""The attribute :func:`active_when` sets on an implementation: its check."""


def active_when(check: Callable[..., bool]) -> Callable[[_F], _F]:
    """Declare when a hook implementation has something to do, so that it is skipped otherwise.

    An implementation marked ``@active_when(check)`` promises to return None and do nothing
    else (a wrapper: to return what it got, unchanged) for every hook call in which
    ``check(...)`` answers false. The core asks ``check`` before each call of the hook that the
    pipeline makes, and skips the implementation when the answer is false; a skipped observer
    also spares the core the event it would have built for it. ``check`` takes some of the
    hook's arguments, by their names (``def check(request, connection)``) or none at all
    (``def check()``: "is tracing configured?"), and must be cheap, since it runs on every
    call: answer from what is at hand, never do I/O. On the observer hooks (``on_call_start``,
    ``on_success``, ``on_failure``) an argument-free check is asked once per pipeline call, at
    its start, and its answer holds for the whole call: an observer sees all of a call or none
    of it, and the core builds no event that nobody would get. Monitored hook calls
    (``MODELYARD_TRACE_PLUGINS=1``) and the hooks pluggy calls itself still call every
    implementation, which a correct declaration cannot tell apart. Since HOOK_API 1.13.

    Raises:
        TypeError: ``check`` is not callable. (A check taking an argument its hook does not
            pass makes each call of the hook raise TypeError, naming both.)
    """
    if not callable(check):
        raise TypeError(f"active_when() takes a callable, got {check!r}")

    def mark(function: _F) -> _F:
        setattr(function, ACTIVE_ATTR, check)
        return function

    return mark


class RegisterFamily(Protocol):
    """The callable ``register_families`` receives: call it once per family."""

    def __call__(self, family: Family, /) -> None: ...


class RegisterProvider(Protocol):
    """The callable ``register_providers`` receives: call it once per provider."""

    def __call__(self, provider: Provider, /) -> None: ...


class RegisterConnectionSetting(Protocol):
    """The callable ``register_connection_settings`` receives: call it once per setting."""

    def __call__(self, setting: ConnectionSetting, /) -> None: ...


class RegisterOperation(Protocol):
    """The callable ``register_operations`` receives: call it once per row.

    A row is an :class:`~modelyard.operations.Operation` (a new operation), a
    :class:`~modelyard.operations.ProxyPath` (another proxy path for an operation) or an
    :class:`~modelyard.operations.OperationRef` (a sibling distribution's operation).
    """

    def __call__(self, row: Operation | ProxyPath | OperationRef, /) -> None: ...


class RegisterPrices(Protocol):
    """The callable ``register_prices`` receives: call it once per model.

    ``model`` is the name prices are looked up by (``azure_ai/claude-sonnet-4-5``, or a bare
    name); ``prices`` uses LiteLLM's keys (``input_cost_per_token`` ...; docs/spend.md).
    """

    def __call__(self, model: str, prices: Mapping[str, Any], /) -> None: ...


class RegisterPriceNames(Protocol):
    """The callable ``register_price_names`` receives: call it once per provider."""

    def __call__(self, names: PriceNames, /) -> None: ...


class HeaderView(Protocol):
    """A typed view of response headers (what ``register_header_views`` registers): a class
    whose ``from_headers`` reads it from the upstream's headers (None on objects built by hand)."""

    def from_headers(self, headers: Mapping[str, str] | None, /) -> Any: ...


class RegisterHeaderView(Protocol):
    """The callable ``register_header_views`` receives: call it once per view.

    ``name`` is the attribute results carry it under (``response.<name>``); ``view`` the class,
    also importable from ``modelyard`` under its own ``__name__``.
    """

    def __call__(self, name: str, view: HeaderView, /) -> None: ...


@dataclass(frozen=True)
class EnvironmentConfig:
    """What ``default_config`` returns: a proxy config built from the environment.

    Attributes:
        config: the config, as ``config.yaml`` would hold it (``model_list`` ...); put
            ``os.environ/NAME`` references in it, never the secrets' values.
        source: what it was built from, for the start-up banner and errors
            (``"AZURE_API_BASE and AZURE_API_KEY"``).
    """

    config: Mapping[str, Any]
    source: str


class RegisterCommand(Protocol):
    """The callable ``register_commands`` receives: call it once per top-level command.

    ``setup`` adds the command's arguments (and sub-commands) to its argparse parser; ``run``
    gets the parsed arguments and returns the exit status.
    """

    def __call__(
        self,
        name: str,
        *,
        summary: str,
        setup: Callable[[argparse.ArgumentParser], None],
        run: Callable[[argparse.Namespace], int],
    ) -> None: ...


class Authenticator(Protocol):
    """What ``resolve_auth`` returns: credentials for one call, fetched when the core sends.

    ``headers``/``aheaders`` are called for every attempt (so a refreshed token is used on a
    retry); ``invalidate`` is called once after a 401 and returns True when a fresh credential
    could help (a cached token was dropped), in which case the core retries once.
    """

    def headers(self) -> dict[str, str]: ...

    async def aheaders(self) -> dict[str, str]: ...

    def invalidate(self) -> bool: ...


class StreamTranslator(Protocol):
    """What ``translate_stream`` returns: the translation of one upstream stream, with its state.

    ``feed`` gets each parsed server-sent event in order and returns the OpenAI-shaped chunks
    it makes (none, one or several: an upstream event may carry nothing a caller sees, such as
    a keep-alive, or more than one chunk's worth). The object lives for one stream only, so it
    may remember what earlier events said (the message id, which content block is which tool
    call). An upstream ``error`` event is raised from ``feed`` as an ``APIError``.
    """

    def feed(self, event: dict[str, Any], /) -> list[Any]: ...


class CallEvent(Protocol):
    """What observers receive: one finished call (see ``modelyard.api.CallRecord``).

    ``retries`` counts the attempts after the first; ``resent`` those of them that followed a
    failure after the request was sent (possible duplicates upstream, only with
    ``retry_on_timeout``). Both are attributes added after HOOK_API 1.2 without a new argument:
    read them with ``getattr(event, "retries", 0)`` to support an older core.

    Since HOOK_API 1.5 (read them with ``getattr`` too): ``scope`` (the
    :class:`~modelyard.observe.CallScope` or None), ``state`` (the dict ``on_call_start``
    got for this call), ``started`` (the call's start, ``time.time()``), ``attempt_log``
    (``(start, end, status or error name)`` per attempt that was retried, ``time.time()``
    values), ``response_headers`` (the upstream's, or None), ``response`` (the normalized
    result of a call that was not streamed), ``response_model``, ``response_id`` and
    ``finish_reasons`` (also for streams), ``cancelled`` (a stream closed or dropped
    before its end: it ends in ``on_success`` with ``cancelled`` True).
    ``cost`` is what the call cost in USD (None when no price is known, and on failures);
    added in HOOK_API 1.6: read it with ``getattr(event, "cost", None)``.
    """

    route: Route
    duration: float
    status_code: int | None
    usage: dict[str, Any] | None
    error: APIError | None
    retries: int
    resent: int
    cost: float | None


class CallStart(Protocol):
    """What ``on_call_start`` receives: one pipeline call about to be sent (since HOOK_API 1.5).

    Attributes:
        route: where the call goes.
        request: the prepared request (messages and parameters, family rules applied); it
            holds the prompt: never put it in logs or telemetry unless the user asked for it.
        url: the upstream URL the call is sent to (no credentials in it).
        stream: whether the upstream answers as a stream.
        scope: the logical call around this one (:class:`modelyard.observe.CallScope`: the
            proxy request's trace context, the Router's try), or None.
        state: a dict private to this pipeline call, handed again to ``on_success`` /
            ``on_failure`` as ``event.state``: keep your per-call objects (a span) there, under
            your distribution's name.
    """

    route: Route
    request: ChatRequest
    url: str
    stream: bool
    scope: CallScope | None
    state: dict[str, Any]


# ---------------------------------------------------------------------------- resolve


@hookspec
def register_families(register: RegisterFamily) -> None:
    """Register the model families this plugin recognises.

    Called once per plugin manager, at the first call that needs model resolution (not at
    import). Call ``register(Family(...))`` for each family; return nothing. All plugins'
    answers are collected. Two families with the same name are an error at load time.
    Since HOOK_API 1.0.
    """


@hookspec
def register_providers(register: RegisterProvider) -> None:
    """Declare, per provider, which distribution serves each of its hooks.

    Called once per plugin manager, the first time a call finds no plugin answering a hook
    (never on the request path otherwise). Call ``register(Provider(name=..., served_by=...))``;
    return nothing. All plugins' answers are collected, and declarations for the same provider
    are merged (the first plugin to name a hook wins). A provider's base plugin declares its
    siblings, installed or not: ``modelyard-azure-chat`` says ``transform_files_request`` on
    ``azure`` comes from ``modelyard-azure-batch``, so ``create_file`` without that plugin fails
    with ``PluginNotLoadedError`` naming it, why it is not loaded, and the install line.
    Since HOOK_API 1.3.
    """


@hookspec
def register_connection_settings(register: RegisterConnectionSetting) -> None:
    """Declare the connection settings your provider reads beyond the core's.

    The core knows ``api_base``, ``base_url``, ``api_version``, ``api_key`` and
    ``extra_headers``; every other setting (a token, a tenant, an organization ...) is declared
    here, once per name, as ``register(ConnectionSetting(name=..., provider=..., kind=...))``.
    Declare a core setting again for your provider to list its environment fallbacks
    (``env=("MY_API_KEY",)``). Called once per plugin manager, at the first call that needs
    the settings (not at import); all plugins' answers are collected. The union is what
    ``completion()`` takes as connection keywords (the rest are request parameters), what
    ``litellm_params`` accepts, what reprs and logs mask (``kind="secret"``) and what proxy
    clients may not send; your plugin reads them with ``connection.get(name)``. Two plugins
    declaring one name with different kinds is a ``PluginError``. Since HOOK_API 1.7.
    """


@hookspec
def register_operations(register: RegisterOperation) -> None:
    """Contribute operation rows and proxy paths.

    Called once per plugin manager, at the first lookup of an operation, SDK function or proxy
    route the core does not have itself (a proxy's start; not at import). Call ``register``
    per row; return nothing; all plugins' answers are collected.

    * ``Operation(...)``: a new operation. ``modelyard.<sdk>`` / ``a<sdk>`` and the Router's
      methods of those names call it, the proxy serves it on its ``paths`` (and under ``/v1``),
      ``/openapi.json`` lists it; your ``transform_request`` answers for ``route.operation ==
      name``. Its name and SDK names may not be the core's or another plugin's.
    * ``ProxyPath(template, operation)``: another path for an operation (the core's or a
      plugin's), as a provider's own client calls it: the model from a ``{model}`` segment, else
      from the body. Served, documented and labelled in metrics only while your plugin is loaded.
    * ``OperationRef(sdk, distribution)``: a sibling distribution's row, so that while it is
      blocked or not installed ``modelyard.<sdk>`` fails naming it.

    A wrong type, a taken name or a bad template is a ``PluginError``. Since HOOK_API 1.9.
    """


# ---------------------------------------------------------------------------- transform


@hookspec(firstresult=True)
def transform_request(
    route: Route, request: ChatRequest, connection: Connection
) -> ProviderRequest | None:
    """Build the upstream HTTP call for one prepared request.

    Runs once per call, after the family's parameter rules (pipeline step 3). Answer for the
    (``route.provider``, ``route.operation``) pairs you serve and return None for the others
    (another provider, or an operation of :data:`modelyard.operations.OPERATIONS` you do not
    serve); the first non-None answer is used. For ``chat`` ``request.messages`` holds the
    messages; for every other operation it is empty and ``request.params`` is the body,
    validated against the operation's request model. Do not add
    credentials here: that is ``resolve_auth``'s job. Raise ``ConfigError`` for a missing
    setting (``api_base``) and ``BadRequestError`` for input the upstream would refuse.
    Since HOOK_API 1.0.
    """


@hookspec(firstresult=True)
def transform_files_request(
    route: Route, request: FilesRequest, connection: Connection
) -> ProviderRequest | None:
    """Build the upstream HTTP call for one files or batches operation.

    Runs once per ``create_file`` / ``file_*`` / ``*_batch`` / ``list_batches`` call, before
    auth. ``request`` is the call in OpenAI's shape relative to the API root
    (``request.path`` is ``/files``, ``/batches/{id}/cancel`` ...; an upload carries
    ``request.upload`` and the form fields). Return a ``ProviderRequest`` with the absolute
    URL, or None when ``route.provider`` is not yours; the first non-None answer is used.
    An upload goes in ``ProviderRequest.files``/``data`` and should stay a file object so
    that it is streamed. Raise ``BadRequestError`` for input the upstream would refuse (an
    invalid batch file, naming the line) and ``ConfigError`` for a missing setting.
    Since HOOK_API 1.1.
    """


# ---------------------------------------------------------------------------- auth


@hookspec(firstresult=True)
def resolve_auth(route: Route, connection: Connection, timeout: float | None) -> Authenticator | None:
    """Choose the credential for a call and return an :class:`Authenticator` for it.

    Runs once per call, before sending (step 4); the first non-None answer is used. Keep it
    cheap: fetch tokens inside ``Authenticator.headers``/``aheaders``, where they can be
    cached and refreshed. ``timeout`` is the call's ``timeout`` in seconds (None when the
    caller gave none): an authenticator that may wait for a token should give up by then,
    counted from this hook's call, with ``APITimeoutError``. Return None when
    ``route.provider`` is not yours. Raise ``AuthenticationError`` when no credential can be
    found, naming what to set. Since HOOK_API 1.0; ``timeout`` since 1.3.
    """


# ---------------------------------------------------------------------------- normalize


@hookspec(firstresult=True)
def normalize_response(route: Route, response: ProviderResponse) -> Any:
    """Turn a successful (2xx) upstream response into the OpenAI-shaped result.

    Runs once per non-streaming call (step 6); the first non-None answer is used. Return a
    pydantic model: the ``response`` model of ``route.operation``'s row in
    :data:`modelyard.operations.OPERATIONS` (``ChatCompletion`` for chat, ``TextCompletion``
    for completions, ``EmbeddingResponse`` for embeddings); the core checks the type. Return
    None when the (provider, operation) pair is not yours. Since HOOK_API 1.0; per
    operation since 1.4.
    """


@hookspec(firstresult=True)
def normalize_chunk(route: Route, chunk: dict[str, Any]) -> Any:
    """Turn one parsed server-sent event of a stream into an OpenAI-shaped chunk.

    Runs for every event of a stream (step 6), so keep it fast. Return the chunk model
    (``ChatCompletionChunk`` for chat, ``TextCompletion`` for ``completions``: the core turns
    it into a chat chunk for ``completion()`` callers), or None when ``route.provider`` is
    not yours. Azure's empty first event (no choices, only ``prompt_filter_results``) comes
    through here too: the core does not yield it but keeps the chunk's
    ``prompt_filter_results`` for the stream and the next chunk. Since HOOK_API 1.0.
    """


@hookspec(firstresult=True)
def translate_stream(route: Route) -> StreamTranslator | None:
    """Give a stateful translator for one stream whose events are not OpenAI chunks.

    Called once per streamed call, when its answer starts (step 6). Return a
    :class:`StreamTranslator` for the (``route.provider``, ``route.operation``) pairs whose
    upstream streams in another format (Anthropic's ``message_start`` / ``content_block_*``
    events): the core then feeds it every event instead of calling ``normalize_chunk``, and
    yields, prices and observes the chunks it returns. Return None to keep ``normalize_chunk``
    (one OpenAI-shaped event, one chunk); the first non-None answer is used. Since HOOK_API 1.8.
    """


@hookspec
def keeps_answers(route: Route, kind: str) -> bool | Callable[[dict[str, Any]], bool] | None:
    """Say whether your ``normalize_response`` / ``normalize_chunk`` leave a route's answers as sent.

    ``kind`` is ``"response"`` (``normalize_response``) or ``"chunk"`` (``normalize_chunk``).
    Return:

    * ``True``: for this route your hook only validates the upstream's JSON as the operation's
      model (nothing added, renamed or dropped), or, for a wrapper, returns what it got;
    * ``None``: your hook does not answer for this route (another provider or operation);
    * ``False``: your hook changes this route's answers;
    * a callable that gets one answer's parsed JSON (a dict) and returns True when that answer
      needs your hook (the vision plugin: only extension-shaped answers); mark it with
      :func:`claims_only_with` (HOOK_API 1.12) when the answers it claims always contain
      certain bytes, so that the others are validated without being parsed for it.

    When every plugin implementing the normalize hook implements this one, none says False, and
    one that is not a wrapper says True, the core does not call the normalize hook for the
    route: it validates the JSON as the hook would, and the proxy sends the upstream's bytes
    (a non-streamed answer) or each event's JSON as parsed (a stream) instead of re-serialising
    the model. An answer a callable claims goes through the normalize hook as before. A plugin
    that implements a normalize hook but not this one keeps every route on the normalize hook.
    Called once per (``route.provider``, ``route.family``, ``route.operation``) and kind, not per
    call: answer from those only. Asked, for ``response``, for the operations answered with a JSON
    body (not binary, not text formats), and for ``chunk`` for ``chat`` streams. Must not raise.
    Since HOOK_API 1.10.
    """


# ---------------------------------------------------------------------------- errors


@hookspec(firstresult=True)
def map_error(route: Route, response: ProviderResponse) -> APIError | None:
    """Turn an upstream error response (status >= 400) into a modelyard ``APIError``.

    Runs once per failed attempt (step 7); the first non-None answer is used. Return None for
    a (``route.provider``, ``route.operation``) pair you do not serve, or to let the core map
    by status code alone. Return, do not raise. Since HOOK_API 1.0; per operation since 1.4.
    """


# ---------------------------------------------------------------------------- observe


@hookspec
def on_success(event: CallEvent) -> None:
    """Observe a call that succeeded (step 8): route, duration, usage.

    Called once per call, after the response (or the last stream chunk; for a stream its
    reader closed, dropped or cancelled before the end, then, with ``event.cancelled`` True,
    since HOOK_API 1.5). Must not raise;
    an exception is logged and ignored. Since HOOK_API 1.0.
    """


@hookspec
def on_failure(event: CallEvent) -> None:
    """Observe a call that failed (step 8): route, duration, the error.

    Called once per call that raised, after retries are spent. Must not raise; an exception
    is logged and ignored. Since HOOK_API 1.0.
    """


@hookspec
def on_call_start(call: CallStart) -> dict[str, str] | None:
    """Observe a pipeline call about to be sent; return headers to add to the upstream request.

    Called once per chat / text completion call, after ``transform_request`` and
    ``resolve_auth`` and before the first attempt (in the caller's thread and context). Return
    a dict of extra upstream request headers (a ``traceparent``), or None. All answers are
    collected and merged; a header the request already has (the credential, the content type)
    is never replaced. When a ``traceparent`` is added, its trace id becomes
    ``call.scope.trace_id`` (the proxy's access log shows it). The call ends in exactly one
    ``on_success`` or ``on_failure`` with ``event.state is call.state``. Must not raise; an
    exception is logged and ignored. Since HOOK_API 1.5.
    """


# ---------------------------------------------------------------------------- prices


@hookspec
def register_prices(register: RegisterPrices) -> None:
    """Contribute model prices (a provider whose prices the shipped table lacks or gets wrong).

    Called once per process, when the first cost is computed (not at import). Call
    ``register(model, prices)`` per model, with LiteLLM's price keys; return nothing. All
    plugins' answers are collected and laid over the shipped table, key by key; a user's
    ``MODELYARD_PRICES`` file and ``register_model`` calls win over them, and a deployment's own
    ``input_cost_per_token`` ... over everything. An exception is logged and that call's
    prices are left out. Since HOOK_API 1.6.
    """


@hookspec
def register_price_names(register: RegisterPriceNames) -> None:
    """Declare how your provider's models are named in the price table.

    Called once per process, with ``register_prices``, when the first cost is computed (not at
    import). Call ``register(PriceNames(provider=..., prefixes=(...)))``; return nothing. All
    plugins' answers are collected: the union of the ``prefixes`` is what a price lookup strips
    to find a model's bare name, ``fallback`` providers' entries are tried for any model after
    the call's own provider's, and every ``aliases`` rewrite is tried last. An exception is
    logged and that plugin's names are left out. Since HOOK_API 1.9.
    """


@hookspec
def register_header_views(register: RegisterHeaderView) -> None:
    """Contribute a typed view of the upstream's response headers, read as an attribute of results.

    Called once per plugin manager, the first time a result is asked for an attribute it does
    not have (never per response otherwise). Call ``register(name, view)``: results of calls
    (responses, streams, binary responses, the Responses API's) then answer ``result.<name>``
    with ``view.from_headers(headers)``, and ``modelyard.<view.__name__>`` is the class. All
    plugins' answers are collected; one name registered with two different classes is a
    ``PluginError``. Since HOOK_API 1.9.
    """


# ---------------------------------------------------------------------------- commands


@hookspec
def register_commands(register: RegisterCommand) -> None:
    """Add top-level commands to the ``modelyard`` command line.

    Called once when the command line starts, after the built-in commands are defined. Call
    ``register(name, summary=..., setup=..., run=...)`` per command; all plugins' answers are
    collected. A name that is already taken is skipped with a warning. Import heavy modules
    inside ``run``, not at registration. Since HOOK_API 1.1.
    """


# ---------------------------------------------------------------------------- proxy


@hookspec(firstresult=True)
def default_config(environ: Mapping[str, str]) -> EnvironmentConfig | None:
    """Build a proxy config from the environment, for ``modelyard serve`` without ``--config``.

    Called once at start-up, before the embedded demo is considered. Return an
    :class:`EnvironmentConfig` when ``environ`` holds your provider's settings (an endpoint
    and a key), else None; the first non-None answer is used, in plugin-name order. Raise
    ``ConfigError`` naming the variable for a setting that is present but unusable.
    Since HOOK_API 1.9.
    """


@hookspec(firstresult=True)
def files_router(deployments: list[FilesDeployment], store: Store) -> FilesRouter | None:
    """Take over the proxy's files and batches for the batch deployments of its config.

    Called once when a proxy starts with ``litellm_settings.enable_loadbalancing_on_batch_endpoints``
    on, with the ``model_info.mode: batch`` deployments and the proxy's store (SQLite or
    PostgreSQL; keep your id maps there so they survive a restart). Return a
    :class:`~modelyard.files_router.FilesRouter`, which the proxy asks first for every files and
    batches call, or None when none of ``deployments`` is yours; the first non-None answer is
    used. Raise ``ConfigError`` for a deployment you cannot serve. Since HOOK_API 1.2.
    """
