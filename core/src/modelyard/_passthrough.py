"""Usage and cost of an answer passed through unchanged (``Operation.streams_through``).

The caller (the proxy's ``/v1/messages``) gets the upstream's bytes as they are; this meter
reads a copy on the side, so the call is still priced and observed: a server-sent event stream
is parsed event by event and fed to the provider's ``translate_stream`` translator (its chunks'
``usage`` is kept), a JSON answer (at most :data:`MAX_JSON` bytes kept) is read once at the end
by the provider's ``normalize_response``, whose answer's ``usage`` and ``model`` price it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ._sse import SSEParser

if TYPE_CHECKING:
    import httpx

    from .api import _Call

__all__ = ["MAX_JSON", "UsageMeter"]

MAX_JSON = 4 * 1024 * 1024
"""The most of a JSON answer kept to read its usage (a larger one is not priced)."""

log = logging.getLogger("modelyard.api")


class UsageMeter:
    """Reads a passed-through answer on the side; ``done`` observes the call with its usage and cost."""

    def __init__(self, call: _Call, response: httpx.Response) -> None:
        self.call = call
        self.response = response
        self.usage: Any = None
        self.model: str | None = None
        self._sse = "text/event-stream" in response.headers.get("content-type", "")
        self._translator: Any = call.plugins.hook.translate_stream(route=call.route) if self._sse else None
        self._parser = SSEParser()
        self._body = bytearray()
        self._broken = False

    def feed(self, chunk: bytes) -> None:
        """Take the next piece of the answer as it is passed on (never raises)."""
        if self._broken:
            return
        try:
            if not self._sse:
                if len(self._body) + len(chunk) > MAX_JSON:
                    self._broken = True
                else:
                    self._body += chunk
                return
            if self._translator is None:
                return
            for event, _ in self._parser.feed(chunk):
                if isinstance(event, dict):
                    self._take(self._translator.feed(event))
        except Exception:  # an error event, or bytes that are not what they claim: not priced
            self._broken = True

    def _take(self, chunks: list[Any]) -> None:
        for chunk in chunks:
            if getattr(chunk, "usage", None) is not None:
                self.usage = chunk.usage
            self.model = self.model or getattr(chunk, "model", None) or None

    def done(self) -> None:
        """The answer has been passed on whole: price it and tell the observers."""
        from .api import _observe
        from .types import ProviderResponse

        if not self._sse and not self._broken and self._body:
            try:
                presp = ProviderResponse(status_code=self.response.status_code, headers=self.response.headers, content=bytes(self._body))
                result = self.call.plugins.hook.normalize_response(route=self.call.route, response=presp)
                self.usage = getattr(result, "usage", None)
                self.model = getattr(result, "model", None) or None
            except Exception:
                log.debug("the usage of a passed-through answer could not be read", exc_info=True)
        cost = self.call.cost(self.usage, self.model) if self.usage is not None else None
        _observe(self.call, status=self.response.status_code, usage=self.usage, headers=self.response.headers, cost=cost)
