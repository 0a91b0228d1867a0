"""Failures a user can hit end the spawn with a message that says what
happened, and leave no half-made instance running."""

from __future__ import annotations

from tests.harness.emulator import instance


def test_ssh_unreachable_fails_with_message_and_stops_instance(make_hub, emu):
    hub = make_hub("""
        c.AMLSpawner.ssh_port = 9  # nothing listens there
        c.AMLSpawner.ssh_ready_timeout = 2
        c.AMLSpawner.ssh_connect_timeout = 2
    """)
    hub.spawn("kim")
    events = hub.progress("kim")
    assert events[-1].get("failed")
    assert "Could not reach your compute instance" in events[-1]["message"]
    assert "127.0.0.1:9" in events[-1]["message"]
    hub.wait_for(lambda: (instance(emu, hub.instance_name("kim")) or {}).get("state") == "Stopped", 60,
                 what="the instance to be stopped after the failed spawn")


def test_start_timeout_leaves_nothing_running(make_hub, emu):
    # the create outlasts the timeout by far; the timeout leaves the spawner's first steps time to
    # reach the create on a loaded machine (a 3 s one ran out while it still checked the options)
    emu.set_transitions(create=14)
    hub = make_hub("c.AMLSpawner.start_timeout = 6")
    hub.spawn("lee")
    events = hub.progress("lee", timeout=60)
    assert events[-1].get("failed")
    # the message says what the spawner was doing when time ran out: the last step it reported
    assert "was not ready within" in events[-1]["message"], events[-1]
    assert f"Last step: {events[-2]['message']}" in events[-1]["message"], events
    assert any(e["message"].startswith("Compute instance") for e in events), events
    # the create finishes on AML's side; the hub's stop then stops it: no bill keeps running
    hub.wait_for(lambda: (instance(emu, hub.instance_name("lee")) or {}).get("state") == "Stopped", 60,
                 what="the timed-out instance to be stopped")
    hub.wait_for(lambda: hub.server_model("lee") is None, 30, what="the server record to go")


def test_stop_action_delete_removes_the_instance(make_hub, emu):
    hub = make_hub('c.AMLSpawner.stop_action = "delete"')
    hub.spawn("max")
    assert hub.progress("max")[-1].get("ready")
    assert instance(emu, hub.instance_name("max"))["state"] == "Running"
    hub.stop_server("max")
    hub.wait_for(lambda: instance(emu, hub.instance_name("max")) is None, 30, what="the instance to be deleted")


def test_size_not_offered_is_hidden_and_refused(make_hub, emu):
    hub = make_hub("""
        c.AMLSpawner.profiles = [
            {"slug": "cpu", "display_name": "CPU", "vm_size": "Standard_DS2_v2"},
            {"slug": "a100", "display_name": "A100", "vm_size": "Standard_ND96asr_v4"},
        ]
    """)
    hub.spawn("ned", options={"profile": "a100"})
    events = hub.progress("ned")
    assert events[-1].get("failed")
    assert "which the workspace's region does not offer" in events[-1]["message"]
    assert "Choose one of: cpu." in events[-1]["message"]
    assert instance(emu, hub.instance_name("ned")) is None


def test_profile_limited_to_a_group(make_hub, emu):
    hub = make_hub("""
        c.AMLSpawner.profiles = [
            {"slug": "cpu", "display_name": "CPU", "vm_size": "Standard_DS2_v2", "default": True},
            {"slug": "gpu", "display_name": "GPU", "vm_size": "Standard_NC4as_T4_v3", "groups": ["gpu-users"]},
        ]
    """)
    hub.create_user("olga")
    hub.spawn("olga", options={"profile": "gpu"})
    events = hub.progress("olga")
    assert events[-1].get("failed") and "is not available to your groups" in events[-1]["message"]
    assert hub.api("POST", "/groups/gpu-users", json={"users": ["olga"]}).status_code in (201, 409)
    hub.wait_for(lambda: hub.server_model("olga") is None, 30, what="the failed server to clear")
    hub.spawn("olga", options={"profile": "gpu"})
    assert hub.progress("olga")[-1].get("ready")
    assert instance(emu, hub.instance_name("olga"))["vm_size"] == "Standard_NC4as_T4_v3"


def test_jupyterhub_installed_on_first_start_when_missing(make_hub, emu):
    """No Python on the instance has the hub's jupyterhub: the install command
    runs once (here: a stand-in that puts a launcher of the instance's own
    python3 at the venv path), then the server starts from there."""
    hub = make_hub("""
        c.AMLSpawner.singleuser_pythons = ["$HOME/.aml-jupyterhub/venv/bin/python"]
        c.AMLSpawner.singleuser_install_command = (
            "mkdir -p $HOME/.aml-jupyterhub/venv/bin && "
            "printf '#!/bin/sh\\nexec %s \\"$@\\"\\n' $(command -v python3) > $HOME/.aml-jupyterhub/venv/bin/python && "
            "chmod +x $HOME/.aml-jupyterhub/venv/bin/python && echo installed {version}"
        )
    """)
    hub.spawn("quinn")
    events = hub.progress("quinn")
    assert events[-1].get("ready"), events
    assert any(e["message"].startswith("Installing JupyterHub 6.1") for e in events), events
    home = emu.state_dir / "instances" / hub.instance_name("quinn") / "home"
    assert "exec " in (home / ".aml-jupyterhub" / "venv" / "bin" / "python").read_text()


def test_failed_install_says_what_to_do(make_hub, emu):
    hub = make_hub("""
        c.AMLSpawner.singleuser_pythons = ["$HOME/.aml-jupyterhub/venv/bin/python"]
        c.AMLSpawner.singleuser_install_command = "echo 'no route to pypi.org' >&2; exit 1"
    """)
    hub.spawn("rita")
    events = hub.progress("rita")
    assert events[-1].get("failed")
    assert "installing JupyterHub 6.1" in events[-1]["message"] and "no route to pypi.org" in events[-1]["message"]
    assert "Without that setting the hub brings JupyterHub itself" in events[-1]["message"]
    hub.wait_for(lambda: (instance(emu, hub.instance_name("rita")) or {}).get("state") == "Stopped", 60,
                 what="the instance to be stopped after the failed spawn")


def test_idle_culler_stops_idle_servers_and_their_instances(make_hub, emu):
    import sys

    hub = make_hub(f"""
        c.JupyterHub.services.append({{
            "name": "idle-culler",
            "command": ["{sys.executable}", "-m", "jupyterhub_idle_culler", "--timeout=4", "--cull-every=2"],
        }})
        c.JupyterHub.load_roles.append({{
            "name": "idle-culler",
            "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
            "services": ["idle-culler"],
        }})
    """)
    hub.spawn("sam")
    assert hub.progress("sam")[-1].get("ready")
    hub.wait_for(lambda: hub.server_model("sam") is None, 90, what="the culler to stop the idle server")
    hub.wait_for(lambda: (instance(emu, hub.instance_name("sam")) or {}).get("state") == "Stopped", 60,
                 what="the culled server's instance to be stopped")
