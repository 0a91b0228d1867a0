"""A refused start of a named server that never ran leaves nothing behind
(README: "a refused choice creates nothing"), through a real JupyterHub and
the emulator; a named server that ran before keeps its record when refused."""

from __future__ import annotations

from tests.harness.emulator import instances
from tests.harness.hub import spawn_ready


def _servers(hub, user: str) -> dict:
    r = hub.api("GET", f"/users/{user}", params={"include_stopped_servers": "1"})
    r.raise_for_status()
    return r.json()["servers"]


def test_refused_named_spawn_leaves_no_server(make_hub, emu):
    # JupyterHub's own 10 s wait, so the REST answer carries the refusal
    hub = make_hub("c.JupyterHub.allow_named_servers = True", slow_spawn_timeout=10)
    hub.create_user("ivy")

    r = hub.spawn("ivy", "bad1", {"profile": "no-such-profile"})
    assert r.status_code == 400, r.text
    assert "no-such-profile" in r.json()["message"], r.text
    assert "bad1" not in _servers(hub, "ivy")  # gone before the answer
    assert hub.instance_name("ivy", "bad1") not in instances(emu)
    browser = hub.form_login("ivy")
    home = browser.get(f"{hub.url}/hub/home", timeout=30).text
    assert "bad1" not in home, home[-3000:]

    # the same through the spawn form: the form comes back with the refusal, and no server stays
    url = f"{hub.url}/hub/spawn/ivy/bad2"
    assert browser.get(url, timeout=30).status_code == 200
    r = browser.post(url, data={"profile": "no-such-profile", "_xsrf": browser.cookies.get("_xsrf")}, timeout=30)
    assert "no-such-profile" in r.text, r.text[-3000:]
    assert "bad2" not in _servers(hub, "ivy")
    assert "bad2" not in browser.get(f"{hub.url}/hub/home", timeout=30).text

    # the same name can be used at once, with a good choice
    spawn_ready(hub, "ivy", "bad1", {"profile": "small"})

    # a named server that ran before keeps its record (and its instance) when a restart is refused
    hub.stop_server("ivy", "bad1")
    r = hub.spawn("ivy", "bad1", {"profile": "no-such-profile"})
    assert r.status_code == 400, r.text
    assert "bad1" in _servers(hub, "ivy")
    assert hub.instance_name("ivy", "bad1") in instances(emu)

    # the default server is never removed
    r = hub.spawn("ivy", "", {"profile": "no-such-profile"})
    assert r.status_code == 400, r.text
    assert "" in _servers(hub, "ivy")
