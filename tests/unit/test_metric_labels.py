"""The spawner's metrics: the labels ARM requests get, start phases, and the gauges of what runs."""

import time

import pytest

from aml_jupyterhub.compute.models import VmSize
from aml_jupyterhub.metrics import arm_operation, arm_outcome, fleet_gauges
from aml_jupyterhub.ownership import Owner
from aml_jupyterhub.progress import ProgressLog
from aml_jupyterhub.reconciler import Snapshot

WS = "https://management.azure.com/subscriptions/s/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/ws"
LOC = "https://management.azure.com/subscriptions/s/providers/Microsoft.MachineLearningServices/locations/westeurope"


@pytest.mark.parametrize("method,url,label", [
    ("GET", f"{WS}/computes/jhann-x?api-version=1", "GET computes"),
    ("GET", f"{WS}/computes?api-version=1", "GET computes"),
    ("PUT", f"{WS}/computes/jhann-x", "PUT computes"),
    ("POST", f"{WS}/computes/jhann-x/start", "POST computes/start"),
    ("GET", f"{LOC}/vmSizes", "GET vmSizes"),
    ("GET", f"{LOC}/usages", "GET usages"),
    ("GET", f"{LOC}/computeOperationsStatus/0c2f-op-id", "GET operationStatus"),
    ("GET", WS, "GET workspaces"),
    ("GET", "https://management.azure.com/providers/else", "GET other"),
])
def test_arm_operations_are_labelled_without_names(method, url, label):
    assert arm_operation(method, url) == label


def test_outcomes():
    assert [arm_outcome(s) for s in (200, 202, 404, 409, 429, 500, 503)] == [
        "ok", "ok", "client_error", "client_error", "throttled", "server_error", "server_error"]


def test_phase_durations_follow_the_phases_emitted():
    log = ProgressLog()
    t0 = time.monotonic()
    log.emit("prepare", "a")
    log.emit("create", "b")
    log.emit("create", "c")  # the same phase again: one span
    log.emit("launch", "d")
    phases = log.phase_durations(now=t0 + 100)
    assert [p for p, _ in phases] == ["prepare", "create", "launch"]
    assert all(d >= 0 for _, d in phases) and sum(d for _, d in phases) == pytest.approx(100, abs=1)


class _Reconciler:
    def __init__(self, hub_id, infos):
        self.hub_id, self.latest = hub_id, Snapshot.of(0, infos)


def _Fleet(reconcilers, sizes):
    """The hub's own Fleet, holding these reconcilers and this size list (nothing started)."""
    from aml_jupyterhub.fleet import Fleet

    fleet = Fleet()
    fleet.sizes = {("ws",): (0, sizes)}
    fleet._reconcilers = {(f"ws{i}",): r for i, r in enumerate(reconcilers)}
    return fleet


def _info(name, state, size, owner):
    from aml_jupyterhub.compute.models import InstanceInfo

    return InstanceInfo(name=name, id=None, state=state, provisioning_state=None, vm_size=size, location=None,
                        ssh_user=None, ssh_port=None, public_ip=None, private_ip=None, applications={},
                        assigned_user_oid=None, last_operation={}, error=None, tags=owner.tags() if owner else {})


def test_gauges_count_this_hubs_instances_and_price_the_running_ones():
    mine, other = Owner("hub1", "ann", ""), Owner("hub2", "bob", "")
    infos = [_info("a", "Running", "Standard_DS2_v2", mine), _info("b", "Running", "Standard_NC6s_v3", mine),
             _info("c", "Stopped", "Standard_DS2_v2", mine), _info("d", "Running", "Standard_DS2_v2", other),
             _info("e", "Running", "Standard_DS2_v2", None)]
    sizes = {"standard_ds2_v2": VmSize("Standard_DS2_v2", "f", 2, 7, 0, 0.146)}
    instances, cost, unpriced = fleet_gauges(_Fleet([_Reconciler("hub1", infos)], sizes))
    got = {tuple(s.labels.values()): s.value for s in instances.samples}
    assert got == {("Running", "Standard_DS2_v2"): 1, ("Running", "Standard_NC6s_v3"): 1,
                   ("Stopped", "Standard_DS2_v2"): 1}
    assert cost.samples[0].value == pytest.approx(0.146)
    assert unpriced.samples[0].value == 1  # the NC6s_v3 has no price: said, not guessed


def test_the_grafana_dashboard_asks_only_for_metrics_that_exist():
    import json
    import re

    from aml_jupyterhub import metrics
    from tests.harness.repo import ROOT

    dashboard = json.loads((ROOT / "docker" / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {n for e in exprs for n in re.findall(r"\b(aml_[a-z_]+)", e)}
    ours = set(re.findall(r"``(aml_[a-z_]+)", metrics.__doc__))
    suffixed = {n for n in used if re.sub(r"_(total|bucket|sum|count)$", "", n) in ours or n in ours}
    assert used and used == suffixed, used - suffixed
    assert {"aml_running_cost_per_hour_usd", "aml_instances"} <= used
