"""Emulated Azure AD (Entra ID): the v1 endpoints a JupyterHub login needs.

What is served, relative to the emulator's base URL ({tenant} is the tenant
GUID, its domain name, ``common`` or ``organizations``):

- ``GET|POST /{tenant}/oauth2/authorize``: the authorization-code flow, with
  single sign-on from the emulator's own session cookie and a login page;
- ``GET|POST /{tenant}/login``: the login form's target (also the plain SSO
  login used by the application proxy, with ``return_to``);
- ``POST /{tenant}/oauth2/token``: authorization_code, refresh_token and
  client_credentials grants (v1: ``resource``);
- ``POST /{tenant}/oauth2/v2.0/token``: client_credentials with
  ``scope=<resource>/.default``, which is what azure-identity's
  ``ClientSecretCredential`` (MSAL) sends;
- ``GET /{tenant}/discovery/keys`` (and ``/discovery/keys``, v2.0 variants):
  the JWKS; ``GET /{tenant}/.well-known/openid-configuration`` and
  ``/{tenant}/v2.0/.well-known/openid-configuration``;
- ``GET /{tenant}/oauth2/logout``: ends the emulator's SSO session;
- control API: ``POST /_emulator/aad/apps``, ``GET /_emulator/aad/users``,
  ``GET /_emulator/aad/groups``.

The shapes follow ``shared/reference/azure-ad-contract.md``. The stock
``AzureAdOAuthenticator`` verifies nothing in the id_token, so the emulator is
strict where Azure is (exact redirect URIs, single-use codes bound to client,
redirect URI and PKCE challenge, 401 on a bad secret) to make hub
misconfiguration show up locally rather than in Azure.

State (codes, refresh tokens) lives in memory: run the emulator as a single
process. The signing key and the session-cookie key live in ``key_dir`` so a
restart keeps the same ``kid`` and keeps browsers signed in.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import html
import json
import logging
import os
import pathlib
import secrets
import tempfile
import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping
from urllib.parse import unquote_plus, urlencode, urlsplit

import jwt
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from yarl import URL

log = logging.getLogger(__name__)

SESSION_COOKIE = "aml_emulator_aad_session"
GRAPH_RESOURCE = "00000002-0000-0000-c000-000000000000"  # v1's default resource (AAD Graph)
DEFAULT_IDENTITY_FILE = pathlib.Path(__file__).parent / "data" / "identity.json"

_SIGNING_FILE = "aad-signing.pem"  # private key + certificate, 0600
_CERT_FILE = "aad-signing-cert.pem"  # the certificate alone, for anyone who wants to verify tokens
_SESSION_KEY_FILE = "aad-session.key"  # HMAC key of the SSO session cookie, 0600

_REFRESH_LIFETIME = 90 * 24 * 3600  # Azure's default refresh-token lifetime


# --------------------------------------------------------------------------
# Identity configuration


def _guid(value: Any, what: str) -> str:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise ValueError(f"{what} must be a GUID, got {value!r}") from None


def _need_str(data: Mapping, key: str, what: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{what}: '{key}' must be a non-empty string")
    return value


def _check_redirect_uri(uri: Any) -> str:
    if not isinstance(uri, str):
        raise ValueError(f"redirect URI must be a string, got {uri!r}")
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.fragment:
        raise ValueError(f"redirect URI must be an absolute http(s) URL without a fragment: {uri!r}")
    return uri


@dataclass(frozen=True)
class Group:
    id: str
    display_name: str


@dataclass(frozen=True)
class TestUser:
    __test__ = False  # not a pytest test class, whatever its name

    username: str
    password: str
    oid: str
    upn: str
    name: str
    given_name: str
    family_name: str
    groups: tuple[str, ...] = ()
    email: str | None = None  # Azure sends it mostly for guests
    idp: str | None = None  # a guest's home identity provider

    def public(self) -> dict:
        """What the control API shows: everything but the password."""
        return {
            "username": self.username,
            "oid": self.oid,
            "upn": self.upn,
            "name": self.name,
            "given_name": self.given_name,
            "family_name": self.family_name,
            "groups": list(self.groups),
        }


@dataclass
class AppRegistration:
    client_id: str
    client_secret: str
    redirect_uris: list[str]
    display_name: str = ""


@dataclass
class IdentityConfig:
    tenant_id: str
    users: list[TestUser]
    groups: list[Group]
    apps: list[AppRegistration]
    domain: str = "aml-local.example"

    @classmethod
    def load(cls, path: pathlib.Path | None) -> "IdentityConfig":
        """Read an identity file; ``None`` gives the packaged test identities."""
        path = pathlib.Path(path) if path is not None else DEFAULT_IDENTITY_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not valid JSON: {e}") from None
        try:
            return cls.from_dict(data)
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None

    @classmethod
    def from_dict(cls, data: Mapping) -> "IdentityConfig":
        if not isinstance(data, Mapping):
            raise ValueError("the identity file must hold a JSON object")
        tenant_id = _guid(data.get("tenant_id"), "tenant_id")
        groups = [
            Group(id=_guid(g.get("id"), "group id"), display_name=_need_str(g, "display_name", "group"))
            for g in data.get("groups", [])
        ]
        group_ids = {g.id for g in groups}
        if len(group_ids) != len(groups):
            raise ValueError("group ids must be unique")
        users = []
        for u in data.get("users", []):
            username = _need_str(u, "username", "user")
            member_of = tuple(_guid(g, f"group of user {username}") for g in u.get("groups", []))
            unknown = [g for g in member_of if g not in group_ids]
            if unknown:
                raise ValueError(f"user {username} is in unknown group(s) {unknown}")
            users.append(
                TestUser(
                    username=username,
                    password=_need_str(u, "password", f"user {username}"),
                    oid=_guid(u.get("oid"), f"oid of user {username}"),
                    upn=_need_str(u, "upn", f"user {username}"),
                    name=_need_str(u, "name", f"user {username}"),
                    given_name=u.get("given_name", ""),
                    family_name=u.get("family_name", ""),
                    groups=member_of,
                    email=u.get("email"),
                    idp=u.get("idp"),
                )
            )
        for key in ("username", "oid", "upn", "name"):
            values = [getattr(u, key).lower() for u in users]
            if len(set(values)) != len(values):
                # distinct display names too: 'name' is the authenticator's default username claim
                raise ValueError(f"users must have distinct '{key}' values")
        apps = []
        for a in data.get("apps", []):
            uris = a.get("redirect_uris")
            if not isinstance(uris, list):
                raise ValueError("app: 'redirect_uris' must be a list")
            apps.append(
                AppRegistration(
                    client_id=_need_str(a, "client_id", "app"),
                    client_secret=_need_str(a, "client_secret", "app"),
                    redirect_uris=[_check_redirect_uri(x) for x in uris],
                    display_name=a.get("display_name", ""),
                )
            )
        if len({a.client_id for a in apps}) != len(apps):
            raise ValueError("app client_ids must be unique")
        domain = data.get("domain") or "aml-local.example"
        return cls(tenant_id=tenant_id, users=users, groups=groups, apps=apps, domain=domain)


# --------------------------------------------------------------------------
# Keys kept in key_dir


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _create_exclusive(path: pathlib.Path, content: bytes, mode: int) -> bool:
    """Write a file only if it does not exist yet; False if someone else won.

    Written under a temporary name and hard-linked into place, so a reader
    never sees a half-written key even when two processes start together.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(content)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        return True
    finally:
        os.unlink(tmp)


def _write_replace(path: pathlib.Path, content: bytes, mode: int) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(content)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


class _SigningKey:
    """An RS256 key with a self-signed certificate, as Azure AD publishes its keys."""

    def __init__(self, key_dir: pathlib.Path):
        path = key_dir / _SIGNING_FILE
        if not path.exists():
            _create_exclusive(path, self._generate(), 0o600)
        pem = path.read_bytes()
        self.private_key = serialization.load_pem_private_key(pem, password=None)
        self.cert = x509.load_pem_x509_certificate(pem)
        cert_der = self.cert.public_bytes(serialization.Encoding.DER)
        # kid = x5t = base64url SHA-1 thumbprint of the certificate, as Azure does
        self.kid = _b64url(hashlib.sha1(cert_der).digest())
        self.public_key = self.private_key.public_key()
        numbers = self.public_key.public_numbers()
        self.jwk = {
            "kty": "RSA",
            "use": "sig",
            "kid": self.kid,
            "x5t": self.kid,
            "n": _b64url(numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")),
            "e": _b64url(numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big")),
            "x5c": [base64.b64encode(cert_der).decode("ascii")],
        }
        cert_path = key_dir / _CERT_FILE
        cert_pem = self.cert.public_bytes(serialization.Encoding.PEM)
        if not cert_path.exists() or cert_path.read_bytes() != cert_pem:
            _write_replace(cert_path, cert_pem, 0o644)

    @staticmethod
    def _generate() -> bytes:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "aml-emulator Azure AD token signing")])
        now = dt.datetime.now(dt.timezone.utc)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=5 * 365))
            .sign(key, hashes.SHA256())
        )
        key_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        return key_pem + cert.public_bytes(serialization.Encoding.PEM)


def _load_secret(path: pathlib.Path) -> bytes:
    if not path.exists():
        _create_exclusive(path, secrets.token_bytes(32).hex().encode(), 0o600)
    return bytes.fromhex(path.read_text().strip())


# --------------------------------------------------------------------------
# Pages

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;background:#f3f4f6;color:#1f2937;margin:0}
main{max-width:26rem;margin:4rem auto;background:#fff;padding:2rem;border-radius:8px;box-shadow:0 1px 4px rgba(0,0,0,.15)}
h1{font-size:1.1rem;margin:0 0 .25rem;color:#0f5fa8}
h2{font-size:1.5rem;margin:.5rem 0 1rem}
p{line-height:1.45}
.note{font-size:.875rem;color:#4b5563}
label{display:block;font-weight:600;margin:1rem 0 .25rem}
input[type=text],input[type=password]{width:100%;box-sizing:border-box;padding:.55rem;font-size:1rem;border:1px solid #6b7280;border-radius:4px}
input:focus,button:focus,a:focus{outline:3px solid #2563eb;outline-offset:2px}
button{margin-top:1.5rem;padding:.6rem 1.4rem;font-size:1rem;background:#0f5fa8;color:#fff;border:0;border-radius:4px;cursor:pointer}
.error{background:#fef2f2;border:1px solid #b91c1c;color:#7f1d1d;padding:.75rem;border-radius:4px}
code{word-break:break-all}
"""

_CSP = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'"


def render_page(
    title: str, body_html: str, status: int = 200, *, csp: str = _CSP, heading: str = "Local Azure AD emulator"
) -> web.Response:
    """A small self-contained HTML page (also used by the application proxy).

    ``body_html`` must already be escaped.
    """
    page = (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head>"
        f"<body><main>\n<h1>{html.escape(heading)}</h1>\n{body_html}\n</main></body></html>\n"
    )
    return web.Response(
        text=page,
        status=status,
        content_type="text/html",
        headers={
            "Cache-Control": "no-store",
            "Pragma": "no-cache",
            "X-Frame-Options": "DENY",
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            "Content-Security-Policy": csp,
        },
    )


def _redirect(location: str, headers: Mapping[str, str] | None = None) -> web.Response:
    resp = web.Response(status=302, headers={"Location": location, "Cache-Control": "no-store"})
    for k, v in (headers or {}).items():
        resp.headers[k] = v
    return resp


def _error_page(code: int, message: str, status: int = 400) -> web.Response:
    trace = str(uuid.uuid4())
    body = (
        "<h2>Sorry, but we're having trouble signing you in.</h2>\n"
        f'<p class="error" role="alert"><strong>AADSTS{code}</strong>: {html.escape(message)}</p>\n'
        f'<p class="note">Trace ID: <code>{trace}</code></p>'
    )
    return render_page(f"AADSTS{code}", body, status)


# --------------------------------------------------------------------------
# Azure AD


@dataclass
class _CodeGrant:
    client_id: str
    redirect_uri: str
    oid: str
    session_state: str
    expires_at: float
    challenge: str | None
    challenge_method: str
    resource: str | None
    nonce: str | None
    redeemed: bool = False


@dataclass
class _RefreshGrant:
    client_id: str
    oid: str
    resource: str
    expires_at: float


class TokenError(Exception):
    """A token-endpoint failure, rendered as Azure AD's JSON error body."""

    def __init__(self, status: int, error: str, code: int, message: str):
        super().__init__(f"AADSTS{code}: {message}")
        self.status, self.error, self.code, self.message = status, error, code, message


_OAUTH_PARAMS = (
    "client_id",
    "redirect_uri",
    "response_type",
    "response_mode",
    "state",
    "resource",
    "scope",
    "nonce",
    "prompt",
    "login_hint",
    "domain_hint",
    "code_challenge",
    "code_challenge_method",
)


class AzureAD:
    """The emulated tenant: apps, users, the SSO session, codes and tokens."""

    def __init__(
        self,
        config: IdentityConfig,
        key_dir: pathlib.Path,
        *,
        clock: Callable[[], float] = time.time,
        code_lifetime: float = 600.0,
        token_lifetime: int = 3600,
        session_lifetime: float = 12 * 3600.0,
        id_token_alg: str = "RS256",
    ):
        """``clock`` (epoch seconds) and the lifetimes (seconds) are injectable for tests.

        ``id_token_alg`` "none" gives the unsigned v1 id_token Microsoft's v1
        docs describe; access tokens are always RS256.
        """
        if id_token_alg not in ("RS256", "none"):
            raise ValueError("id_token_alg must be 'RS256' or 'none'")
        self.config = config
        self.tenant_id = config.tenant_id
        self.issuer = f"https://sts.windows.net/{config.tenant_id}/"
        self._users_by_login: dict[str, TestUser] = {}
        for u in config.users:
            self._users_by_login[u.username.lower()] = u
            self._users_by_login[u.upn.lower()] = u
        self._users_by_oid = {u.oid: u for u in config.users}
        self._apps: dict[str, AppRegistration] = {a.client_id: a for a in config.apps}
        self._clock = clock
        self._code_lifetime = code_lifetime
        self._token_lifetime = int(token_lifetime)
        self._session_lifetime = session_lifetime
        self._id_token_alg = id_token_alg
        key_dir = pathlib.Path(key_dir)
        key_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._key = _SigningKey(key_dir)
        self._session_key = _load_secret(key_dir / _SESSION_KEY_FILE)
        self._codes: dict[str, _CodeGrant] = {}
        self._refresh: dict[str, _RefreshGrant] = {}

    # ---- public API ------------------------------------------------------

    @property
    def kid(self) -> str:
        return self._key.kid

    @property
    def jwks(self) -> dict:
        return {"keys": [dict(self._key.jwk)]}

    @property
    def certificate_pem(self) -> bytes:
        return self._key.cert.public_bytes(serialization.Encoding.PEM)

    def add_routes(self, app: web.Application) -> None:
        r = app.router
        r.add_get("/discovery/keys", self._keys)
        r.add_get("/discovery/v2.0/keys", self._keys)
        r.add_get("/_emulator/aad/users", self._api_users)
        r.add_get("/_emulator/aad/groups", self._api_groups)
        r.add_post("/_emulator/aad/apps", self._api_register_app)
        r.add_route("GET", "/{tenant}/oauth2/authorize", self._authorize_get)
        r.add_route("POST", "/{tenant}/oauth2/authorize", self._authorize_post)
        r.add_route("GET", "/{tenant}/login", self._login_get)
        r.add_route("POST", "/{tenant}/login", self._login_post)
        r.add_post("/{tenant}/oauth2/token", self._token_v1)
        r.add_post("/{tenant}/oauth2/v2.0/token", self._token_v2)
        r.add_get("/{tenant}/oauth2/logout", self._logout)
        r.add_get("/{tenant}/oauth2/v2.0/logout", self._logout)
        r.add_get("/{tenant}/discovery/keys", self._keys)
        r.add_get("/{tenant}/discovery/v2.0/keys", self._keys)
        r.add_get("/{tenant}/.well-known/openid-configuration", self._openid_v1)
        r.add_get("/{tenant}/v2.0/.well-known/openid-configuration", self._openid_v2)

    def register_app(self, client_id: str, client_secret: str, redirect_uris: Iterable[str]) -> None:
        """Add (or replace) an app registration; raises ValueError on bad input."""
        if not isinstance(client_id, str) or not client_id.strip():
            raise ValueError("client_id must be a non-empty string")
        if not isinstance(client_secret, str) or not client_secret:
            raise ValueError("client_secret must be a non-empty string")
        if isinstance(redirect_uris, str):
            raise ValueError("redirect_uris must be a list of URLs")
        uris = [_check_redirect_uri(u) for u in redirect_uris]
        self._apps[client_id] = AppRegistration(client_id, client_secret, uris)

    def user(self, login: str) -> TestUser | None:
        """A user by username or upn (case-insensitive)."""
        return self._users_by_login.get(login.lower())

    def session_user(self, request: web.Request) -> TestUser | None:
        found = self._read_session(request)
        return found[0] if found else None

    def login_url(self, request: web.Request, return_to: Any) -> str:
        """The login page that signs a user in and then sends them to ``return_to``."""
        target = self._safe_return_to(request, str(return_to))
        if target is None:
            raise ValueError(f"return_to must be on the emulator's own origin: {return_to!r}")
        return f"/{self.tenant_id}/login?" + urlencode({"return_to": target})

    def login_redirect(self, request: web.Request, return_to: Any) -> web.Response:
        return _redirect(self.login_url(request, return_to))

    def issue_access_token(
        self, resource: str, *, user: TestUser | None = None, client_id: str | None = None
    ) -> str:
        """An RS256 access token for ``resource`` (its ``aud``), as the token endpoint issues.

        With ``user``, a delegated token for that user; without, an app-only
        token for ``client_id`` (default: the first registered app).
        """
        if client_id is None:
            if not self._apps:
                raise ValueError("no app registered")
            client_id = next(iter(self._apps))
        if user is None:
            return self._app_access_token(client_id, resource)
        return self._user_access_token(client_id, user, resource, ipaddr=None)

    def verify_token(self, token: str, audience: str | Iterable[str]) -> dict:
        """Check a token this emulator issued and return its claims.

        Signature (RS256, our key), issuer, audience and lifetime are checked
        against the emulator's clock. An audience URL matches with or without
        its trailing slash (v1 ``resource`` keeps it, v2 ``scope`` drops it).
        Raises ``jwt.InvalidTokenError`` (or a subclass) on any failure.
        """
        audiences = [audience] if isinstance(audience, str) else list(audience)
        accepted = set()
        for a in audiences:
            accepted.update({a, a.rstrip("/"), a.rstrip("/") + "/"} if "://" in a else {a})
        header = jwt.get_unverified_header(token)
        if header.get("kid") not in (None, self._key.kid):
            raise jwt.InvalidTokenError("token was signed with an unknown key")
        claims = jwt.decode(
            token,
            self._key.public_key,
            algorithms=["RS256"],
            audience=sorted(accepted),
            issuer=self.issuer,
            options={"require": ["exp", "nbf", "iat", "aud", "iss"], "verify_exp": False, "verify_nbf": False, "verify_iat": False},
        )
        now = self._clock()
        leeway = 60  # the usual clock-skew allowance of resource servers
        if now > claims["exp"] + leeway:
            raise jwt.ExpiredSignatureError("Signature has expired")
        if now < claims["nbf"] - leeway:
            raise jwt.ImmatureSignatureError("The token is not yet valid (nbf)")
        return claims

    # ---- SSO session cookie ---------------------------------------------

    def _sign(self, payload: str) -> str:
        return _b64url(hmac.new(self._session_key, payload.encode("ascii"), hashlib.sha256).digest())

    def _session_cookie_value(self, user: TestUser) -> tuple[str, str]:
        sid = str(uuid.uuid4())
        body = json.dumps({"oid": user.oid, "sid": sid, "iat": int(self._clock())}, separators=(",", ":"))
        payload = _b64url(body.encode("utf-8"))
        return f"{payload}.{self._sign(payload)}", sid

    def _read_session(self, request: web.Request) -> tuple[TestUser, str] | None:
        value = request.cookies.get(SESSION_COOKIE)
        if not value or value.count(".") != 1:
            return None
        payload, mac = value.split(".")
        if not hmac.compare_digest(mac, self._sign(payload)):
            return None
        try:
            data = json.loads(_b64url_decode(payload))
        except (ValueError, binascii.Error):
            return None
        if not isinstance(data, dict) or self._clock() > data.get("iat", 0) + self._session_lifetime:
            return None
        user = self._users_by_oid.get(data.get("oid"))
        return (user, str(data.get("sid"))) if user else None

    @staticmethod
    def _set_session_cookie(request: web.Request, resp: web.StreamResponse, value: str) -> None:
        resp.set_cookie(SESSION_COOKIE, value, path="/", httponly=True, secure=request.secure, samesite="Lax")

    # ---- helpers ---------------------------------------------------------

    def _tenant_ok(self, tenant: str) -> bool:
        t = tenant.lower()
        return t in (self.tenant_id, "common", "organizations", self.config.domain.lower())

    @staticmethod
    def _base_url(request: web.Request) -> str:
        return str(request.url.origin())

    def _safe_return_to(self, request: web.Request, value: str) -> str | None:
        """``value`` as a path on this origin, or None if it points elsewhere (no open redirect)."""
        if not value or "\\" in value or any(ord(c) < 0x20 for c in value):
            return None
        parts = urlsplit(value)
        if parts.scheme or parts.netloc:
            try:
                if URL(value).origin() != request.url.origin():
                    return None
            except ValueError:
                return None
            value = parts.path + (f"?{parts.query}" if parts.query else "")
        if not value.startswith("/") or value.startswith("//"):
            return None
        return value

    def _validate_client(self, tenant: str, params: Mapping[str, str]):
        """Checks after which errors may go back to the redirect URI. Returns (app, uri) or a page."""
        if not self._tenant_ok(tenant):
            return _error_page(
                90002, f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."
            )
        client_id = params.get("client_id", "")
        if not client_id:
            return _error_page(900144, "The request body must contain the following parameter: 'client_id'.")
        app = self._apps.get(client_id)
        if app is None:
            return _error_page(
                700016,
                f"Application with identifier '{client_id}' was not found in the directory "
                f"'{self.config.domain}'. This can happen if the application has not been installed "
                "by the administrator of the tenant or consented to by any user in the tenant.",
            )
        redirect_uri = params.get("redirect_uri", "")
        # Azure v1 would fall back to a registered URI when none is sent; the
        # emulator insists (fails safe: the authenticator always sends one).
        if redirect_uri not in app.redirect_uris:
            return _error_page(
                50011,
                f"The redirect URI '{redirect_uri}' specified in the request does not match the "
                f"redirect URIs configured for the application '{client_id}'. Make sure the redirect "
                "URI sent in the request matches one added to your application.",
            )
        return app, redirect_uri

    def _respond_to_client(self, params: Mapping[str, str], redirect_uri: str, values: dict) -> web.Response:
        """Send the result of an authorize request to the app in its response_mode."""
        values = {k: v for k, v in values.items() if v is not None}
        if params.get("state") is not None:
            values["state"] = params["state"]
        mode = params.get("response_mode") or "query"
        if mode == "form_post":
            fields = "\n".join(
                f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">' for k, v in values.items()
            )
            body = (
                "<h2>Signing you in…</h2>\n"
                f'<form method="post" action="{html.escape(redirect_uri)}">\n{fields}\n'
                "<p>Continue to the application.</p><button type=\"submit\">Continue</button></form>\n"
                "<script>document.forms[0].submit()</script>"
            )
            return render_page("Working...", body, csp=_CSP + "; script-src 'unsafe-inline'")
        sep = "#" if mode == "fragment" else ("&" if "?" in redirect_uri else "?")
        return _redirect(redirect_uri + sep + urlencode(values))

    def _authorize_error(self, params, redirect_uri, error: str, code: int, message: str) -> web.Response:
        return self._respond_to_client(
            params, redirect_uri, {"error": error, "error_description": f"AADSTS{code}: {message}"}
        )

    # ---- authorize and login ---------------------------------------------

    async def _authorize_get(self, request: web.Request) -> web.Response:
        return self._authorize(request, request.match_info["tenant"], dict(request.query))

    async def _authorize_post(self, request: web.Request) -> web.Response:
        form = await request.post()
        if "username" in form or "password" in form:
            return await self._login_submit(request, form)
        return self._authorize(request, request.match_info["tenant"], {k: str(v) for k, v in form.items()})

    def _authorize(self, request: web.Request, tenant: str, params: dict) -> web.Response:
        checked = self._validate_client(tenant, params)
        if isinstance(checked, web.Response):
            return checked
        app, redirect_uri = checked
        if (params.get("response_mode") or "query") not in ("query", "fragment", "form_post"):
            params["response_mode"] = "query"
            return self._authorize_error(
                params, redirect_uri, "invalid_request", 900144, "The response_mode must be query, fragment or form_post."
            )
        response_types = (params.get("response_type") or "").split()
        if "code" not in response_types:
            # [unverified] which AADSTS number Azure gives here; the error name is OAuth's
            return self._authorize_error(
                params,
                redirect_uri,
                "unsupported_response_type",
                70005,
                f"The response_type '{params.get('response_type', '')}' is not supported; the emulator issues codes only.",
            )
        if params.get("code_challenge") and params.get("code_challenge_method", "plain") not in ("plain", "S256"):
            # [unverified] number: the generic "malformed request" one
            return self._authorize_error(
                params, redirect_uri, "invalid_request", 9002313, "Invalid code_challenge_method: use 'plain' or 'S256'."
            )
        prompt = params.get("prompt", "")
        session = self._read_session(request)
        if session and prompt not in ("login", "select_account"):
            user, sid = session
            return self._issue_code(request, app, redirect_uri, params, user, sid)
        if prompt == "none":
            return self._authorize_error(
                params, redirect_uri, "login_required", 50058, "A silent sign-in request was sent but no user is signed in."
            )
        return self._login_page(tenant, params, app=app, username=params.get("login_hint", ""))

    def _issue_code(self, request, app, redirect_uri, params, user: TestUser, sid: str) -> web.Response:
        now = self._clock()
        for c in [c for c, g in self._codes.items() if now > g.expires_at + self._code_lifetime]:
            del self._codes[c]  # keep redeemed codes a while so a replay says "already redeemed"
        code = secrets.token_urlsafe(48)
        challenge = params.get("code_challenge") or None
        self._codes[code] = _CodeGrant(
            client_id=app.client_id,
            redirect_uri=redirect_uri,
            oid=user.oid,
            session_state=sid,
            expires_at=now + self._code_lifetime,
            challenge=challenge,
            challenge_method=params.get("code_challenge_method") or "plain",
            resource=params.get("resource") or None,
            nonce=params.get("nonce") or None,
        )
        return self._respond_to_client(params, redirect_uri, {"code": code, "session_state": sid})

    def _login_page(
        self,
        tenant: str,
        params: Mapping[str, str],
        *,
        app: AppRegistration | None = None,
        username: str = "",
        error: str = "",
        return_to: str | None = None,
    ) -> web.Response:
        hidden = {k: params[k] for k in _OAUTH_PARAMS if params.get(k) is not None and k != "prompt"}
        if return_to is not None:
            hidden = {"return_to": return_to}
        fields = "\n".join(
            f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">' for k, v in hidden.items()
        )
        described = ' aria-describedby="login-error" aria-invalid="true"' if error else ""
        focus_user = "" if username else " autofocus"
        focus_pass = " autofocus" if username else ""
        error_html = f'<p class="error" id="login-error" role="alert">{html.escape(error)}</p>\n' if error else ""
        target = (app.display_name or app.client_id) if app else "the compute instance application"
        body = (
            "<h2>Sign in</h2>\n"
            '<p class="note">A local stand-in for Microsoft Entra ID (Azure AD). It knows only the test '
            "accounts of its identity file: never type a real password here.</p>\n"
            f'<p class="note">Signing in to <strong>{html.escape(target)}</strong>.</p>\n'
            f"{error_html}"
            f'<form method="post" action="/{html.escape(tenant)}/login">\n'
            '<label for="username">Username or email</label>\n'
            f'<input type="text" id="username" name="username" autocomplete="username" required '
            f'value="{html.escape(username)}"{described}{focus_user}>\n'
            '<label for="password">Password</label>\n'
            f'<input type="password" id="password" name="password" autocomplete="current-password" required{described}{focus_pass}>\n'
            f"{fields}\n"
            '<button type="submit">Sign in</button>\n'
            "</form>"
        )
        return render_page("Sign in to your account", body)

    async def _login_get(self, request: web.Request) -> web.Response:
        tenant = request.match_info["tenant"]
        if not self._tenant_ok(tenant):
            return _error_page(90002, f"Tenant '{tenant}' not found.")
        return_to = self._safe_return_to(request, request.query.get("return_to", ""))
        if return_to is None:
            return _error_page(900144, "The sign-in page needs a 'return_to' path on this site.")
        return self._login_page(tenant, {}, return_to=return_to)

    async def _login_post(self, request: web.Request) -> web.Response:
        return await self._login_submit(request, await request.post())

    async def _login_submit(self, request: web.Request, form) -> web.Response:
        tenant = request.match_info["tenant"]
        params = {k: str(v) for k, v in form.items() if k not in ("username", "password")}
        username = str(form.get("username", "")).strip()
        password = str(form.get("password", ""))
        app = redirect_uri = None
        return_to = None
        if "return_to" in params:
            if not self._tenant_ok(tenant):
                return _error_page(90002, f"Tenant '{tenant}' not found.")
            return_to = self._safe_return_to(request, params["return_to"])
            if return_to is None:
                return _error_page(900144, "The sign-in page needs a 'return_to' path on this site.")
        else:
            # the hidden fields came back from the browser: check them again
            checked = self._validate_client(tenant, params)
            if isinstance(checked, web.Response):
                return checked
            app, redirect_uri = checked
        user = self.user(username) if username else None
        if user is None or not hmac.compare_digest(user.password.encode(), password.encode()):
            # Azure shows AADSTS50126 on the page and keeps what was typed
            log.info("aad: failed sign-in for %r", username)
            msg = (
                "Enter your username and password."
                if not username or not password
                else "Your account or password is incorrect. (AADSTS50126)"
            )
            return self._login_page(tenant, params, app=app, username=username, error=msg, return_to=return_to)
        log.info("aad: %s signed in", user.upn)
        cookie, sid = self._session_cookie_value(user)
        if return_to is not None:
            resp = _redirect(return_to)
        else:
            resp = self._issue_code(request, app, redirect_uri, params, user, sid)
        self._set_session_cookie(request, resp, cookie)
        return resp

    # ---- logout --------------------------------------------------------

    async def _logout(self, request: web.Request) -> web.Response:
        target = request.query.get("post_logout_redirect_uri", "")
        allowed = False
        if target:
            origin = _origin(target)
            client_id = request.query.get("client_id")
            apps = [self._apps[client_id]] if client_id in self._apps else list(self._apps.values())
            allowed = origin is not None and any(_origin(u) == origin for a in apps for u in a.redirect_uris)
        if allowed:
            resp = _redirect(target)
        else:
            note = (
                f"<p>The emulator did not send you on to <code>{html.escape(target)}</code>: "
                "only the origin of a registered redirect URI is allowed.</p>"
                if target
                else ""
            )
            resp = render_page("Signed out", f"<h2>You signed out of your account</h2>\n{note}")
        resp.del_cookie(SESSION_COOKIE, path="/")
        return resp

    # ---- token endpoint ------------------------------------------------

    def _error_json(self, err: TokenError, request: web.Request) -> web.Response:
        now = dt.datetime.fromtimestamp(self._clock(), dt.timezone.utc)
        ts = now.strftime("%Y-%m-%d %H:%M:%SZ")
        trace = str(uuid.uuid4())
        corr = request.headers.get("client-request-id") or str(uuid.uuid4())
        body = {
            "error": err.error,
            "error_description": (
                f"AADSTS{err.code}: {err.message}\r\nTrace ID: {trace}\r\nCorrelation ID: {corr}\r\nTimestamp: {ts}"
            ),
            "error_codes": [err.code],
            "timestamp": ts,
            "trace_id": trace,
            "correlation_id": corr,
            "error_uri": f"https://login.microsoftonline.com/error?code={err.code}",
        }
        return web.json_response(body, status=err.status, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})

    @staticmethod
    def _missing(name: str) -> TokenError:
        return TokenError(400, "invalid_request", 900144, f"The request body must contain the following parameter: '{name}'.")

    def _client_auth(self, request: web.Request, form) -> AppRegistration:
        """client_secret_basic or client_secret_post; raises TokenError."""
        client_id = form.get("client_id") or None
        secret = form.get("client_secret") or None
        basic_secrets: list[str] = []
        auth = request.headers.get("Authorization", "")
        if auth[:6].lower() == "basic ":
            try:
                decoded = base64.b64decode(auth[6:].strip(), validate=True).decode("utf-8")
                b_id, b_secret = decoded.split(":", 1)
            except (ValueError, UnicodeDecodeError):
                raise TokenError(401, "invalid_client", 7000215, "The Authorization header is not valid Basic client authentication.")
            # RFC 6749 says form-encode both parts first; clients differ, so accept either form
            b_ids = {b_id, unquote_plus(b_id)}
            if client_id and client_id not in b_ids:
                raise TokenError(400, "invalid_request", 900144, "client_id in the body differs from the one in the Authorization header.")
            client_id = client_id or unquote_plus(b_id)
            basic_secrets = [b_secret, unquote_plus(b_secret)]
        if not client_id:
            raise self._missing("client_id")
        app = self._apps.get(client_id)
        if app is None:
            # [unverified] error name paired with 700016 at the token endpoint
            raise TokenError(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory '{self.config.domain}'.",
            )
        offered = basic_secrets or ([secret] if secret else [])
        if not offered:
            raise TokenError(
                401, "invalid_client", 7000218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'."
            )
        if not any(hmac.compare_digest(s.encode(), app.client_secret.encode()) for s in offered):
            raise TokenError(
                401,
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request is the client "
                f"secret value, not the client secret ID, for a secret added to app '{client_id}'.",
            )
        return app

    async def _token_v1(self, request: web.Request) -> web.Response:
        return await self._token(request, v2=False)

    async def _token_v2(self, request: web.Request) -> web.Response:
        return await self._token(request, v2=True)

    async def _token(self, request: web.Request, *, v2: bool) -> web.Response:
        try:
            tenant = request.match_info["tenant"]
            if not self._tenant_ok(tenant):
                raise TokenError(400, "invalid_request", 90002, f"Tenant '{tenant}' not found.")
            form = await request.post()
            grant_type = form.get("grant_type")
            if not grant_type:
                raise self._missing("grant_type")
            supported = ("client_credentials",) if v2 else ("authorization_code", "refresh_token", "client_credentials")
            if grant_type not in supported:
                raise TokenError(
                    400, "unsupported_grant_type", 70003, f"The app requested an unsupported grant type '{grant_type}'."
                )
            app = self._client_auth(request, form)
            if grant_type == "authorization_code":
                body = self._redeem_code(request, app, form)
            elif grant_type == "refresh_token":
                body = self._redeem_refresh(request, app, form)
            else:
                body = self._client_credentials(app, form, v2=v2)
        except TokenError as err:
            return self._error_json(err, request)
        return web.json_response(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})

    def _redeem_code(self, request: web.Request, app: AppRegistration, form) -> dict:
        code = form.get("code")
        if not code:
            raise self._missing("code")
        grant = self._codes.get(code)
        if grant is None:
            # [unverified] Azure's number for a code it cannot parse
            raise TokenError(400, "invalid_grant", 9002313, "Invalid request. Request is malformed or invalid: the code is not known.")
        if grant.client_id != app.client_id:
            raise TokenError(400, "invalid_grant", 70000, "The provided value for the 'code' parameter is not valid: it was issued to another application.")
        if grant.redeemed:
            raise TokenError(
                400,
                "invalid_grant",
                54005,
                "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token.",
            )
        # Any redemption attempt by the right client uses the code up, even a
        # failing one: a wrong verifier or redirect URI may mean a stolen code.
        grant.redeemed = True
        if self._clock() > grant.expires_at:
            raise TokenError(
                400,
                "invalid_grant",
                70008,
                "The provided authorization code or refresh token has expired due to inactivity. "
                "Send a new interactive authorization request for this user and resource.",
            )
        redirect_uri = form.get("redirect_uri")
        if redirect_uri is None:
            raise self._missing("redirect_uri")
        if redirect_uri != grant.redirect_uri:
            # [unverified] number; the reference's experiment used 500112
            raise TokenError(
                400,
                "invalid_grant",
                500112,
                "The reply address does not match the reply address provided when requesting the authorization code.",
            )
        if grant.challenge:
            verifier = str(form.get("code_verifier") or "")
            if grant.challenge_method == "S256":
                computed = _b64url(hashlib.sha256(verifier.encode("ascii", "replace")).digest())
            else:
                computed = verifier
            if not verifier or not hmac.compare_digest(computed.encode(), grant.challenge.encode()):
                raise TokenError(
                    400, "invalid_grant", 501481, "The Code_Verifier does not match the code_challenge supplied in the authorization request."
                )
        resource = form.get("resource") or None
        if resource and grant.resource and resource != grant.resource:
            # [unverified] number; Azure requires the two to agree when both are sent
            raise TokenError(400, "invalid_grant", 70000, "The resource does not match the one of the authorization request.")
        user = self._users_by_oid.get(grant.oid)
        if user is None:
            raise TokenError(400, "invalid_grant", 70000, "The user of this code no longer exists.")
        return self._user_token_response(
            request, app, user, resource or grant.resource or GRAPH_RESOURCE, nonce=grant.nonce
        )

    def _redeem_refresh(self, request: web.Request, app: AppRegistration, form) -> dict:
        token = form.get("refresh_token")
        if not token:
            raise self._missing("refresh_token")
        grant = self._refresh.get(token)
        if grant is None or grant.client_id != app.client_id:
            raise TokenError(400, "invalid_grant", 9002313, "Invalid request. Request is malformed or invalid: the refresh token is not known.")
        if self._clock() > grant.expires_at:
            del self._refresh[token]
            raise TokenError(
                400, "invalid_grant", 70008, "The provided authorization code or refresh token has expired due to inactivity."
            )
        user = self._users_by_oid.get(grant.oid)
        if user is None:
            raise TokenError(400, "invalid_grant", 70000, "The user of this refresh token no longer exists.")
        return self._user_token_response(request, app, user, form.get("resource") or grant.resource, nonce=None)

    def _client_credentials(self, app: AppRegistration, form, *, v2: bool) -> dict:
        if v2:
            scope = str(form.get("scope") or "")
            if not scope:
                raise self._missing("scope")
            scopes = [s for s in scope.split() if s not in ("openid", "profile", "offline_access")]
            if len(scopes) != 1 or not scopes[0].endswith("/.default"):
                raise TokenError(
                    400,
                    "invalid_scope",
                    1002012,
                    f"The provided value for scope {scope} is not valid. Client credential flows must have a scope "
                    "value with /.default suffixed to the resource identifier (application ID URI).",
                )
            resource = scopes[0][: -len("/.default")]
        else:
            resource = str(form.get("resource") or "")
            if not resource:
                raise self._missing("resource")
        now = int(self._clock())
        token = self._app_access_token(app.client_id, resource)
        lifetime = self._token_lifetime
        if v2:  # v2 answers with numbers and no resource
            return {"token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime, "access_token": token}
        return {
            "token_type": "Bearer",
            "expires_in": str(lifetime),
            "ext_expires_in": str(lifetime),
            "expires_on": str(now + lifetime),
            "not_before": str(now),
            "resource": resource,
            "access_token": token,
        }

    # ---- tokens --------------------------------------------------------

    def _times(self) -> dict:
        now = int(self._clock())
        return {"iat": now, "nbf": now, "exp": now + self._token_lifetime}

    def _pairwise_sub(self, oid: str, client_id: str) -> str:
        # stable per user and app, like Azure's pairwise 'sub'
        return _b64url(hashlib.sha256(f"{self.tenant_id}:{oid}:{client_id}".encode()).digest())[:43]

    def _jwt(self, claims: dict, alg: str = "RS256") -> str:
        if alg == "none":
            header = {"typ": "JWT", "alg": "none"}
            return (
                _b64url(json.dumps(header, separators=(",", ":")).encode())
                + "."
                + _b64url(json.dumps(claims, separators=(",", ":")).encode())
                + "."
            )
        return jwt.encode(
            claims,
            self._key.private_key,
            algorithm="RS256",
            headers={"typ": "JWT", "kid": self._key.kid, "x5t": self._key.kid},
        )

    def _user_claims(self, user: TestUser) -> dict:
        claims = {
            "given_name": user.given_name,
            "family_name": user.family_name,
            "name": user.name,
            "oid": user.oid,
            "tid": self.tenant_id,
            "unique_name": user.upn,
            "upn": user.upn,
            "ver": "1.0",
        }
        if user.groups:  # Azure omits the claim rather than sending an empty list
            claims["groups"] = list(user.groups)
        if user.email:
            claims["email"] = user.email
        if user.idp:
            claims["idp"] = user.idp
        return claims

    def _user_access_token(self, client_id: str, user: TestUser, resource: str, ipaddr: str | None) -> str:
        claims = {
            "aud": resource,
            "iss": self.issuer,
            **self._times(),
            "acr": "1",
            "amr": ["pwd"],
            "appid": client_id,
            "appidacr": "1",
            **self._user_claims(user),
            "scp": "User.Read" if resource == GRAPH_RESOURCE else "user_impersonation",
            "sub": self._pairwise_sub(user.oid, client_id),
            "uti": _b64url(secrets.token_bytes(16)),
            "idtyp": "user",
        }
        if ipaddr:
            claims["ipaddr"] = ipaddr
        return self._jwt(claims)

    def _app_access_token(self, client_id: str, resource: str) -> str:
        # the app's service principal: a stable object id derived from the client id
        sp_oid = str(uuid.uuid5(uuid.UUID(self.tenant_id), f"sp:{client_id}"))
        claims = {
            "aud": resource,
            "iss": self.issuer,
            **self._times(),
            "appid": client_id,
            "appidacr": "1",
            "idp": self.issuer,
            "oid": sp_oid,
            "sub": sp_oid,
            "tid": self.tenant_id,
            "uti": _b64url(secrets.token_bytes(16)),
            "ver": "1.0",
            "idtyp": "app",
        }
        return self._jwt(claims)

    def _id_token(self, client_id: str, user: TestUser, ipaddr: str | None, nonce: str | None) -> str:
        claims = {
            "aud": client_id,
            "iss": self.issuer,
            **self._times(),
            "amr": ["pwd"],
            **self._user_claims(user),
            "sub": self._pairwise_sub(user.oid, client_id),
            # not a v1 claim; sent for convenience (username_claim = "preferred_username")
            "preferred_username": user.upn,
        }
        if ipaddr:
            claims["ipaddr"] = ipaddr
        if nonce:
            claims["nonce"] = nonce
        return self._jwt(claims, self._id_token_alg)

    def _user_token_response(self, request: web.Request, app: AppRegistration, user: TestUser, resource: str, *, nonce) -> dict:
        now = int(self._clock())
        lifetime = self._token_lifetime
        ipaddr = request.remote
        refresh = secrets.token_urlsafe(64)
        self._refresh = {t: g for t, g in self._refresh.items() if g.expires_at >= now}
        self._refresh[refresh] = _RefreshGrant(app.client_id, user.oid, resource, now + _REFRESH_LIFETIME)
        return {
            "token_type": "Bearer",
            "scope": "User.Read" if resource == GRAPH_RESOURCE else "user_impersonation",
            "expires_in": str(lifetime),
            "ext_expires_in": str(lifetime),
            "expires_on": str(now + lifetime),
            "not_before": str(now),
            "resource": resource,
            "access_token": self._user_access_token(app.client_id, user, resource, ipaddr),
            "refresh_token": refresh,
            "id_token": self._id_token(app.client_id, user, ipaddr, nonce),
        }

    # ---- keys and discovery --------------------------------------------

    async def _keys(self, request: web.Request) -> web.Response:
        tenant = request.match_info.get("tenant")
        if tenant is not None and not self._tenant_ok(tenant):
            return self._error_json(TokenError(400, "invalid_tenant", 90002, f"Tenant '{tenant}' not found."), request)
        return web.json_response(self.jwks)

    def _discovery_common(self, request: web.Request) -> dict | web.Response:
        tenant = request.match_info["tenant"]
        if not self._tenant_ok(tenant):
            return self._error_json(TokenError(400, "invalid_tenant", 90002, f"Tenant '{tenant}' not found."), request)
        return {
            "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code"],
            "code_challenge_methods_supported": ["plain", "S256"],
            "scopes_supported": ["openid"],
            "claims_supported": [
                "sub", "iss", "aud", "exp", "iat", "nbf", "amr", "name", "given_name", "family_name",
                "oid", "tid", "upn", "unique_name", "groups", "ver", "ipaddr", "nonce",
            ],
            "tenant_region_scope": None,
            "cloud_instance_name": self.config.domain,
        }

    async def _openid_v1(self, request: web.Request) -> web.Response:
        doc = self._discovery_common(request)
        if isinstance(doc, web.Response):
            return doc
        base, tid = self._base_url(request), self.tenant_id
        doc.update(
            issuer=self.issuer,
            authorization_endpoint=f"{base}/{tid}/oauth2/authorize",
            token_endpoint=f"{base}/{tid}/oauth2/token",
            end_session_endpoint=f"{base}/{tid}/oauth2/logout",
            jwks_uri=f"{base}/common/discovery/keys",
        )
        return web.json_response(doc)

    async def _openid_v2(self, request: web.Request) -> web.Response:
        doc = self._discovery_common(request)
        if isinstance(doc, web.Response):
            return doc
        base, tid = self._base_url(request), self.tenant_id
        doc.update(
            # MSAL reads issuer, authorization_endpoint and token_endpoint. The
            # v2 authorize endpoint is not emulated: the v1 one is named instead.
            issuer=f"{base}/{tid}/v2.0",
            authorization_endpoint=f"{base}/{tid}/oauth2/authorize",
            token_endpoint=f"{base}/{tid}/oauth2/v2.0/token",
            end_session_endpoint=f"{base}/{tid}/oauth2/v2.0/logout",
            jwks_uri=f"{base}/{tid}/discovery/v2.0/keys",
        )
        return web.json_response(doc)

    # ---- control API ---------------------------------------------------

    async def _api_users(self, request: web.Request) -> web.Response:
        return web.json_response({"tenant_id": self.tenant_id, "users": [u.public() for u in self.config.users]})

    async def _api_groups(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"tenant_id": self.tenant_id, "groups": [{"id": g.id, "display_name": g.display_name} for g in self.config.groups]}
        )

    async def _api_register_app(self, request: web.Request) -> web.Response:
        try:
            data = await request.json()
        except ValueError:
            return web.json_response({"error": "the body must be JSON"}, status=400)
        if not isinstance(data, dict):
            return web.json_response({"error": "the body must be a JSON object"}, status=400)
        existed = data.get("client_id") in self._apps
        try:
            self.register_app(data.get("client_id"), data.get("client_secret"), data.get("redirect_uris") or [])
        except ValueError as e:
            return web.json_response({"error": str(e)}, status=400)
        app = self._apps[data["client_id"]]
        return web.json_response(
            {"client_id": app.client_id, "redirect_uris": app.redirect_uris}, status=200 if existed else 201
        )


def _origin(url: str) -> tuple[str, str, int] | None:
    try:
        parts = urlsplit(url)
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return parts.scheme, parts.hostname.lower(), port
