"""Keeping credentials out of headers they would break, and out of everything a user sees.

Three tools, shared by the core, the proxy and the plugins:

* :func:`clean_secret` checks a key, token or password where it enters (config load, call
  arguments, environment variables): one trailing line break is dropped (secrets mounted from
  files, as Kubernetes does, usually end with one), any other control character is refused with
  a message naming the field and never the value. A value that passes cannot break an HTTP
  header, so the HTTP library never gets to quote it in an error.
* :func:`safe_url` is the form of a URL to show in errors, logs and ``/health``: without its
  ``user:password@`` part.
* :func:`scrub` replaces known secret values in text that came from elsewhere (an upstream error
  body that echoes the request's headers) before it is passed on.

This module imports nothing heavy: it is used on the request path and at import of the proxy.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit, urlunsplit

__all__ = ["MASK", "check_header_values", "clean_secret", "header_secrets", "safe_url", "scrub"]

MASK = "**********"
"""What a secret is replaced with."""

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "api-key", "x-api-key",
                             "ocp-apim-subscription-key"})  # fmt: skip


def clean_secret(value: str, field: str) -> str:
    """``value`` without one trailing line break (``\\n`` or ``\\r\\n``), checked for control characters.

    Args:
        value: the key, token, password or connection string.
        field: its name, for the error (``api_key``, ``general_settings.master_key``,
            ``AZURE_API_KEY`` ...).

    Returns:
        The value, with a trailing line break removed.

    Raises:
        ValueError: the value holds another control character (an inner CR or LF, a tab, NUL
            ...). The message names ``field`` and never contains the value.
    """
    if value.endswith("\n"):
        value = value[:-2] if value.endswith("\r\n") else value[:-1]
    found = _CONTROL.search(value)
    if found is not None:
        raise ValueError(
            f"{field} contains a control character ({_describe(found.group())} at position {found.start()}); "
            "a key or token must be one line of printable characters (the value is not shown)"
        )
    return value


def _describe(char: str) -> str:
    return {"\n": "a line feed", "\r": "a carriage return", "\t": "a tab"}.get(char, f"U+{ord(char):04X}")


def check_header_values(headers: Mapping[str, str]) -> str | None:
    """The name of the first header whose value holds a control character, else None.

    The last line of defence before a request is built: an HTTP library refuses such a header
    with an error that quotes its value, and the value is often a credential.
    """
    for name, value in headers.items():
        if _CONTROL.search(value) is not None:
            return name
    return None


def safe_url(url: object) -> str:
    """``url`` as text to show: the ``user:password@`` part removed, the rest unchanged.

    Anything that does not parse as a URL is shown as ``<invalid URL>``.
    """
    text = str(url)
    if "@" not in text:
        return text
    try:
        parts = urlsplit(text)
    except ValueError:
        return "<invalid URL>"
    if "@" not in parts.netloc:
        return text
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def header_secrets(headers: Mapping[str, str], url: object = None) -> list[str]:
    """The secret values a request carries: credential headers (and a bearer token on its own),
    and the ``user:password`` of ``url`` with its Basic-auth form. Longest first, for :func:`scrub`."""
    found: set[str] = set()
    for name, value in headers.items():
        lowered = name.lower()
        if lowered in _SECRET_HEADERS or lowered.endswith(("key", "token", "secret")):
            value = value.strip()
            found.add(value)
            scheme, _, rest = value.partition(" ")
            if rest and scheme.lower() in ("bearer", "basic"):
                found.add(rest.strip())
    if url is not None:
        netloc = urlsplit(str(url)).netloc
        if "@" in netloc:
            userinfo = netloc.rsplit("@", 1)[0]
            found.add(userinfo)
            found.add(base64.b64encode(userinfo.encode()).decode())
            _, _, password = userinfo.partition(":")
            found.add(password)
    # Short values would mask ordinary words; real credentials are long.
    return sorted((s for s in found if len(s) >= 8), key=len, reverse=True)


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every occurrence of each of ``secrets`` (as is, or JSON-escaped) replaced by :data:`MASK`."""
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
        escaped = secret.replace("\\", "\\\\").replace('"', '\\"').replace("/", "\\/")
        if escaped != secret and escaped in text:
            text = text.replace(escaped, MASK)
    return text
