"""Entra ID tokens from azure-identity credentials: built once, cached, refreshed ahead of expiry.

A :class:`CredentialSpec` says which azure-identity credential to build (client secret,
username/password, certificate, ``DefaultAzureCredential``) and with what; its :attr:`key` is
a hash of all of that (secrets included, so two secrets never share a token), never the
secret itself. One :class:`TokenSource` per (credential, scope) lives for the process:

* it hands out the cached token until less than ``min(5 min, half its lifetime)`` is left;
* one caller fetches, every other caller (thread or asyncio task, any event loop) waits
  for that one fetch, or keeps using the current token while it is still valid;
* the async path runs the sync credential in a worker thread (``asyncio.to_thread``): a
  fetch happens once an hour, and azure-identity's async credentials would need aiohttp and
  one credential per event loop;
* after a 401, :meth:`TokenSource.invalidate` drops the token the call used and rebuilds the
  credential, so the next fetch really goes to Entra ID (the credential's own cache would
  hand back the rejected token).

azure-identity is imported only when a token is first needed.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import json
import logging
import threading
import time
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from modelyard.errors import AuthenticationError

if TYPE_CHECKING:
    from azure.core.credentials import AccessToken, TokenCredential

__all__ = [
    "DEFAULT_SCOPE",
    "CredentialSpec",
    "EntraToken",
    "TokenSource",
    "clear_token_cache",
    "token_source",
]

DEFAULT_SCOPE = "https://cognitiveservices.azure.com/.default"
REFRESH_AHEAD = 300.0
"""Refresh when fewer seconds than this (or half the token's lifetime) are left."""
MAX_SOURCES = 256
"""At most this many credentials are kept; the oldest is closed and dropped past it."""
EXPIRY_MARGIN = 1.0
"""A token this close to expiry is not handed out while a refresh is running."""

log = logging.getLogger("modelyard.azure_auth")

Kind = Literal["client_secret", "username_password", "certificate", "default"]
_LABELS = {
    "client_secret": "tenant_id/client_id/client_secret (ClientSecretCredential)",
    "username_password": "client_id/azure_username/azure_password (UsernamePasswordCredential)",
    "certificate": "tenant_id/client_id/client_certificate_path (CertificateCredential)",
    "default": "enable_azure_ad_token_refresh (DefaultAzureCredential)",
}


@dataclass(frozen=True, repr=False)
class CredentialSpec:
    """Which azure-identity credential to build, and its inputs.

    Attributes:
        kind: the flow.
        tenant_id, client_id, username: identifiers (not secret).
        secret: the client secret, the password, or the certificate password.
        certificate_path: a PEM or PKCS12 file with the certificate and its private key.
        authority: the authority host (``login.microsoftonline.us`` ...) or None for the default.
        environment: for ``default``: the ``AZURE_*`` variables DefaultAzureCredential reads,
            so that a changed environment is a different credential.
    """

    kind: Kind
    tenant_id: str | None = None
    client_id: str | None = None
    username: str | None = None
    secret: str | None = field(default=None, compare=False)
    certificate_path: str | None = None
    authority: str | None = None
    environment: tuple[tuple[str, str], ...] = ()

    @property
    def key(self) -> str:
        """A stable hash of everything that makes this credential; safe to log."""
        material = json.dumps(
            [self.kind, self.tenant_id, self.client_id, self.username, self.secret,
             self.certificate_path, self.authority, self.environment]
        )  # fmt: skip
        return hashlib.sha256(material.encode()).hexdigest()[:32]

    @property
    def label(self) -> str:
        """Names the flow and the parameters behind it, for error messages."""
        return _LABELS[self.kind]

    def __repr__(self) -> str:
        return f"CredentialSpec(kind={self.kind!r}, tenant_id={self.tenant_id!r}, client_id={self.client_id!r}, key={self.key[:12]!r})"

    def build(self) -> TokenCredential:
        """A new azure-identity credential for this spec."""
        try:
            import azure.identity as identity
        except ImportError as exc:  # pragma: no cover - azure-identity is a dependency
            raise AuthenticationError(
                f"{self.label} needs the azure-identity package: pip install azure-identity."
            ) from exc
        kw: dict[str, Any] = {"authority": self.authority} if self.authority else {}
        try:
            if self.kind == "client_secret":
                assert self.tenant_id and self.client_id and self.secret
                return identity.ClientSecretCredential(self.tenant_id, self.client_id, self.secret, **kw)
            if self.kind == "certificate":
                assert self.tenant_id and self.client_id and self.certificate_path
                password = self.secret.encode() if self.secret else None
                return identity.CertificateCredential(
                    self.tenant_id, self.client_id, certificate_path=self.certificate_path, password=password, **kw
                )
            if self.kind == "username_password":
                assert self.client_id and self.username and self.secret
                log.warning(
                    "Entra ID username/password sign-in (ROPC) is deprecated by Microsoft and fails for "
                    "accounts with multifactor authentication; prefer a service principal or managed identity."
                )
                with warnings.catch_warnings():  # the warning above says it once, in our words
                    warnings.simplefilter("ignore", DeprecationWarning)
                    return identity.UsernamePasswordCredential(
                        self.client_id, self.username, self.secret,
                        tenant_id=self.tenant_id or "organizations", **kw,
                    )  # fmt: skip
            if self.client_id:
                kw["managed_identity_client_id"] = self.client_id  # also the workload identity's
            if self.tenant_id:
                kw["workload_identity_tenant_id"] = self.tenant_id
            return identity.DefaultAzureCredential(**kw)
        except (ValueError, TypeError, OSError) as exc:
            raise AuthenticationError(f"Cannot build the {self.label} credential: {_scrub(str(exc), self)}") from None


def _close(credential: object) -> None:
    close = getattr(credential, "close", None)
    if close is not None:
        close()


def _scrub(message: str, spec: CredentialSpec) -> str:
    if spec.secret and spec.secret in message:
        message = message.replace(spec.secret, "**********")
    return message


class TokenSource:
    """Tokens for one credential and one scope, shared by every call that uses them."""

    def __init__(self, spec: CredentialSpec, scope: str) -> None:
        self.spec = spec
        self.scope = scope
        self.fetches = 0
        self._credential: TokenCredential | None = None
        self._token: str | None = None
        self._expires_on = 0.0
        self._refresh_at = 0.0
        self._rebuild = False
        self._inflight: concurrent.futures.Future[str] | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"TokenSource({self.spec!r}, scope={self.scope!r})"

    # -------------------------------------------------------------- handing out

    def _claim(self) -> tuple[str | None, concurrent.futures.Future[str] | None, bool]:
        """(token to use now, or the fetch to wait for, and whether this caller runs it)."""
        with self._lock:
            now = time.time()
            if self._token is not None and now < self._refresh_at:
                return self._token, None, False
            usable = self._token if self._token is not None and now < self._expires_on - EXPIRY_MARGIN else None
            if self._inflight is None:
                self._inflight = concurrent.futures.Future()
                return usable, self._inflight, True
            return usable, self._inflight, False

    def token(self) -> str:
        """A valid token, fetching (once, for every waiting caller) when needed."""
        token = self._token
        if token is not None and time.time() < self._refresh_at:
            return token
        usable, future, owner = self._claim()
        if future is None:
            assert usable is not None
            return usable
        if owner:
            self._fetch(future)
        elif usable is not None:
            return usable
        return self._result(future, usable)

    async def atoken(self) -> str:
        """The async twin of :meth:`token`; the fetch runs in a worker thread."""
        token = self._token
        if token is not None and time.time() < self._refresh_at:
            return token
        usable, future, owner = self._claim()
        if future is None:
            assert usable is not None
            return usable
        if owner:
            await asyncio.to_thread(self._fetch, future)
        elif usable is not None:
            return usable
        else:
            await asyncio.wrap_future(future)
        return self._result(future, usable)

    def _result(self, future: concurrent.futures.Future[str], usable: str | None) -> str:
        try:
            return future.result()
        except AuthenticationError:
            if usable is not None:  # Entra ID is down but the current token is still good
                log.warning("Entra ID token refresh failed for %s; using the current token until it expires.", self.spec.label)
                return usable
            raise

    def invalidate(self, used: str | None) -> bool:
        """Drop ``used`` after the upstream refused it; the next caller fetches a new one.

        Returns True: a retry can help (a new token is fetched, or another caller already did).
        """
        with self._lock:
            if used is not None and used == self._token:
                self._token = None
                self._refresh_at = self._expires_on = 0.0
                self._rebuild = True
        return True

    def close(self) -> None:
        """Forget the token and close the credential (its HTTP session)."""
        with self._lock:
            credential, self._credential = self._credential, None
            self._token = None
            self._refresh_at = self._expires_on = 0.0
            busy = self._inflight is not None
        if not busy:  # a fetch still running keeps its credential; it is collected afterwards
            _close(credential)

    # -------------------------------------------------------------- fetching

    def _fetch(self, future: concurrent.futures.Future[str]) -> None:
        try:
            token = self._get()
        except BaseException as exc:
            with self._lock:
                self._inflight = None
                self._rebuild = True  # the next try starts from a fresh credential (a fixed file, setting)
            future.set_exception(exc)
            return
        with self._lock:
            self._inflight = None
        future.set_result(token)

    def _credential_for(self, rebuild: bool) -> TokenCredential:
        old = self._credential
        if old is None or rebuild:
            self._credential = self.spec.build()
            _close(old)
        assert self._credential is not None
        return self._credential

    def _get(self) -> str:
        with self._lock:
            rebuild, self._rebuild = self._rebuild, False
            held = self._token
        for attempt in (0, 1):
            credential = self._credential_for(rebuild)
            access = self._request(credential)
            # The credential's own cache may hand back the token we are replacing (azure-identity
            # refreshes only within 5 minutes of expiry, and at most every 30 s): ask a new one.
            if attempt == 0 and held is not None and access.token == held:
                rebuild = True
                continue
            break
        now = time.time()
        lifetime = max(0.0, float(access.expires_on) - now)
        with self._lock:
            self._token = access.token
            self._expires_on = float(access.expires_on)
            self._refresh_at = self._expires_on - min(REFRESH_AHEAD, lifetime / 2)
            self.fetches += 1
        log.debug(
            "Entra ID token fetched: %s, scope %s, credential %s, expires in %.0f s",
            self.spec.kind, self.scope, self.spec.key[:12], lifetime,
        )  # fmt: skip
        return access.token

    def _request(self, credential: TokenCredential) -> AccessToken:
        from azure.core.exceptions import ClientAuthenticationError

        try:
            if self.spec.kind != "username_password":
                return credential.get_token(self.scope)
            with warnings.catch_warnings():  # MSAL warns on every ROPC call; build() logged it once
                warnings.simplefilter("ignore", DeprecationWarning)
                return credential.get_token(self.scope)
        except ClientAuthenticationError as exc:  # CredentialUnavailableError is one too
            message = _scrub(str(exc.message or exc), self.spec)
            raise AuthenticationError(
                f"Entra ID sign-in with {self.spec.label} failed for scope {self.scope!r}: {message}"
            ) from None
        except ValueError as exc:
            raise AuthenticationError(f"{self.spec.label}: {_scrub(str(exc), self.spec)}") from None


class EntraToken:
    """The ``Authenticator`` for one call: a bearer token from a shared :class:`TokenSource`."""

    __slots__ = ("_source", "_used")

    def __init__(self, source: TokenSource) -> None:
        self._source = source
        self._used: str | None = None

    def headers(self) -> dict[str, str]:
        self._used = self._source.token()
        return {"Authorization": f"Bearer {self._used}"}

    async def aheaders(self) -> dict[str, str]:
        self._used = await self._source.atoken()
        return {"Authorization": f"Bearer {self._used}"}

    def invalidate(self) -> bool:
        return self._source.invalidate(self._used)

    def __repr__(self) -> str:
        return f"EntraToken({self._source.spec.kind}, scope={self._source.scope!r})"


_SOURCES: dict[tuple[str, str], TokenSource] = {}
_SOURCES_LOCK = threading.Lock()


def token_source(spec: CredentialSpec, scope: str) -> TokenSource:
    """The process-wide :class:`TokenSource` for ``spec`` and ``scope``."""
    key = (spec.key, scope)
    source = _SOURCES.get(key)
    evicted = None
    if source is None:
        with _SOURCES_LOCK:
            source = _SOURCES.get(key)
            if source is None:
                source = _SOURCES[key] = TokenSource(spec, scope)
                if len(_SOURCES) > MAX_SOURCES:  # bounded: callers may send many (or wrong) credentials
                    evicted = _SOURCES.pop(next(iter(_SOURCES)))
    if evicted is not None:
        evicted.close()
    return source


def clear_token_cache() -> None:
    """Forget every cached token and credential (tests; after rotating a secret)."""
    with _SOURCES_LOCK:
        sources = list(_SOURCES.values())
        _SOURCES.clear()
    for source in sources:
        source.close()
