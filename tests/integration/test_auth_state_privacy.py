"""What a hub admin can learn of another user's Azure AD login (issue 24,
item 14): a real hub with the product's login (``hubconfig.configure``'s, as
the harness makes it), the emulator's Azure AD, alice and the admin carol
logged in through its login page.

The hub keeps only the claims it uses (no access, refresh or id token), in
its database too; the REST API shows an admin no auth_state at all unless
HUB_ADMIN_READS_AUTH_STATE is on, and then only those claims."""

from __future__ import annotations

import base64
import json
import sqlite3
import time
from pathlib import Path
from urllib.parse import quote

import pytest
import requests
from cryptography.fernet import Fernet

from tests.harness.hub import Hub
from tests.harness.identity import GROUPS, USERS
from tests.harness.login import browser, hub_login

ALICE, CAROL = "alice@aml-local.example", "carol@aml-local.example"
TOKEN_KEYS = {"access_token", "refresh_token", "id_token", "token_response"}


def start_hub(workdir: Path, emulator, **settings: str) -> Hub:
    """A hub with the product's login from ``settings`` over .env.example's."""
    # a short refresh age: a request 2 s after an earlier one refreshes the user's login (default 5 minutes)
    return Hub(workdir, emulator, "c.Authenticator.auth_refresh_age = 2\n", login=settings).start()


def log_in(hub: Hub, who: str) -> requests.Session:
    session = browser(hub.emulator.ca_file)
    done = hub_login(session, hub.url, who)
    assert done.status_code == 302, hub.log_tail()
    return session


def api_token(hub: Hub, session: requests.Session, user: str) -> str:
    """An API token of the logged-in ``user``, made with their cookie as the hub's token page does."""
    session.get(f"{hub.url}/hub/token", timeout=30)
    r = session.post(f"{hub.url}/hub/api/users/{quote(user, safe='@')}/tokens", json={"note": "auth_state test"},
                     headers={"X-XSRFToken": session.cookies.get("_xsrf", ""), "Referer": f"{hub.url}/hub/token"},
                     timeout=30)
    assert r.status_code in (200, 201), r.text
    return r.json()["token"]


def as_token(hub: Hub, token: str, method: str, path: str, **kw) -> requests.Response:
    return requests.request(method, f"{hub.url}/hub/api{path}", headers={"Authorization": f"token {token}"},
                            timeout=30, **kw)


def stored_auth_state(hub: Hub, user: str) -> dict | None:
    """The user's auth_state as the hub's database holds it, decrypted with the hub's key."""
    with sqlite3.connect(hub.workdir / "jupyterhub.sqlite") as db:
        (blob,) = db.execute("SELECT encrypted_auth_state FROM users WHERE name = ?", (user,)).fetchone()
    if blob is None:
        return None
    key = Fernet(base64.urlsafe_b64encode(bytes.fromhex(hub.crypt_key)))
    return json.loads(key.decrypt(blob))


def assert_slim(state: dict) -> None:
    """alice's claims the hub uses, and no token of any kind."""
    assert not TOKEN_KEYS & set(state), sorted(state)
    assert state["user"]["oid"] == USERS["alice"].oid  # redirect mode assigns instances to it
    assert state["user"]["groups"] == [GROUPS["Data Science"]]
    assert "eyJ" not in json.dumps(state)  # no JWT anywhere, whatever its key


@pytest.fixture(scope="module")
def private_hub(emulator, tmp_path_factory):
    """A hub as .env.example sets it (HUB_ADMIN_READS_AUTH_STATE=false), alice and carol logged in."""
    hub = start_hub(tmp_path_factory.mktemp("private"), emulator)
    try:
        alice = log_in(hub, "alice")
        carol = api_token(hub, log_in(hub, "carol"), CAROL)
        yield hub, alice, carol
    finally:
        hub.stop()


def test_the_hub_stores_no_token_of_alices_login(private_hub):
    hub, _, _ = private_hub
    assert_slim(stored_auth_state(hub, ALICE))


def test_an_admin_reads_no_auth_state_of_another_user(private_hub):
    hub, _, carol = private_hub
    r = as_token(hub, carol, "GET", f"/users/{ALICE}")
    assert r.status_code == 200 and r.json()["name"] == ALICE  # still an admin: reads the user
    assert "auth_state" not in r.json() and "eyJ" not in r.text
    # PATCH answers with the user's model, which JupyterHub fills with the auth_state for any admin
    r = as_token(hub, carol, "PATCH", f"/users/{ALICE}", json={})
    assert r.status_code == 200 and r.json()["name"] == ALICE and "auth_state" not in r.json(), r.text
    # nor does a service whose role names admin:auth_state outright (the harness's)
    assert "auth_state" not in hub.user_model(ALICE)


def test_an_old_login_with_tokens_loses_them_at_the_next_refresh(private_hub):
    hub, alice, _ = private_hub
    slim = stored_auth_state(hub, ALICE)
    # as an earlier version of the hub stored it: oauthenticator's whole token response
    fat = {**slim, "access_token": "eyJhY2Nlc3M", "refresh_token": "refresh-secret", "id_token": "eyJpZA",
           "token_response": {"access_token": "eyJhY2Nlc3M", "refresh_token": "refresh-secret"}}
    assert hub.api("PATCH", f"/users/{ALICE}", json={"auth_state": fat}).status_code == 200
    assert stored_auth_state(hub, ALICE)["refresh_token"] == "refresh-secret"
    time.sleep(2.5)  # past auth_refresh_age: alice's next request refreshes her login
    me = alice.get(f"{hub.url}/hub/api/user", timeout=30)
    assert me.status_code == 200 and me.json()["groups"] == [GROUPS["Data Science"]], hub.log_tail()
    assert_slim(stored_auth_state(hub, ALICE))


def test_an_admin_reads_the_slim_auth_state_when_the_setting_asks(emulator, tmp_path):
    hub = start_hub(tmp_path, emulator, HUB_ADMIN_READS_AUTH_STATE="true")
    try:
        log_in(hub, "alice")
        carol = api_token(hub, log_in(hub, "carol"), CAROL)
        r = as_token(hub, carol, "GET", f"/users/{ALICE}")
        assert r.status_code == 200, r.text
        assert_slim(r.json()["auth_state"])
    finally:
        hub.stop()
