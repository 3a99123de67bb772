"""The dashboard's sign-in session and CSRF token: signed, stateless, never a key.

A session is a cookie holding ``<session id>.<expiry>.<signature>``: a random id, when it ends
(UNIX seconds) and an HMAC-SHA256 over both with a secret derived from the master key. Any
proxy instance with the same master key accepts it (no shared session store is needed), and
rotating the master key ends every session. The cookie is ``HttpOnly`` (no script reads it),
``SameSite=Strict`` (no other site's page sends it), ``Secure`` when the request came over
TLS, and scoped to ``/ui``.

The CSRF token is another HMAC of the session id, handed to the page by ``GET /ui/api/session``
and sent back in ``X-CSRF-Token`` on every change; a cross-site form cannot know it. Signing out
revokes the session id in this process (other instances forget the cookie when it expires).

The signature is :func:`hmac.compare_digest` over the standard library's HMAC: a dozen lines,
so no dependency (itsdangerous) is added to the core for it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time

__all__ = ["COOKIE", "SESSION_SECONDS", "Sessions"]

COOKIE = "modelyard_ui"
SESSION_SECONDS = 12 * 3600
"""How long a sign-in lasts."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Sessions:
    """Issues and checks the dashboard's session cookies and CSRF tokens.

    Args:
        master_key: the proxy's master key (the signing secret is derived from it); None in
            development without a key, where a random per-process secret is used.
    """

    def __init__(self, master_key: str | None) -> None:
        seed = master_key.encode() if master_key else secrets.token_bytes(32)
        self._secret = hmac.new(seed, b"modelyard-ui-session-v1", hashlib.sha256).digest()
        self._revoked: dict[str, float] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Sessions(revoked={len(self._revoked)})"

    def _sign(self, kind: bytes, message: str) -> str:
        return _b64(hmac.new(self._secret, kind + b":" + message.encode(), hashlib.sha256).digest())

    def issue(self, now: float | None = None) -> tuple[str, int]:
        """A new session cookie value and its expiry (UNIX seconds)."""
        expires = int((time.time() if now is None else now) + SESSION_SECONDS)
        body = f"{secrets.token_urlsafe(18)}.{expires}"
        return f"{body}.{self._sign(b'session', body)}", expires

    def check(self, value: str | None, now: float | None = None) -> str | None:
        """The session id of a valid, unexpired, not revoked cookie value; else None."""
        if not value or len(value) > 200:
            return None
        sid, _, rest = value.partition(".")
        expires, _, signature = rest.partition(".")
        if not sid or not expires.isdigit() or not signature:
            return None
        if not hmac.compare_digest(signature, self._sign(b"session", f"{sid}.{expires}")):
            return None
        if int(expires) <= (time.time() if now is None else now):
            return None
        if sid in self._revoked:
            return None
        return sid

    def expiry(self, value: str) -> int:
        """The expiry of a cookie value that :meth:`check` accepted."""
        return int(value.split(".")[1])

    def csrf(self, sid: str) -> str:
        """The CSRF token of session ``sid``."""
        return self._sign(b"csrf", sid)

    def csrf_ok(self, sid: str, token: str | None) -> bool:
        """Whether ``token`` is session ``sid``'s CSRF token (constant time)."""
        return token is not None and hmac.compare_digest(token, self.csrf(sid))

    def revoke(self, sid: str, until: float) -> None:
        """Refuse session ``sid`` from now on (kept until it would have expired anyway)."""
        now = time.time()
        with self._lock:
            for old in [s for s, t in self._revoked.items() if t < now]:
                del self._revoked[old]
            self._revoked[sid] = until
