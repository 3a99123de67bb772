"""The access log's output: JSON lines on stdout, written in batches.

A write to stdout is a system call; one per request costs the proxy more CPU than building
the line. :class:`BatchedLineHandler` keeps lines in memory and writes them together when
64 KiB have gathered, when a line is older than ``interval`` seconds (checked by a timer on
the event loop, see :meth:`BatchedLineHandler.run_flusher`), and at shutdown.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import TextIO

__all__ = ["BatchedLineHandler", "line_writer"]


class BatchedLineHandler(logging.Handler):
    """A logging handler writing ``%(message)s`` lines to ``stream`` in batches.

    Args:
        stream: where the lines go (``sys.stdout``).
        max_bytes: write as soon as this much is waiting.
        interval: the longest a line waits, given :meth:`run_flusher` is running.
    """

    def __init__(self, stream: TextIO, *, max_bytes: int = 64 * 1024, interval: float = 0.2) -> None:
        super().__init__()
        self.stream = stream
        self.max_bytes = max_bytes
        self.interval = interval
        self._lines: list[str] = []
        self._size = 0
        self._guard = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = record.getMessage()
        except Exception:
            self.handleError(record)
            return
        self.write_line(line)

    def write_line(self, line: str) -> None:
        """Queue ``line`` (without its newline) as :meth:`emit` queues a record's message."""
        line += "\n"
        with self._guard:
            self._lines.append(line)
            self._size += len(line)
            full = self._size >= self.max_bytes
        if full:
            self.flush()

    def flush(self) -> None:
        with self._guard:
            if not self._lines:
                return
            text = "".join(self._lines)
            self._lines.clear()
            self._size = 0
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # a closed stdout must not break requests
            pass

    async def run_flusher(self) -> None:
        """Flush every ``interval`` seconds until cancelled (then flush once more)."""
        try:
            while True:
                await asyncio.sleep(self.interval)
                self.flush()
        finally:
            self.flush()

    def close(self) -> None:
        self.flush()
        super().close()


def line_writer(logger: logging.Logger, level: int = logging.INFO) -> Callable[[str], None] | None:
    """What writes a message of ``level`` to ``logger`` without a :class:`logging.LogRecord`, or None.

    When ``logger``'s only handler is a :class:`BatchedLineHandler` that takes ``level``, and no
    filter, disabled flag or parent logger could see the record, logging it comes down to the
    handler queueing its message: this returns that handler's :meth:`BatchedLineHandler.write_line`.
    Otherwise (a test's capture handler, a filter, another handler added at run time) it returns
    None and the caller logs as usual. Checked per message, so a change to the logger applies at once.
    """
    handlers = logger.handlers
    if len(handlers) != 1 or logger.filters or logger.propagate or logger.disabled:
        return None
    handler = handlers[0]
    if type(handler) is not BatchedLineHandler or handler.filters or level < handler.level:
        return None
    return handler.write_line
