"""The modelyard pytest plugin: an Azure OpenAI emulator, Entra ID, Redis, PostgreSQL, a proxy.

Installing ``modelyard`` registers this module with pytest (the ``pytest11`` entry point
``modelyard``; ``-p no:modelyard`` turns it off). It only adds fixtures, three ini options and
one command-line option; nothing runs unless a test asks for it, and importing it imports no
HTTP client, no pydantic and no server (each fixture imports what it needs when first used).

Fixtures (docs/testing.md has examples):

* ``emulator_server`` (session): an Azure OpenAI emulator (:class:`~modelyard.testing.Emulator`)
  served on loopback, with :func:`~modelyard.testing.default_deployments`, accepting the api key
  ``KEY`` and the static Entra ID token ``AD_TOKEN``.
* ``emulator``: that emulator with recorded requests, faults and quota usage reset;
  ``api_base``: its URL; ``azure_env``: ``AZURE_API_KEY`` / ``AZURE_API_BASE`` /
  ``AZURE_API_VERSION`` set to it, so application code needs no arguments.
* ``entra_server`` (session) and ``entra``: a Microsoft Entra ID emulator over HTTPS that the real
  azure-identity credentials reach through ``HTTPS_PROXY`` (a CONNECT tunnel) and trust through
  ``REQUESTS_CA_BUNDLE``; ``entra`` also makes the ``emulator`` accept only the tokens it issues.
  Its tenant, apps and user: ``TENANT``, ``CLIENT_ID`` / ``CLIENT_SECRET``, ``USER_CLIENT_ID``,
  ``USERNAME`` / ``PASSWORD``, ``WORKLOAD_SUBJECT``. Needs ``modelyard[entra]``.
* ``redis_server`` (session), ``redis_url`` (that server, emptied for the test) and
  ``fresh_redis`` (a server of the test's own, to kill mid-test): a real ``redis-server``.
* ``postgres_url`` (session): a database on a real PostgreSQL (fails when not installed).
* ``proxy_config`` and ``proxy``: a ``modelyard serve`` proxy on loopback in front of the
  emulator (master key ``MASTER_KEY``); override ``proxy_config`` to change its config.yaml, or
  call :func:`running_proxy` for a proxy of your own.
* ``clean_environment``: no ``AZURE_*`` / ``OPENAI_*`` / ``MODELYARD_*`` variable from the machine
  and freshly loaded plugins, for one test.

Ini options (``[tool.pytest.ini_options]``), all off by default:

* ``modelyard_no_network = true``: a connection to a non-loopback address fails the test.
* ``modelyard_clean_env = true``: ``clean_environment`` for every test, and the SDK's pooled HTTP
  clients closed after each test (on the test's own event loop, with pytest-asyncio).
* ``modelyard_secret_scan = true``: everything logged at DEBUG, and the run failed when a test
  secret shows up in a log record or a proxy's answer (docs/testing.md).

Command-line option ``--modelyard-leaks``: the cycle collector run after every test, and a test
that left an object unclosed for it to finalise (a socket, a file) fails at its teardown
(``modelyard.testing._leaks``).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .helpers import (
    AD_TOKEN,
    CLIENT_ID,
    CLIENT_SECRET,
    COGNITIVE_SCOPE,
    KEY,
    MASTER_KEY,
    PASSWORD,
    TENANT,
    USER_CLIENT_ID,
    USERNAME,
    WORKLOAD_SUBJECT,
    ManualClock,
    add_family_deployments,
    batch_jsonl,
    default_deployments,
    litellm_params,
)
from .services import REDIS_PASSWORD, RedisServer, postgres_server

if TYPE_CHECKING:
    from .emulator import Deployment, Emulator
    from .entra import EntraEmulator
    from .entra_server import EntraServer
    from .server import EmulatorServer, serve_in_thread

__all__ = [
    "AD_TOKEN",
    "CLIENT_ID",
    "CLIENT_SECRET",
    "COGNITIVE_SCOPE",
    "KEY",
    "MASTER_KEY",
    "PASSWORD",
    "REDIS_PASSWORD",
    "TENANT",
    "USERNAME",
    "USER_CLIENT_ID",
    "WORKLOAD_SUBJECT",
    "ManualClock",
    "RedisServer",
    "add_family_deployments",
    "api_base",
    "azure_env",
    "batch_jsonl",
    "clean_environment",
    "default_deployments",
    "emulator",
    "emulator_server",
    "entra",
    "entra_server",
    "fresh_redis",
    "litellm_params",
    "postgres_url",
    "proxy",
    "proxy_config",
    "redis_server",
    "redis_url",
    "running_proxy",
]

_NO_NETWORK = "modelyard_no_network"
_CLEAN_ENV = "modelyard_clean_env"
_SECRET_SCAN = "modelyard_secret_scan"
_CLEANED_PREFIXES = ("AZURE_", "OPENAI_", "MODELYARD_")


# ------------------------------------------------------------------ options


def pytest_addoption(parser: pytest.Parser) -> None:
    """Declare the plugin's ini options (both off by default)."""
    parser.addini(_NO_NETWORK, type="bool", default=False,
                  help="modelyard: fail any connection to a non-loopback address")  # fmt: skip
    parser.addini(_CLEAN_ENV, type="bool", default=False,
                  help="modelyard: clean AZURE_*/OPENAI_*/MODELYARD_* variables and reload plugins for every test")  # fmt: skip
    parser.addini(_SECRET_SCAN, type="bool", default=False,
                  help="modelyard: log everything at DEBUG and fail the run when a test secret shows up (secret_scan)")  # fmt: skip
    parser.addoption("--modelyard-leaks", action="store_true", default=False,
                     help="modelyard: collect garbage after every test and fail the test that left an object "
                          "unclosed (a socket, a file, a transport) for the collector to finalise")  # fmt: skip


def pytest_configure(config: pytest.Config) -> None:
    """Turn on what the ini options ask for."""
    if config.getini(_NO_NETWORK):
        _guard_network()
    if config.getini(_SECRET_SCAN):
        from . import _secret_scan_hooks

        config.pluginmanager.register(_secret_scan_hooks, "modelyard-secret-scan")
    if config.getoption("--modelyard-leaks"):
        from . import _leaks

        config.pluginmanager.register(_leaks, "modelyard-leaks")
    if config.getini(_CLEAN_ENV):
        from . import _isolation

        config.pluginmanager.register(_isolation, "modelyard-clean-env")
        if config.pluginmanager.has_plugin("asyncio"):  # pytest-asyncio, unless -p no:asyncio
            from . import _isolation_async

            config.pluginmanager.register(_isolation_async, "modelyard-clean-env-async")


def pytest_unconfigure(config: pytest.Config) -> None:
    """Undo the network guard (an in-process pytest run must leave the socket module as found)."""
    if config.getini(_NO_NETWORK):
        _unguard_network()


# ------------------------------------------------------------------ no network
# The guard itself is ._netguard; subprocesses get it through a sitecustomize on PYTHONPATH.

_guard_dir: list[str] = []


def _guard_network() -> None:
    import os
    import tempfile
    from pathlib import Path

    from . import _netguard

    _netguard.guard()
    folder = tempfile.mkdtemp(prefix="modelyard-netguard-")
    source = Path(_netguard.__file__).read_text()
    (Path(folder) / "sitecustomize.py").write_text(source + "\n\nguard()\n")
    _guard_dir.append(folder)
    previous = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = folder + (os.pathsep + previous if previous else "")


def _unguard_network() -> None:
    import os
    import shutil

    from . import _netguard

    _netguard.unguard()
    while _guard_dir:
        folder = _guard_dir.pop()
        parts = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != folder]
        if parts:
            os.environ["PYTHONPATH"] = os.pathsep.join(parts)
        else:
            os.environ.pop("PYTHONPATH", None)
        shutil.rmtree(folder, ignore_errors=True)


# ------------------------------------------------------------------ environment


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """No ``AZURE_*`` / ``OPENAI_*`` / ``MODELYARD_*`` variable from the machine; plugins reloaded;
    ``XDG_DATA_HOME`` in the session's temporary directory, so a proxy's default store (its
    spend rows) is never the user's.

    Autouse for every test with the ini option ``modelyard_clean_env = true``.
    """
    import os

    from modelyard.plugins import reset_plugins

    for name in list(os.environ):
        if name.startswith(_CLEANED_PREFIXES):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path_factory.getbasetemp() / "xdg-data"))
    reset_plugins()
    yield
    reset_plugins()


# ------------------------------------------------------------------ Azure OpenAI emulator


@pytest.fixture(scope="session")
def emulator_server() -> Iterator[EmulatorServer]:
    """An Azure OpenAI emulator on loopback for the session (``.url``, ``.emulator``).

    Serves :func:`~modelyard.testing.default_deployments`; accepts ``KEY`` and ``AD_TOKEN``.
    """
    from .emulator import Emulator
    from .server import EmulatorServer

    with EmulatorServer(Emulator(default_deployments(), api_keys=[KEY], ad_tokens=[AD_TOKEN])) as server:
        yield server


@pytest.fixture
def emulator(emulator_server: EmulatorServer) -> Emulator:
    """The session's emulator, with recorded requests, faults and quota usage reset.

    Set faults (``emulator.deployments["gpt-4o"].faults = Faults(script=[429])``) and quotas
    (``Deployment(..., rpm=2)`` via ``emulator.add_deployment``); read ``emulator.requests``.
    """
    served: Emulator = emulator_server.emulator
    served.reset()
    return served


@pytest.fixture
def claude_deployment(emulator: Emulator) -> Iterator[Deployment]:
    """A Claude deployment, ``claude-sonnet-4-5``, on the emulator's Foundry endpoint
    (``POST /anthropic/v1/messages``, :mod:`modelyard.testing.anthropic`); removed after the test."""
    from .emulator import Deployment

    deployment = emulator.add_deployment(Deployment("claude-sonnet-4-5", model="claude-sonnet-4-5"))
    yield deployment
    emulator.deployments.pop(deployment.name, None)


@pytest.fixture
def api_base(emulator_server: EmulatorServer) -> str:
    """The emulator's URL (``http://127.0.0.1:<port>``), for ``api_base=``."""
    return emulator_server.url


@pytest.fixture
def azure_env(monkeypatch: pytest.MonkeyPatch, api_base: str, emulator: Emulator) -> Emulator:
    """``AZURE_API_KEY`` / ``AZURE_API_BASE`` / ``AZURE_API_VERSION`` pointing at the emulator."""
    monkeypatch.setenv("AZURE_API_KEY", KEY)
    monkeypatch.setenv("AZURE_API_BASE", api_base)
    monkeypatch.setenv("AZURE_API_VERSION", "2024-10-21")
    return emulator


# ------------------------------------------------------------------ Entra ID emulator


@pytest.fixture(scope="session")
def entra_server() -> Iterator[EntraServer]:
    """An Entra ID emulator over HTTPS for the session, with ``TENANT``, its apps and its user."""
    from .entra import EntraEmulator
    from .entra_server import EntraServer

    entra = EntraEmulator(tenants=[TENANT])
    entra.add_app(CLIENT_ID, client_secret=CLIENT_SECRET, federated_subjects={WORKLOAD_SUBJECT})
    entra.add_app(USER_CLIENT_ID, public_client=True)
    entra.add_user(USERNAME, PASSWORD)
    with EntraServer(entra) as server:
        yield server


@pytest.fixture
def entra(entra_server: EntraServer, emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[EntraEmulator]:
    """The session's Entra emulator, reset, trusted and reachable; the data plane checks its tokens.

    Sets ``REQUESTS_CA_BUNDLE`` and ``HTTPS_PROXY`` as a real deployment behind a proxy would,
    so azure-identity's own HTTP stack reaches the emulator unchanged.
    """
    e = entra_server.entra
    e.reset()
    e.token_lifetime = 3599
    e.audiences = {"https://cognitiveservices.azure.com"}
    for name, value in entra_server.environ().items():
        monkeypatch.setenv(name, value)
    e.install(emulator)
    _forget_cached_tokens()
    yield e
    emulator.token_validator = None
    _forget_cached_tokens()


def _forget_cached_tokens() -> None:
    # The azure_auth plugin keeps tokens per credential for the process; they would outlive the
    # emulator's reset. Only when it is loaded: the core never imports a plugin.
    module = sys.modules.get("modelyard_azure_auth.entra")
    if module is not None:
        module.clear_token_cache()


# ------------------------------------------------------------------ Redis, PostgreSQL


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A real ``redis-server`` on loopback for the session (password ``REDIS_PASSWORD``)."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session's Redis, emptied for this test."""
    redis_server.flush()
    return redis_server.url


@pytest.fixture
def fresh_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A ``redis-server`` of this test's own (kill ``.process`` to test an outage)."""
    server = RedisServer(tmp_path / "redis")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A database on a PostgreSQL server started for this session (fails when it is not installed)."""
    with postgres_server() as url:
        yield url


# ------------------------------------------------------------------ the proxy


@contextmanager
def running_proxy(config: dict[str, Any], *, master_key: str | None = MASTER_KEY, dev: bool = False) -> Iterator[serve_in_thread]:
    """Serve the proxy for ``config`` (config.yaml's content) on a free loopback port.

    Args:
        config: the parsed config.yaml (``model_list``, ``router_settings`` ...).
        master_key: the master key clients send as Bearer; None for none (with ``dev``).
        dev: allow running without a master key.

    Yields:
        The running server: ``.url``, and ``.app``, the ``ProxyApp`` (lifespan on).
    """
    from modelyard.proxy import ProxyApp, parse_config

    from .secret_scan import watch_responses
    from .server import serve_in_thread

    app = ProxyApp(parse_config(config), master_key=master_key, insecure_ok=dev)
    with serve_in_thread(watch_responses(app), lifespan="on") as server:
        server.app = app
        yield server


@pytest.fixture
def proxy_config(api_base: str, emulator: Emulator) -> dict[str, Any]:
    """The ``proxy`` fixture's config.yaml: one model per emulator deployment, named after it."""
    return {
        "model_list": [
            {"model_name": name, "litellm_params": litellm_params(api_base, name)} for name in emulator.deployments
        ],
        "router_settings": {"num_retries": 0},
    }


@pytest.fixture
def proxy(proxy_config: dict[str, Any], emulator: Emulator) -> Iterator[serve_in_thread]:
    """The proxy serving ``proxy_config`` in front of the emulator (Bearer ``MASTER_KEY``)."""
    with running_proxy(proxy_config) as server:
        yield server
