"""The emulator as a service: restarts lose nothing, knobs refuse bad input,
the command line explains itself."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import asyncssh
import pytest
from azure.ai.ml.entities import ComputeInstance, ComputeInstanceSshSettings

from tests.harness.emulator import EmulatorProcess


def _ssh(port, key, command):
    async def run():
        async with asyncssh.connect("127.0.0.1", port, username="azureuser", client_keys=[key],
                                    known_hosts=None) as conn:
            return (await conn.run(command, check=True)).stdout
    return asyncio.run(run())


def test_restart_keeps_instances_machines_and_pending_transitions(tmp_path):
    key = asyncssh.generate_private_key("ssh-ed25519")
    emu = EmulatorProcess(tmp_path / "emu", ["--transition", "all=0.2", "--poll-interval", "0.2"]).start()
    try:
        ml = emu.ml_client()
        made = ml.compute.begin_create_or_update(ComputeInstance(
            name="ci-keep", size="Standard_DS1_v2", ssh_public_access_enabled=True,
            ssh_settings=ComputeInstanceSshSettings(ssh_key_value=key.export_public_key().decode()))).result()
        port = int(made.ssh_settings.ssh_port)
        _ssh(port, key, "echo before > f.txt")
        emu.set_transitions(create=2)
        ml.compute.begin_create_or_update(ComputeInstance(name="ci-slow", size="Standard_DS1_v2"))
        ca_before = open(emu.ca_file).read()
        emu.stop(kill=True)  # no chance to save anything on the way out

        emu.start()
        assert open(emu.ca_file).read() == ca_before  # clients keep trusting it
        ml = emu.ml_client()
        kept = ml.compute.get("ci-keep")
        assert getattr(kept.state, "value", kept.state) == "Running"
        # the machine outlived the control plane, files and all
        assert _ssh(int(kept.ssh_settings.ssh_port), key, "cat f.txt").strip() == "before"
        # the interrupted create resumes and finishes
        emu.control("POST", "/_emulator/wait")
        slow = ml.compute.get("ci-slow")
        assert getattr(slow.state, "value", slow.state) == "Running"
    finally:
        try:
            emu.reset()
        finally:
            emu.stop()


@pytest.mark.parametrize(
    "method,path,body,text",
    [
        ("PUT", "/_emulator/transitions", {"warp": 1}, "unknown transition"),
        ("PUT", "/_emulator/transitions", {"start": -1}, ">= 0"),
        ("POST", "/_emulator/faults", {"kind": "meteor"}, "unknown fault kind"),
        ("POST", "/_emulator/faults", {"kind": "throttle", "count": 0}, "at least 1"),
        ("PUT", "/_emulator/quota", {"family": "standardXFamily", "limit": 1}, "unknown VM family"),
        ("PUT", "/_emulator/quota", {"family": "total"}, "limit"),
        ("POST", "/_emulator/instances/ci-none/force", {"action": "stop"}, "no such instance"),
    ],
)
def test_control_api_refuses_bad_input(emu, method, path, body, text):
    r = emu.control(method, path, json=body)
    assert r.status_code in (400, 404)
    assert text in r.json()["error"]


def test_control_api_refuses_non_json(emu):
    r = emu.control("POST", "/_emulator/faults", data=b"{nope", headers={"Content-Type": "application/json"})
    assert r.status_code == 400


def test_force_changes_behind_the_back(emu):
    ml = emu.ml_client()
    ml.compute.begin_create_or_update(ComputeInstance(name="ci-force", size="Standard_DS1_v2")).result()
    r = emu.control("POST", "/_emulator/instances/ci-force/force", json={"action": "idle_shutdown"})
    assert r.status_code == 200
    emu.control("POST", "/_emulator/wait")
    got = ml.compute.get("ci-force")
    assert getattr(got.state, "value", got.state) == "Stopped"
    assert got.last_operation["operationTrigger"] == "IdleShutdown"
    r = emu.control("POST", "/_emulator/instances/ci-force/force", json={"action": "stop"})
    assert r.status_code == 409 and "only allowed when it is Running" in r.json()["error"]  # AML's status for it


@pytest.mark.parametrize(
    "args,text",
    [
        ([], "--state-dir is required"),
        (["--state-dir", "x", "--workspace", "a/b/c"], "SUBSCRIPTION/RESOURCE_GROUP/WORKSPACE/LOCATION"),
        (["--state-dir", "x", "--transition", "warp=1"], "must be one of"),
        (["--state-dir", "x", "--poll-interval", "0"], "30 s"),
    ],
)
def test_command_line_errors_are_one_clear_line(args, text, tmp_path):
    r = subprocess.run([sys.executable, "-m", "aml_emulator", *args], cwd=tmp_path,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert text in r.stderr
    assert "Traceback" not in r.stderr


def test_state_files_are_private(emulator):
    for name in ("tls/server-key.pem", "tls/ca-key.pem", "state.json"):
        mode = os.stat(emulator.state_dir / name).st_mode & 0o777
        assert mode == 0o600, (name, oct(mode))
