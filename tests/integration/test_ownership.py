"""Whose an instance is: its tags, its own key, its server's state.

A real hub, configurable-http-proxy and the emulator; what the hub does is
checked in AML (the emulator's instances and ARM request log), in the hub's
secrets directory and by SSH itself.
"""

from __future__ import annotations

import asyncio
import json
import os
import stat

import asyncssh
import pytest

from aml_jupyterhub.keys import KeyStore
from aml_jupyterhub.naming import legacy_instance_name
from aml_jupyterhub.ownership import Owner
from tests.harness.emulator import DEFAULT_RG, DEFAULT_SUB, DEFAULT_WS, arm_calls, instance, instance_of, instances, make_instance, state_of
from tests.harness.hub import spawn_ready

WS_KEY = (DEFAULT_SUB, DEFAULT_RG, DEFAULT_WS)


def server_state(hub, user: str, server: str = "") -> dict:
    r = hub.api("GET", f"/users/{user}", params={"include_stopped_servers": "1"})
    r.raise_for_status()
    return r.json()["servers"][server]["state"]


def test_an_instance_with_my_name_that_is_not_mine_is_refused_and_untouched(make_hub, emu):
    """The takeover of 0.1: a start used whatever instance had the name. Here
    the name mallory's server maps to is taken by an instance tagged as
    alice's (what a name collision looks like): mallory is refused with a
    message, and nothing at all is done to alice's instance."""
    hub = make_hub()
    target = hub.instance_name("mallory")
    make_instance(emu, target, Owner(hub.hub_id, "alice", "").tags())
    emu.control("DELETE", "/_emulator/requests")

    hub.spawn("mallory")
    events = hub.progress("mallory")
    message = events[-1]["message"]
    assert events[-1].get("failed"), events
    assert target in message and "not the instance of mallory" in message and "nothing was changed" in message
    assert "alice" not in message  # whose it is, it does not say
    # only reads of it: no start, stop, delete, PUT, and no SSH key put anywhere
    assert {m for m, _ in arm_calls(emu, target)} == {"GET"}, arm_calls(emu, target)
    assert state_of(emu, target) == "Running"
    assert instance(emu, target)["tags"]["jupyterhub-user"] == "alice"
    hub.wait_for(lambda: hub.server_model("mallory") is None, 30, what="the refused server to clear")
    assert state_of(emu, target) == "Running"  # nor after the hub cleaned up the failed spawn


def test_a_remembered_instance_that_is_no_longer_mine_is_refused(make_hub, emu):
    """The same check on the path of a server that remembers its instance:
    if its tags stop naming the server (changed, or the name reused by
    somebody else after a delete), the next start is refused."""
    hub = make_hub()
    spawn_ready(hub, "mallory")
    name = instance_of(emu, "mallory")
    hub.stop_server("mallory")
    retag = {**instance(emu, name)["tags"], "jupyterhub-user": "alice"}
    r = emu.arm("PUT", emu.ws_path() + f"/computes/{name}", json={
        "tags": retag, "properties": {"computeType": "ComputeInstance", "properties": {"vmSize": "Standard_DS2_v2"}}})
    assert r.status_code in (200, 201), r.text
    emu.control("DELETE", "/_emulator/requests")
    hub.spawn("mallory")
    events = hub.progress("mallory")
    assert events[-1].get("failed") and "not the instance of mallory" in events[-1]["message"], events
    assert {m for m, _ in arm_calls(emu, name)} == {"GET"} and state_of(emu, name) == "Stopped"


def test_each_instance_has_a_key_of_its_own_that_opens_only_it(make_hub, emu):
    hub = make_hub()
    spawn_ready(hub, "alice")
    spawn_ready(hub, "bob")
    store = KeyStore(hub.secrets_dir / "instance-keys")
    a, b = hub.instance_name("alice"), hub.instance_name("bob")
    alice_key, bob_key = store.path(WS_KEY, a), store.path(WS_KEY, b)
    for path in (alice_key, bob_key):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(hub.secrets_dir).st_mode) == 0o700
    assert alice_key.read_bytes() != bob_key.read_bytes()
    # what AML was given at creation is each instance's own public key
    assert instance(emu, a)["admin_public_key"].split()[:2] == alice_key.with_name(a + ".pub").read_text().split()[:2]
    assert not (hub.workdir / "ssh" / "id_ed25519").exists()  # no shared key is made any more

    bob = server_state(hub, "bob")
    assert "PRIVATE KEY" not in json.dumps(server_state(hub, "alice")) + json.dumps(bob)

    async def login(key_path, host, port) -> bool:
        try:
            conn = await asyncssh.connect(host, port, username="azureuser", client_keys=[str(key_path)],
                                          known_hosts=None, agent_path=None, config=[])
        except asyncssh.PermissionDenied:
            return False
        conn.close()
        return True

    assert asyncio.run(login(bob_key, bob["ssh_host"], bob["ssh_port"]))
    assert not asyncio.run(login(alice_key, bob["ssh_host"], bob["ssh_port"]))


def test_a_renamed_server_keeps_its_instance_and_files_and_its_old_name_gets_not_them(make_hub, emu):
    """After proj is renamed thesis, thesis starts on its instance with its files; a new server proj
    would map onto that instance too (its name and tags still say proj): it is refused, and removing
    it deletes nothing of thesis's, even with delete_forever_action = "delete"."""
    hub = make_hub('c.AMLSpawner.delete_forever_action = "delete"')
    spawn_ready(hub, "alice", "proj")
    name = instance_of(emu, "alice", "proj")
    r = hub.user_request("PUT", "alice", "api/contents/thesis.txt", server="proj",
                         json={"type": "file", "format": "text", "content": "chapter one"})
    assert r.status_code in (200, 201), r.text
    hub.stop_server("alice", "proj")
    r = hub.api("PATCH", "/users/alice/servers/proj", json={"name": "thesis"})
    assert r.status_code == 200, r.text

    emu.control("DELETE", "/_emulator/requests")
    spawn_ready(hub, "alice", "thesis")
    assert server_state(hub, "alice", "thesis")["instance_name"] == name
    assert list(instances(emu)) == [name]
    assert not any(m == "PUT" for m, _ in arm_calls(emu, name))
    r = hub.user_get("alice", "api/contents/thesis.txt", server="thesis")
    assert r.status_code == 200 and r.json()["content"] == "chapter one", r.text
    hub.stop_server("alice", "thesis")
    assert state_of(emu, name) == "Stopped"

    hub.spawn("alice", "proj")
    events = hub.progress("alice", "proj")
    assert events[-1].get("failed"), events
    assert "belongs to your server 'thesis'" in events[-1]["message"], events[-1]
    assert state_of(emu, name) == "Stopped"  # not started for the new server
    r = hub.api("DELETE", "/users/alice/servers/proj", json={"remove": True})
    assert r.status_code in (202, 204), r.text
    hub.wait_for(lambda: "is another server's: not deleted" in hub.log_tail(40000), 30, what="the refusal to delete")
    assert instance(emu, name) is not None  # thesis's instance and disk are still there
    spawn_ready(hub, "alice", "thesis")
    r = hub.user_get("alice", "api/contents/thesis.txt", server="thesis")
    assert r.status_code == 200 and r.json()["content"] == "chapter one", r.text
    hub.stop_server("alice", "thesis")


def test_removing_a_server_keeps_its_instance_unless_the_admin_chose_delete(make_hub, emu):
    keeper = make_hub()
    spawn_ready(keeper, "alice", "proj")
    kept = instance_of(emu, "alice", "proj")
    keeper.stop_server("alice", "proj")
    r = keeper.api("DELETE", "/users/alice/servers/proj", json={"remove": True})
    assert r.status_code in (202, 204), r.text
    keeper.wait_for(lambda: "delete_forever_action=keep" in keeper.log_tail(20000), 30, what="the kept-instance note")
    assert state_of(emu, kept) == "Stopped"

    deleter = make_hub('c.AMLSpawner.delete_forever_action = "delete"')
    spawn_ready(deleter, "bob", "proj")
    gone = instance_of(emu, "bob", "proj")
    key = KeyStore(deleter.secrets_dir / "instance-keys").path(WS_KEY, gone)
    assert key.exists()
    deleter.stop_server("bob", "proj")
    r = deleter.api("DELETE", "/users/bob/servers/proj", json={"remove": True})
    assert r.status_code in (202, 204), r.text
    deleter.wait_for(lambda: instance(emu, gone) is None, 60, what="the removed server's instance to be deleted")
    deleter.wait_for(lambda: not key.exists(), 10, what="its key to be removed")
    assert state_of(emu, kept) == "Stopped"  # the other hub's choice applies to the other hub's instance only


@pytest.mark.parametrize("tags,used", [
    ({"jupyterhub-user": "dana", "jupyterhub-server": "default"}, True),   # made by 0.1 for dana
    ({"jupyterhub-user": "dan", "jupyterhub-server": "default"}, False),   # the 0.1 name, another user's tags
])
def test_instances_of_version_0_1_are_found_by_their_tags_and_keep_the_shared_key(make_hub, emu, tags, used):
    hub = make_hub()
    shared = asyncssh.generate_private_key("ssh-ed25519")
    key_file = hub.workdir / "ssh" / "id_ed25519"
    key_file.parent.mkdir(parents=True, exist_ok=True)
    key_file.write_bytes(shared.export_private_key())
    old = legacy_instance_name("dana")
    make_instance(emu, old, tags, ssh_public_key=shared.export_public_key().decode())
    emu.control("DELETE", "/_emulator/requests")

    spawn_ready(hub, "dana")
    state = server_state(hub, "dana")
    if used:
        assert state["instance_name"] == old and state["ssh_key"] == "shared"
        assert list(instances(emu)) == [old]
    else:
        assert state["instance_name"] == hub.instance_name("dana") != old
        assert state_of(emu, old) == "Running" and {m for m, _ in arm_calls(emu, old)} == {"GET"}
    assert hub.user_get("dana", "api/status").status_code == 200
    hub.stop_server("dana")
    assert state_of(emu, state["instance_name"]) == "Stopped"
