"""The admin's instances page (a JupyterHub service) and the hub API behind
it, through a real hub, the proxy and the emulator: admins see every
instance of this hub with owner, size, state, cost, orphans marked, and stop
one; non-admins get 403; the API's scopes are the page's alone."""

from __future__ import annotations

import re

import pytest
import requests

from aml_emulator.catalog import SIZES
from aml_jupyterhub.ownership import Owner
from tests.harness.emulator import make_instance, state_of
from tests.harness.hub import Hub, spawn_ready

PAGE = "/services/aml-instances/"


@pytest.fixture
def hub(emulator, emu, tmp_path):
    h = Hub(tmp_path / "hub", emulator, instances_page=True, extra_config="""
        c.Authenticator.admin_users = {"root"}
        c.AMLSpawner.reconcile_interval = 2
        c.AMLSpawner.stop_action = "stop"
    """).start()
    yield h
    h.stop()


def page(session: requests.Session, hub: Hub) -> requests.Response:
    return session.get(f"{hub.url}{PAGE}", timeout=60)


def rows(html: str) -> dict[str, str]:
    """instance name -> its row's text."""
    out = {}
    for m in re.finditer(r'<tr class="[^"]*" data-instance="([^"]+)">(.*?)</tr>', html, re.S):
        out[m.group(1)] = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", m.group(2))).strip()
    return out


def test_admins_see_and_stop_instances_non_admins_get_403(hub, emu):
    spawn_ready(hub, "alice", options={"profile": "small"})
    spawn_ready(hub, "bob", options={"profile": "medium"})
    hub.stop_server("bob")
    make_instance(emu, "jhghost-orphan", Owner(hub.hub_id, "ghost", "lab").tags())
    make_instance(emu, "jhother-ci", Owner("another-hub", "alice", "").tags())
    alice, bob = hub.instance_name("alice"), hub.instance_name("bob")

    # the hub's API behind the page: only the page's token has its scopes
    r = hub.api("GET", "/aml/instances")
    assert r.status_code == 403 and "custom:aml-instances:read" in r.json()["message"], r.text

    assert page(hub.form_login("eve"), hub).status_code == 403  # a user who is not an admin
    admin = hub.form_login("root")
    home = admin.get(f"{hub.url}/hub/home", timeout=30).text
    assert PAGE in home, "the page is not in the admin's Services menu"

    def listed():
        seen = rows(page(admin, hub).text)
        return seen if "no server" in seen.get("jhghost-orphan", "") and "Stopped" in seen.get(bob, "") else None

    seen = hub.wait_for(listed, 30, what="the page to list the orphan and bob's stopped instance")
    price = SIZES["standard_ds2_v2"].price_usd_hour
    assert seen[alice].startswith("alice (default) running") and "Standard_DS2_v2 Running" in seen[alice], seen
    assert f"${price:.2f}" in seen[alice] and seen[alice].endswith(" Stop")  # its stop button
    assert seen[bob].startswith("bob (default)") and seen[bob].endswith("Stopped")  # no button: nothing to stop
    assert seen["jhghost-orphan"].startswith("ghost lab") and "no server" in seen["jhghost-orphan"]
    assert "jhother-ci" not in seen  # another hub's instance is not this page's
    html = page(admin, hub).text
    assert "3 running" not in html and re.search(r"<strong>2</strong> running", html), html[:2000]

    # stop the orphan, then alice's server, with the page's own forms
    xsrf = admin.cookies.get("_xsrf", path=PAGE) or admin.cookies.get("_xsrf")
    ws = re.search(r'name="workspace" value="([^"]+)"', html).group(1).replace("&#34;", '"').replace("&quot;", '"')
    r = admin.post(f"{hub.url}{PAGE}", data={"_xsrf": xsrf, "workspace": ws, "name": "jhghost-orphan"}, timeout=60)
    assert r.status_code == 200 and "Stopping compute instance jhghost-orphan, which no server used." in r.text, r.text
    hub.wait_for(lambda: state_of(emu, "jhghost-orphan") == "Stopped", 60, what="the orphan to be stopped")
    r = admin.post(f"{hub.url}{PAGE}", data={"_xsrf": xsrf, "workspace": ws, "name": alice}, timeout=120)
    assert r.status_code == 200 and "Stopping alice&#39;s server and its compute instance" in r.text, r.text
    hub.wait_for(lambda: hub.server_model("alice") is None, 60, what="alice's server to stop")
    hub.wait_for(lambda: state_of(emu, alice) == "Stopped", 60, what="alice's instance to be stopped")
    # a form without the page's XSRF token is refused, and stops nothing
    r = admin.post(f"{hub.url}{PAGE}", data={"workspace": ws, "name": "jhother-ci"}, timeout=30)
    assert r.status_code == 403
    assert state_of(emu, "jhother-ci") == "Running"  # another hub's instance: untouched throughout
    # the page says only what its own stops did: a crafted link cannot put words in it, and it is shown once
    spoof = admin.get(f"{hub.url}{PAGE}", params={"done": "Your session expired: log in at evil.example"}, timeout=60)
    assert spoof.status_code == 200 and "evil.example" not in spoof.text
    assert "Stopping alice&#39;s server" not in spoof.text  # the last stop's message went with its first showing
    # and it never shows inside another page's frame (a page on a user's server could load it hidden)
    assert spoof.headers["Content-Security-Policy"] == "frame-ancestors 'none'"
    assert spoof.headers["X-Frame-Options"] == "DENY"
    assert "root stops alice's server" in hub.log_tail(200_000) and "by root" in hub.log_tail(200_000)
