"""A Microsoft Entra ID token service on loopback, for the real azure-identity classes.

It answers what MSAL (behind azure-identity) asks for, with the shapes Entra uses:

* ``POST /{tenant}/oauth2/v2.0/token``: ``client_credentials`` with a client secret or a
  ``client_assertion`` (a certificate-signed JWT, or a workload-identity token issued by
  :meth:`EntraEmulator.federated_token`), and the ``password`` grant (ROPC);
* ``GET /{tenant}/v2.0/.well-known/openid-configuration`` (tenant discovery),
  ``GET /common/discovery/instance`` (instance discovery, for hosts MSAL does not know) and
  ``GET /common/userrealm/{user}`` (asked before a password grant);
* errors as ``{"error": "invalid_client", "error_description": "AADSTS7000215: ...",
  "error_codes": [...], ...}`` with 400/401.

Access tokens are JWT-shaped (``aud``, ``iss``, ``tid``, ``appid``, ``scp``/``roles``,
``iat``/``nbf``/``exp``) and signed with a key only this emulator holds, so that
:meth:`EntraEmulator.validate` accepts exactly the tokens it issued, for an accepted
audience and unexpired. :meth:`EntraEmulator.install` makes an Azure OpenAI
:class:`~modelyard.testing.Emulator` use that check.

azure-identity only talks HTTPS: serve this app with :class:`EntraServer`, which makes a
test certificate authority with ``trustme`` and serves the emulator under the real authority
host names (``login.microsoftonline.com``, the sovereign clouds) through a loopback
``HTTPS_PROXY`` tunnel, so a credential built with no arguments at all reaches it.

Nothing secret is recorded: :attr:`EntraEmulator.token_requests` keeps the grant, client,
tenant, scope and host of each request, never a secret, password or assertion.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .secret_scan import register_secret

__all__ = [
    "COGNITIVE_SERVICES_AUDIENCE",
    "DEFAULT_TENANT",
    "EntraApp",
    "EntraEmulator",
    "EntraUser",
    "TokenRequest",
]

COGNITIVE_SERVICES_AUDIENCE = "https://cognitiveservices.azure.com"
DEFAULT_TENANT = "72f988bf-0000-4000-8000-000000000001"
FEDERATED_AUDIENCE = "api://AzureADTokenExchange"
_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
_OIDC_SCOPES = frozenset({"openid", "profile", "offline_access", "email"})


@dataclass
class EntraApp:
    """An app registration.

    Attributes:
        client_id: the application (client) id.
        client_secret: accepted client secret, if the app has one.
        certificate_pem: a PEM certificate whose key may sign client assertions.
        federated_subjects: ``sub`` values of workload-identity tokens the app trusts
            (tokens made by :meth:`EntraEmulator.federated_token`).
        public_client: whether the password grant is allowed without a client secret.
        roles: app roles put in app-only tokens.
    """

    client_id: str
    client_secret: str | None = None
    certificate_pem: bytes | None = None
    federated_subjects: set[str] = field(default_factory=set)
    public_client: bool = True
    roles: list[str] = field(default_factory=lambda: ["Cognitive Services OpenAI User"])

    def __repr__(self) -> str:
        return f"EntraApp(client_id={self.client_id!r})"


@dataclass
class EntraUser:
    """A user who may sign in with the password grant."""

    username: str
    password: str
    oid: str = field(default_factory=lambda: str(uuid.uuid4()))
    mfa_required: bool = False

    def __repr__(self) -> str:
        return f"EntraUser(username={self.username!r})"


@dataclass
class TokenRequest:
    """One request to the token endpoint (no secret is kept)."""

    host: str
    tenant: str
    grant_type: str
    client_id: str | None
    scope: str | None
    client_auth: str  # "secret", "certificate", "federated", "none"
    status: int = 200


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(data: str) -> bytes:
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))


def _split_jwt(token: str) -> tuple[dict[str, Any], dict[str, Any], bytes, bytes] | None:
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        header = json.loads(_unb64(parts[0]))
        claims = json.loads(_unb64(parts[1]))
        signature = _unb64(parts[2])
    except ValueError:
        return None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        return None
    return header, claims, f"{parts[0]}.{parts[1]}".encode("ascii"), signature


_AADSTS = {
    7000215: ("invalid_client", 401, "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client}'."),
    700016: ("unauthorized_client", 400, "Application with identifier '{client}' was not found in the directory '{tenant}'."),
    90002: ("invalid_request", 400, "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."),
    50126: ("invalid_grant", 400, "Error validating credentials due to invalid username or password."),
    50076: ("invalid_grant", 400, "Due to a configuration change made by your administrator, or because you moved to a new location, you must use multi-factor authentication to access '{scope}'."),
    70011: ("invalid_scope", 400, "The provided request must include a 'scope' input parameter. The provided value for the input parameter 'scope' is not valid. The scope {scope} is not valid."),
    700027: ("invalid_client", 401, "Client assertion failed signature validation."),
    700211: ("invalid_client", 401, "No matching federated identity record found for presented assertion issuer and subject."),
    7000218: ("invalid_client", 401, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'."),
    900144: ("invalid_request", 400, "The request body must contain the following parameter: '{param}'."),
    70003: ("unsupported_grant_type", 400, "The app requested an unsupported grant type '{grant}'."),
    7000112: ("unauthorized_client", 400, "Application '{client}' is disabled."),
    90033: ("temporarily_unavailable", 503, "A transient error has occurred. Please try again."),
}  # fmt: skip


def _aadsts(code: int, **fmt: str) -> JSONResponse:
    error, status, text = _AADSTS[code]
    trace, corr = str(uuid.uuid4()), str(uuid.uuid4())
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    description = (
        f"AADSTS{code}: {text.format_map(_Default(fmt))} Trace ID: {trace} "
        f"Correlation ID: {corr} Timestamp: {stamp}"
    )
    body = {
        "error": error,
        "error_description": description,
        "error_codes": [code],
        "timestamp": stamp,
        "trace_id": trace,
        "correlation_id": corr,
        "error_uri": f"https://login.microsoftonline.com/error?code={code}",
    }
    return JSONResponse(body, status_code=status)


class _Default(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return ""


class EntraEmulator:
    """An Entra ID tenant in a process: register apps and users, then serve :attr:`app`.

    Args:
        tenants: tenant ids (GUIDs or domains) that exist; ``organizations`` also works for
            the password grant.
        token_lifetime: seconds an access token lives (``expires_in``); small values make
            expiry testable.
        audiences: token audiences the data plane accepts in :meth:`validate`.

    Attributes:
        apps: app registrations by client id.
        users: users by lower-cased user name.
        token_requests: every token request received, without secrets.
        issued: every access token issued, in order (for tests; treat as secret).
        token_latency: fault injection: seconds to hold every token request before answering
            it (``math.inf``: accept and never answer, until :meth:`reset`).
        token_failure: fault injection: an ``AADSTS`` code every token request is answered
            with (``90033``: a transient 503 outage; ``7000112``: a 400 that is not retried).
    """

    def __init__(
        self,
        *,
        tenants: Iterable[str] = (DEFAULT_TENANT,),
        token_lifetime: float = 3599,
        audiences: Iterable[str] = (COGNITIVE_SERVICES_AUDIENCE,),
    ) -> None:
        self.tenants = set(tenants)
        self.token_lifetime = token_lifetime
        self.audiences = set(audiences)
        self.apps: dict[str, EntraApp] = {}
        self.users: dict[str, EntraUser] = {}
        self.token_requests: list[TokenRequest] = []
        self.issued: list[str] = []
        self._revoked: set[str] = set()
        self.token_latency = 0.0
        self.token_failure: int | None = None
        self._generation = 0  # bumped by reset(): held requests are let go
        self._key = secrets.token_bytes(32)
        self._lock = threading.Lock()
        self.app = Starlette(routes=self._routes())

    # ------------------------------------------------------------------ configuration

    def add_app(self, client_id: str, **kwargs: Any) -> EntraApp:
        """Register an app (keyword arguments as in :class:`EntraApp`); returns it."""
        app = EntraApp(client_id, **kwargs)
        self.apps[client_id] = app
        return app

    def add_user(self, username: str, password: str, **kwargs: Any) -> EntraUser:
        """Create a user for the password grant; returns it."""
        user = EntraUser(username, password, **kwargs)
        self.users[username.lower()] = user
        return user

    def reset(self) -> None:
        """Forget recorded requests, issued tokens and faults (apps, users and lifetime stay).

        Token requests held by :attr:`token_latency` are answered at once.
        """
        with self._lock:
            self.token_requests.clear()
            self.issued.clear()
            self._revoked.clear()
            self.token_latency = 0.0
            self.token_failure = None
            self._generation += 1

    def revoke_all(self) -> None:
        """Make every token issued so far invalid (as a key rotation or a revoked session)."""
        with self._lock:
            self._revoked.update(self.issued)

    @property
    def token_request_count(self) -> int:
        """How many token requests succeeded."""
        return sum(1 for r in self.token_requests if r.status == 200)

    def install(self, data_plane: Any) -> None:
        """Make an Azure OpenAI emulator accept the bearer tokens this tenant issues."""
        data_plane.token_validator = self.validate

    # ------------------------------------------------------------------ tokens

    def _sign(self, header: dict[str, Any], claims: dict[str, Any]) -> str:
        signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
        mac = hmac.new(self._key, signing_input.encode("ascii"), hashlib.sha256).digest()
        return f"{signing_input}.{_b64(mac)}"

    def _claims(self, token: str) -> dict[str, Any] | None:
        parts = _split_jwt(token)
        if parts is None:
            return None
        header, claims, signing_input, signature = parts
        if header.get("alg") != "HS256" or header.get("kid") != "modelyard-emulator":
            return None
        expected = hmac.new(self._key, signing_input, hashlib.sha256).digest()
        return claims if hmac.compare_digest(expected, signature) else None

    def validate(self, token: str, audience: str | None = None) -> bool:
        """True when ``token`` is an access token this emulator issued, unexpired, unrevoked,
        for ``audience`` (default: any of :attr:`audiences`)."""
        claims = self._claims(token)
        if claims is None or claims.get("typ") != "access_token":
            return False
        if token in self._revoked:
            return False
        if time.time() >= float(claims.get("exp", 0)):
            return False
        accepted = {audience} if audience is not None else self.audiences
        return claims.get("aud") in accepted

    def federated_token(
        self, subject: str, *, issuer: str = "https://oidc.modelyard.test/", lifetime: float = 3600
    ) -> str:
        """A workload-identity token (what Kubernetes writes to ``AZURE_FEDERATED_TOKEN_FILE``).

        Register ``subject`` in an app's ``federated_subjects`` for the exchange to succeed.
        """
        now = int(time.time())
        claims = {"iss": issuer, "sub": subject, "aud": FEDERATED_AUDIENCE, "iat": now,
                  "nbf": now, "exp": now + int(lifetime), "typ": "federated"}  # fmt: skip
        return self._sign({"typ": "JWT", "alg": "HS256", "kid": "modelyard-emulator"}, claims)

    def _access_token(self, tenant: str, audience: str, scp: str | None, app: EntraApp, oid: str) -> str:
        now = time.time()
        claims: dict[str, Any] = {
            "aud": audience,
            "iss": f"https://sts.windows.net/{tenant}/",
            "iat": int(now),
            "nbf": int(now),
            "exp": now + self.token_lifetime,
            "tid": tenant,
            "oid": oid,
            "appid": app.client_id,
            "ver": "1.0",
            "typ": "access_token",
            "uti": secrets.token_urlsafe(12),
        }
        if scp is None:
            claims["roles"] = app.roles
        else:
            claims["scp"] = scp
        token = self._sign({"typ": "JWT", "alg": "HS256", "kid": "modelyard-emulator"}, claims)
        with self._lock:
            self.issued.append(token)
        register_secret(token, "an access token of the Entra ID emulator")
        return token

    # ------------------------------------------------------------------ HTTP

    def _routes(self) -> list[Route]:
        return [
            Route("/common/discovery/instance", self._instance_discovery, methods=["GET"]),
            Route("/common/userrealm/{username}", self._user_realm, methods=["GET"]),
            Route("/{tenant}/v2.0/.well-known/openid-configuration", self._openid_configuration, methods=["GET"]),
            Route("/{tenant}/oauth2/v2.0/token", self._token, methods=["POST"]),
        ]

    @staticmethod
    def _base(request: Request) -> str:
        host = request.headers.get("host") or f"{request.url.hostname}:{request.url.port}"
        if host.endswith(":443"):
            host = host[:-4]
        return f"https://{host}"

    def _known_tenant(self, tenant: str) -> bool:
        return tenant in self.tenants or tenant in ("organizations", "common")

    async def _openid_configuration(self, request: Request) -> Response:
        tenant = request.path_params["tenant"]
        if not self._known_tenant(tenant):
            return _aadsts(90002, tenant=tenant)
        base = self._base(request)
        shown = DEFAULT_TENANT if tenant in ("organizations", "common") else tenant
        return JSONResponse(
            {
                "token_endpoint": f"{base}/{tenant}/oauth2/v2.0/token",
                "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
                "jwks_uri": f"{base}/{tenant}/discovery/v2.0/keys",
                "response_modes_supported": ["query", "fragment", "form_post"],
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
                "scopes_supported": ["openid", "profile", "email", "offline_access"],
                "issuer": f"{base}/{shown}/v2.0",
                "request_uri_parameter_supported": False,
                "userinfo_endpoint": "https://graph.microsoft.com/oidc/userinfo",
                "authorization_endpoint": f"{base}/{tenant}/oauth2/v2.0/authorize",
                "device_authorization_endpoint": f"{base}/{tenant}/oauth2/v2.0/devicecode",
                "http_logout_supported": True,
                "frontchannel_logout_supported": True,
                "end_session_endpoint": f"{base}/{tenant}/oauth2/v2.0/logout",
                "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nonce", "tid", "oid"],
                "tenant_region_scope": "NA",
                "cloud_instance_name": "microsoftonline.com",
            }
        )

    async def _instance_discovery(self, request: Request) -> Response:
        # MSAL asks the public cloud about hosts it does not know; answer for any authority
        # URL by pointing tenant discovery back at that authority.
        endpoint = request.query_params.get("authorization_endpoint", "")
        authority = endpoint.rsplit("/oauth2/", 1)[0]
        host = authority.split("//", 1)[-1].split("/", 1)[0]
        return JSONResponse(
            {
                "tenant_discovery_endpoint": f"{authority}/v2.0/.well-known/openid-configuration",
                "api-version": "1.1",
                "metadata": [{"preferred_network": host, "preferred_cache": host, "aliases": [host]}],
            }
        )

    async def _user_realm(self, request: Request) -> Response:
        username = request.path_params["username"]
        domain = username.rsplit("@", 1)[-1]
        return JSONResponse(
            {"ver": "1.0", "account_type": "Managed", "domain_name": domain,
             "cloud_instance_name": "microsoftonline.com", "cloud_audience_urn": "urn:federation:MicrosoftOnline"}
        )  # fmt: skip

    def _record(self, request: Request, tenant: str, form: dict[str, str], client_auth: str, status: int) -> None:
        with self._lock:
            self.token_requests.append(
                TokenRequest(
                    host=request.headers.get("host", ""),
                    tenant=tenant,
                    grant_type=form.get("grant_type", ""),
                    client_id=form.get("client_id"),
                    scope=form.get("scope"),
                    client_auth=client_auth,
                    status=status,
                )
            )

    async def _hold(self) -> None:
        """Wait :attr:`token_latency` seconds, or until :meth:`reset` (polled: the emulator may
        serve from another thread's loop than the test's)."""
        generation = self._generation
        until = time.monotonic() + self.token_latency
        while self._generation == generation and (left := until - time.monotonic()) > 0:
            await asyncio.sleep(min(left, 0.05))

    async def _token(self, request: Request) -> Response:
        tenant = request.path_params["tenant"]
        raw = parse_qs((await request.body()).decode("utf-8", "replace"), keep_blank_values=True)
        if self.token_latency:
            await self._hold()
        form = {k: v[0] for k, v in raw.items()}
        # client_secret_basic: MSAL may send the client credentials in an Authorization header.
        basic = request.headers.get("authorization", "")
        if basic.lower().startswith("basic "):
            try:
                user, _, secret = base64.b64decode(basic[6:], validate=True).decode().partition(":")
            except ValueError:  # binascii.Error and UnicodeDecodeError are ValueErrors
                user, secret = "", "\x00"  # malformed: refused below as a bad client
            form.setdefault("client_id", user)
            form.setdefault("client_secret", secret)
        client_auth = (
            "secret" if form.get("client_secret")
            else "assertion" if form.get("client_assertion")
            else "none"
        )  # fmt: skip
        if self.token_failure is not None:
            response: Response = _aadsts(self.token_failure, client=form.get("client_id", ""), tenant=tenant)
        else:
            response, client_auth = self._grant(request, tenant, form, client_auth)
        self._record(request, tenant, form, client_auth, response.status_code)
        return response

    def _grant(self, request: Request, tenant: str, form: dict[str, str], client_auth: str) -> tuple[Response, str]:
        grant = form.get("grant_type", "")
        client_id = form.get("client_id", "")
        scope = form.get("scope", "")
        if not grant:
            return _aadsts(900144, param="grant_type"), client_auth
        if grant not in ("client_credentials", "password"):
            return _aadsts(70003, grant=grant), client_auth
        if not client_id:
            return _aadsts(900144, param="client_id"), client_auth
        if not self._known_tenant(tenant) or (grant == "client_credentials" and tenant in ("organizations", "common")):
            return _aadsts(90002, tenant=tenant), client_auth
        app = self.apps.get(client_id)
        if app is None:
            return _aadsts(700016, client=client_id, tenant=tenant), client_auth
        resources = [s for s in scope.split() if s not in _OIDC_SCOPES]
        if len(resources) != 1 or (grant == "client_credentials" and not resources[0].endswith("/.default")):
            return _aadsts(70011, scope=scope), client_auth
        resource = resources[0]
        audience = resource[: -len("/.default")] if resource.endswith("/.default") else resource.rsplit("/", 1)[0]
        if client_auth == "secret":
            if app.client_secret is None or not hmac.compare_digest(app.client_secret, form["client_secret"]):
                return _aadsts(7000215, client=client_id), client_auth
        elif client_auth == "assertion":
            if form.get("client_assertion_type") != _ASSERTION_TYPE:
                return _aadsts(900144, param="client_assertion_type"), client_auth
            client_auth, failure = self._check_assertion(app, form["client_assertion"], self._base(request), tenant)
            if failure is not None:
                return _aadsts(failure), client_auth
        elif grant == "client_credentials" or not app.public_client:
            return _aadsts(7000218), client_auth
        shown_tenant = DEFAULT_TENANT if tenant in ("organizations", "common") else tenant
        if grant == "client_credentials":
            token = self._access_token(shown_tenant, audience, None, app, oid=str(uuid.uuid5(uuid.NAMESPACE_URL, client_id)))
            return JSONResponse(
                {"token_type": "Bearer", "expires_in": int(self.token_lifetime),
                 "ext_expires_in": int(self.token_lifetime), "access_token": token}
            ), client_auth
        user = self.users.get(form.get("username", "").lower())
        if user is None or not hmac.compare_digest(user.password, form.get("password", "")):
            return _aadsts(50126), client_auth
        if user.mfa_required:
            return _aadsts(50076, scope=resource), client_auth
        token = self._access_token(shown_tenant, audience, "user_impersonation", app, oid=user.oid)
        now = int(time.time())
        body: dict[str, Any] = {
            "token_type": "Bearer",
            "scope": f"{audience}/user_impersonation",
            "expires_in": int(self.token_lifetime),
            "ext_expires_in": int(self.token_lifetime),
            "access_token": token,
            "client_info": _b64(json.dumps({"uid": user.oid, "utid": shown_tenant}).encode()),
        }
        requested = set(scope.split())
        if "offline_access" in requested:
            body["refresh_token"] = secrets.token_urlsafe(32)
        if "openid" in requested or "profile" in requested:
            id_claims = {
                "aud": client_id, "iss": f"{self._base(request)}/{shown_tenant}/v2.0", "iat": now, "nbf": now,
                "exp": now + 3600, "name": user.username.split("@")[0], "oid": user.oid,
                "preferred_username": user.username, "sub": user.oid, "tid": shown_tenant, "ver": "2.0",
            }  # fmt: skip
            body["id_token"] = self._sign({"typ": "JWT", "alg": "HS256", "kid": "modelyard-emulator"}, id_claims)
        return JSONResponse(body), client_auth

    def _check_assertion(self, app: EntraApp, assertion: str, base: str, tenant: str) -> tuple[str, int | None]:
        parts = _split_jwt(assertion)
        if parts is None:
            return "assertion", 700027
        header, claims, signing_input, signature = parts
        if time.time() >= float(claims.get("exp", 0)):
            return "assertion", 700027
        if claims.get("aud") == FEDERATED_AUDIENCE:  # workload identity
            ok = self._claims(assertion) is not None and claims.get("sub") in app.federated_subjects
            return "federated", None if ok else 700211
        if app.certificate_pem is None or claims.get("iss") != app.client_id or claims.get("sub") != app.client_id:
            return "certificate", 700027
        if not str(claims.get("aud", "")).startswith(f"{base}/{tenant}/"):
            return "certificate", 700027
        return "certificate", None if _verify_rsa(app.certificate_pem, header, signing_input, signature) else 700027


def _verify_rsa(certificate_pem: bytes, header: dict[str, Any], signing_input: bytes, signature: bytes) -> bool:
    """Check an RS256/PS256 client assertion against a registered certificate."""
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, rsa
    from cryptography.hazmat.primitives.serialization import Encoding

    cert = x509.load_pem_x509_certificate(certificate_pem)
    der = cert.public_bytes(Encoding.DER)
    if "x5t#S256" in header:
        if str(header["x5t#S256"]).rstrip("=") != _b64(hashlib.sha256(der).digest()):
            return False
    elif str(header.get("x5t")).rstrip("=") != _b64(hashlib.sha1(der).digest()):  # the x5t thumbprint is SHA-1
        return False
    key = cert.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        return False
    alg = header.get("alg")
    pad: Callable[[], padding.AsymmetricPadding]
    if alg == "PS256":
        pad = lambda: padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.AUTO)  # noqa: E731
    elif alg == "RS256":
        pad = padding.PKCS1v15
    else:
        return False
    try:
        key.verify(signature, signing_input, pad(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True
