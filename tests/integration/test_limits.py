"""Spend limits through a real JupyterHub and the emulator: servers per user,
vCPUs per group (also for starts racing for the last vCPUs), and the maximum
runtime that stops a server whatever its activity, warned of on hub pages.
Each ends by checking what runs in the emulator, not only the refusal."""

from __future__ import annotations

import concurrent.futures
import datetime as dt

import pytest

from tests.harness.emulator import instances
from tests.harness.hub import Hub, spawn_ready

GROUP = "physics"


@pytest.fixture
def limited_hub(emulator, emu, tmp_path):
    hub = Hub(tmp_path / "hub", emulator, extra_config=f"""
        c.AMLSpawner.max_running_servers_per_user = 1
        c.AMLSpawner.group_vcpu_limits = {{"{GROUP}": 8}}
    """).start()
    yield hub
    hub.stop()


def _refusal(hub: Hub, user: str, server: str = "", options: dict | None = None) -> str:
    r = hub.spawn(user, server, options)
    assert r.status_code in (201, 202, 403), r.text
    events = hub.progress(user, server)
    assert events[-1].get("failed"), events
    return events[-1]["message"]


def _running(emu) -> dict[str, str]:
    return {name: i["vm_size"] for name, i in instances(emu).items() if i["state"] == "Running"}


def test_servers_per_user_and_vcpus_per_group(limited_hub, emu):
    hub = limited_hub
    for user in ("ann", "bob", "cat", "dan", "eve"):
        hub.create_user(user)
    r = hub.api("POST", f"/groups/{GROUP}", json={"users": ["ann", "bob", "cat", "dan", "eve"]})
    assert r.status_code == 201, r.text

    spawn_ready(hub, "ann", options={"profile": "small"})  # 2 vCPUs
    msg = _refusal(hub, "ann", "two", {"profile": "small"})
    assert "You already have 1 server running (the default one)" in msg, msg
    assert "allows 1 server per user" in msg
    assert hub.instance_name("ann", "two") not in instances(emu)

    spawn_ready(hub, "bob", options={"profile": "medium"})  # 4 vCPUs: 6 of 8
    msg = _refusal(hub, "cat", options={"profile": "medium"})
    assert f"Your group '{GROUP}' may run 8 vCPUs at a time; its members' servers use 6 now" in msg, msg
    assert "Medium (Standard_DS3_v2) needs 4" in msg
    assert hub.instance_name("cat") not in instances(emu)

    # two starts racing for the last 2 vCPUs: exactly one gets them
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda u: hub.spawn(u, options={"profile": "small"}), ("dan", "eve")))
    assert all(a.status_code in (201, 202, 403) for a in answers), [a.text for a in answers]
    ends = {u: hub.progress(u)[-1] for u in ("dan", "eve")}
    assert sorted(bool(e.get("ready")) for e in ends.values()) == [False, True], ends
    loser = next(u for u, e in ends.items() if e.get("failed"))
    assert "may run 8 vCPUs" in ends[loser]["message"]

    # what runs is what the limits allowed: 2 + 4 + 2 vCPUs, and nothing for the refused starts
    sizes = {"Standard_DS2_v2": 2, "Standard_DS3_v2": 4}
    running = _running(emu)
    assert sum(sizes[s] for s in running.values()) == 8, running
    assert hub.instance_name(loser) not in instances(emu) and hub.instance_name("cat") not in instances(emu)

    # a stop frees room: cat starts now
    hub.stop_server("bob")
    spawn_ready(hub, "cat", options={"profile": "medium"})


def _home(hub: Hub, user: str) -> str:
    """The hub's home page as ``user`` sees it."""
    return hub.form_login(user).get(f"{hub.url}/hub/home", timeout=30).text


def test_max_runtime_stops_a_busy_server_after_warning_on_hub_pages(emulator, emu, tmp_path):
    hub = Hub(tmp_path / "hub", emulator, extra_config="""
        c.AMLSpawner.max_runtime_hours = 0.01  # 36 s
        c.AMLSpawner.runtime_warning_minutes = 1
        # an admin's announcement from a drop-in file, which replaces the whole dict; then, as
        # hub/jupyterhub_config.py does after its drop-ins, the spawner's notices go back beside it
        c.JupyterHub.template_vars = {"announcement": "Maintenance on Friday"}
        from aml_jupyterhub.hubconfig import keep_runtime_notices
        keep_runtime_notices(c)
    """).start()
    try:
        events = spawn_ready(hub, "fay")
        assert any("This server will be stopped at" in e["message"] and "this hub's 0.01 h limit" in e["message"]
                   for e in events), events
        name = hub.instance_name("fay")
        page = _home(hub, "fay")
        assert "Your server will be stopped in" in page and "Save your work" in page, page[-3000:]
        assert "Maintenance on Friday" in page, page[-3000:]  # the admin's announcement, beside the warning
        gus_page = _home(hub, "gus")
        assert "will be stopped" not in gus_page  # another user is not warned of fay's server
        assert "Maintenance on Friday" in gus_page
        # busy (the hub sees activity) or not, the limit stops the server and then its instance
        assert hub.user_get("fay", "api/status").status_code == 200
        hub.wait_for(lambda: hub.server_model("fay") is None, 90, what="the runtime limit to stop the server")
        hub.wait_for(lambda: instances(emu)[name]["state"] == "Stopped", 60, what="the instance to be stopped")
        page = _home(hub, "fay")
        assert "Your server was stopped: it reached this hub&#39;s 0.01 h limit" in page, page[-3000:]
        # starting again gives a new run with a new limit, and the notice goes
        spawn_ready(hub, "fay")
        assert "was stopped" not in _home(hub, "fay")
        assert instances(emu)[name]["state"] == "Running"
    finally:
        hub.stop()


def test_stop_schedule_is_amls_own_backstop_and_the_server_ends_with_it(emulator, emu, tmp_path):
    """AML's schedule stops the instance without the hub; the hub then ends the server (files kept)."""
    hub = Hub(tmp_path / "hub", emulator, extra_config="""
        c.AMLSpawner.stop_schedule = "30 21 * * *"
        c.AMLSpawner.stop_schedule_time_zone = "UTC"
    """).start()
    try:
        spawn_ready(hub, "hal")
        name = hub.instance_name("hal")
        assert "'30 21 * * *'" in str(instances(emu)[name]), instances(emu)[name]  # AML holds the schedule
        now = dt.datetime.fromtimestamp(emu.control("GET", "/_emulator/clock").json()["epoch"], dt.timezone.utc)
        due = now.replace(hour=21, minute=30, second=0, microsecond=0)
        due += dt.timedelta(days=1) if due <= now else dt.timedelta(0)
        r = emu.control("POST", "/_emulator/clock", json={"advance_seconds": (due - now).total_seconds() + 60})
        assert {"name": name, "action": "Stop", "trigger": "Schedule"} in r.json()["done"], r.json()
        hub.wait_for(lambda: hub.server_model("hal") is None, 60, what="the hub to see the scheduled stop")
        assert instances(emu)[name]["state"] == "Stopped"
    finally:
        hub.stop()
