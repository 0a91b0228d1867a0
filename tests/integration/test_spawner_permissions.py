"""A hub whose identity lacks a role: the spawn fails with ARM's refusal
turned into advice (the action refused, the built-in role that grants it,
the workspace to assign it on), and nothing is created or started. The
emulator enforces Azure RBAC; these tests take roles away through its
control API (a reset gives them back)."""

from __future__ import annotations

from tests.harness.emulator import instance, instances, state_of
from tests.harness.hub import spawn_ready

C = "Microsoft.MachineLearningServices/workspaces/computes"


def set_roles(emu, body) -> None:
    r = emu.control("PUT", "/_emulator/roles", json=body)
    assert r.status_code == 200, r.text


def failure(hub, user: str) -> str:
    events = hub.progress(user)
    assert events[-1].get("failed"), events
    return events[-1]["message"]


def test_without_compute_operator_the_spawn_says_which_role_and_creates_nothing(make_hub, emu):
    set_roles(emu, {"assignments": [{"principal": "hub", "role": "Reader"}]})
    hub = make_hub()
    hub.spawn("pia")
    message = failure(hub, "pia")
    assert f"Could not create compute instance '{hub.instance_name('pia')}': permission denied." in message
    assert f"the action {C}/write" in message
    assert "assign the built-in role AzureML Compute Operator, which grants it," in message
    assert "on workspace aml-local (resource group aml-local)" in message
    assert "Ask an admin" in message
    assert instances(emu) == {}


def test_a_role_without_start_leaves_the_stopped_instance_stopped(make_hub, emu):
    hub = make_hub()
    spawn_ready(hub, "ravi")
    name = hub.instance_name("ravi")
    hub.stop_server("ravi")
    hub.wait_for(lambda: state_of(emu, name) == "Stopped", 60, what="the instance to stop")
    set_roles(emu, {"definitions": [{"name": "Compute read-write", "actions": [f"{C}/read", f"{C}/write"]}],
                    "assignments": [{"principal": "hub", "role": "Compute read-write"},
                                    {"principal": "hub", "role": "Reader"}]})
    hub.spawn("ravi")
    message = failure(hub, "ravi")
    assert f"Could not start compute instance '{name}': permission denied." in message
    assert f"the action {C}/start/action on " in message and f"/computes/{name}" in message
    assert "assign the built-in role AzureML Compute Operator, which grants it," in message
    hub.wait_for(lambda: hub.server_model("ravi") is None, 30, what="the failed server to clear")
    assert state_of(emu, name) == "Stopped"
    assert not [r for r in emu.requests_seen() if r["path"].endswith(f"/computes/{name}/start") and r["status"] < 400]


def test_without_reader_the_spawn_says_the_workspace_cannot_be_read(make_hub, emu):
    """Compute Operator alone does not grant reading the workspace, which the
    SDK does before a create (to learn its region)."""
    set_roles(emu, {"assignments": [{"principal": "hub", "role": "AzureML Compute Operator"}]})
    hub = make_hub()
    hub.spawn("sol")
    message = failure(hub, "sol")
    assert "permission denied." in message
    assert "the action Microsoft.MachineLearningServices/workspaces/read" in message
    assert "assign the built-in role Reader, which grants it," in message and "on workspace aml-local" in message
    assert instance(emu, hub.instance_name("sol")) is None


def test_a_refused_list_is_one_clear_line_in_the_reconcilers_log(make_hub, emu):
    set_roles(emu, {"assignments": []})
    hub = make_hub("c.AMLSpawner.reconcile_interval = 1")
    line = "reconciler: could not list the compute instances of aml-local"
    hub.wait_for(lambda: line in hub.log_tail(40000), 30, what="the reconciler's warning")
    hub.wait_for(lambda: sum(1 for r in emu.requests_seen() if r["path"].endswith("/computes")) >= 3, 30,
                 what="three passes")
    log = hub.log_tail(60000)
    warned = [x for x in log.splitlines() if line in x]
    assert len(warned) == 1, warned  # once, not once per pass
    assert "permission denied" in warned[0] and f"the action {C}/read" in warned[0]
    assert "assign the built-in role AzureML Compute Operator, which grants it," in warned[0]
    assert "Traceback" not in log
    emu.reset()  # the roles come back
    hub.wait_for(lambda: "listing the compute instances of aml-local works again" in hub.log_tail(60000), 30,
                 what="the reconciler to say it can list again")
