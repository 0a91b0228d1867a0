"""Azure AD login whose id_token is actually checked.

oauthenticator's AzureAdOAuthenticator decodes the id_token without checking
its signature, audience, issuer or expiry (shared/reference/azure-ad-contract.md
§1, step 4). This subclass checks all four against the tenant's published
signing keys, and refuses a token from another tenant. Expiry is checked at
login; a refresh re-reads the stored token (Azure AD v1 gives the hub no way
to renew it), so there only signature, audience, issuer and tenant apply.

It also turns Azure AD guest names (``erin_contoso.com#EXT#@tenant``) into the
readable address they stand for (``erin@contoso.com``).
"""

from __future__ import annotations

import contextvars
import json
import time

import jwt
from oauthenticator.azuread import AzureAdOAuthenticator
from tornado import web
from traitlets import Dict, Float, Unicode, default

from .refused import RefusedCallbackHandler

_fresh_login: contextvars.ContextVar[bool] = contextvars.ContextVar("aml_fresh_login", default=False)


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

    async def verify_id_token(self, id_token: str, *, check_expiry: bool = True) -> dict:
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
                options={"verify_exp": check_expiry, "verify_nbf": check_expiry, "require": ["exp", "aud", "iss"]},
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
        token = _fresh_login.set(True)
        try:
            model = await super().authenticate(handler, data, **kwargs)
        finally:
            _fresh_login.reset(token)
        if handler is not None:
            handler._aml_auth_model = model  # who it was, for the refusal page if check_allowed says no
        return model

    async def token_to_user(self, token_info):
        id_token = token_info.get("id_token")
        if not id_token:
            raise web.HTTPError(500, "Azure AD returned no id_token; is the app registration a web app?")
        return await self.verify_id_token(id_token, check_expiry=_fresh_login.get())

    def user_info_to_username(self, user_info):
        return readable_guest_name(super().user_info_to_username(user_info))
