"""Redirect mode through a real hub logged into with the product's own
authenticator (VerifiedAzureAdOAuthenticator, configured from the settings as
the product configures it) against the emulated Azure AD: the instance is
created on behalf of the user's Azure AD object id, without an SSH key, and
the user is sent to its own JupyterLab, which nobody else may open."""

from __future__ import annotations

import time

import pytest

from tests.harness.hub import Hub
from tests.harness.identity import TENANT_ID, USERS
from tests.harness.login import browser


@pytest.fixture
def redirect_hub(emulator, emu, tmp_path):
    hub = Hub(tmp_path / "hub", emulator, login={}, extra_config="""
        c.AMLSpawner.connect_mode = "redirect"
        c.JupyterHub.log_level = "DEBUG"  # what an admin chasing a problem turns on: still no secrets in it
    """)
    hub.start()
    yield hub
    hub.stop()


def test_redirect_mode_assigns_and_redirects(redirect_hub, emulator, emu):
    hub = redirect_hub
    alice_web = hub.browser_login("alice")
    bob_web = hub.browser_login("bob")
    user = USERS["alice"].upn.lower()

    r = hub.api("POST", f"/users/{user}/server", json={"user_options": {"profile": "small"}})
    assert r.status_code in (201, 202), r.text
    events = hub.progress(user)
    assert events[-1].get("ready"), (events, hub.log_tail())

    inst = {i["name"]: i for i in emu.control("GET", "/_emulator/instances").json()}[hub.instance_name(user)]
    assert inst["assigned_user"] == {"objectId": USERS["alice"].oid, "tenantId": TENANT_ID}
    assert inst["admin_public_key"] is None and inst["ssh_public_access"] is False
    assert inst["idle_minutes"] == 60  # AML's own idle shutdown is the backstop in this mode

    # the user is sent to the instance's own JupyterLab, which lets her in...
    server_url = hub.user_model(user)["servers"][""]["url"]
    r = alice_web.get(f"{hub.url}{server_url}", timeout=60)
    assert r.status_code == 200, r.text[:300]
    assert r.url.rstrip("/").endswith(f"/instances/{hub.instance_name(user)}/lab")
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
    inst = {i["name"]: i for i in emu.control("GET", "/_emulator/instances").json()}[hub.instance_name(user)]
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


def test_named_servers_land_on_their_own_instances_and_strangers_learn_nothing(redirect_hub, emulator, emu):
    hub = redirect_hub
    alice_web = hub.browser_login("alice")
    bob_web = hub.browser_login("bob")
    user = USERS["alice"].upn.lower()
    for server in ("", "gpu2"):
        r = hub.api("POST", hub.server_path(user, server), json={"user_options": {"profile": "small"}})
        assert r.status_code in (201, 202), r.text
        assert hub.progress(user, server)[-1].get("ready"), hub.log_tail()
    default, gpu2 = hub.instance_name(user), hub.instance_name(user, "gpu2")

    # each server's own JupyterLab, the named one included (0.1 sent /user/alice/gpu2/ to the default's)
    r = alice_web.get(f"{hub.url}/user/{user}/gpu2/", timeout=60)
    assert r.status_code == 200 and r.url.rstrip("/").endswith(f"/instances/{gpu2}/lab"), (r.url, hub.log_tail())
    r = alice_web.get(f"{hub.url}/user/{user}/lab/tree/notes.ipynb", timeout=60)
    assert r.status_code == 200 and r.url.rstrip("/").endswith(f"/instances/{default}/lab"), r.url

    # nobody but alice learns an instance's name: not anonymously, not bob
    for session in (browser(emulator.ca_file), bob_web):
        for path in (f"/user/{user}/", f"/user/{user}/gpu2/lab"):
            seen = []
            r = session.get(f"{hub.url}{path}", timeout=60)
            seen += [h.headers.get("Location", "") + h.text for h in r.history] + [r.url, r.text]
            assert not any(default in s or gpu2 in s for s in seen), (path, r.url)
            assert r.status_code in (200, 403) and "/instances/" not in r.url
    r = bob_web.get(f"{hub.url}/user/{user}/", timeout=60)
    assert r.status_code == 403 and "Only the owner" in r.text


def test_redirect_mode_polls_read_the_shared_list_not_each_instance(redirect_hub, emulator, emu):
    """0.1 read every instance at every poll (one ARM read per server per 30 s:
    100 users used ARM's whole read budget). Now polls share the reconciler's
    list, refreshed once per reconcile_interval."""
    hub = redirect_hub
    hub.browser_login("alice")
    user = USERS["alice"].upn.lower()
    emu.control("DELETE", "/_emulator/requests")
    r = hub.api("POST", f"/users/{user}/server", json={"user_options": {"profile": "small"}})
    assert r.status_code in (201, 202), r.text
    assert hub.progress(user)[-1].get("ready")
    ready_at = time.time()
    name = hub.instance_name(user)
    time.sleep(9)  # the test hub polls every 2 s: four polls or more
    assert hub.server_model(user)["ready"]
    seen = [r for r in emu.requests_seen() if r["method"] == "GET"]
    reads = [r for r in seen if r["path"].endswith(f"/computes/{name}") and r["time"] > ready_at]
    lists = [r for r in seen if r["path"].endswith("/computes")]
    # the spawn itself lists nothing: the one list is the first poll's, shared by the polls after it
    assert reads == [] and len(lists) == 1, [(r["path"], r["time"] - ready_at) for r in seen]


def test_the_hub_log_keeps_no_oauth_code_state_token_or_claims(redirect_hub, emulator, emu):
    hub = redirect_hub
    alice = USERS["alice"]
    web_session = hub.browser_login("alice")
    # an error page for a callback (CHP asks the hub for it with the whole URL in ?url=)
    callback = "/user/x/oauth_callback?code=SECRETCODE123&state=SECRETSTATE456"
    web_session.get(f"{hub.url}/hub/error/503", params={"url": callback}, timeout=30)
    log = hub.log_tail(10**7)
    for secret in ("SECRETCODE123", "SECRETSTATE456", alice.oid, "eyJ"):
        assert secret not in log, (secret, [x for x in log.splitlines() if secret in x][:3])
