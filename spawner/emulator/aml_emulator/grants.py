"""What the emulated Azure AD remembers between requests: codes and refresh tokens.

An authorization code is single-use and bound to the client, redirect URI,
PKCE challenge and resource of its authorize request; a refresh token to its
client, user and resource. Redeeming either checks what Azure checks, in
Azure's order, and raises :class:`TokenError` with Azure's AADSTS number.

State lives in memory: run the emulator as a single process. A restart
forgets every code and refresh token.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Callable

from .errors import TokenError, missing_parameter
from .signing import GRAPH_RESOURCE, b64url

REFRESH_LIFETIME = 90 * 24 * 3600  # Azure's default refresh-token lifetime


@dataclass
class CodeGrant:
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
class RefreshGrant:
    client_id: str
    oid: str
    resource: str
    expires_at: float


class Grants:
    """The codes and refresh tokens a tenant has issued and not yet forgotten."""

    def __init__(self, *, clock: Callable[[], float], code_lifetime: float):
        self._clock = clock
        self._code_lifetime = code_lifetime
        self._codes: dict[str, CodeGrant] = {}
        self._refresh: dict[str, RefreshGrant] = {}

    def issue_code(
        self,
        *,
        client_id: str,
        redirect_uri: str,
        oid: str,
        session_state: str,
        challenge: str | None,
        challenge_method: str,
        resource: str | None,
        nonce: str | None,
    ) -> str:
        now = self._clock()
        for c in [c for c, g in self._codes.items() if now > g.expires_at + self._code_lifetime]:
            del self._codes[c]  # keep redeemed codes a while so a replay says "already redeemed"
        code = secrets.token_urlsafe(48)
        self._codes[code] = CodeGrant(
            client_id=client_id,
            redirect_uri=redirect_uri,
            oid=oid,
            session_state=session_state,
            expires_at=now + self._code_lifetime,
            challenge=challenge,
            challenge_method=challenge_method,
            resource=resource,
            nonce=nonce,
        )
        return code

    def redeem_code(self, client_id: str, code, redirect_uri, code_verifier, resource) -> tuple[CodeGrant, str]:
        """The grant of ``code`` and the resource the tokens are for; raises TokenError.

        The other arguments are the token request's form values, None where
        absent: which one is missing is itself checked in Azure's order.
        """
        if not code:
            raise missing_parameter("code")
        grant = self._codes.get(code)
        if grant is None:
            # [unverified] Azure's number for a code it cannot parse
            raise TokenError(400, "invalid_grant", 9002313, "Invalid request. Request is malformed or invalid: the code is not known.")
        if grant.client_id != client_id:
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
        if redirect_uri is None:
            raise missing_parameter("redirect_uri")
        if redirect_uri != grant.redirect_uri:
            # [unverified] number; the reference's experiment used 500112
            raise TokenError(
                400,
                "invalid_grant",
                500112,
                "The reply address does not match the reply address provided when requesting the authorization code.",
            )
        if grant.challenge:
            verifier = str(code_verifier or "")
            if grant.challenge_method == "S256":
                computed = b64url(hashlib.sha256(verifier.encode("ascii", "replace")).digest())
            else:
                computed = verifier
            if not verifier or not hmac.compare_digest(computed.encode(), grant.challenge.encode()):
                raise TokenError(
                    400, "invalid_grant", 501481, "The Code_Verifier does not match the code_challenge supplied in the authorization request."
                )
        resource = resource or None
        if resource and grant.resource and resource != grant.resource:
            # [unverified] number; Azure requires the two to agree when both are sent
            raise TokenError(400, "invalid_grant", 70000, "The resource does not match the one of the authorization request.")
        return grant, resource or grant.resource or GRAPH_RESOURCE

    def issue_refresh(self, client_id: str, oid: str, resource: str, now: int) -> str:
        """A new refresh token, issued at ``now`` (the token response's own time)."""
        refresh = secrets.token_urlsafe(64)
        self._refresh = {t: g for t, g in self._refresh.items() if g.expires_at >= now}
        self._refresh[refresh] = RefreshGrant(client_id, oid, resource, now + REFRESH_LIFETIME)
        return refresh

    def redeem_refresh(self, client_id: str, token) -> RefreshGrant:
        if not token:
            raise missing_parameter("refresh_token")
        grant = self._refresh.get(token)
        if grant is None or grant.client_id != client_id:
            raise TokenError(400, "invalid_grant", 9002313, "Invalid request. Request is malformed or invalid: the refresh token is not known.")
        if self._clock() > grant.expires_at:
            del self._refresh[token]
            raise TokenError(
                400, "invalid_grant", 70008, "The provided authorization code or refresh token has expired due to inactivity."
            )
        return grant
