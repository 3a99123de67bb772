"""``modelyard serve``: build the app from a config (or the embedded defaults) and run uvicorn.

Which upstream, in order:

1. ``--config config.yaml``: LiteLLM's format (:mod:`modelyard.proxy.config`).
2. No config: a config a provider plugin builds from the environment (``default_config`` hook,
   first answer in plugin-name order). The Azure chat plugin answers when ``AZURE_API_KEY`` and
   ``AZURE_API_BASE`` are set: one model per deployment named in ``MODELYARD_DEPLOYMENTS``
   (comma-separated, default ``gpt-4o,gpt-4o-mini``), each ``azure/<name>`` with the key, base
   and ``AZURE_API_VERSION`` from the environment.
3. Neither: the embedded defaults (:mod:`modelyard.testing.demo`). The Azure OpenAI emulator
   runs in this process on another loopback port and serves a few demo deployments, so the
   quickstart works offline. When installed plugins are not loaded, the banner and a warning
   say which (one of them may have answered 2).

The master key is ``general_settings.master_key``, else ``MODELYARD_MASTER_KEY``, else
``LITELLM_MASTER_KEY``. Without a config and without a key, a random one is generated and
printed. With a config and no key, or a publicly known one, the proxy refuses to start unless
``--dev`` is given.

Metrics with several workers: ``GET /metrics`` must show every worker's counts, so
``--num_workers`` > 1 puts prometheus-client in multiprocess mode: ``PROMETHEUS_MULTIPROC_DIR``
is set to a fresh temporary directory (removed at exit) unless it is set already (then it is
used as is and left in place: empty it before each start).

Shutdown: on SIGTERM or SIGINT, ``/health/readiness`` answers 503 at once; after
``general_settings.shutdown_delay`` seconds (0 by default) of serving on, uvicorn stops accepting
connections, lets requests in flight finish for up to
``general_settings.graceful_shutdown_timeout`` seconds (30 by default), then exits. (With
``--num_workers`` above 1, uvicorn's own workers shut down without the readiness flip or the delay.)
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import signal
import sys
import tempfile
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError, PluginError
from ..hookspecs import EnvironmentConfig
from .auth import generate_key
from .config import ProxyConfig, load_config, parse_config

__all__ = ["Built", "build", "check", "http_options", "run", "worker_app"]

_ENV_CONFIG = "MODELYARD_PROXY_CONFIG"
_ENV_DEV = "MODELYARD_PROXY_DEV"
_ENV_UPSTREAM = "MODELYARD_PROXY_DEMO_UPSTREAM"
_ENV_UPSTREAM_KEY = "MODELYARD_PROXY_DEMO_UPSTREAM_KEY"
_ENV_LOG_LEVEL = "MODELYARD_PROXY_LOG_LEVEL"
_ENV_ACCESS_LOG = "MODELYARD_PROXY_ACCESS_LOG"
_ENV_FAILED = "MODELYARD_PROXY_START_FAILED"
log = logging.getLogger("modelyard.proxy")


@dataclass
class Built:
    """What :func:`build` made: the app and how it was configured (for the start-up banner).

    :func:`check` makes one without the app (``app`` None): what the parent of
    ``--num_workers N`` knows before its workers build the app each.
    """

    app: Any
    mode: str  # "config" | "environment" | "emulator"
    master_key: str | None
    generated_key: bool
    emulator: Any = None
    source: str = ""
    """Where an ``environment`` config came from (the variables, and the plugin that read them)."""
    note: str = ""
    """Why the demo serves although plugins are installed (one of them is not loaded), or ``""``."""
    config: Any = None
    """The parsed :class:`~modelyard.proxy.config.ProxyConfig`."""
    deployments: Any = None
    """The :class:`~modelyard.proxy.deployments.Deployments` (the app's own when it was built)."""


def _environment_config() -> tuple[EnvironmentConfig, str] | None:
    """The first config a provider plugin builds from the environment (``default_config``), with its plugin's name."""
    from ..plugins import get_plugins

    impls = sorted(get_plugins().pm.hook.default_config.get_hookimpls(), key=lambda i: i.plugin_name)
    for impl in impls:
        answer = impl.function(environ=os.environ)
        if answer is None:
            continue
        if not isinstance(answer, EnvironmentConfig):
            raise PluginError(f"default_config of {impl.plugin_name!r} returned {type(answer).__name__}, "
                              "not a modelyard.plugin.EnvironmentConfig", plugin=impl.plugin_name)  # fmt: skip
        return answer, impl.plugin_name
    return None


def _not_loaded_note() -> str:
    """Why no plugin built a config from the environment, when installed plugins are not loaded."""
    from ..plugins import get_plugins

    note = get_plugins().not_loaded()
    return f"no loaded plugin builds a config from the environment (default_config). {note}" if note else ""


def _master_key(config: ProxyConfig) -> str | None:
    key = config.general_settings.master_key
    if key is not None:
        return key.get_secret_value()
    return os.environ.get("MODELYARD_MASTER_KEY") or os.environ.get("LITELLM_MASTER_KEY") or None


def build(config_path: str | None = None, *, dev: bool = False, demo_upstream: tuple[str, str] | None = None) -> Built:
    """Make the proxy app the way ``modelyard serve`` does (see the module docstring).

    Args:
        config_path: a ``config.yaml``; None for the environment or the embedded defaults.
        dev: local development: allow no master key or a publicly known one.
        demo_upstream: (url, api key) of an already running emulator for the embedded
            defaults; None starts one.

    Raises:
        ConfigError: the config is invalid, or the master key is refused.
    """
    return _make(config_path, dev=dev, demo_upstream=demo_upstream, app=True)


def check(config_path: str | None = None, *, dev: bool = False, demo_upstream: tuple[str, str] | None = None) -> Built:
    """What :func:`build` does short of building the app: read the config and refuse what the app would refuse.

    The parent process of ``--num_workers N`` runs this (:meth:`ProxyApp.check`), then each
    worker builds the app itself (:func:`worker_app`): the parent opens no store and imports
    neither the upstream client nor SQLAlchemy. ``Built.app`` is None. Same arguments and errors
    as :func:`build`.
    """
    return _make(config_path, dev=dev, demo_upstream=demo_upstream, app=False)


def _make(config_path: str | None, *, dev: bool, demo_upstream: tuple[str, str] | None, app: bool) -> Built:
    from .app import ProxyApp

    emulator = None
    source, note = "", ""
    found = None if config_path else _environment_config()
    if config_path:
        config, mode = load_config(config_path), "config"
    elif found is not None:
        env, plugin = found
        source = f"{env.source} (from the environment, by plugin {plugin})"
        config, mode = parse_config(dict(env.config), source=f"{env.source} environment"), "environment"
    else:
        from ..testing.demo import demo_config, start_demo_upstream

        note = _not_loaded_note()
        if note:
            log.warning("modelyard serve without a config: %s Serving the offline demo.", note)
        if demo_upstream is None:
            emulator, url, key = start_demo_upstream()
        else:
            url, key = demo_upstream
        config, mode = parse_config(demo_config(url, key), source="embedded defaults"), "emulator"
    master_key = _master_key(config)
    generated = False
    if master_key is None and mode != "config":
        master_key, generated = generate_key(), True
    made: Any = None
    try:
        if app:
            made = ProxyApp(config, master_key=master_key, insecure_ok=dev)
            deployments = made.deployments
        else:
            deployments = ProxyApp.check(config, master_key=master_key, insecure_ok=dev)
    except Exception as exc:
        if emulator is not None:
            emulator.stop()
        if note and isinstance(exc, ConfigError):  # the demo's provider is among those not loaded
            raise ConfigError(f"modelyard serve without a config: {note} The offline demo cannot start either: "
                              f"{exc}", key=exc.key) from None  # fmt: skip
        raise
    return Built(app=made, mode=mode, master_key=master_key, generated_key=generated, emulator=emulator,
                 source=source, note=note, config=config, deployments=deployments)  # fmt: skip


STARTUP_FAILURE = 3
"""The exit status of ``modelyard serve`` (and uvicorn's) when the app could not start."""


def worker_app() -> Any:
    """The app for one uvicorn worker process (``--num_workers`` > 1); settings come from the parent's environment.

    The parent checked the config (:func:`check`); what only building finds (a store that does
    not open ...) is logged here, and the worker leaves a mark for the parent, asks it to stop
    (SIGTERM: uvicorn's parent then stops every worker) and exits with uvicorn's start-up
    failure status, so ``modelyard serve`` exits 3 rather than restarting the worker forever.
    """
    _configure_logging(os.environ.get(_ENV_LOG_LEVEL, "info"), os.environ.get(_ENV_ACCESS_LOG, "1") == "1")
    upstream = os.environ.get(_ENV_UPSTREAM)
    demo = (upstream, os.environ.get(_ENV_UPSTREAM_KEY, "")) if upstream else None
    try:
        app = build(os.environ.get(_ENV_CONFIG) or None, dev=os.environ.get(_ENV_DEV) == "1", demo_upstream=demo).app
    except Exception as exc:
        log.error("a worker could not start: %s", exc, exc_info=not isinstance(exc, ConfigError))
        mark = os.environ.get(_ENV_FAILED)
        if mark:
            with open(mark, "w"):
                pass
            os.kill(os.getppid(), signal.SIGTERM)
        sys.exit(STARTUP_FAILURE)
    freeze_heap()
    return app


YOUNG_GC_THRESHOLD = 20_000
"""The youngest generation's collection threshold while serving (:func:`freeze_heap`)."""


def freeze_heap() -> None:
    """Move what start-up built (modules, pydantic schemas, the config) out of the garbage collector's sight.

    Without it every full collection walks those objects again, while serving: they are most of
    the heap and never garbage. No collection first: it would cost ~40 ms of start-up to free
    the ~10 unreachable objects there are at this point (measured on the bench's config); they
    stay, frozen. Objects freed by their reference count are freed as before. Only for a process
    that serves (``modelyard serve``), not for an app made in a test.

    The youngest generation is collected after 20,000 net allocations instead of CPython's 700:
    a request's objects are freed by their reference count (it makes no cycles:
    tests/proxy/test_request_garbage.py, test_protocol_garbage.py), so a young collection only
    walks the objects of the requests in flight, and what triggers it is their number going up
    and down. At 64 in flight that number swings by more than 5,000 (70-86 collections of ~1 ms
    in 5 s of the bench's load, 14-16 µs of CPU per request) and rarely by 20,000 (one
    collection: 0.4-0.6 µs per request; bench/README.md). What waits longer for a collection is
    only cyclic garbage, which requests no longer make. A higher threshold set before start-up
    is kept.
    """
    import gc

    gc.freeze()
    young, *older = gc.get_threshold()
    gc.set_threshold(max(young, YOUNG_GC_THRESHOLD), *older)


def _configure_logging(level: str, access_log: bool) -> None:
    access = logging.getLogger("modelyard.proxy.access")
    access.propagate = False
    access.handlers.clear()
    if access_log:
        from .logs import BatchedLineHandler

        access.addHandler(BatchedLineHandler(sys.stdout))
        access.setLevel(logging.INFO)
    else:
        access.setLevel(logging.WARNING)
    root = logging.getLogger("modelyard")
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
    root.setLevel(level.upper())


def _banner(built: Built, host: str, port: int, workers: int, scheme: str = "http") -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    url = f"{scheme}://{shown}:{port}"
    models = ", ".join(built.deployments.model_names())
    if built.mode == "emulator":
        from ..testing.demo import DEMO_UPSTREAM

        upstream = DEMO_UPSTREAM
    else:
        upstream = built.source if built.mode == "environment" else "your config.yaml"
    lines = [f"modelyard proxy on {url}  ({workers} worker{'s' if workers > 1 else ''})",
             f"  upstream: {upstream}", f"  models:   {models}"]  # fmt: skip
    if built.note:
        lines.append(f"  note:     {built.note}")
    if built.master_key is None:
        lines.append("  auth:     OFF (--dev without a master key): do not expose this port")
    elif built.generated_key:
        lines.append(f"  master key (generated for this run): {built.master_key}")
    else:
        lines.append("  master key: from your settings")
    key = built.master_key if built.generated_key else "$MODELYARD_MASTER_KEY"
    auth = "" if built.master_key is None else f" \\\n    -H 'Authorization: Bearer {key}'"
    first = built.deployments.model_names()[0] if models else "gpt-4o"
    lines += [
        "  try:",
        f"  curl {url}/v1/chat/completions{auth} \\\n    -H 'Content-Type: application/json' \\\n"
        f"    -d '{{\"model\": \"{first}\", \"messages\": [{{\"role\": \"user\", \"content\": \"Hello\"}}]}}'",
    ]
    return "\n".join(lines)


def http_options(config: ProxyConfig) -> dict[str, Any]:
    """uvicorn's HTTP settings for ``config``: a parser whose request heads are bounded in size and time.

    httptools with :class:`~modelyard.proxy.protocol.BoundedHttpToolsProtocol` (measured faster
    than h11, see bench/README.md); h11 with its own size limit when httptools is not installed.
    """
    general = config.general_settings
    try:
        import httptools  # noqa: F401
    except ImportError:
        return {"http": "h11", "h11_max_incomplete_event_size": general.max_header_bytes}
    from .protocol import BoundedHttpToolsProtocol

    # A partial of a module-level class pickles, so the limits reach --num_workers processes too.
    return {"http": functools.partial(BoundedHttpToolsProtocol, max_head_bytes=general.max_header_bytes,
                                      head_timeout=general.request_header_timeout,
                                      body_timeout=general.request_body_timeout)}  # fmt: skip


def event_loop() -> str:
    """uvicorn's ``loop`` setting: uvloop with servers that accept every waiting connection at once
    (:mod:`modelyard.proxy.accept`), or asyncio's own loop when uvloop is not installed."""
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "modelyard.proxy.accept:Loop"


def _draining_server(config: Any, app: Any, delay: float) -> Any:
    """A ``uvicorn.Server`` whose app reports not ready as soon as SIGTERM or SIGINT arrives.

    ``app.shutting_down`` turns ``/health/readiness`` to 503 at the signal, before uvicorn
    stops listening. With ``delay`` (``general_settings.shutdown_delay``) the proxy then keeps
    serving for that many seconds, so a load balancer polling readiness stops sending new
    requests before connections are refused; then uvicorn drains the requests in flight. A
    second signal skips the delay.
    """
    import time

    import uvicorn

    class DrainingServer(uvicorn.Server):
        _drain_until: float | None = None

        def handle_exit(self, sig: int, frame: Any) -> None:
            app.shutting_down = True
            if delay > 0 and self._drain_until is None:
                self._drain_until = time.monotonic() + delay
                self._captured_signals.append(sig)  # re-raised after the drain, as uvicorn does
                return
            super().handle_exit(sig, frame)

        async def on_tick(self, counter: int) -> bool:
            if self._drain_until is not None and time.monotonic() >= self._drain_until:
                self.should_exit = True
            return bool(await super().on_tick(counter))

    return DrainingServer(config)


def _exit_cleanly(signum: int, frame: Any) -> None:
    raise SystemExit(0)


def run(config_path: str | None, *, host: str = "127.0.0.1", port: int = 4000, num_workers: int = 1,
        dev: bool = False, log_level: str = "info", access_log: bool = True, ssl_certfile: str | None = None,
        ssl_keyfile: str | None = None) -> int:  # fmt: skip
    """Serve until SIGTERM / SIGINT; returns the exit status.

    With ``ssl_certfile`` (PEM, the chain; and ``ssl_keyfile`` unless the key is in it) the proxy
    serves HTTPS only, through uvicorn's TLS settings.
    """
    _configure_logging(log_level, access_log)
    tls = _tls_options(ssl_certfile, ssl_keyfile)
    metrics_dir = None
    if num_workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Set before anything imports prometheus_client: it picks its storage at import.
        metrics_dir = tempfile.mkdtemp(prefix="modelyard-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    try:
        return _run(config_path, host=host, port=port, num_workers=num_workers, dev=dev, log_level=log_level,
                    access_log=access_log, tls=tls)  # fmt: skip
    finally:
        if metrics_dir is not None:
            os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
            shutil.rmtree(metrics_dir, ignore_errors=True)


def _tls_options(certfile: str | None, keyfile: str | None) -> dict[str, str]:
    """uvicorn's ``ssl_certfile`` / ``ssl_keyfile``, checked to be readable files first."""
    from ..errors import ConfigError

    if keyfile and not certfile:
        raise ConfigError("--ssl-keyfile needs --ssl-certfile (the certificate it belongs to).", key="ssl_certfile")
    options: dict[str, str] = {}
    for key, path in (("ssl_certfile", certfile), ("ssl_keyfile", keyfile)):
        if path:
            if not os.path.isfile(path) or not os.access(path, os.R_OK):
                raise ConfigError(f"--{key.replace('_', '-')}: no readable file at {path!r}.", key=key)
            options[key] = path
    return options


def _run(config_path: str | None, *, host: str, port: int, num_workers: int, dev: bool, log_level: str,
         access_log: bool, tls: dict[str, str]) -> int:  # fmt: skip
    import uvicorn

    # With several workers each builds the app (worker_app); the parent only checks the config.
    built = build(config_path, dev=dev) if num_workers <= 1 else check(config_path, dev=dev)
    config: ProxyConfig = built.config
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "log_level": "warning",
        "access_log": False,
        "lifespan": "on",
        "timeout_graceful_shutdown": config.general_settings.graceful_shutdown_timeout,
        "backlog": 2048,
        "proxy_headers": False,  # the app reads no client address; skip uvicorn's X-Forwarded-* pass
        "server_header": False,
    }
    options["loop"] = event_loop()
    options.update(http_options(config))
    options.update(tls)
    print(_banner(built, host, port, num_workers, "https" if tls else "http"), file=sys.stderr, flush=True)
    # uvicorn drains on SIGTERM, then re-raises the signal; after a clean drain, exit 0.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    try:
        if num_workers > 1:
            # Workers are fresh processes: hand them the settings (and the generated key) by environment.
            if config_path:
                os.environ[_ENV_CONFIG] = os.path.abspath(config_path)
            if dev:
                os.environ[_ENV_DEV] = "1"
            os.environ[_ENV_LOG_LEVEL] = log_level
            os.environ[_ENV_ACCESS_LOG] = "1" if access_log else "0"
            if built.master_key and built.generated_key:
                os.environ["MODELYARD_MASTER_KEY"] = built.master_key
            if built.mode == "emulator":
                deployment = next(iter(built.deployments))
                os.environ[_ENV_UPSTREAM] = deployment.kwargs["api_base"]
                os.environ[_ENV_UPSTREAM_KEY] = deployment.kwargs["api_key"].get_secret_value()
            failed_dir = tempfile.mkdtemp(prefix="modelyard-start-")
            os.environ[_ENV_FAILED] = os.path.join(failed_dir, "failed")
            try:
                from .workers import run_workers

                status = run_workers(uvicorn.Config("modelyard.proxy.serve:worker_app", factory=True,
                                                    workers=num_workers, **options))  # fmt: skip
                if status:
                    return status  # the address could not be bound; uvicorn's logger said why
                if os.path.exists(os.environ[_ENV_FAILED]):
                    return STARTUP_FAILURE  # a worker could not build the app; it logged why
            finally:
                os.environ.pop(_ENV_FAILED, None)
                shutil.rmtree(failed_dir, ignore_errors=True)
        else:
            server = _draining_server(uvicorn.Config(built.app, **options), built.app,
                                      config.general_settings.shutdown_delay)  # fmt: skip
            freeze_heap()
            server.run()
            if not server.started:
                return 3  # uvicorn's STARTUP_FAILURE (the port is taken ...); it logged why
    finally:
        if built.emulator is not None:
            built.emulator.stop()
    return 0

