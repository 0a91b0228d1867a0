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

This module is the endpoints only: it parses requests, asks the layers below
and answers in Azure AD's shapes. Who is in the tenant is ``identity``'s;
keys, tokens and the session cookie are ``signing``'s; codes and refresh
tokens are ``grants``'s; the HTML is ``pages``'s. State (codes, refresh
tokens) lives in memory: run the emulator as a single process. The signing
key and the session-cookie key live in ``key_dir`` so a restart keeps the
same ``kid`` and keeps browsers signed in.
"""

from __future__ import annotations

import base64
import datetime as dt
import hmac
import logging
import pathlib
import time
import uuid
from typing import Any, Callable, Iterable, Mapping
from urllib.parse import unquote_plus, urlencode, urlsplit

from aiohttp import web
from cryptography.hazmat.primitives import serialization
from yarl import URL

from .errors import TokenError, missing_parameter
from .grants import Grants
from .identity import AppRegistration, Directory, IdentityConfig, TestUser
from .pages import error_page, form_post_page, login_page, signed_out_page
from .signing import GRAPH_RESOURCE, SESSION_KEY_FILE, SessionCookie, SigningKey, TokenSigner, load_secret

# Names others import from here, as they did when this module held everything.
__all__ = ["AzureAD", "IdentityConfig", "TestUser", "TokenError", "SESSION_COOKIE", "GRAPH_RESOURCE"]

log = logging.getLogger(__name__)

SESSION_COOKIE = "aml_emulator_aad_session"


def _redirect(location: str, headers: Mapping[str, str] | None = None) -> web.Response:
    resp = web.Response(status=302, headers={"Location": location, "Cache-Control": "no-store"})
    for k, v in (headers or {}).items():
        resp.headers[k] = v
    return resp


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
    """The emulated tenant's endpoints: apps, users, the SSO session, codes and tokens."""

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
        self.directory = Directory(config)
        self._clock = clock
        self._token_lifetime = int(token_lifetime)
        key_dir = pathlib.Path(key_dir)
        key_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._key = SigningKey(key_dir)
        self._tokens = TokenSigner(
            config.tenant_id, self._key, clock=clock, token_lifetime=self._token_lifetime, id_token_alg=id_token_alg
        )
        self.issuer = self._tokens.issuer
        self._sessions = SessionCookie(load_secret(key_dir / SESSION_KEY_FILE), clock=clock, lifetime=session_lifetime)
        self._grants = Grants(clock=clock, code_lifetime=code_lifetime)

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
        self.directory.register_app(client_id, client_secret, redirect_uris)

    def user(self, login: str) -> TestUser | None:
        """A user by username or upn (case-insensitive)."""
        return self.directory.user(login)

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
            client_id = self.directory.first_client_id()
            if client_id is None:
                raise ValueError("no app registered")
        if user is None:
            return self._tokens.app_access_token(client_id, resource)
        return self._tokens.user_access_token(client_id, user, resource, ipaddr=None)

    def verify_token(self, token: str, audience: str | Iterable[str]) -> dict:
        """Check a token this emulator issued and return its claims (see :meth:`TokenSigner.verify`).

        Raises ``jwt.InvalidTokenError`` (or a subclass) on any failure.
        """
        return self._tokens.verify(token, audience)

    # ---- SSO session cookie ---------------------------------------------

    def _read_session(self, request: web.Request) -> tuple[TestUser, str] | None:
        found = self._sessions.read(request.cookies.get(SESSION_COOKIE))
        if found is None:
            return None
        oid, sid = found
        user = self.directory.user_by_oid(oid)
        return (user, sid) if user else None

    @staticmethod
    def _set_session_cookie(request: web.Request, resp: web.StreamResponse, value: str) -> None:
        resp.set_cookie(SESSION_COOKIE, value, path="/", httponly=True, secure=request.secure, samesite="Lax")

    # ---- helpers ---------------------------------------------------------

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
        if not self.directory.is_tenant(tenant):
            return error_page(
                90002, f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."
            )
        client_id = params.get("client_id", "")
        if not client_id:
            return error_page(900144, "The request body must contain the following parameter: 'client_id'.")
        app = self.directory.app(client_id)
        if app is None:
            return error_page(
                700016,
                f"Application with identifier '{client_id}' was not found in the directory "
                f"'{self.config.domain}'. This can happen if the application has not been installed "
                "by the administrator of the tenant or consented to by any user in the tenant.",
            )
        redirect_uri = params.get("redirect_uri", "")
        # Azure v1 would fall back to a registered URI when none is sent; the
        # emulator insists (fails safe: the authenticator always sends one).
        if redirect_uri not in app.redirect_uris:
            return error_page(
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
            return form_post_page(redirect_uri, values)
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
        code = self._grants.issue_code(
            client_id=app.client_id,
            redirect_uri=redirect_uri,
            oid=user.oid,
            session_state=sid,
            challenge=params.get("code_challenge") or None,
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
        # the OAuth parameters travel through the form, so its POST can finish the authorize request
        hidden = {k: params[k] for k in _OAUTH_PARAMS if params.get(k) is not None and k != "prompt"}
        if return_to is not None:
            hidden = {"return_to": return_to}
        target = (app.display_name or app.client_id) if app else "the compute instance application"
        return login_page(tenant, hidden, target=target, username=username, error=error)

    async def _login_get(self, request: web.Request) -> web.Response:
        tenant = request.match_info["tenant"]
        if not self.directory.is_tenant(tenant):
            return error_page(90002, f"Tenant '{tenant}' not found.")
        return_to = self._safe_return_to(request, request.query.get("return_to", ""))
        if return_to is None:
            return error_page(900144, "The sign-in page needs a 'return_to' path on this site.")
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
            if not self.directory.is_tenant(tenant):
                return error_page(90002, f"Tenant '{tenant}' not found.")
            return_to = self._safe_return_to(request, params["return_to"])
            if return_to is None:
                return error_page(900144, "The sign-in page needs a 'return_to' path on this site.")
        else:
            # the hidden fields came back from the browser: check them again
            checked = self._validate_client(tenant, params)
            if isinstance(checked, web.Response):
                return checked
            app, redirect_uri = checked
        user = self.directory.check_password(username, password)
        if user is None:
            # Azure shows AADSTS50126 on the page and keeps what was typed
            log.info("aad: failed sign-in for %r", username)
            msg = (
                "Enter your username and password."
                if not username or not password
                else "Your account or password is incorrect. (AADSTS50126)"
            )
            return self._login_page(tenant, params, app=app, username=username, error=msg, return_to=return_to)
        log.info("aad: %s signed in", user.upn)
        cookie, sid = self._sessions.make(user.oid)
        if return_to is not None:
            resp = _redirect(return_to)
        else:
            resp = self._issue_code(request, app, redirect_uri, params, user, sid)
        self._set_session_cookie(request, resp, cookie)
        return resp

    # ---- logout --------------------------------------------------------

    async def _logout(self, request: web.Request) -> web.Response:
        target = request.query.get("post_logout_redirect_uri", "")
        allowed = bool(target) and self.directory.logout_target_allowed(target, request.query.get("client_id"))
        resp = _redirect(target) if allowed else signed_out_page(target)
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
            raise missing_parameter("client_id")
        app = self.directory.app(client_id)
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
            if not self.directory.is_tenant(tenant):
                raise TokenError(400, "invalid_request", 90002, f"Tenant '{tenant}' not found.")
            form = await request.post()
            grant_type = form.get("grant_type")
            if not grant_type:
                raise missing_parameter("grant_type")
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
        grant, resource = self._grants.redeem_code(
            app.client_id, form.get("code"), form.get("redirect_uri"), form.get("code_verifier"), form.get("resource")
        )
        user = self.directory.user_by_oid(grant.oid)
        if user is None:
            raise TokenError(400, "invalid_grant", 70000, "The user of this code no longer exists.")
        return self._user_token_response(request, app, user, resource, nonce=grant.nonce)

    def _redeem_refresh(self, request: web.Request, app: AppRegistration, form) -> dict:
        grant = self._grants.redeem_refresh(app.client_id, form.get("refresh_token"))
        user = self.directory.user_by_oid(grant.oid)
        if user is None:
            raise TokenError(400, "invalid_grant", 70000, "The user of this refresh token no longer exists.")
        return self._user_token_response(request, app, user, form.get("resource") or grant.resource, nonce=None)

    def _client_credentials(self, app: AppRegistration, form, *, v2: bool) -> dict:
        if v2:
            scope = str(form.get("scope") or "")
            if not scope:
                raise missing_parameter("scope")
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
                raise missing_parameter("resource")
        now = int(self._clock())
        token = self._tokens.app_access_token(app.client_id, resource)
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

    def _user_token_response(self, request: web.Request, app: AppRegistration, user: TestUser, resource: str, *, nonce) -> dict:
        now = int(self._clock())
        lifetime = self._token_lifetime
        ipaddr = request.remote
        refresh = self._grants.issue_refresh(app.client_id, user.oid, resource, now)
        return {
            "token_type": "Bearer",
            "scope": "User.Read" if resource == GRAPH_RESOURCE else "user_impersonation",
            "expires_in": str(lifetime),
            "ext_expires_in": str(lifetime),
            "expires_on": str(now + lifetime),
            "not_before": str(now),
            "resource": resource,
            "access_token": self._tokens.user_access_token(app.client_id, user, resource, ipaddr),
            "refresh_token": refresh,
            "id_token": self._tokens.id_token(app.client_id, user, ipaddr, nonce),
        }

    # ---- keys and discovery --------------------------------------------

    async def _keys(self, request: web.Request) -> web.Response:
        tenant = request.match_info.get("tenant")
        if tenant is not None and not self.directory.is_tenant(tenant):
            return self._error_json(TokenError(400, "invalid_tenant", 90002, f"Tenant '{tenant}' not found."), request)
        return web.json_response(self.jwks)

    def _discovery_common(self, request: web.Request) -> dict | web.Response:
        tenant = request.match_info["tenant"]
        if not self.directory.is_tenant(tenant):
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
        existed = self.directory.has_app(data.get("client_id"))
        try:
            app = self.directory.register_app(data.get("client_id"), data.get("client_secret"), data.get("redirect_uris") or [])
        except ValueError as e:
            return web.json_response({"error": str(e)}, status=400)
        return web.json_response(
            {"client_id": app.client_id, "redirect_uris": app.redirect_uris}, status=200 if existed else 201
        )
