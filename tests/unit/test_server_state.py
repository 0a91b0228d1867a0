"""ServerState: what a server remembers, read back from any version."""

from aml_jupyterhub.state import VERSION, ServerState

VERSION_1 = {  # what aml-jupyterhub 0.1 saved for a running proxy-mode server
    "version": 1, "instance_name": "jh-alice-1a2b3c", "resource_id": "/subscriptions/s/.../jh-alice-1a2b3c",
    "workspace": {"subscription_id": "s", "resource_group": "rg", "workspace_name": "ws"}, "mode": "proxy",
    "vm_size": "Standard_DS3_v2", "profile": "medium", "ssh_host": "10.0.0.4", "ssh_port": "50000",
    "host_key": "ssh-ed25519 AAAA", "remote_port": 8888, "api_port": 0, "local_port": 40001, "pid": 4242,
    "pid_start": 0, "lab_url": "",
}


def test_round_trip_keeps_every_field():
    state = ServerState(instance_name="jhabcdefghijkl", workspace={"subscription_id": "s"},
                        owner={"hub": "h", "user": "alice", "server": ""}, ssh_key="instance", mode="proxy",
                        ssh_port=50000, pid=7, pid_start=123, local_port=40001)
    saved = state.to_dict()
    assert saved["version"] == VERSION
    assert ServerState.from_dict(saved) == state


def test_no_instance_saves_nothing_and_reads_as_empty():
    assert ServerState().to_dict() == {}
    assert ServerState.from_dict({}) == ServerState()
    assert ServerState.from_dict({"version": 2, "pid": 5}) == ServerState()  # no instance: nothing to remember


def test_version_1_is_migrated():
    state = ServerState.from_dict(VERSION_1)
    assert state.instance_name == "jh-alice-1a2b3c" and state.ssh_port == 50000  # a string in 0.1's database
    assert state.owner is None and state.ssh_key == ""  # unknown in 0.1: either key, the untagged instance
    assert state.to_dict()["version"] == VERSION


def test_a_missing_version_is_version_1():
    unversioned = {k: v for k, v in VERSION_1.items() if k != "version"}
    assert ServerState.from_dict(unversioned) == ServerState.from_dict(VERSION_1)


def test_a_newer_version_keeps_what_it_can_read():
    """A downgrade must not lose the instance: unknown fields are dropped, known ones kept."""
    newer = {**ServerState(instance_name="jhabc", ssh_key="instance").to_dict(), "version": VERSION + 1,
             "something_new": {"x": 1}}
    state = ServerState.from_dict(newer)
    assert (state.instance_name, state.ssh_key) == ("jhabc", "instance")
    assert "something_new" not in state.to_dict()


def test_the_mode_defaults_to_the_configured_one():
    assert ServerState.from_dict({**VERSION_1, "mode": ""}, default_mode="redirect").mode == "redirect"


def test_forget_run_keeps_the_instance():
    state = ServerState.from_dict({**VERSION_1, "version": 2, "owner": {"hub": "h", "user": "a", "server": ""},
                                   "ssh_key": "instance"})
    state.forget_run()
    assert (state.instance_name, state.ssh_key, state.owner["user"]) == ("jh-alice-1a2b3c", "instance", "a")
    assert state.workspace["workspace_name"] == "ws"
    assert (state.pid, state.ssh_host, state.local_port, state.mode) == (0, "", 0, "")
    assert not state.started


def test_started_per_mode():
    assert ServerState(instance_name="x", mode="proxy", pid=3).started
    assert not ServerState(instance_name="x", mode="redirect", pid=3).started
    assert ServerState(instance_name="x", mode="redirect", lab_url="https://lab").started
