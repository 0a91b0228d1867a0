"""aml-jupyterhub-doctor against the emulator: every check passes on a sound
deployment, and each misconfiguration made on purpose fails the check it
belongs to, with the fix, and the exit status says so."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from aml_jupyterhub.ownership import Owner
from tests.harness.emulator import make_instance
from tests.harness.net import free_port
from tests.harness.repo import ROOT, example_env

DOCTOR = str(Path(sys.executable).parent / "aml-jupyterhub-doctor")
HUB_ID = "doctor-test"
WS = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/aml-local/providers/" \
     "Microsoft.MachineLearningServices/workspaces/aml-local"


def run_doctor(emulator, tmp_path: Path, **settings: str) -> tuple[int, dict[str, str], str]:
    """(exit status, check name -> its line(s), the whole output)."""
    data = tmp_path / "data"
    (data / "secrets").mkdir(parents=True, exist_ok=True, mode=0o700)
    (data / "secrets" / "hub-id").write_text(HUB_ID + "\n")
    (tmp_path / "arm-token").write_text(emulator.token + "\n")  # as the compose stack's emulator shares it
    env = {**example_env(), "EMULATOR_URL": emulator.base_url, "EMULATOR_PUBLIC_URL": emulator.base_url,
           "EMULATOR_CA": str(emulator.ca_file), "EMULATOR_ARM_TOKEN_FILE": str(tmp_path / "arm-token"),
           "HUB_DATA_DIR": str(data),
           "AML_PROFILES_FILE": str(ROOT / "hub" / "profiles.json"), "AML_TUNNEL_SERVICE_URL": "",
           "HUB_PROXY_TOKEN_FILE": str(tmp_path / "proxy-token"), "PATH": os.environ["PATH"], **settings}
    r = subprocess.run([DOCTOR], capture_output=True, text=True, env=env, timeout=180)
    assert "Traceback" not in r.stdout + r.stderr, r.stdout + r.stderr
    checks: dict[str, str] = {}
    name = None
    for line in r.stdout.splitlines():
        if line[:4] in ("ok  ", "FAIL", "skip"):
            name = line[5:].split(":", 1)[0]
            checks[name] = line
        elif line.startswith("     fix:") and name:
            checks[name] += "\n" + line
    return r.returncode, checks, r.stdout


def test_a_sound_deployment_passes_every_check(emulator, emu, tmp_path):
    make_instance(emu, "jhdoc-ok", Owner(HUB_ID, "ann", "").tags())  # a running instance of this hub, for SSH
    code, checks, out = run_doctor(emulator, tmp_path)
    assert code == 0, out
    assert set(checks) >= {"settings", "Azure AD tenant", "Azure AD app", "redirect URI", "ARM credential",
                           "workspace", "roles", "sizes", "quota", "SSH", "HOST"}, out
    assert not any(line.startswith("FAIL") for line in checks.values()), out
    assert checks["SSH"].startswith("ok") and "answers (SSH-2.0" in checks["SSH"], out
    assert "region westeurope" in checks["workspace"]
    assert out.strip().splitlines()[-1] == f"{len(checks)} of {len(checks)} checks passed"


def _assert_fails(code, checks, out, name, *words):
    assert code == 1, out
    line = checks.get(name, "")
    assert line.startswith("FAIL"), out
    for w in words:
        assert w in line, (w, line)
    others = [n for n, text in checks.items() if text.startswith("FAIL") and n != name]
    return others


def test_wrong_tenant(emulator, emu, tmp_path):
    code, checks, out = run_doctor(emulator, tmp_path, AAD_TENANT_ID="11111111-2222-3333-4444-555555555555")
    _assert_fails(code, checks, out, "Azure AD tenant", "AADSTS90002", "fix: the tenant does not exist", "AAD_TENANT_ID")


def test_wrong_client_secret_and_redirect_uri(emulator, emu, tmp_path):
    code, checks, out = run_doctor(emulator, tmp_path, AAD_CLIENT_SECRET="not-the-secret", HOST="hub.example.org")
    _assert_fails(code, checks, out, "Azure AD app", "AADSTS7000215", "AAD_CLIENT_SECRET")
    assert checks["redirect URI"].startswith("FAIL") and "AADSTS50011" in checks["redirect URI"], out
    assert "https://hub.example.org/hub/oauth_callback" in checks["redirect URI"]


def test_missing_role(emulator, emu, tmp_path):
    r = emu.control("PUT", "/_emulator/roles", json={"assignments": [
        {"principal": "hub", "role": "Reader", "scope": WS},
        {"principal": "hub", "role": "Reader", "scope": "/subscriptions/00000000-0000-0000-0000-000000000000"}]})
    assert r.status_code == 200, r.text
    code, checks, out = run_doctor(emulator, tmp_path)
    others = _assert_fails(code, checks, out, "roles", "may not write, delete, start, stop, restart",
                           "fix: assign AzureML Compute Operator")
    assert others == [], out  # reading still works: only the roles check fails


def test_size_not_offered_and_quota_used_up(emulator, emu, tmp_path):
    profiles = tmp_path / "profiles.json"
    profiles.write_text(json.dumps([
        {"slug": "small", "vm_size": "Standard_DS2_v2", "default": True},
        {"slug": "a100", "vm_size": "Standard_ND96asr_v4"}]))  # not in the emulated westeurope
    emu.control("PUT", "/_emulator/quota", json={"family": "standardDSv2Family", "limit": 0})
    code, checks, out = run_doctor(emulator, tmp_path, AML_PROFILES_FILE=str(profiles))
    _assert_fails(code, checks, out, "sizes", "a100 (Standard_ND96asr_v4) not offered", "in westeurope")
    assert checks["quota"].startswith("FAIL") and "small (Standard_DS2_v2) needs 2 vCPUs" in checks["quota"], out
    assert "0 free" in checks["quota"] and "fix: request more vCPU quota" in checks["quota"]


def test_wrong_workspace(emulator, emu, tmp_path):
    code, checks, out = run_doctor(emulator, tmp_path, AML_WORKSPACE="no-such-workspace")
    _assert_fails(code, checks, out, "workspace", "no-such-workspace", "fix: check AML_SUBSCRIPTION_ID")
    # what needs the workspace is skipped, saying why, not failed a second time
    assert checks["roles"].startswith("skip") and checks["sizes"].startswith("skip"), out


def test_ssh_port_closed(emulator, emu, tmp_path):
    make_instance(emu, "jhdoc-ssh", Owner(HUB_ID, "ann", "").tags())
    code, checks, out = run_doctor(emulator, tmp_path, AML_SSH_PORT=str(free_port()))
    _assert_fails(code, checks, out, "SSH", "cannot reach jhdoc-ssh at 127.0.0.1:", "fix: allow the hub's address")


@pytest.mark.parametrize("setting", [{"AML_CONNECT_MODE": "warp"}])
def test_a_bad_setting_stops_at_the_settings_check(emulator, emu, tmp_path, setting):
    code, checks, out = run_doctor(emulator, tmp_path, **setting)
    _assert_fails(code, checks, out, "settings", "AML_CONNECT_MODE")
    assert list(checks) == ["settings"], out
