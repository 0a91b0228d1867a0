"""Azure RBAC in the emulator, through the real SDK: a principal without the
action gets ARM's 403 AuthorizationFailed (no Retry-After, nothing done);
roles change at run time and a reset restores them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from azure.ai.ml.entities import ComputeInstance
from azure.core.exceptions import HttpResponseError

from tests.harness.emulator import DEFAULT_SUB, EmulatorProcess, instance, make_instance, state_of

C = "Microsoft.MachineLearningServices/workspaces/computes"
_IDENTITY = json.loads((Path(__file__).parents[2] / "spawner/emulator/aml_emulator/data/identity.json").read_text())
TENANT = _IDENTITY["tenant_id"]
HUB_APP = _IDENTITY["apps"][0]


def set_roles(emu, body) -> dict:
    r = emu.control("PUT", "/_emulator/roles", json=body)
    assert r.status_code == 200, r.text
    return r.json()


def app_token(emu, client_id, secret) -> str:
    r = requests.post(f"{emu.base_url}/{TENANT}/oauth2/v2.0/token", verify=emu.ca_file, timeout=30, data={
        "grant_type": "client_credentials", "client_id": client_id, "client_secret": secret,
        "scope": "https://management.azure.com/.default"})
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


def test_a_refused_create_is_arms_403_and_makes_nothing(emu):
    set_roles(emu, {"assignments": [{"principal": "hub", "role": "Reader"}]})
    ml = emu.ml_client()
    with pytest.raises(HttpResponseError) as info:
        ml.compute.begin_create_or_update(ComputeInstance(name="ci-denied", size="Standard_DS2_v2"))
    err = info.value
    assert err.status_code == 403 and err.error.code == "AuthorizationFailed"
    ws = emu.ws_path()
    assert (f"does not have authorization to perform action '{C}/write' over scope '{ws}/computes/ci-denied' "
            "or the scope is invalid. If access was recently granted, please refresh your credentials.") in err.message
    assert instance(emu, "ci-denied") is None
    raw = emu.arm("PUT", ws + "/computes/ci-denied", json={"properties": {"computeType": "ComputeInstance"}})
    assert raw.status_code == 403 and "Retry-After" not in raw.headers and "retry-after-ms" not in raw.headers
    assert raw.json()["error"]["code"] == "AuthorizationFailed"
    assert [r["status"] for r in emu.requests_seen() if r["path"].endswith("/computes/ci-denied")][-1] == 403


def test_a_role_without_start_refuses_the_start_and_leaves_the_instance_stopped(emu):
    make_instance(emu, "ci-nostart", {})
    ml = emu.ml_client()
    ml.compute.begin_stop("ci-nostart").result()
    set_roles(emu, {"definitions": [{"name": "Compute reader-writer", "actions": [f"{C}/read", f"{C}/write"]}],
                    "assignments": [{"principal": "hub", "role": "Compute reader-writer"},
                                    {"principal": "hub", "role": "Reader"}]})
    with pytest.raises(HttpResponseError) as info:
        ml.compute.begin_start("ci-nostart")
    assert info.value.status_code == 403 and f"'{C}/start/action'" in info.value.message
    assert state_of(emu, "ci-nostart") == "Stopped"
    assert ml.compute.get("ci-nostart").name == "ci-nostart"  # reading is still allowed


def test_operation_polls_need_no_role_of_their_own(emu):
    """Compute Operator alone on the workspace (no Reader anywhere): a start
    is accepted and its subscription-level status poll answers."""
    make_instance(emu, "ci-poll", {})
    emu.ml_client().compute.begin_stop("ci-poll").result()
    set_roles(emu, {"assignments": [{"principal": "hub", "role": "AzureML Compute Operator"}]})
    emu.ml_client().compute.begin_start("ci-poll").result()
    assert state_of(emu, "ci-poll") == "Running"
    # the SDK reads the workspace before listing sizes: Reader is what it lacks
    with pytest.raises(HttpResponseError) as info:
        list(emu.ml_client().compute.list_sizes())
    assert info.value.status_code == 403 and "'Microsoft.MachineLearningServices/workspaces/read'" in info.value.message
    # and VM sizes are authorized at subscription scope
    sizes = emu.arm("GET", f"/subscriptions/{DEFAULT_SUB}/providers/Microsoft.MachineLearningServices/locations/"
                           "westeurope/vmSizes")
    assert sizes.status_code == 403
    assert (f"'Microsoft.MachineLearningServices/locations/vmsizes/read' over scope '/subscriptions/{DEFAULT_SUB}'"
            in sizes.json()["error"]["message"])


def test_app_tokens_the_hubs_app_is_the_hub_others_hold_nothing(emu):
    ws = emu.ws_path()
    hub = app_token(emu, HUB_APP["client_id"], HUB_APP["client_secret"])
    assert emu.arm("GET", ws + "/computes", token=hub).status_code == 200
    emu.register_app("other-app", "other-secret", ["https://other.example/cb"])
    other = app_token(emu, "other-app", "other-secret")
    refused = emu.arm("GET", ws + "/computes", token=other)
    assert refused.status_code == 403
    assert "does not have authorization to perform action " \
           f"'{C}/read' over scope '{ws}'" in refused.json()["error"]["message"]
    # granted by its app id at run time
    set_roles(emu, {"assignments": [{"principal": "other-app", "role": "AzureML Data Scientist"}]})
    assert emu.arm("GET", ws + "/computes", token=other).status_code == 200
    assert emu.arm("PUT", ws + "/computes/ci-ds", token=other,
                   json={"properties": {"computeType": "ComputeInstance"}}).status_code == 403


def test_roles_are_shown_changed_and_reset(emu):
    shown = emu.control("GET", "/_emulator/roles").json()
    default = shown["assignments"]
    assert {"principal": "hub", "role": "AzureML Compute Operator", "scope": emu.ws_path()} in default
    assert {"principal": "hub", "role": "Reader", "scope": f"/subscriptions/{DEFAULT_SUB}"} in default
    assert {r["name"] for r in shown["builtin_roles"]} >= {"AzureML Compute Operator", "Reader", "Contributor",
                                                           "AzureML Data Scientist"}
    bad = emu.control("PUT", "/_emulator/roles", json={"assignments": [{"principal": "hub", "role": "Boss"}]})
    assert bad.status_code == 400 and "unknown role 'Boss'" in bad.json()["error"]
    set_roles(emu, {"assignments": []})
    assert emu.arm("GET", emu.ws_path()).status_code == 403
    emu.reset()
    assert emu.control("GET", "/_emulator/roles").json()["assignments"] == default
    assert emu.arm("GET", emu.ws_path()).status_code == 200


@pytest.mark.parametrize("value, text", [
    ('{"assignments": [{"principal": "hub", "role": "Boss"}]}', "--roles: unknown role 'Boss'"),
    ("no-such-roles.json", "--roles: [Errno 2] No such file or directory"),
    ('{"assignments": [', "--roles: Expecting value"),
])
def test_bad_roles_at_start_are_one_clear_line(value, text, tmp_path):
    r = subprocess.run([sys.executable, "-m", "aml_emulator", "--state-dir", "x", "--roles", value], cwd=tmp_path,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and text in r.stderr and "Traceback" not in r.stderr


def test_roles_given_at_start_are_in_force_from_the_first_request(tmp_path):
    emu = EmulatorProcess(tmp_path / "emu", ["--roles", '{"assignments": [{"principal": "hub", "role": "Reader"}]}'])
    emu.start()
    try:
        assert emu.arm("GET", emu.ws_path() + "/computes").status_code == 200
        refused = emu.arm("PUT", emu.ws_path() + "/computes/ci-x",
                          json={"properties": {"computeType": "ComputeInstance"}})
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "AuthorizationFailed"
    finally:
        emu.stop()
