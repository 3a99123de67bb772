"""The proxy's master key: where clients send it, how it is compared, which keys are refused.

A client sends the key as ``Authorization: Bearer <key>`` (OpenAI's SDK), ``api-key: <key>``
(Azure's, so ``AzureOpenAI`` works) or ``x-api-key: <key>``. The comparison is constant-time
(:func:`hmac.compare_digest` on the UTF-8 bytes).

The proxy refuses to start without a key, or with one that is short or publicly known (the
``sk-1234`` of many tutorials), unless local development is declared (``--dev`` or
``general_settings.allow_insecure_master_key: true``). In development without any key,
requests are not authenticated at all (as LiteLLM does without a ``master_key``).

Rotation without downtime: set the new key as ``master_key`` and the old one as
``general_settings.previous_master_key`` (with ``previous_master_key_expires``); both are
accepted until then. Virtual keys are checked in :mod:`.keys`.
"""

from __future__ import annotations

import hmac
import secrets
import time

from ..errors import ConfigError

__all__ = ["MIN_KEY_LENGTH", "KeyCheck", "check_master_key", "extract_key", "generate_key"]

MIN_KEY_LENGTH = 16
_KNOWN_KEYS = frozenset(
    {"sk-1234", "sk-12345", "sk-123456", "sk-123", "1234", "12345", "123456", "password", "changeme",
     "master-key", "master_key", "sk-master-key", "your-master-key", "sk-your-master-key", "sk-xxx",
     "sk-xxxx", "secret", "test", "admin", "sk-test", "sk-admin", "litellm", "sk-litellm"}
)  # fmt: skip


def generate_key() -> str:
    """A fresh random master key (``sk-`` and 32 URL-safe characters)."""
    return "sk-" + secrets.token_urlsafe(24)


def check_master_key(key: str | None, *, insecure_ok: bool) -> None:
    """Refuse a missing, short or publicly known master key unless ``insecure_ok``.

    Raises:
        ConfigError: naming ``general_settings.master_key`` and the fix (never the key itself).
    """
    if insecure_ok:
        return
    where = "general_settings.master_key"
    if not key:
        raise ConfigError(
            f"No master key: set {where} (e.g. os.environ/PROXY_MASTER_KEY) or MODELYARD_MASTER_KEY, "
            "or pass --dev for local development without authentication.",
            key=where,
        )
    if key.strip().lower() in _KNOWN_KEYS or len(key) < MIN_KEY_LENGTH:
        raise ConfigError(
            f"The {where} is publicly known or shorter than {MIN_KEY_LENGTH} characters; anyone could "
            "use this proxy. Set a random one (`python -c \"import secrets; print('sk-' + secrets.token_urlsafe(24))\"`), "
            "or pass --dev (or set general_settings.allow_insecure_master_key: true) for local development.",
            key=where,
        )


def extract_key(headers: dict[bytes, bytes]) -> bytes | None:
    """The key a request carries, from ``Authorization: Bearer``, ``api-key`` or ``x-api-key``."""
    auth = headers.get(b"authorization")
    if auth is not None:
        scheme, _, value = auth.partition(b" ")
        if scheme.lower() == b"bearer":
            return value.strip()
    return headers.get(b"api-key") or headers.get(b"x-api-key")


class KeyCheck:
    """Compares a request's key with the master key in constant time.

    Args:
        master_key: the key, or None to let every request through (development only).
        previous_key: the master key being rotated out, accepted too until ``previous_until``
            (a UNIX time; None: for as long as it is configured).
        previous_until: when ``previous_key`` stops being accepted.
    """

    def __init__(self, master_key: str | None, previous_key: str | None = None,
                 previous_until: float | None = None) -> None:  # fmt: skip
        self._key = master_key.encode() if master_key else None
        self._previous = previous_key.encode() if previous_key and master_key else None
        self._until = previous_until

    @property
    def enabled(self) -> bool:
        """Whether requests must carry the key."""
        return self._key is not None

    def allows(self, presented: bytes | None) -> bool:
        """True when authentication is off or ``presented`` equals the master key (or, during the
        rotation's overlap, the previous one)."""
        if self._key is None:
            return True
        if presented is None:
            return False
        if hmac.compare_digest(presented, self._key):
            return True
        if self._previous is not None and (self._until is None or time.time() < self._until):
            return hmac.compare_digest(presented, self._previous)
        return False

    def __repr__(self) -> str:
        return f"KeyCheck(enabled={self.enabled}, rotating={self._previous is not None})"
