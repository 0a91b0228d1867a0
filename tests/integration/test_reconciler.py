"""Nothing runs (and bills) without a server: a server that ends on its own,
a stop AML refuses for a while, a hub or an AML that dies mid-create, and an
instance found running with no server all end with the instance stopped.
Each test ends by checking AML itself (the emulator), not the hub's word."""

from __future__ import annotations

import time

from aml_jupyterhub.ownership import Owner
from tests.harness.emulator import instance, instance_of, instances, make_instance, state_of
from tests.harness.hub import spawn_ready

FAST_RETRIES = """
    c.AMLSpawner.retry_total = 1   # one retry per call: a fault window is crossed in seconds
"""


def wait_state(hub, emu, name: str, state: str, timeout: float = 60) -> None:
    hub.wait_for(lambda: state_of(emu, name) == state, timeout, what=f"{name} to be {state}")


def test_a_server_shut_down_from_jupyterlab_stops_its_instance(make_hub, emu):
    hub = make_hub()
    spawn_ready(hub, "alice")
    name = instance_of(emu, "alice")
    # File > Shut Down in JupyterLab
    r = hub.user_request("POST", "alice", "api/shutdown")
    assert r.status_code in (200, 204), r.text
    hub.wait_for(lambda: hub.server_model("alice") is None, 60, what="poll to notice the server ended")
    wait_state(hub, emu, name, "Stopped")


def test_a_stop_that_aml_refuses_for_a_while_is_finished_in_the_background(make_hub, emu):
    hub = make_hub(FAST_RETRIES)
    spawn_ready(hub, "bob")
    name = instance_of(emu, "bob")
    # every stop is answered 503 for a while: the hub's own try and its first retry fail
    emu.fault(kind="error", status=503, methods=["POST"], path_contains="/stop", count=4)
    hub.stop_server("bob")
    assert state_of(emu, name) == "Running"  # the server is gone; the instance not yet...
    assert "keeps trying in the background" in hub.log_tail(20000)  # ...and the hub says so
    wait_state(hub, emu, name, "Stopped")
    assert "pending" in hub.log_tail(40000)
    assert emu.control("GET", "/_emulator/faults").json() == []


def test_a_hub_killed_mid_create_leaves_no_instance_running(make_hub, emu):
    emu.set_transitions(create=4)
    hub = make_hub("c.AMLSpawner.reconcile_interval = 1")
    hub.spawn("carol")
    hub.wait_for(lambda: instances(emu), 30, 0.1, what="the create to be under way")
    name = instance_of(emu, "carol")
    assert state_of(emu, name) == "Creating"
    hub.kill()
    hub.start()
    # AML finishes the create; the restarted hub has no server for it
    wait_state(hub, emu, name, "Stopped", 60)
    assert hub.server_model("carol") is None
    assert "reconciler: stopping compute instance" in hub.log_tail(40000)


def test_aml_failing_mid_create_leaves_no_instance_running(make_hub, emu):
    emu.set_transitions(create=2)
    hub = make_hub(FAST_RETRIES)
    hub.spawn("dave")
    hub.wait_for(lambda: instances(emu), 30, 0.1, what="the create to be under way")
    name = instance_of(emu, "dave")
    assert state_of(emu, name) == "Creating"
    emu.fault(kind="error", status=503, count=12)  # AML answers nothing for a while
    events = hub.progress("dave")
    assert events[-1].get("failed"), events
    wait_state(hub, emu, name, "Stopped", 90)
    assert hub.server_model("dave") is None


def test_the_reconciler_stops_orphans_of_this_hub_only(make_hub, emu):
    hub = make_hub("c.AMLSpawner.reconcile_interval = 1")
    spawn_ready(hub, "erin")
    mine = instance_of(emu, "erin")
    orphan, other_hub, untagged = "jhghost-orphan", "jhother-hub", "jhuntagged-ci"
    hub_id = instance(emu, mine)["tags"].get("jupyterhub-hub", "0.1-had-none")
    make_instance(emu, orphan, Owner(hub_id, "ghost", "lab").tags())
    make_instance(emu, other_hub, Owner("another-hub", "ghost", "").tags())
    make_instance(emu, untagged, {"owner": "someone"})
    started = time.monotonic()
    wait_state(hub, emu, orphan, "Stopped", 30)
    took = time.monotonic() - started
    time.sleep(3)  # three more passes
    assert state_of(emu, other_hub) == "Running" and state_of(emu, untagged) == "Running"
    assert state_of(emu, mine) == "Running" and hub.server_model("erin")["ready"]
    log = hub.log_tail(60000)
    line = next(x for x in log.splitlines() if "reconciler: stopping compute instance" in x)
    assert orphan in line and "ghost/lab" in line and "no server of the hub uses it" in line, line
    assert other_hub not in log and untagged not in log
    print(f"orphan to Stopped: {took:.1f} s (interval 1 s, stop transition 0.3 s)")


def test_an_orphan_seen_before_a_hub_restart_is_not_counted_again_after_it(make_hub, emu, tmp_path):
    """The reconciler's suspects survive the hub: a restart (or several) does not give an orphan
    another interval to run. Checked by what the stop says: the orphan had been seen running
    without a server for longer than the restarted hub had been up."""
    state = tmp_path / "reconciler"
    hub = make_hub(f"""
        c.AMLSpawner.reconcile_interval = 20
        c.AMLSpawner.reconciler_state_dir = "{state}"
    """)
    orphan = "jhghost-restart"
    make_instance(emu, orphan, Owner(hub.hub_id, "ghost", "").tags())
    # the first pass (20 s after start) sees it, and saves it as a suspect
    hub.wait_for(lambda: any(orphan in p.read_text() for p in state.glob("suspects-*.json")), 60,
                 what="the orphan to be saved as a suspect")
    time.sleep(8)  # the orphan ages before the restart (the second pass, which would stop it, is 20 s on)
    assert state_of(emu, orphan) == "Running"
    hub.kill()
    restarted = time.monotonic()
    hub.start()
    wait_state(hub, emu, orphan, "Stopped", 90)
    up = time.monotonic() - restarted
    line = next(x for x in hub.log_tail(60000).splitlines() if f"compute instance {orphan}" in x and "seen so for" in x)
    seen = float(line.split("seen so for ")[1].split(" s")[0])
    # first seen by the hub before the restart: 8 s and more before it, where noticing the stop
    # takes this test a second or two at most; counted afresh, it would be the restarted hub's
    # first-pass delay (20 s) less than its uptime
    assert seen > up, (seen, up, line)


def test_stop_action_keep_leaves_orphans_running_and_says_so(make_hub, emu):
    hub = make_hub("""
        c.AMLSpawner.reconcile_interval = 1
        c.AMLSpawner.stop_action = "keep"
    """)
    orphan = "jhghost-kept"
    make_instance(emu, orphan, Owner(hub.hub_id, "ghost", "").tags())
    hub.wait_for(lambda: "left running (stop_action=keep)" in hub.log_tail(20000), 30, what="the note")
    time.sleep(2)
    assert state_of(emu, orphan) == "Running"
    assert instance(emu, orphan) is not None


def test_a_start_while_a_stop_is_still_retried_wins_and_stays_running(make_hub, emu):
    """The background stop of the previous run must not stop the new one."""
    hub = make_hub(FAST_RETRIES)
    spawn_ready(hub, "fay")
    name = instance_of(emu, "fay")
    emu.fault(kind="error", status=503, methods=["POST"], path_contains="/stop", count=6)
    hub.stop_server("fay")
    assert "keeps trying in the background" in hub.log_tail(20000)
    spawn_ready(hub, "fay")  # while that stop is still being retried
    assert "called off: a server uses it again" in hub.log_tail(40000)
    emu.control("DELETE", "/_emulator/faults")
    time.sleep(8)  # longer than the retries' pauses would have been
    assert state_of(emu, name) == "Running" and hub.server_model("fay")["ready"]
    assert hub.user_get("fay", "api/status").status_code == 200
