"""The upstream's ``x-ratelimit-remaining-*`` headers, read in one pass (issue 17, round five).

The Router (its quota view of a deployment) and the proxy's metrics (the remaining gauges) read
both headers of every answer. ``httpx.Headers.get`` lowercases and encodes the name and scans
every header per lookup, and a missing header raises and catches a ``KeyError`` inside it
(~0.9-1.4 µs each, four per request); one pass over httpx's own list finds both (0.25-0.65 µs).
"""

from __future__ import annotations

from typing import Any

import httpx

__all__ = ["REMAINING", "remaining"]

REMAINING = ("x-ratelimit-remaining-requests", "x-ratelimit-remaining-tokens")
_INDEX = {name.encode(): i for i, name in enumerate(REMAINING)}


def remaining(headers: Any) -> tuple[str | None, str | None]:
    """``(x-ratelimit-remaining-requests, x-ratelimit-remaining-tokens)`` of ``headers``, each
    None when absent: what ``headers.get(name)`` gives, for ``httpx.Headers`` or any mapping.

    ``httpx.Headers`` keeps ``(raw name, lowercased name, value)`` per header in ``_list`` (its
    private store, stable since httpx 0.18): read there, the two names cost one dict lookup per
    header. Anything else, or a shape this does not expect, takes ``get``.
    """
    if not headers:
        return None, None
    items = getattr(headers, "_list", None) if type(headers) is httpx.Headers else None
    if type(items) is list:
        found: list[bytes | None] = [None, None]
        try:
            for _, key, value in items:
                i = _INDEX.get(key)
                if i is not None:
                    if found[i] is not None or not value.isascii():
                        raise ValueError  # repeated (httpx joins them) or not ASCII: as httpx gives it
                    found[i] = value
        except (ValueError, TypeError, AttributeError):
            pass
        else:
            requests, tokens = found
            return (None if requests is None else requests.decode("ascii"),
                    None if tokens is None else tokens.decode("ascii"))  # fmt: skip
    try:
        return headers.get(REMAINING[0]), headers.get(REMAINING[1])
    except AttributeError:
        return None, None
