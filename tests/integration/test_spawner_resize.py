"""Another size for an existing instance: resized with its files, or refused in words; the form says
which instance a server has; the hub never records a profile that is not what runs."""

from __future__ import annotations

import re

import pytest
import requests

from tests.harness.emulator import instances
from tests.harness.hub import Hub, spawn_ready


@pytest.fixture(scope="module")
def hubs(emulator, tmp_path_factory):
    resizing = Hub(tmp_path_factory.mktemp("hub-resize"), emulator).start()
    keeping = Hub(tmp_path_factory.mktemp("hub-keep"), emulator,
                  extra_config="c.AMLSpawner.resize_instances = False\n").start()
    yield resizing, keeping
    resizing.stop()
    keeping.stop()


def _state(hub: Hub, user: str) -> dict:
    return hub.api("GET", f"/users/{user}", params={"include_stopped_servers": "1"}).json()["servers"][""]["state"]


def _form(hub: Hub, user: str) -> str:
    """The spawn page as the user gets it, signed in (the harness hub's dummy login takes any password)."""
    with requests.Session() as session:
        session.trust_env = False
        page = session.get(f"{hub.url}/hub/login", timeout=60)
        xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page.text).group(1)
        session.post(f"{hub.url}/hub/login", data={"username": user, "password": "any", "_xsrf": xsrf}, timeout=60)
        r = session.get(f"{hub.url}/hub/spawn/{user}", timeout=60)
    assert r.status_code == 200 and "spawn_form" in r.text, r.text[:500]
    return r.text


def _stop_everything(hub: Hub, user: str) -> None:
    if hub.user_model(user)["servers"]:
        hub.stop_server(user)


def test_another_size_resizes_the_instance_and_keeps_its_files(hubs, emu):
    hub = hubs[0]
    emu.set_transitions(all=0.3)
    spawn_ready(hub, "alice", options={"profile": "small"})
    name = hub.instance_name("alice")
    r = hub.user_request("PUT", "alice", "api/contents/kept.txt",
                         json={"type": "file", "format": "text", "content": "survives a resize"})
    assert r.status_code in (200, 201), r.text
    hub.stop_server("alice")

    form = _form(hub, "alice")  # before the user clicks Start: their instance, its size, what another one does
    assert re.search(rf"Your compute instance <strong>{name}</strong> has size <code>Standard_DS2_v2</code>", form)
    assert "resizes it first" in form
    assert re.search(r'id="aml-profile-small" value="small" checked', form)

    events = spawn_ready(hub, "alice", options={"profile": "large"})
    messages = [e["message"] for e in events]
    assert any(f"Resizing compute instance {name} from Standard_DS2_v2 to Standard_DS4_v2" in m for m in messages)
    assert [e["progress"] for e in events] == sorted(e["progress"] for e in events)
    inst = instances(emu)[name]
    assert (inst["vm_size"], inst["state"]) == ("Standard_DS4_v2", "Running")
    assert list(instances(emu)) == [name]  # the same instance, not a new one
    assert hub.user_get("alice", "api/contents/kept.txt").json()["content"] == "survives a resize"
    state = _state(hub, "alice")
    assert (state["vm_size"], state["profile"]) == ("Standard_DS4_v2", "large")
    _stop_everything(hub, "alice")


def test_with_resizing_off_another_size_is_refused_and_nothing_changes(hubs, emu):
    hub = hubs[1]
    emu.set_transitions(all=0.3)
    spawn_ready(hub, "bob", options={"profile": "medium"})
    name = hub.instance_name("bob")
    hub.stop_server("bob")

    form = _form(hub, "bob")
    assert "This hub does not resize instances: it starts at that size." in form
    assert re.search(r'id="aml-profile-large" value="large" disabled', form)
    assert re.search(r'id="aml-profile-medium" value="medium" checked>', form)

    emu.control("DELETE", "/_emulator/requests")
    r = hub.spawn("bob", options={"profile": "large"})
    assert r.status_code in (201, 202), r.text
    events = hub.progress("bob")
    assert events[-1].get("failed"), events
    assert ("has size Standard_DS3_v2 (Medium), and this hub does not resize instances: choose Medium"
            in events[-1]["message"]), events[-1]
    inst = instances(emu)[name]
    assert (inst["vm_size"], inst["state"]) == ("Standard_DS3_v2", "Stopped")  # not started, not resized
    assert [x for x in emu.requests_seen() if x["method"] != "GET"] == []
    assert _state(hub, "bob")["profile"] != "large"

    spawn_ready(hub, "bob", options={"profile": "medium"})  # its own size starts it as before
    assert (_state(hub, "bob")["vm_size"], _state(hub, "bob")["profile"]) == ("Standard_DS3_v2", "medium")
    _stop_everything(hub, "bob")


def test_a_running_instance_is_stopped_first_then_resized(hubs, emu):
    """An instance left running without its server (stop_action keep, say) is stopped, resized and started."""
    hub = hubs[0]
    emu.set_transitions(all=0.3)
    spawn_ready(hub, "carol", options={"profile": "small"})
    name = hub.instance_name("carol")
    hub.stop_server("carol")
    emu.ml_client().compute.begin_start(name).result()  # behind the hub's back, as from Studio
    assert instances(emu)[name]["state"] == "Running"
    events = spawn_ready(hub, "carol", options={"profile": "medium"})
    messages = [e["message"] for e in events]
    assert any("is running; stopping it to resize it to Standard_DS3_v2" in m for m in messages), messages
    assert instances(emu)[name]["vm_size"] == "Standard_DS3_v2"
    _stop_everything(hub, "carol")
