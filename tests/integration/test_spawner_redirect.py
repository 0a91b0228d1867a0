"""Redirect mode through a real hub logged into with the real
AzureAdOAuthenticator against the emulated Azure AD: the instance is created
on behalf of the user's Azure AD object id, without an SSH key, and the user
is sent to its own JupyterLab, which nobody else may open."""

from __future__ import annotations

import pytest

from aml_jupyterhub.emulator.aad import IdentityConfig
from aml_jupyterhub.naming import instance_name
from tests.aadlogin import browser, open_with_login
from tests.hubharness import Hub

IDENTITY = IdentityConfig.load(None)
USERS = {u.username: u for u in IDENTITY.users}
CLIENT_ID = "hub-redirect-test"
CLIENT_SECRET = "redirect-test-secret"


@pytest.fixture
def redirect_hub(emulator, emu, tmp_path):
    hub = Hub(tmp_path / "hub", emulator)
    hub.extra_config = f"""
        c.JupyterHub.authenticator_class = "azuread"
        c.AzureAdOAuthenticator.graph_url = "{emulator.base_url}"
        c.AzureAdOAuthenticator.tenant_id = "{IDENTITY.tenant_id}"
        c.AzureAdOAuthenticator.client_id = "{CLIENT_ID}"
        c.AzureAdOAuthenticator.client_secret = "{CLIENT_SECRET}"
        c.AzureAdOAuthenticator.oauth_callback_url = "{hub.url}/hub/oauth_callback"
        c.AzureAdOAuthenticator.http_request_kwargs = {{"ca_certs": "{emulator.ca_file}"}}
        c.AzureAdOAuthenticator.username_claim = "upn"
        c.AzureAdOAuthenticator.allow_all = True
        c.Authenticator.enable_auth_state = True
        c.AMLSpawner.connect_mode = "redirect"
    """
    r = emulator.control("POST", "/_emulator/aad/apps", json={
        "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "redirect_uris": [f"{hub.url}/hub/oauth_callback"]})
    assert r.status_code in (200, 201), r.text
    hub.start()
    yield hub
    hub.stop()


def login(hub: Hub, emulator, who: str):
    session = browser(emulator.ca_file)
    r = open_with_login(session, f"{hub.url}/hub/oauth_login?next=/hub/home", who, f"{who}-password")
    assert r.status_code == 200 and r.url.startswith(hub.url), (r.status_code, r.url, r.text[:300])
    return session


def test_redirect_mode_assigns_and_redirects(redirect_hub, emulator, emu):
    hub = redirect_hub
    alice_web = login(hub, emulator, "alice")
    bob_web = login(hub, emulator, "bob")
    user = USERS["alice"].upn.lower()

    r = hub.api("POST", f"/users/{user}/server", json={"user_options": {"profile": "small"}})
    assert r.status_code in (201, 202), r.text
    events = hub.progress(user)
    assert events[-1].get("ready"), (events, hub.log_tail())

    inst = {i["name"]: i for i in emu.control("GET", "/_emulator/instances").json()}[instance_name(user)]
    assert inst["assigned_user"] == {"objectId": USERS["alice"].oid, "tenantId": IDENTITY.tenant_id}
    assert inst["admin_public_key"] is None and inst["ssh_public_access"] is False
    assert inst["idle_minutes"] == 60  # AML's own idle shutdown is the backstop in this mode

    # the user is sent to the instance's own JupyterLab, which lets her in...
    server_url = hub.user_model(user)["servers"][""]["url"]
    r = alice_web.get(f"{hub.url}{server_url}", timeout=60)
    assert r.status_code == 200, r.text[:300]
    assert r.url.rstrip("/").endswith(f"/instances/{instance_name(user)}/lab")
    assert "JupyterLab" in r.text
    # ...and nobody else
    lab = r.url
    r = bob_web.get(lab, timeout=60)
    assert r.status_code == 403

    # a hub restart: poll finds the instance again and the redirect still works
    hub.kill()
    hub.start()
    assert hub.server_model(user)["ready"]
    r = alice_web.get(f"{hub.url}{server_url}", timeout=60)
    assert r.status_code == 200 and r.url == lab, (r.status_code, r.url, hub.log_tail())

    hub.stop_server(user)
    inst = {i["name"]: i for i in emu.control("GET", "/_emulator/instances").json()}[instance_name(user)]
    assert inst["state"] == "Stopped"


def test_redirect_mode_without_login_state_explains(redirect_hub, emu):
    hub = redirect_hub
    hub.create_user("nobody@aml-local.example")  # made by an admin, never logged in: no auth_state
    r = hub.api("POST", "/users/nobody@aml-local.example/server", json={"user_options": {}})
    assert r.status_code in (201, 202)
    events = hub.progress("nobody@aml-local.example")
    assert events[-1].get("failed")
    assert "Log out and log in again" in events[-1]["message"]
    assert emu.control("GET", "/_emulator/instances").json() == []
