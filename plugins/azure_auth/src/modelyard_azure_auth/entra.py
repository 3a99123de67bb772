"""Entra ID tokens from azure-identity credentials: built once, cached, refreshed ahead of expiry.

A :class:`CredentialSpec` says which azure-identity credential to build (client secret,
username/password, certificate, ``DefaultAzureCredential``) and with what; its :attr:`key` is
a hash of all of that (secrets included, so two secrets never share a token), never the
secret itself. One :class:`TokenSource` per (credential, scope) lives for the process:

* it hands out the cached token until less than ``min(5 min, half its lifetime)`` is left;
* then it refreshes in the background while the current token is still handed out: no call
  waits for a refresh ahead of expiry. After a failed refresh it waits (1 s, doubling up to
  60 s) before it tries again, so a failing Entra ID is not hammered while the token is good;
* with no valid token, one fetch runs (in a worker thread) and every caller (thread or
  asyncio task, any event loop) waits for that one fetch, each at most its call's
  ``timeout`` (then :class:`~modelyard.errors.APITimeoutError`); a caller giving up or being
  cancelled never cancels the fetch the others wait for;
* the credential's HTTP requests have short timeouts (:data:`TOKEN_CONNECT_TIMEOUT`,
  :data:`TOKEN_READ_TIMEOUT`), so a token endpoint that never answers fails a fetch in about
  20 s, not azure-core's 300 s per attempt;
* after a 401, :meth:`TokenSource.invalidate` drops the token the call used and rebuilds the
  credential, so the next fetch really goes to Entra ID (the credential's own cache would
  hand back the rejected token).

The sync credential serves the async path too: a fetch happens once an hour, and
azure-identity's async credentials would need aiohttp and one credential per event loop.
azure-identity is imported only when a token is first needed.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hashlib
import json
import logging
import random
import threading
import time
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from modelyard.errors import APIConnectionError, APIError, APITimeoutError, AuthenticationError

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
"""A token this close to expiry is not handed out: callers wait for the new one."""
TOKEN_CONNECT_TIMEOUT = 5.0
"""Seconds to connect to the token endpoint (azure-core's default is 300)."""
TOKEN_READ_TIMEOUT = 10.0
"""Seconds to wait for the token endpoint's answer (azure-core's default is 300)."""
TOKEN_READ_RETRIES = 1
"""azure-core retries a read timeout this many times (its default is 3), so a token endpoint that
accepts and never answers fails a fetch after about ``2 * TOKEN_READ_TIMEOUT``."""
REFRESH_BACKOFF = 1.0
"""Seconds before the first retry after a failed fetch; doubles per failure, with jitter."""
REFRESH_BACKOFF_MAX = 60.0
"""The longest pause between failed refreshes while the current token is still valid."""

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
        # azure-core's transport waits 300 s to connect and 300 s per read, three retries each:
        # a hung endpoint would hold a fetch for many minutes.
        kw: dict[str, Any] = {
            "connection_timeout": TOKEN_CONNECT_TIMEOUT,
            "read_timeout": TOKEN_READ_TIMEOUT,
            "retry_read": TOKEN_READ_RETRIES,
        }
        if self.authority:
            kw["authority"] = self.authority
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
        self._failures = 0
        self._retry_at = 0.0  # after a failure: no refresh ahead before this
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"TokenSource({self.spec!r}, scope={self.scope!r})"

    # -------------------------------------------------------------- handing out

    def _claim(self) -> tuple[str | None, concurrent.futures.Future[str] | None]:
        """The token to use now, else the fetch to wait for (started here if none runs)."""
        with self._lock:
            now = time.time()
            token = self._token
            if token is not None and now < self._refresh_at:
                return token, None
            if token is not None and now < self._expires_on - EXPIRY_MARGIN:
                # Due for refresh but still valid: refresh in the background and serve this one;
                # after a failed refresh, not before the backoff is over.
                if self._inflight is None and now >= self._retry_at:
                    with contextlib.suppress(APIConnectionError):  # the next call tries again
                        self._start()
                return token, None
            if self._inflight is None:
                self._start()
            return None, self._inflight

    def _start(self) -> None:
        """Run a fetch in a worker thread; called with the lock held.

        Raises:
            APIConnectionError: no thread could be started.
        """
        future: concurrent.futures.Future[str] = concurrent.futures.Future()
        # A running future cannot be cancelled: a waiter that gives up (asyncio cancels the
        # future it wraps) leaves the fetch to the others. See also the shield in atoken().
        future.set_running_or_notify_cancel()
        worker = threading.Thread(target=self._fetch, args=(future,), name="modelyard-entra-token", daemon=True)
        try:
            worker.start()
        except RuntimeError:  # no thread to be had (the interpreter is exiting): fail, never hang
            raise APIConnectionError(f"Cannot start an Entra ID token fetch for {self.spec.label}.") from None
        self._inflight = future

    def token(self, timeout: float | None = None) -> str:
        """A valid token, fetching (once, for every waiting caller) when there is none.

        Args:
            timeout: seconds to wait for a fetch; None waits until it ends (its HTTP requests
                have their own timeouts).

        Raises:
            APITimeoutError: no token within ``timeout`` (the fetch goes on for later calls).
            AuthenticationError: Entra ID refused the credential.
            APIConnectionError: the token endpoint could not be reached.
        """
        token = self._token
        if token is not None and time.time() < self._refresh_at:
            return token
        usable, future = self._claim()
        if future is None:
            assert usable is not None
            return usable
        if not future.done():
            started = time.monotonic()
            concurrent.futures.wait((future,), timeout)
            if not future.done():
                raise self._late(time.monotonic() - started)
        return future.result()

    async def atoken(self, timeout: float | None = None) -> str:
        """The async twin of :meth:`token`: waits without blocking the event loop."""
        token = self._token
        if token is not None and time.time() < self._refresh_at:
            return token
        usable, future = self._claim()
        if future is None:
            assert usable is not None
            return usable
        # The shield keeps this task's cancellation (or the timeout) away from the shared fetch,
        # which other tasks and threads (and later calls) are waiting for. asyncio.timeout, not
        # wait_for: on Python 3.11 wait_for returns the result when a cancellation arrives in the
        # turn the fetch ends, and the caller's cancel is lost (CPython gh-86296).
        started = time.monotonic()
        try:
            async with asyncio.timeout(timeout):
                return await asyncio.shield(asyncio.wrap_future(future))
        except TimeoutError:
            if future.done():  # the fetch itself ended with a TimeoutError: that is the answer
                return future.result()
            raise self._late(time.monotonic() - started) from None

    def _late(self, waited: float) -> APITimeoutError:
        return APITimeoutError(
            f"No Entra ID token for {self.spec.label} within the call's timeout: the token endpoint has "
            f"not answered after {waited:.1f} s. The fetch goes on; a later call uses its token."
        )

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait for a running fetch (a background refresh) to end; True when none runs.

        For tests and shutdown: calls never need it.
        """
        future = self._inflight
        if future is not None:
            concurrent.futures.wait((future,), timeout)
            return future.done()
        return True

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
            now = time.time()
            with self._lock:
                self._inflight = None
                self._rebuild = True  # the next try starts from a fresh credential (a fixed file, setting)
                self._failures += 1
                pause = min(REFRESH_BACKOFF_MAX, REFRESH_BACKOFF * 2.0 ** (self._failures - 1))
                pause *= 0.75 + random.random() / 4  # instances that failed together retry apart
                self._retry_at = now + pause
                left = self._expires_on - now if self._token is not None else 0.0
            if left > EXPIRY_MARGIN:  # nobody waits for this refresh: say so here
                reason = exc.message if isinstance(exc, APIError) else type(exc).__name__
                log.warning(
                    "Entra ID token refresh failed for %s; using the current token (valid %.0f s more), "
                    "next try in %.0f s. %s",
                    self.spec.label, left, pause, reason,
                )  # fmt: skip
            future.set_exception(exc)
            return
        with self._lock:
            self._inflight = None
            self._failures = 0
            self._retry_at = 0.0
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
        from azure.core.exceptions import (
            ClientAuthenticationError,
            ServiceRequestError,
            ServiceResponseError,
        )
        from azure.identity import CredentialUnavailableError

        try:
            if self.spec.kind != "username_password":
                return credential.get_token(self.scope)
            with warnings.catch_warnings():  # MSAL warns on every ROPC call; build() logged it once
                warnings.simplefilter("ignore", DeprecationWarning)
                return credential.get_token(self.scope)
        except (ServiceRequestError, ServiceResponseError) as exc:
            raise self._unreachable(exc) from None
        except ClientAuthenticationError as exc:  # CredentialUnavailableError is one too
            # azure-identity wraps a failed connection in this error too; an unavailable credential
            # (no managed identity here ...) is a configuration answer, whatever its cause.
            cause = None if isinstance(exc, CredentialUnavailableError) else _transport_cause(exc)
            if cause is not None:
                raise self._unreachable(cause) from None
            message = _scrub(str(exc.message or exc), self.spec)
            raise AuthenticationError(
                f"Entra ID sign-in with {self.spec.label} failed for scope {self.scope!r}: {message}"
            ) from None
        except ValueError as exc:
            raise AuthenticationError(f"{self.spec.label}: {_scrub(str(exc), self.spec)}") from None

    def _unreachable(self, exc: BaseException) -> APIConnectionError:
        # The exception's text is not repeated: a transport error may quote a proxy URL with
        # its password, or a header.
        timed_out = _is_timeout(exc)
        what = "did not answer in time" if timed_out else "could not be reached"
        cls = APITimeoutError if timed_out else APIConnectionError
        return cls(f"Entra ID sign-in with {self.spec.label}: the token endpoint {what} ({type(exc).__name__}).")


def _transport_cause(exc: BaseException) -> BaseException | None:
    """The connection or timeout error behind ``exc``, if its chain has one."""
    from azure.core.exceptions import ServiceRequestError, ServiceResponseError

    seen = exc.__cause__ or exc.__context__
    for _ in range(8):  # chains are short; a cycle must not loop
        if seen is None:
            return None
        if isinstance(seen, (ServiceRequestError, ServiceResponseError, ConnectionError, TimeoutError)):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _is_timeout(exc: BaseException) -> bool:
    from azure.core.exceptions import ServiceRequestTimeoutError, ServiceResponseTimeoutError

    if isinstance(exc, (ServiceRequestTimeoutError, ServiceResponseTimeoutError, TimeoutError)):
        return True
    return "timeout" in type(getattr(exc, "inner_exception", None)).__name__.lower()


class EntraToken:
    """The ``Authenticator`` for one call: a bearer token from a shared :class:`TokenSource`.

    Args:
        source: the shared tokens.
        timeout: the call's timeout in seconds: a token the call has to wait for is waited for
            until that long after this object was made (the call's start), then
            :class:`~modelyard.errors.APITimeoutError`. None: no limit of the call's own.
    """

    __slots__ = ("_deadline", "_source", "_used")

    def __init__(self, source: TokenSource, *, timeout: float | None = None) -> None:
        self._source = source
        self._used: str | None = None
        self._deadline = None if timeout is None else time.monotonic() + timeout

    def _left(self) -> float | None:
        return None if self._deadline is None else max(0.0, self._deadline - time.monotonic())

    def headers(self) -> dict[str, str]:
        self._used = self._source.token(self._left())
        return {"Authorization": f"Bearer {self._used}"}

    async def aheaders(self) -> dict[str, str]:
        self._used = await self._source.atoken(self._left())
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
