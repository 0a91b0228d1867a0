"""Logging in to a real hub with the product's own authenticator
(``VerifiedAzureAdOAuthenticator``, configured from the settings by the
product's ``hubconfig.configure``, as hub/jupyterhub_config.py does) against
the emulator's Azure AD over HTTPS: a browser's way through the login page,
who gets in and as whom.

The stock oauthenticator class the product builds on has its contract in
tests/contract/test_aad_clients.py."""

from __future__ import annotations

from urllib.parse import quote, urlsplit

import pytest
import requests

from aml_emulator.aad import SESSION_COOKIE
from tests.harness.hub import Hub
from tests.harness.identity import GROUPS
from tests.harness.login import browser, hub_login


@pytest.fixture(scope="module")
def login_hub(emulator, tmp_path_factory):
    """One hub for the module, its login as .env.example sets it (Data Science may log in, Hub Admins are admins)."""
    hub = Hub(tmp_path_factory.mktemp("login-hub"), emulator, login={}).start()
    yield hub
    hub.stop()


def log_in(hub: Hub, who: str) -> tuple[requests.Session, requests.Response]:
    session = browser(hub.emulator.ca_file)
    return session, hub_login(session, hub.url, who)


def me(hub: Hub, session: requests.Session) -> dict:
    r = session.get(f"{hub.url}/hub/api/user", timeout=30)
    r.raise_for_status()
    return r.json()


def test_login_with_upn_and_groups(login_hub):
    """What the hub keeps of the login (its claims, no token) is in test_auth_state_privacy.py."""
    hub = login_hub
    session, done = log_in(hub, "alice")
    assert done.status_code == 302, hub.log_tail()
    assert urlsplit(done.headers["Location"]).path == "/hub/home"
    sso = [c for c in session.cookies if c.name == SESSION_COOKIE]
    assert sso and sso[0].secure  # the emulator's Azure AD session, over HTTPS
    user = me(hub, session)
    assert (user["name"], user["admin"], user["groups"]) == ("alice@aml-local.example", False, [GROUPS["Data Science"]])


def test_the_admin_group_makes_admins(login_hub):
    session, done = log_in(login_hub, "carol")
    assert done.status_code == 302, login_hub.log_tail()
    user = me(login_hub, session)
    assert user["name"] == "carol@aml-local.example" and user["admin"] is True


def test_someone_outside_the_allowed_groups_is_told_who_and_whom(login_hub):
    _, done = log_in(login_hub, "dave")
    assert done.status_code == 403
    page = done.text
    assert "You are signed in as" in page and "Dave" in page and "dave@aml-local.example" in page
    assert "Data Science" in page  # the allowed group by its display name, not its id
    assert GROUPS["Data Science"] not in page
    assert 'id="aml-sign-out"' in page
    assert login_hub.api("GET", "/users/dave@aml-local.example").status_code == 404


def test_a_guest_is_named_by_their_own_address(login_hub):
    session, done = log_in(login_hub, "erin")
    assert done.status_code == 302, login_hub.log_tail()
    assert me(login_hub, session)["name"] == "erin@contoso.example"  # not erin_contoso.example#ext#@...
    assert login_hub.api("GET", "/users/" + quote("erin@contoso.example", safe="")).status_code == 200
