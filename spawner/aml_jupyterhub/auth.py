"""Azure AD login whose id_token is actually checked.

oauthenticator's AzureAdOAuthenticator decodes the id_token without checking
its signature, audience, issuer or expiry (shared/reference/azure-ad-contract.md
§1, step 4). This subclass checks all four against the tenant's published
signing keys, and refuses a token from another tenant.

Of the login it keeps (``auth_state``) only the claims the hub uses, no token:
JupyterHub's REST API shows a user's auth_state to every admin, and an access
token would let an admin act as that user towards Microsoft Graph. The users
API it serves instead (:class:`UserAPIHandler`) shows no one even those claims
unless HUB_ADMIN_READS_AUTH_STATE asks for it.

It also turns Azure AD guest names (``erin_contoso.com#EXT#@tenant``) into the
readable address they stand for (``erin@contoso.com``).
"""

from __future__ import annotations

import json
import time

import jwt
from jupyterhub.apihandlers import users as users_api
from oauthenticator.azuread import AzureAdOAuthenticator
from tornado import web
from traitlets import Bool, Dict, Float, Unicode, default

from .refused import RefusedCallbackHandler

# The id_token claims the hub reads: whom redirect mode assigns an instance to (oid, tid), the names the
# refusal page shows (upn, name) and the groups that allow users in and make admins.
KEPT_CLAIMS = ("oid", "tid", "upn", "name", "groups")


def readable_guest_name(name: str) -> str:
    """``erin_contoso.com#EXT#@tenant.onmicrosoft.com`` -> ``erin@contoso.com``.

    A guest's UPN is their own address with ``@`` replaced by ``_``, then
    ``#EXT#@`` and the home tenant. Domains cannot contain ``_``, so the last
    ``_`` is the original ``@``.
    """
    lowered = name.lower()
    if "#ext#" not in lowered:
        return name
    local = name[: lowered.index("#ext#")]
    if "_" not in local:
        return local
    head, _, domain = local.rpartition("_")
    return f"{head}@{domain}"


class VerifiedAzureAdOAuthenticator(AzureAdOAuthenticator):
    """AzureAdOAuthenticator that verifies the id_token it is given."""

    jwks_url = Unicode(
        config=True,
        help="Where the tenant's signing keys are published. Default: {graph_url}/{tenant_id}/discovery/keys.",
    )
    issuer = Unicode(
        config=True,
        help="The id_token issuer to accept. Default: https://sts.windows.net/{tenant_id}/ (Azure AD v1 tokens).",
    )
    clock_skew_seconds = Float(120, config=True, help="Leeway for exp/nbf/iat, seconds.")
    group_display_names = Dict(
        config=True,
        help="Azure AD group object id -> display name, for the page a refused user sees. Default: none (ids shown).",
    )
    admin_contact = Unicode(
        "", config=True, help="Who a refused user should ask for access (a name or an address). Default: the hub's administrator."
    )
    callback_handler = RefusedCallbackHandler
    keys_cache_seconds = Float(3600, config=True, help="How long fetched signing keys are reused, seconds.")
    api_shows_auth_state = Bool(
        False, config=True,
        help="The REST API shows a user's auth_state to whoever JupyterHub lets read it, every admin included. "
             "Default: it shows it to nobody (the hub reads it itself).",
    )

    def get_handlers(self, app):
        handlers = super().get_handlers(app)
        if not self.api_shows_auth_state:
            # the authenticator's handlers come before JupyterHub's own: this one answers the route instead
            handlers.append((r"/api/users/([^/]+)", UserAPIHandler))
        return handlers

    @default("jwks_url")
    def _jwks_url_default(self):
        return f"{self.graph_url}/{self.tenant_id}/discovery/keys"

    @default("issuer")
    def _issuer_default(self):
        return f"https://sts.windows.net/{self.tenant_id}/"

    @default("username_claim")
    def _username_claim_default(self):
        # The display name ("name") is not unique; the UPN is.
        return "upn"

    _keys: dict | None = None
    _keys_fetched: float = 0.0

    async def _signing_keys(self, refresh: bool = False) -> dict:
        stale = time.monotonic() - self._keys_fetched > self.keys_cache_seconds
        if self._keys is None or refresh or stale:
            body = await self.httpfetch(self.jwks_url, label="fetching Azure AD signing keys",
                                        method="GET", headers={"Accept": "application/json"})
            keys = {}
            for jwk in body.get("keys", []):
                if jwk.get("kty") == "RSA" and jwk.get("kid"):
                    keys[jwk["kid"]] = jwt.algorithms.RSAAlgorithm.from_jwk(json.dumps(jwk))
            self._keys, self._keys_fetched = keys, time.monotonic()
        return self._keys

    def _refuse(self, why: str) -> web.HTTPError:
        self.log.warning("Refusing Azure AD login: %s", why)
        return web.HTTPError(403, f"Login refused: the identity token {why}. Try logging in again.")

    async def verify_id_token(self, id_token: str) -> dict:
        try:
            header = jwt.get_unverified_header(id_token)
        except jwt.PyJWTError:
            raise self._refuse("is malformed") from None
        if header.get("alg") != "RS256":
            raise self._refuse(f"is not signed with RS256 (alg {header.get('alg')!r})")
        kid = header.get("kid")
        keys = await self._signing_keys()
        if kid not in keys:
            keys = await self._signing_keys(refresh=True)  # Azure rolls its keys
        if kid not in keys:
            raise self._refuse("is signed with a key the tenant does not publish")
        try:
            claims = jwt.decode(
                id_token,
                keys[kid],
                algorithms=["RS256"],
                audience=self.client_id,
                issuer=self.issuer,
                leeway=self.clock_skew_seconds,
                options={"require": ["exp", "aud", "iss"]},
            )
        except jwt.ExpiredSignatureError:
            raise self._refuse("has expired") from None
        except jwt.InvalidAudienceError:
            raise self._refuse("was issued for another application") from None
        except jwt.InvalidIssuerError:
            raise self._refuse("was issued by another tenant or authority") from None
        except jwt.InvalidSignatureError:
            raise self._refuse("has an invalid signature") from None
        except jwt.PyJWTError as e:
            raise self._refuse(f"is not valid ({e})") from None
        if self.tenant_id and claims.get("tid") != self.tenant_id:
            raise self._refuse("belongs to another tenant")
        return claims

    async def authenticate(self, handler, data=None, **kwargs):
        model = await super().authenticate(handler, data, **kwargs)
        if handler is not None:
            handler._aml_auth_model = model  # who it was, for the refusal page if check_allowed says no
        return model

    async def token_to_user(self, token_info):
        id_token = token_info.get("id_token")
        if not id_token:
            raise web.HTTPError(500, "Azure AD returned no id_token; is the app registration a web app?")
        return await self.verify_id_token(id_token)

    def slim_auth_state(self, auth_state: dict) -> dict:
        """``auth_state`` with the claims the hub reads and the granted scope names
        (``allowed_scopes``), without the tokens or the rest of the token response."""
        claims = auth_state.get(self.user_auth_state_key) or {}
        names = set(KEPT_CLAIMS)
        for path in (self.username_claim, self.auth_state_groups_key):  # either may be a callable instead
            if isinstance(path, str):
                names.add(path.removeprefix(f"{self.user_auth_state_key}."))
        slim = {self.user_auth_state_key: {name: claims[name] for name in sorted(names) if name in claims}}
        if "scope" in auth_state:
            slim["scope"] = auth_state["scope"]
        return slim

    def build_auth_state_dict(self, token_info, user_info):
        return self.slim_auth_state(super().build_auth_state_dict(token_info, user_info))

    async def refresh_user(self, user, handler=None, **kwargs):
        """The login's model again, from the claims stored at login.

        oauthenticator's refresh only decoded the stored id_token again (Azure
        AD v1 gives the hub nothing to renew), so the stored claims tell as
        much; the group rules run again, so groups and admin rights follow the
        current settings, and a login an earlier version stored is saved slim."""
        if not self.enable_auth_state:
            return True
        auth_state = await user.get_auth_state() or {}
        if not auth_state.get(self.user_auth_state_key):
            self.log.info("No Azure AD login stored for %s: they must log in again", user.name)
            return False
        model = {"name": user.name, "admin": True if user.name in self.admin_users else None,
                 "auth_state": self.slim_auth_state(auth_state)}
        model = await self.update_auth_model(model)
        if self.manage_groups:
            model = await self._apply_managed_groups(model)  # oauthenticator's own rules, as at login (pinned <18)
        return model

    def user_info_to_username(self, user_info):
        return readable_guest_name(super().user_info_to_username(user_info))


class UserAPIHandler(users_api.UserAPIHandler):
    """JupyterHub's ``/hub/api/users/<name>``, whose answers carry no auth_state.

    JupyterHub shows a user's auth_state in GET to holders of
    ``admin:auth_state`` and in every PATCH answer to holders of
    ``admin:users``; its admin role has both and refuses other scopes
    ("Cannot override admin role"), so the answer is where it is left out."""

    def write(self, chunk):
        try:
            model = json.loads(chunk) if isinstance(chunk, (str, bytes)) else None
        except ValueError:
            model = None
        if isinstance(model, dict) and "auth_state" in model:
            del model["auth_state"]
            chunk = json.dumps(model)
        super().write(chunk)


def configure_admin_access(c, reads_auth_state: bool) -> None:
    """HUB_ADMIN_READS_AUTH_STATE: true gives JupyterHub's own users API back,
    which shows admins every user's auth_state."""
    if reads_auth_state:  # only then: the trait's default is the safe side
        c.VerifiedAzureAdOAuthenticator.api_shows_auth_state = True
