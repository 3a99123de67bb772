"""A scan of the whole test run for leaked secrets: every log record, every proxy response.

Turned on by the ini option ``modelyard_secret_scan = true`` (see
:mod:`modelyard.testing.pytest_plugin`). While it is on:

* every logger is at DEBUG (the root logger's level; loggers that set their own level, and
  those that do not propagate, such as ``modelyard.proxy.access``, get a handler too), and every
  record's message, arguments and exception text are searched as they are emitted;
* every response of a proxy started by ``running_proxy`` (the ``proxy`` fixture), headers and
  body, is searched as it is sent;
* other output a test hands over (a ``modelyard serve`` process's log) is searched by
  :func:`scan_text`.

The secrets are the test helpers' (``KEY``, ``MASTER_KEY``, ``AD_TOKEN``, ``CLIENT_SECRET``,
``PASSWORD``), every access token the Entra ID emulator issues, every module-level string of a
collected test module whose name says it is one (``*KEY*``, ``*SECRET*``, ``*TOKEN*``,
``*PASSWORD*``; 8 characters or more), and what :func:`register_secret` adds. A hit is reported
at the end of the run with the secret's name, where it appeared and the test running then (the
value itself is never printed), and fails the run.

One compiled alternation of every secret is matched per record, so the cost is one regex
search per log record and response chunk. A secret split across two chunks of a streamed
response is not seen.
"""

from __future__ import annotations

import logging
import re
import types
from collections.abc import Iterable
from typing import Any

__all__ = ["register_secret", "scan_text", "scanner", "watch_responses"]

_SECRET_NAME = re.compile(r"(KEY|SECRET|TOKEN|PASSWORD)", re.IGNORECASE)
_MIN_LENGTH = 8


class Scanner(logging.Handler):
    """The run's secrets and what was found; also the logging handler that searches each record."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.secrets: dict[str, str] = {}
        self.hits: dict[tuple[str, str, str], int] = {}
        self.current = "(outside tests)"
        self.records = 0
        self.scanned_bytes = 0
        self._version = 0
        self._pattern: tuple[int, re.Pattern[str] | None] = (0, None)
        self._last: logging.LogRecord | None = None

    def add(self, name: str, value: str) -> None:
        if isinstance(value, str) and len(value) >= _MIN_LENGTH and value not in self.secrets:
            self.secrets[value] = name
            self._version += 1

    def _compiled(self) -> re.Pattern[str] | None:
        # No lock: compiling can run the garbage collector, whose finalizers log (an unclosed
        # client's close()), which comes back here on the same thread. The version check makes a
        # pattern built while a secret was added be rebuilt on the next call.
        version, pattern = self._pattern
        if version != self._version:
            version = self._version
            ordered = sorted(list(self.secrets), key=len, reverse=True)
            pattern = re.compile("|".join(re.escape(s) for s in ordered)) if ordered else None
            self._pattern = (version, pattern)
        return pattern

    def scan(self, text: str, where: str) -> None:
        pattern = self._compiled()
        self.scanned_bytes += len(text)
        if pattern is None:
            return
        for found in pattern.finditer(text):
            key = (self.secrets.get(found.group(0), "?"), where, self.current)
            self.hits[key] = self.hits.get(key, 0) + 1

    def emit(self, record: logging.LogRecord) -> None:
        if record is self._last:  # met again on its way up (a logger with this handler that propagates)
            return
        self._last = record
        self.records += 1
        try:
            parts = [record.getMessage()]
        except Exception:
            parts = [str(record.msg), repr(record.args)]
        if record.exc_info and record.exc_info[1] is not None:
            parts.append(logging.Formatter().formatException(record.exc_info))
        if record.stack_info:
            parts.append(record.stack_info)
        self.scan("\n".join(parts), f"log record of {record.name!r}")

    def report(self) -> list[str]:
        return [f"{name} appeared {count}x in {where} (during {test})"
                for (name, where, test), count in sorted(self.hits.items())]  # fmt: skip


_active: Scanner | None = None


def scanner() -> Scanner | None:
    """The running scan, or None when ``modelyard_secret_scan`` is off."""
    return _active


def register_secret(value: str, name: str = "a registered secret") -> None:
    """Add ``value`` to the secrets the run is searched for (no-op when the scan is off)."""
    if _active is not None:
        _active.add(name, value)


def scan_text(text: str, where: str) -> None:
    """Search ``text`` (output of a process a test ran ...) for the secrets (no-op when off)."""
    if _active is not None:
        _active.scan(text, where)


def watch_responses(app: Any) -> Any:
    """``app`` wrapped so that every HTTP response it sends is searched (``app`` itself when off)."""
    found = _active
    if found is None:
        return app

    async def watched(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return

        async def scanning_send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.body":
                found.scan(bytes(message.get("body", b"")).decode("latin-1"), "a proxy response body")
            elif message["type"] == "http.response.start":
                found.scan(repr(message.get("headers", [])), "a proxy response header")
            await send(message)

        await app(scope, receive, scanning_send)

    return watched


def register_module_secrets(modules: Iterable[types.ModuleType]) -> None:
    """Module-level strings named like secrets (``SECRET``, ``*_KEY`` ...) of the test modules."""
    if _active is None:
        return
    for module in modules:
        for name, value in vars(module).items():
            if isinstance(value, str) and _SECRET_NAME.search(name) and not name.startswith("__"):
                _active.add(f"{module.__name__}.{name}", value.strip())


# ------------------------------------------------------------------ pytest hooks

_saved: list[tuple[logging.Logger, int]] = []


def start() -> Scanner:
    """Install the scan: the handler on the root logger and on non-propagating loggers, DEBUG."""
    global _active
    from . import helpers

    found = _active = Scanner()
    for name in ("KEY", "MASTER_KEY", "AD_TOKEN", "CLIENT_SECRET", "PASSWORD"):
        found.add(f"modelyard.testing.{name}", getattr(helpers, name))
    root = logging.getLogger()
    _saved.append((root, root.level))
    root.setLevel(logging.DEBUG)
    root.addHandler(found)
    access = logging.getLogger("modelyard.proxy.access")
    access.addHandler(found)  # it does not propagate when the proxy configured it
    return found


def stop() -> None:
    global _active
    found = _active
    if found is None:
        return
    logging.getLogger().removeHandler(found)
    logging.getLogger("modelyard.proxy.access").removeHandler(found)
    while _saved:
        logger, level = _saved.pop()
        logger.setLevel(level)
    _active = None
