"""/hub/metrics carries the spawner's own metrics: read through a real hub
with prometheus_client's parser, and checked against what the test did
(starts, a refused start, throttled ARM calls, an orphan stopped, another
hub's instance left out, the cost of what runs)."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from aml_emulator.catalog import SIZES
from aml_jupyterhub.ownership import Owner
from tests.harness.emulator import make_instance, state_of
from tests.harness.hub import Hub, spawn_ready


def scrape(hub: Hub) -> dict[str, list]:
    """sample name -> [(labels, value)] of every aml_ metric."""
    r = hub.api("GET", "/../metrics")
    assert r.status_code == 200, r.text[:300]
    out: dict[str, list] = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            if s.name.startswith("aml_"):
                out.setdefault(s.name, []).append((s.labels, s.value))
    return out


def value(samples: dict, name: str, **labels) -> float:
    return sum(v for ls, v in samples.get(name, []) if all(ls.get(k) == w for k, w in labels.items()))


@pytest.fixture
def hub(emulator, emu, tmp_path):
    h = Hub(tmp_path / "hub", emulator, extra_config="c.AMLSpawner.reconcile_interval = 1\n").start()
    yield h
    h.stop()


def test_metrics_say_what_ran_failed_and_costs(hub, emu):
    assert hub.api("GET", "/../metrics", headers={"Authorization": ""}).status_code in (401, 403)  # not public
    emu.fault(kind="throttle", count=2, retry_after=0)
    spawn_ready(hub, "ann", options={"profile": "small"})
    spawn_ready(hub, "bob", options={"profile": "medium"})
    hub.stop_server("bob")
    r = hub.spawn("cat", options={"profile": "huge"})
    assert hub.progress("cat")[-1].get("failed"), r.text
    make_instance(emu, "jhghost-orphan", Owner(hub.hub_id, "ghost", "").tags())  # this hub's, no server
    make_instance(emu, "jhother-ci", Owner("another-hub", "ann", "").tags(), vm_size="Standard_DS3_v2")
    hub.wait_for(lambda: state_of(emu, "jhghost-orphan") == "Stopped", 60, what="the orphan to be stopped")

    def settled():
        m = scrape(hub)
        return m if value(m, "aml_instances", state="Stopped", vm_size="Standard_DS2_v2") == 1 else None

    m = hub.wait_for(settled, 30, what="the reconciler's list to show the stopped orphan")
    # what runs: this hub's instances only (the other hub's Running DS3_v2 is not counted)
    assert value(m, "aml_instances", state="Running", vm_size="Standard_DS2_v2") == 1
    assert value(m, "aml_instances", state="Stopped", vm_size="Standard_DS3_v2") == 1
    assert value(m, "aml_instances", state="Running", vm_size="Standard_DS3_v2") == 0
    # its cost: ann's small one, at AML's estimate (the shipped table has no westeurope prices)
    assert value(m, "aml_running_cost_per_hour_usd") == pytest.approx(SIZES["standard_ds2_v2"].price_usd_hour)
    assert value(m, "aml_running_unpriced_instances") == 0
    # starts: two full ones (each through create and launch), one refused for its options
    assert value(m, "aml_spawn_phase_duration_seconds_count", phase="create") == 2
    assert value(m, "aml_spawn_phase_duration_seconds_count", phase="launch") == 2
    assert value(m, "aml_spawn_phase_duration_seconds_sum", phase="create") > 0
    assert value(m, "aml_spawn_failures_total", reason="options") == 1
    # ARM: the two throttled answers, and the calls that followed, by operation
    assert value(m, "aml_arm_requests_total", outcome="throttled") == 2
    assert value(m, "aml_arm_requests_total", operation="PUT computes", outcome="ok") == 2
    assert value(m, "aml_arm_requests_total", operation="POST computes/stop", outcome="ok") >= 2  # bob's, the orphan
    assert value(m, "aml_arm_requests_total", operation="GET vmSizes", outcome="ok") >= 1
    # the reconciler: one orphan stopped
    assert value(m, "aml_reconciler_actions_total", action="stop") == 1
