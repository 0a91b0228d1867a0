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

from tests.harness.emulator import DEFAULT_RG, DEFAULT_SUB, DEFAULT_WS, EmulatorProcess


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
        (["--state-dir", "x", "--timing", "warp"], "invalid choice: 'warp'"),
        (["--state-dir", "x", "--time-scale", "0"], "--time-scale must be > 0"),
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


@pytest.mark.parametrize("args, create_seconds", [
    ([], 3.0),  # the default (fast) profile: AML's headers all the same
    (["--timing", "azure", "--time-scale", "0.05"], 240 * 0.05),  # Azure ML's real 4 minutes, scaled
])
def test_no_retry_after_as_azure_ml_and_the_profiles_durations(tmp_path, args, create_seconds):
    """As Azure ML: a create answered 201 with Azure-AsyncOperation and no Retry-After, its status
    polls without Retry-After either, and it takes the timing profile's duration."""
    import time

    import requests

    emu = EmulatorProcess(tmp_path / "emu", args).start()
    try:
        assert emu.control("GET", "/_emulator/transitions").json()["create"] == pytest.approx(create_seconds)
        path = (f"/subscriptions/{DEFAULT_SUB}/resourceGroups/{DEFAULT_RG}/providers/"
                f"Microsoft.MachineLearningServices/workspaces/{DEFAULT_WS}/computes/ci-real")
        t0 = time.monotonic()
        r = emu.arm("PUT", path, json={"location": "westeurope", "properties": {
            "computeType": "ComputeInstance", "properties": {"vmSize": "Standard_DS1_v2"}}})
        assert r.status_code == 201 and "Azure-AsyncOperation" in r.headers, (r.status_code, r.text)
        assert not {"retry-after", "retry-after-ms", "x-ms-retry-after-ms"} & {h.lower() for h in r.headers}
        poll = r.headers["Azure-AsyncOperation"]
        status = requests.get(poll, headers={"Authorization": f"Bearer {emu.token}"}, verify=emu.ca_file, timeout=30)
        assert status.json()["status"] == "InProgress"
        assert not {"retry-after", "retry-after-ms"} & {h.lower() for h in status.headers}
        emu.control("POST", "/_emulator/wait")
        took = time.monotonic() - t0
        assert took >= create_seconds - 1, took  # the profile's duration
        done = requests.get(poll, headers={"Authorization": f"Bearer {emu.token}"}, verify=emu.ca_file, timeout=30)
        assert done.json()["status"] == "Succeeded"
    finally:
        try:
            emu.reset()
        finally:
            emu.stop()


def test_ssh_public_access_disabled_installs_no_admin_key(emulator):
    """AML puts the admin key on the machine only when SSH access is Enabled; with it Disabled the
    same key opens nothing (the one with access Enabled does, as a check that the key works)."""
    key = asyncssh.generate_private_key("ssh-ed25519")
    public = key.export_public_key().decode().strip()
    ports = {}
    for name, access in (("ci-sshoff", "Disabled"), ("ci-sshon", "Enabled")):
        r = emulator.arm("PUT", emulator.ws_path() + f"/computes/{name}", json={
            "location": "westeurope", "properties": {"computeType": "ComputeInstance", "properties": {
                "vmSize": "Standard_DS1_v2",
                "sshSettings": {"sshPublicAccess": access, "adminPublicKey": public}}}})
        assert r.status_code in (200, 201), r.text
    emulator.control("POST", "/_emulator/wait")
    try:
        for name in ("ci-sshoff", "ci-sshon"):
            body = emulator.arm("GET", emulator.ws_path() + f"/computes/{name}").json()
            ports[name] = body["properties"]["properties"]["connectivityEndpoints"]["publicIpAddress"], int(
                body["properties"]["properties"]["sshSettings"]["sshPort"] or 0)
        assert _ssh(ports["ci-sshon"][1], key, "echo in").strip() == "in"
        with pytest.raises(asyncssh.PermissionDenied):
            _ssh(ports["ci-sshoff"][1], key, "echo in")
    finally:
        for name in ("ci-sshoff", "ci-sshon"):
            emulator.arm("DELETE", emulator.ws_path() + f"/computes/{name}")
        emulator.control("POST", "/_emulator/wait")
