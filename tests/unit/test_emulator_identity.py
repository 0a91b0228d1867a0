"""The emulated Azure AD without a server: its identity file, its signing
keys, the tokens it issues and verifies (the HTTP side is in
tests/contract/test_emulator_aad.py)."""

from __future__ import annotations

import base64
import json
import stat

import jwt
import pytest

from aml_emulator.aad import AzureAD, IdentityConfig
from tests.harness.identity import APP, GROUPS as GROUP, IDENTITY as CONFIG, TENANT_ID as TID, USERS, Clock

ARM = "https://management.azure.com/"


def test_default_identity_file_has_the_documented_people():
    assert {"alice", "bob", "carol", "dave", "erin"} <= set(USERS)
    assert USERS["dave"].groups == ()
    assert USERS["carol"].groups == (GROUP["Hub Admins"],)
    assert "#EXT#" in USERS["erin"].upn
    assert set(APP.redirect_uris) >= {
        "https://localhost/hub/oauth_callback",
        "http://127.0.0.1:8000/hub/oauth_callback",
        "http://localhost:8000/hub/oauth_callback",
    }


def test_identity_file_rejects_unknown_group(tmp_path):
    data = {"tenant_id": TID, "groups": [], "apps": [], "users": [
        {"username": "x", "password": "p", "oid": USERS["alice"].oid, "upn": "x@e", "name": "X",
         "groups": [GROUP["Hub Admins"]]}]}
    path = tmp_path / "identity.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="unknown group"):
        IdentityConfig.load(path)


def test_keys_persist_across_restarts_with_private_key_0600(tmp_path):
    first = AzureAD(CONFIG, tmp_path / "k")
    second = AzureAD(CONFIG, tmp_path / "k")
    assert first.kid == second.kid
    key_files = [p for p in (tmp_path / "k").iterdir() if p.name != "aad-signing-cert.pem"]
    assert key_files
    for p in key_files:
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, p
    # a token issued before the "restart" still verifies after it
    tok = first.issue_access_token(ARM, user=USERS["bob"])
    assert second.verify_token(tok, ARM)["oid"] == USERS["bob"].oid


def test_verify_token_rejects_expired_foreign_and_tampered(tmp_path):
    clock = Clock()
    aad = AzureAD(CONFIG, tmp_path / "keys", clock=clock)
    tok = aad.issue_access_token(ARM, user=USERS["alice"])
    assert aad.verify_token(tok, ARM)["upn"] == USERS["alice"].upn
    clock.now += 3600 + 61
    with pytest.raises(jwt.ExpiredSignatureError):
        aad.verify_token(tok, ARM)
    clock.now -= 3600 + 61
    other = AzureAD(CONFIG, tmp_path / "other-keys", clock=clock)
    with pytest.raises(jwt.InvalidTokenError):
        aad.verify_token(other.issue_access_token(ARM), ARM)
    head, payload, sig = tok.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["oid"] = USERS["carol"].oid
    forged = head + "." + base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode() + "." + sig
    with pytest.raises(jwt.InvalidSignatureError):
        aad.verify_token(forged, ARM)
