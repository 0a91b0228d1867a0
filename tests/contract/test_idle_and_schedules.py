"""Idle shutdown and start/stop schedules, carried out by the emulator as AML
does, seen through the real azure-ai-ml SDK. The emulator's clock is moved
forward (POST /_emulator/clock) instead of waiting real minutes; instances
are real (process runtime): AML's own JupyterLab and SSH servers run."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from pathlib import Path

import asyncssh
import pytest
import requests
from azure.ai.ml.entities import (
    AssignedUserConfiguration,
    ComputeInstance,
    ComputeInstanceSshSettings,
    ComputeSchedules,
    ComputeStartStopSchedule,
    CronTrigger,
    RecurrencePattern,
    RecurrenceTrigger,
)

from aml_emulator.aad import IdentityConfig
from tests.harness.emulator import EmulatorProcess, instance
from tests.harness.kernel import start_busy
from tests.harness.login import browser, open_with_login
from tests.harness.net import free_port

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="the process runtime needs Linux /proc")

IDENTITY = IdentityConfig.load(None)
ALICE = next(u for u in IDENTITY.users if u.username == "alice")


def advance(emu, seconds: float) -> dict:
    r = emu.control("POST", "/_emulator/clock", json={"advance_seconds": seconds})
    assert r.status_code == 200, r.text
    emu.control("POST", "/_emulator/wait").raise_for_status()
    return r.json()


def emulator_now(emu) -> dt.datetime:
    return dt.datetime.fromtimestamp(emu.control("GET", "/_emulator/clock").json()["epoch"], dt.timezone.utc)


def seconds_until(emu, hour: int, minute: int = 0) -> float:
    """From the emulator's now to the next hh:mm UTC, plus a minute."""
    now = emulator_now(emu)
    due = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if due <= now:
        due += dt.timedelta(days=1)
    return (due - now).total_seconds() + 60


def last_op(ml, name: str) -> dict:
    """The instance's state and lastOperation, as the SDK reads them (its keys
    are camelCase in 1.35 and snake_case in older SDKs: both are read)."""
    ci = ml.compute.get(name)
    op = {k.replace("_", "").lower(): v for k, v in (ci.last_operation or {}).items()}
    return {"state": ci.state, "operation_name": op.get("operationname"), "operation_trigger": op.get("operationtrigger"),
            "operation_status": op.get("operationstatus")}


def open_lab(emu, name: str) -> tuple[str, str]:
    """Open the instance's JupyterLab as its user (AML's own Jupyter server
    starts on first use); return that server's API URL on the machine and
    the token it requires (which the emulator's application proxy adds)."""
    r = open_with_login(browser(emu.ca_file), f"{emu.base_url}/instances/{name}/lab", "alice", "alice-password")
    assert r.status_code == 200, r.text[:300]
    jupyter = instance(emu, name)["runtime_data"]["jupyter"]
    return f"http://127.0.0.1:{jupyter['port']}{jupyter['base_path']}api", jupyter["token"]


def for_alice(**kw) -> ComputeInstance:
    return ComputeInstance(size="Standard_DS1_v2", create_on_behalf_of=AssignedUserConfiguration(
        user_tenant_id=IDENTITY.tenant_id, user_object_id=ALICE.oid), **kw)


# ---- idle shutdown ----------------------------------------------------------------------


def test_idle_instance_is_stopped_after_its_idle_time_as_an_idle_shutdown(emu):
    ml = emu.ml_client()
    ml.compute.begin_create_or_update(ComputeInstance(
        name="ci-idle", size="Standard_DS1_v2", idle_time_before_shutdown_minutes=15)).result()
    advance(emu, 14 * 60)
    assert last_op(ml, "ci-idle")["state"] == "Running"  # not yet
    done = advance(emu, 2 * 60)
    assert done["done"] == [{"name": "ci-idle", "action": "Stop", "trigger": "IdleShutdown"}]
    assert last_op(ml, "ci-idle") == {"state": "Stopped", "operation_name": "Stop", "operation_trigger": "IdleShutdown",
                                      "operation_status": "Succeeded"}


def test_instance_without_idle_time_keeps_running(emu):
    ml = emu.ml_client()
    ml.compute.begin_create_or_update(ComputeInstance(name="ci-noidle", size="Standard_DS1_v2")).result()
    advance(emu, 3 * 24 * 3600)
    assert last_op(ml, "ci-noidle")["state"] == "Running"


def test_busy_kernel_on_amls_jupyter_keeps_it_running_and_an_idle_one_does_not(emu):
    ml = emu.ml_client()
    ml.compute.begin_create_or_update(for_alice(name="ci-busy", idle_time_before_shutdown_minutes=15)).result()
    api, token = open_lab(emu, "ci-busy")
    kernel_id = asyncio.run(start_busy(api, token, page_url=api[: -len("api")] + "lab"))  # a cell running time.sleep
    advance(emu, 16 * 60)
    assert last_op(ml, "ci-busy")["state"] == "Running"
    advance(emu, 30 * 60)
    assert last_op(ml, "ci-busy")["state"] == "Running"

    # the cell ends (interrupted): the kernel stays open but quiet, which AML counts as idle
    lab = requests.Session()
    lab.headers["Authorization"] = f"token {token}"
    lab.get(api[: -len("api")] + "lab", timeout=30).raise_for_status()
    lab.post(f"{api}/kernels/{kernel_id}/interrupt", headers={"X-XSRFToken": lab.cookies["_xsrf"]},
             timeout=30).raise_for_status()
    deadline = time.monotonic() + 60  # (a bare 100 quick reads was not enough on a loaded machine)
    while lab.get(f"{api}/kernels/{kernel_id}", timeout=30).json()["execution_state"] != "idle":
        assert time.monotonic() < deadline, "the interrupted kernel never became idle"
        time.sleep(0.2)
    advance(emu, 10)  # AML's detection lags: the quiet kernel is seen from here on
    advance(emu, 16 * 60)
    op = last_op(ml, "ci-busy")
    assert (op["state"], op["operation_trigger"]) == ("Stopped", "IdleShutdown")


def test_a_server_started_over_ssh_is_not_seen_by_idle_detection(emu):
    """What the hub does (jupyterhub-singleuser on its own port, over SSH) is
    invisible to AML's idle detection: a busy kernel there does not keep the
    instance running. Faithful to AML; the hub has to live with it."""
    key = asyncssh.generate_private_key("ssh-ed25519")
    ml = emu.ml_client()
    ml.compute.begin_create_or_update(ComputeInstance(
        name="ci-ssh", size="Standard_DS1_v2", idle_time_before_shutdown_minutes=15,
        ssh_public_access_enabled=True,
        ssh_settings=ComputeInstanceSshSettings(ssh_key_value=key.export_public_key().decode()))).result()
    conn = instance(emu, "ci-ssh")["connectivity"]
    port, token = free_port(), "hub-token"

    async def busy_over_ssh():
        async with asyncssh.connect(conn["public_ip"], conn["ssh_port"], username="azureuser", client_keys=[key],
                                    known_hosts=None, agent_path=None) as ssh:
            # detached, as the hub's start leaves its server running
            await ssh.run(f"nohup python3 -m jupyter_server --no-browser --port={port} "
                          f"--IdentityProvider.token={token} >server.log 2>&1 &", check=True)
        for _ in range(300):
            try:
                async with asyncio.timeout(2):
                    _, writer = await asyncio.open_connection("127.0.0.1", port)
                    writer.close()
                    break
            except (OSError, TimeoutError):
                await asyncio.sleep(0.2)
        return await start_busy(f"http://127.0.0.1:{port}/api", token)

    asyncio.run(busy_over_ssh())
    assert requests.get(f"http://127.0.0.1:{port}/api/status", headers={"Authorization": f"token {token}"},
                        timeout=30).json()["kernels"] == 1
    advance(emu, 16 * 60)
    op = last_op(ml, "ci-ssh")
    assert (op["state"], op["operation_trigger"]) == ("Stopped", "IdleShutdown")


def test_update_idle_shutdown_setting(emu):
    ml = emu.ml_client()
    ml.compute.begin_create_or_update(ComputeInstance(
        name="ci-upd", size="Standard_DS1_v2", idle_time_before_shutdown_minutes=60)).result()
    path = emu.ws_path() + "/computes/ci-upd/updateIdleShutdownSetting"
    advance(emu, 40 * 60)

    # below the time already idle (40 min): the idle clock starts again, no stop at once
    r = emu.arm("POST", path, json={"idleTimeBeforeShutdown": "PT30M"})
    assert r.status_code == 200, r.text
    assert ml.compute.get("ci-upd").idle_time_before_shutdown_minutes == 30
    advance(emu, 20 * 60)
    assert last_op(ml, "ci-upd")["state"] == "Running"
    advance(emu, 11 * 60)
    assert last_op(ml, "ci-upd")["operation_trigger"] == "IdleShutdown"

    for bad in ("PT10M", "PT4321M", "PT1H"):
        r = emu.arm("POST", path, json={"idleTimeBeforeShutdown": bad})
        assert r.status_code == 400 and "idleTimeBeforeShutdown" in r.json()["error"]["message"], r.text
    r = emu.arm("POST", path, json={})
    assert r.status_code == 400 and "PT30M" in r.json()["error"]["message"]


# ---- schedules ---------------------------------------------------------------------------------


def test_sdk_schedules_stop_and_start_the_instance(emu):
    ml = emu.ml_client()
    ml.compute.begin_create_or_update(ComputeInstance(
        name="ci-sched", size="Standard_DS1_v2",
        schedules=ComputeSchedules(compute_start_stop=[
            ComputeStartStopSchedule(action="stop", trigger=CronTrigger(expression="0 18 * * *", time_zone="UTC")),
            ComputeStartStopSchedule(action="start", trigger=RecurrenceTrigger(
                frequency="day", interval=1, schedule=RecurrencePattern(hours=[8], minutes=[0]))),
        ]))).result()
    got = ml.compute.get("ci-sched").schedules.compute_start_stop
    assert [(s.action.lower(), s.state, s.provisioning_state) for s in got] == [
        ("stop", "Enabled", "Completed"), ("start", "Enabled", "Completed")]
    assert all(s.schedule_id for s in got)

    done = advance(emu, seconds_until(emu, 18))
    assert done["done"] == [{"name": "ci-sched", "action": "Stop", "trigger": "Schedule"}]
    op = last_op(ml, "ci-sched")
    assert (op["state"], op["operation_name"], op["operation_trigger"], op["operation_status"]) == (
        "Stopped", "Stop", "Schedule", "Succeeded")

    advance(emu, seconds_until(emu, 8))
    op = last_op(ml, "ci-sched")
    assert (op["state"], op["operation_name"], op["operation_trigger"]) == ("Running", "Start", "Schedule")


def test_one_advance_over_a_night_runs_both_schedules_in_order(emu):
    ml = emu.ml_client()
    ml.compute.begin_create_or_update(ComputeInstance(
        name="ci-night", size="Standard_DS1_v2",
        schedules=ComputeSchedules(compute_start_stop=[
            ComputeStartStopSchedule(action="Stop", trigger=CronTrigger(expression="0 18 * * *")),
            ComputeStartStopSchedule(action="Start", trigger=CronTrigger(expression="0 8 * * *")),
        ]))).result()
    # The suite's clock is wherever earlier tests left it: go to 17:01 first, so
    # that the one long advance below crosses exactly one night (from 17:01 it
    # ends 09:01; started from, say, 17:30 a single "until 17:00 + 16 h" would
    # cross two nights).
    advance(emu, seconds_until(emu, 17))
    done = advance(emu, 16 * 3600)  # 17:01 -> 09:01: 18:00 Stop, then 08:00 Start
    assert [d["action"] for d in done["done"]] == ["Stop", "Start"]
    assert last_op(ml, "ci-night")["state"] == "Running"


def test_disabled_schedule_does_nothing(emu):
    ml = emu.ml_client()
    ml.compute.begin_create_or_update(ComputeInstance(
        name="ci-off", size="Standard_DS1_v2",
        schedules=ComputeSchedules(compute_start_stop=[ComputeStartStopSchedule(
            action="Stop", state="Disabled", trigger=CronTrigger(expression="0 * * * *"))]))).result()
    advance(emu, 2 * 3600)
    assert last_op(ml, "ci-off")["state"] == "Running"


def test_schedule_in_an_unsupported_time_zone_is_refused(emu):
    r = emu.arm("PUT", emu.ws_path() + "/computes/ci-tz", json={"properties": {
        "computeType": "ComputeInstance", "properties": {"vmSize": "Standard_DS1_v2", "schedules": {
            "computeStartStop": [{"action": "Stop", "status": "Enabled", "triggerType": "Cron",
                                  "cron": {"expression": "0 18 * * *", "timeZone": "Middle Earth Time"}}]}}}})
    assert r.status_code == 400, r.text
    assert "time zone 'Middle Earth Time' is not supported" in r.json()["error"]["message"]
    assert instance(emu, "ci-tz") is None


def test_clock_endpoint_refuses_going_back(emu):
    for body in ({"advance_seconds": -1}, {}, {"advance_seconds": "soon"}):
        r = emu.control("POST", "/_emulator/clock", json=body)
        assert r.status_code == 400 and "advance_seconds" in r.json()["error"]


def test_schedules_added_later_by_begin_update_are_carried_out(emu):
    ml = emu.ml_client()
    ml.compute.begin_create_or_update(ComputeInstance(name="ci-later", size="Standard_DS1_v2")).result()
    ci = ml.compute.get("ci-later")
    ci.schedules = ComputeSchedules(compute_start_stop=[
        ComputeStartStopSchedule(action="Stop", trigger=CronTrigger(expression="30 18 * * *"))])
    ml.compute.begin_update(ci).result()
    assert [s.action for s in ml.compute.get("ci-later").schedules.compute_start_stop] == ["Stop"]
    advance(emu, seconds_until(emu, 18, 30))
    op = last_op(ml, "ci-later")
    assert (op["state"], op["operation_trigger"]) == ("Stopped", "Schedule")


def test_clock_and_idle_time_survive_an_emulator_restart(tmp_path):
    emu = EmulatorProcess(tmp_path / "emu", ["--transition", "all=0.2", "--poll-interval", "0.2"]).start()
    try:
        ml = emu.ml_client()
        ml.compute.begin_create_or_update(ComputeInstance(
            name="ci-restart", size="Standard_DS1_v2", idle_time_before_shutdown_minutes=15)).result()
        advance(emu, 10 * 60)
        before = emu.control("GET", "/_emulator/clock").json()
        emu.stop()
        emu.start()
        after = emu.control("GET", "/_emulator/clock").json()
        assert after["offset_seconds"] == before["offset_seconds"] and after["epoch"] >= before["epoch"]
        advance(emu, 4 * 60)  # 14 minutes idle in all
        assert last_op(emu.ml_client(), "ci-restart")["state"] == "Running"
        advance(emu, 2 * 60)
        assert last_op(emu.ml_client(), "ci-restart")["operation_trigger"] == "IdleShutdown"
    finally:
        try:
            emu.reset()
        finally:
            emu.stop()
