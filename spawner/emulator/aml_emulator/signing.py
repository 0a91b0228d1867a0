"""What the emulated Azure AD signs, and the keys it signs with.

- Key files in the key directory: ``aad-signing.pem`` (RS256 private key and
  its self-signed certificate, 0600), ``aad-signing-cert.pem`` (the
  certificate alone, for anyone who wants to verify tokens) and
  ``aad-session.key`` (the SSO cookie's HMAC key, 0600). They are made on
  first start and kept, so a restart keeps the same ``kid`` and keeps
  browsers signed in.
- The JWKS, in Azure's shape (``kid`` = ``x5t`` = the certificate's SHA-1
  thumbprint, ``x5c``).
- :class:`TokenSigner`: the claims of the access and id tokens Azure AD v1
  issues, signed; and their verification, for the ARM endpoints.
- :class:`SessionCookie`: the value of the SSO session cookie, MAC'd.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import pathlib
import secrets
import tempfile
import uuid
from typing import Callable, Iterable

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from .identity import TestUser
from .tls import key_pem, make_certificate

SIGNING_FILE = "aad-signing.pem"
CERT_FILE = "aad-signing-cert.pem"
SESSION_KEY_FILE = "aad-session.key"

GRAPH_RESOURCE = "00000002-0000-0000-c000-000000000000"  # v1's default resource (AAD Graph)


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# ---- key files ----------------------------------------------------------------


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


def load_secret(path: pathlib.Path) -> bytes:
    """A 32-byte secret kept hex-encoded in ``path``, made on first use."""
    if not path.exists():
        _create_exclusive(path, secrets.token_bytes(32).hex().encode(), 0o600)
    return bytes.fromhex(path.read_text().strip())


class SigningKey:
    """An RS256 key with a self-signed certificate, as Azure AD publishes its keys."""

    def __init__(self, key_dir: pathlib.Path):
        path = key_dir / SIGNING_FILE
        if not path.exists():
            _create_exclusive(path, self._generate(), 0o600)
        pem = path.read_bytes()
        self.private_key = serialization.load_pem_private_key(pem, password=None)
        self.cert = x509.load_pem_x509_certificate(pem)
        cert_der = self.cert.public_bytes(serialization.Encoding.DER)
        # kid = x5t = base64url SHA-1 thumbprint of the certificate, as Azure does
        self.kid = b64url(hashlib.sha1(cert_der).digest())
        self.public_key = self.private_key.public_key()
        numbers = self.public_key.public_numbers()
        self.jwk = {
            "kty": "RSA",
            "use": "sig",
            "kid": self.kid,
            "x5t": self.kid,
            "n": b64url(numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")),
            "e": b64url(numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big")),
            "x5c": [base64.b64encode(cert_der).decode("ascii")],
        }
        cert_path = key_dir / CERT_FILE
        cert_pem = self.cert.public_bytes(serialization.Encoding.PEM)
        if not cert_path.exists() or cert_path.read_bytes() != cert_pem:
            _write_replace(cert_path, cert_pem, 0o644)

    @staticmethod
    def _generate() -> bytes:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        cert = make_certificate("aml-emulator Azure AD token signing", key, days=5 * 365)
        return key_pem(key) + cert.public_bytes(serialization.Encoding.PEM)


# ---- tokens ------------------------------------------------------------------------


class TokenSigner:
    """The access and id tokens of one tenant, as Azure AD v1 issues them.

    ``clock`` (epoch seconds) and ``token_lifetime`` (seconds) come from the
    emulated Azure AD, so tests can move time. ``id_token_alg`` "none" gives
    the unsigned v1 id_token Microsoft's v1 docs describe; access tokens are
    always RS256.
    """

    def __init__(self, tenant_id: str, key: SigningKey, *, clock: Callable[[], float], token_lifetime: int, id_token_alg: str):
        self.tenant_id = tenant_id
        self.issuer = f"https://sts.windows.net/{tenant_id}/"
        self._key = key
        self._clock = clock
        self._token_lifetime = token_lifetime
        self._id_token_alg = id_token_alg

    def _times(self) -> dict:
        now = int(self._clock())
        return {"iat": now, "nbf": now, "exp": now + self._token_lifetime}

    def _pairwise_sub(self, oid: str, client_id: str) -> str:
        # stable per user and app, like Azure's pairwise 'sub'
        return b64url(hashlib.sha256(f"{self.tenant_id}:{oid}:{client_id}".encode()).digest())[:43]

    def _jwt(self, claims: dict, alg: str = "RS256") -> str:
        if alg == "none":
            header = {"typ": "JWT", "alg": "none"}
            return (
                b64url(json.dumps(header, separators=(",", ":")).encode())
                + "."
                + b64url(json.dumps(claims, separators=(",", ":")).encode())
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

    def user_access_token(self, client_id: str, user: TestUser, resource: str, ipaddr: str | None) -> str:
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
            "uti": b64url(secrets.token_bytes(16)),
            "idtyp": "user",
        }
        if ipaddr:
            claims["ipaddr"] = ipaddr
        return self._jwt(claims)

    def app_access_token(self, client_id: str, resource: str) -> str:
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
            "uti": b64url(secrets.token_bytes(16)),
            "ver": "1.0",
            "idtyp": "app",
        }
        return self._jwt(claims)

    def id_token(self, client_id: str, user: TestUser, ipaddr: str | None, nonce: str | None) -> str:
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

    def verify(self, token: str, audience: str | Iterable[str]) -> dict:
        """Check a token this signer issued and return its claims.

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
        # lifetime against our clock, not pyjwt's (tests move the emulator's time)
        now = self._clock()
        leeway = 60  # the usual clock-skew allowance of resource servers
        if now > claims["exp"] + leeway:
            raise jwt.ExpiredSignatureError("Signature has expired")
        if now < claims["nbf"] - leeway:
            raise jwt.ImmatureSignatureError("The token is not yet valid (nbf)")
        return claims


# ---- the SSO session cookie ------------------------------------------------------


class SessionCookie:
    """The SSO session cookie's value: ``base64url(json).base64url(hmac)``.

    It names the signed-in user's object id, a session id (Azure's
    ``session_state``) and when the user signed in; it is good for
    ``lifetime`` seconds after that.
    """

    def __init__(self, key: bytes, *, clock: Callable[[], float], lifetime: float):
        self._key = key
        self._clock = clock
        self._lifetime = lifetime

    def _mac(self, payload: str) -> str:
        return b64url(hmac.new(self._key, payload.encode("ascii"), hashlib.sha256).digest())

    def make(self, oid: str) -> tuple[str, str]:
        """A fresh session for ``oid``: (cookie value, session id)."""
        sid = str(uuid.uuid4())
        body = json.dumps({"oid": oid, "sid": sid, "iat": int(self._clock())}, separators=(",", ":"))
        payload = b64url(body.encode("utf-8"))
        return f"{payload}.{self._mac(payload)}", sid

    def read(self, value: str | None) -> tuple[object, str] | None:
        """(oid, session id) of a genuine, unexpired cookie value; None otherwise."""
        if not value or value.count(".") != 1:
            return None
        payload, mac = value.split(".")
        if not hmac.compare_digest(mac, self._mac(payload)):
            return None
        try:
            data = json.loads(b64url_decode(payload))
        except (ValueError, binascii.Error):
            return None
        if not isinstance(data, dict) or self._clock() > data.get("iat", 0) + self._lifetime:
            return None
        return data.get("oid"), str(data.get("sid"))
