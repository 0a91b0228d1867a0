"""The async compute client against the emulator: lifecycle, progress,
retries, timeouts and the mapping of AML's refusals to domain errors.
Faults are injected into the emulator; nothing is mocked."""

from __future__ import annotations

import asyncio
import threading

import pytest

from aml_jupyterhub.compute import (
    Busy,
    ComputeClient,
    InstanceFailed,
    InstanceSpec,
    InvalidRequest,
    PermissionDenied,
    QuotaExceeded,
    ServiceUnavailable,
    SizeNotOffered,
    Throttled,
)

pytestmark = pytest.mark.asyncio


def client(emu, **kw) -> ComputeClient:
    ml_kw = {k: kw.pop(k) for k in list(kw) if k in ("retry_total", "token", "read_timeout", "workspace")}
    return ComputeClient(emu.ml_client(**ml_kw), wait_poll_interval=0.2, progress_interval=0.1, **kw)


async def test_lifecycle_and_progress(emu):
    emu.set_transitions(create=1.0)
    c = client(emu)
    events = []
    info = await c.create(InstanceSpec("ci-cc", "Standard_DS2_v2", tags={"user": "alice"}), events.append)
    assert info.is_running and info.vm_size == "Standard_DS2_v2" and info.tags == {"user": "alice"}
    assert info.ssh_user == "azureuser" and info.public_ip == "127.0.0.1" and info.ssh_port
    assert info.lab_url.endswith("/instances/ci-cc/lab")
    # progress: the create phase, the poller's status (AML gives no percentage while it runs), then done at 100
    assert events[0].operation == "create" and events[0].state == "Creating"
    assert any(e.status == "InProgress" for e in events)
    percents = [e.percent for e in events if e.percent is not None]
    assert not any(0 < p < 100 for p in percents) and percents[-1] == 100 and events[-1].percent == 100
    elapsed = [e.elapsed for e in events]
    assert elapsed == sorted(elapsed)

    await c.stop("ci-cc")
    assert (await c.get("ci-cc")).is_stopped
    info, how = await c.ensure_running(InstanceSpec("ci-cc", "Standard_DS2_v2"))
    assert how == "started" and info.is_running
    info, how = await c.ensure_running(InstanceSpec("ci-cc", "Standard_DS2_v2"))
    assert how == "reused"
    assert [i.name for i in await c.list()] == ["ci-cc"]
    await c.delete("ci-cc")
    assert await c.get("ci-cc") is None
    await c.delete("ci-cc")  # already gone: fine


async def test_ensure_running_creates_and_waits_for_foreign_operations(emu):
    c = client(emu)
    info, how = await c.ensure_running(InstanceSpec("ci-ens", "Standard_DS1_v2"))
    assert how == "created" and info.is_running
    # someone else stops it; ensure_running waits for Stopped, then starts it
    emu.set_transitions(stop=1.0)
    emu.control("POST", "/_emulator/instances/ci-ens/force", json={"action": "stop"})
    seen = []
    info, how = await c.ensure_running(InstanceSpec("ci-ens", "Standard_DS1_v2"), seen.append)
    assert info.is_running and how in ("started", "waited")
    assert "Stopping" in {e.state for e in seen}


async def test_sizes_and_usage(emu):
    c = client(emu)
    sizes = {s.name: s for s in await c.list_sizes()}
    assert sizes["Standard_DS3_v2"].vcpus == 4
    assert sizes["Standard_DS3_v2"].memory_gb == 14
    assert sizes["Standard_NC6s_v3"].gpus == 1
    assert sizes["Standard_DS3_v2"].price_per_hour > 0
    usage = {u.name: u for u in await c.usage()}
    assert usage["Cores"].current == 0 and usage["Cores"].limit > 0


async def test_region_read_once_then_sizes_of_that_region(emu):
    c = client(emu)
    emu.control("DELETE", "/_emulator/requests")
    assert await c.location() == "westeurope" and await c.location() == "westeurope"
    sizes = {s.name for s in await c.list_sizes("westeurope")}
    assert "Standard_DS3_v2" in sizes and "Standard_ND96asr_v4" not in sizes  # not offered in westeurope
    paths = [r["path"] for r in emu.requests_seen()]
    assert len(paths) == 2, paths  # the workspace once, then the size list alone (no second workspace read)
    assert paths[0].endswith("/workspaces/aml-local") and paths[1].endswith("/locations/westeurope/vmSizes"), paths


async def test_refusals_map_to_domain_errors(emu):
    c = client(emu)
    with pytest.raises(SizeNotOffered) as err:
        await c.create(InstanceSpec("ci-big", "Standard_ND96asr_v4"))
    assert "not offered" in err.value.message and "Pick another size" in err.value.message

    emu.control("PUT", "/_emulator/quota", json={"family": "standardDSv2Family", "limit": 2})
    with pytest.raises(QuotaExceeded) as err:
        await c.create(InstanceSpec("ci-quota", "Standard_DS3_v2"))
    assert "(Standard DSv2 family quota: limit 2 vCPUs, this size needs 4)" in err.value.message

    with pytest.raises(InvalidRequest) as err:
        await c.create(InstanceSpec("ci-01", "Standard_DS1_v2"))
    assert "ci-01" in err.value.message

    with pytest.raises(PermissionDenied) as err:
        await client(emu, token="not-the-token").get("ci-any")
    assert "credential" in err.value.message


async def test_create_failed_carries_amls_text(emu):
    emu.fault(kind="create_failed", code="AllocationFailed", message="Allocation failed. No capacity for Standard_DS1_v2.")
    c = client(emu)
    with pytest.raises(InstanceFailed) as err:
        await c.create(InstanceSpec("ci-cf", "Standard_DS1_v2"))
    assert "Allocation failed. No capacity" in err.value.message
    info = await c.get("ci-cf")
    assert info.is_failed and info.state == "CreateFailed"
    with pytest.raises(InstanceFailed):
        await c.ensure_running(InstanceSpec("ci-cf", "Standard_DS1_v2"))


async def test_start_failure(emu):
    c = client(emu)
    await c.create(InstanceSpec("ci-sf", "Standard_DS1_v2"))
    await c.stop("ci-sf")
    emu.fault(kind="start_failed", message="Compute instance failed to start: capacity is not available.")
    with pytest.raises(InstanceFailed) as err:
        await c.start("ci-sf")
    assert "capacity is not available" in err.value.message
    assert (await c.get("ci-sf")).last_operation["operationStatus"] == "StartFailed"


async def test_throttling_within_budget_succeeds(emu):
    emu.fault(kind="throttle", count=3, retry_after=0)
    info = await client(emu).create(InstanceSpec("ci-thr", "Standard_DS1_v2"))
    assert info.is_running
    assert [r["status"] for r in emu.requests_seen()][:3] == [429, 429, 429]


async def test_throttling_beyond_budget_is_throttled_error(emu):
    emu.fault(kind="throttle", count=20, retry_after=0)
    with pytest.raises(Throttled) as err:
        await client(emu, retry_total=2).get("ci-x")
    assert "Try again" in err.value.message


async def test_persistent_5xx_is_service_unavailable(emu):
    emu.fault(kind="error", count=20, status=503)
    with pytest.raises(ServiceUnavailable) as err:
        await client(emu, retry_total=1).get("ci-x")
    assert "503" in err.value.message


async def test_post_on_busy_instance_is_busy(emu):
    emu.set_transitions(stop=2)
    c = client(emu)
    await c.create(InstanceSpec("ci-bz", "Standard_DS1_v2"))
    stopping = asyncio.create_task(c.stop("ci-bz"))
    await asyncio.sleep(0.3)
    with pytest.raises(Busy):
        await c.restart("ci-bz")
    await stopping


async def test_call_timeout_is_enforced(emu):
    # Throttle with a long Retry-After: the SDK would sleep on it; our call budget ends the wait.
    emu.fault(kind="throttle", count=1, retry_after=30)
    c = client(emu, call_timeout=1.5)
    with pytest.raises(ServiceUnavailable) as err:
        await c.get("ci-slow")
    assert "did not answer within 2 s" in err.value.message or "within 1 s" in err.value.message


async def test_sdk_calls_never_run_on_the_event_loop_thread(emu):
    loop_thread = threading.get_ident()
    seen = []
    ml = emu.ml_client()
    original = ml.compute.get

    def spy(name):
        seen.append(threading.get_ident())
        return original(name)

    ml.compute.get = spy
    c = ComputeClient(ml)
    ticks = 0

    async def ticker():
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    t = asyncio.create_task(ticker())
    emu.fault(kind="throttle", count=1, retry_after=1)  # the SDK sleeps ~1 s inside the call
    await c.get("ci-none")
    t.cancel()
    assert seen and all(tid != loop_thread for tid in seen)
    assert ticks > 20  # the loop kept running while the SDK slept


async def test_resize_a_stopped_instance_through_the_sdks_own_pipeline(emu):
    """azure-ai-ml wraps no resize: the client sends it through the SDK's pipeline (token, retries, api-version)."""
    emu.set_transitions(all=0.3)
    c = client(emu)
    await c.create(InstanceSpec("ci-rs", "Standard_DS2_v2"))
    with pytest.raises(InvalidRequest) as err:  # AML resizes only a stopped instance
        await c.resize("ci-rs", "Standard_DS3_v2")
    assert "only allowed when it is Stopped" in err.value.message
    await c.stop("ci-rs")
    events = []
    await c.resize("ci-rs", "Standard_DS3_v2", events.append)
    info = await c.get("ci-rs")
    assert (info.vm_size, info.state) == ("Standard_DS3_v2", "Stopped")
    assert events[0].operation == "resize" and events[0].state == "Resizing" and events[-1].percent == 100
    resize = [r for r in emu.requests_seen() if r["path"].endswith("/resize")]
    assert [r["method"] for r in resize] == ["POST"] * 2  # refused once, then accepted (api-version and all)

    with pytest.raises(SizeNotOffered):
        await c.resize("ci-rs", "Standard_ND96asr_v4")
    emu.control("PUT", "/_emulator/quota", json={"family": "standardDSv2Family", "limit": 4})
    with pytest.raises(QuotaExceeded):  # a stopped instance holds its cores: the bigger size must fit
        await c.resize("ci-rs", "Standard_DS4_v2")
    assert (await c.get("ci-rs")).vm_size == "Standard_DS3_v2"  # a refused resize changes nothing
    await c.delete("ci-rs")
