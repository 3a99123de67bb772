"""The pytest hooks of the secret scan (:mod:`modelyard.testing.secret_scan`).

Registered by ``pytest_plugin.pytest_configure`` when ``modelyard_secret_scan = true``.
"""

from __future__ import annotations

from typing import Any

import pytest

from . import secret_scan


def pytest_configure(config: pytest.Config) -> None:
    """Start the scan (registered from the plugin's own ``pytest_configure``: called right away)."""
    secret_scan.start()


def pytest_unconfigure(config: pytest.Config) -> None:
    """Remove the handler and restore the root logger's level."""
    secret_scan.stop()


def pytest_collection_finish(session: pytest.Session) -> None:
    """Add the module-level secrets of every collected test module."""
    modules = {id(m): m for item in session.items if (m := getattr(item, "module", None)) is not None}
    secret_scan.register_module_secrets(modules.values())


def pytest_runtest_logstart(nodeid: str, location: Any) -> None:
    """Name the running test in the hits found from now on."""
    found = secret_scan.scanner()
    if found is not None:
        found.current = nodeid


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run when a secret was seen anywhere (a pytest-xdist worker also hands what it
    found to the controller, which reports it and fails the run: :func:`pytest_testnodedown`)."""
    found = secret_scan.scanner()
    if found is not None:
        found.current = "(after the tests)"
        workeroutput = getattr(session.config, "workeroutput", None)
        if workeroutput is not None:
            workeroutput[_OUTPUT] = {
                "hits": [[name, where, test, count] for (name, where, test), count in found.hits.items()],
                "records": found.records, "bytes": found.scanned_bytes, "secrets": len(found.secrets),
            }  # fmt: skip
        if found.hits and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED


_OUTPUT = "modelyard_secret_scan"
_workers_secrets = 0


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """pytest-xdist's controller: what a finished worker's scan found joins this process's."""
    global _workers_secrets
    found = secret_scan.scanner()
    got = (getattr(node, "workeroutput", None) or {}).get(_OUTPUT)
    if found is None or got is None:
        return
    for name, where, test, count in got["hits"]:
        found.hits[(name, where, test)] = found.hits.get((name, where, test), 0) + count
    found.records += got["records"]
    found.scanned_bytes += got["bytes"]
    _workers_secrets = max(_workers_secrets, got["secrets"])


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """The scan's figures, and each leak (the secret's name, never its value)."""
    found = secret_scan.scanner()
    if found is None:
        return
    if found.hits:
        terminalreporter.section("modelyard secret scan: SECRETS LEAKED", sep="=", red=True, bold=True)
        for line in found.report():
            terminalreporter.line(line)
    else:
        secrets = max(len(found.secrets), _workers_secrets)  # the controller of xdist collects no module
        terminalreporter.line(f"modelyard secret scan: {secrets} secrets, {found.records} log records and "
                              f"{found.scanned_bytes / 2**20:.1f} MB of text searched, none found")  # fmt: skip
