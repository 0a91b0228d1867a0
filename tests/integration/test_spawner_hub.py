"""AMLSpawner through a real JupyterHub, configurable-http-proxy and the
emulator (process runtime), driven through the hub's REST API."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
from pathlib import Path

import pytest
import requests

from tests.harness.emulator import instances
from tests.harness.hub import Hub, spawn_ready
from tests.harness.kernel import execute
from tests.harness.net import free_port, wait_for_http


@pytest.fixture(scope="module")
def hub(emulator, tmp_path_factory):
    h = Hub(tmp_path_factory.mktemp("hub"), emulator).start()
    yield h
    h.stop()


@pytest.fixture
def fresh(hub, emu):
    """The module's hub, with a reset emulator; servers stopped afterwards."""
    emu.set_transitions(all=0.3)
    yield hub
    for user in hub.api("GET", "/users").json():
        for server in list(user.get("servers", {})):
            hub.api("DELETE", hub.server_path(user["name"], server))
    for user in hub.api("GET", "/users").json():
        hub.wait_for(lambda u=user["name"]: not hub.user_model(u)["servers"], 60, what="servers to stop")


async def run_code(hub: Hub, user: str, code: str, server: str = "") -> str:
    """Start a kernel through the proxy and run ``code`` over its websocket."""
    return await execute(f"{hub.url}/user/{user}/{server + '/' if server else ''}api", hub.token, code, username=user)



def test_spawn_progress_kernel_stop_and_reuse(fresh, emu):
    hub = fresh
    emu.set_transitions(create=2)
    events = spawn_ready(hub, "alice", options={"profile": "medium"})
    # progress: real AML states and phases, monotonic, ending ready
    messages = [e["message"] for e in events]
    assert any("is Creating" in m for m in messages), messages
    assert any("Running" in m for m in messages)
    assert any("Starting the Jupyter server" in m for m in messages)
    percents = [e["progress"] for e in events]
    assert percents == sorted(percents)
    name = hub.instance_name("alice")
    inst = instances(emu)[name]
    assert inst["vm_size"] == "Standard_DS3_v2" and inst["state"] == "Running"
    assert inst["tags"]["jupyterhub-user"] == "alice"

    status = hub.user_get("alice", "api/status")
    assert status.status_code == 200, status.text
    assert asyncio.run(run_code(hub, "alice", "1+1")) == "2"

    # write a file, stop: the instance is Stopped, not deleted
    r = hub.user_request("PUT", "alice", "api/contents/kept.txt",
                         json={"type": "file", "format": "text", "content": "survives stop"})
    assert r.status_code in (200, 201), r.text
    hub.stop_server("alice")
    assert instances(emu)[name]["state"] == "Stopped"
    state_after = hub.user_model("alice")
    assert state_after["servers"] == {}

    # start again: the same instance, started, with the file
    emu.control("DELETE", "/_emulator/requests")
    spawn_ready(hub, "alice", options={"profile": "medium"})
    calls = [(r["method"], r["path"].rsplit("/", 1)[-1]) for r in emu.requests_seen()]
    assert ("POST", "start") in calls and not any(m == "PUT" for m, _ in calls), calls
    assert list(instances(emu)) == [name]
    r = hub.user_get("alice", "api/contents/kept.txt")
    assert r.json()["content"] == "survives stop"


def test_state_holds_what_finds_the_instance_and_no_secret(fresh, emu):
    hub = fresh
    spawn_ready(hub, "bob")
    state = hub.api("GET", "/users/bob", params={"include_stopped_servers": "1"}).json()["servers"][""]["state"]
    assert state["instance_name"] == hub.instance_name("bob")
    assert state["workspace"]["workspace_name"] == "aml-local"
    assert state["mode"] == "proxy" and state["pid"] and state["local_port"]
    text = json.dumps(state)
    assert "PRIVATE KEY" not in text and hub.token not in text
    assert "JUPYTERHUB_API_TOKEN" not in text


def test_named_servers_get_their_own_instances(fresh, emu):
    hub = fresh
    spawn_ready(hub, "carol")
    spawn_ready(hub, "carol", "gpu", {"profile": "gpu"})
    names = instances(emu)
    assert hub.instance_name("carol") in names and hub.instance_name("carol", "gpu") in names
    assert names[hub.instance_name("carol", "gpu")]["vm_size"] == "Standard_NC4as_T4_v3"
    assert hub.user_get("carol", "api/status", server="gpu").status_code == 200
    hub.stop_server("carol", "gpu")
    assert instances(emu)[hub.instance_name("carol", "gpu")]["state"] == "Stopped"
    assert instances(emu)[hub.instance_name("carol")]["state"] == "Running"


@pytest.mark.parametrize(
    "options,text",
    [
        ({"profile": "huge"}, "Unknown size 'huge'"),
        ({"profile": "small", "colour": "red"}, "Unknown option(s) colour"),
        ({"profile": 5}, "must be a string"),
    ],
)
def test_bad_user_options_refused_and_nothing_created(fresh, emu, options, text):
    r = fresh.spawn("dave", options=options)
    assert r.status_code in (201, 202), r.text  # 201 when the refusal beat the response
    events = fresh.progress("dave")
    assert events[-1].get("failed") and text in events[-1]["message"], events
    assert instances(emu) == {}
    assert [r for r in emu.requests_seen() if r["method"] != "GET"] == []


def test_bad_user_options_refused_synchronously(emulator, emu, tmp_path):
    """With JupyterHub's default slow_spawn_timeout the REST call itself answers 400."""
    hub = Hub(tmp_path / "hub", emulator, slow_spawn_timeout=10).start()
    try:
        r = hub.spawn("dave", options={"profile": "huge"})
        assert r.status_code == 400, r.text
        assert "Unknown size 'huge'. Choose one of: small, medium, large, gpu." == r.json()["message"]
        assert instances(emu) == {}
    finally:
        hub.stop()


def test_throttling_burst_still_spawns(fresh, emu):
    emu.fault(kind="throttle", count=4, retry_after=0)
    spawn_ready(fresh, "erin")
    assert sum(1 for r in emu.requests_seen() if r["status"] == 429) == 4


def test_create_failed_ends_spawn_with_amls_message(fresh, emu):
    emu.fault(kind="create_failed", code="AllocationFailed", message="Allocation failed: no capacity in westeurope.")
    fresh.spawn("frank")
    events = fresh.progress("frank")
    assert events[-1].get("failed")
    assert "Allocation failed: no capacity in westeurope." in events[-1]["message"]
    # the failed instance is not left behind
    fresh.wait_for(lambda: fresh.instance_name("frank") not in instances(emu), 30, what="failed instance removed")


def test_quota_ends_spawn_with_numbers(fresh, emu):
    emu.control("PUT", "/_emulator/quota", json={"family": "standardDSv2Family", "limit": 1})
    fresh.spawn("gina", options={"profile": "small"})
    events = fresh.progress("gina")
    assert events[-1].get("failed")
    assert "quota" in events[-1]["message"] and "limit 1 vCPUs" in events[-1]["message"]
    assert instances(emu) == {}


def test_instance_stopped_or_deleted_behind_the_hubs_back(fresh, emu):
    hub = fresh
    spawn_ready(hub, "henry")
    spawn_ready(hub, "henry", "two")
    emu.control("POST", f"/_emulator/instances/{hub.instance_name('henry')}/force", json={"action": "idle_shutdown"})
    hub.wait_for(lambda: hub.server_model("henry") is None, 60, what="poll to notice the stop")
    emu.control("POST", f"/_emulator/instances/{hub.instance_name('henry', 'two')}/force", json={"action": "delete"})
    hub.wait_for(lambda: hub.server_model("henry", "two") is None, 60, what="poll to notice the delete")


def test_hub_restart_keeps_server_reachable(emulator, emu, tmp_path):
    hub = Hub(tmp_path / "hub", emulator).start()
    try:
        spawn_ready(hub, "ivan")
        assert hub.user_get("ivan", "api/status").status_code == 200
        hub.kill()
        hub.start()
        # poll re-attached: the same instance, tunnels re-opened, nothing started twice
        assert hub.server_model("ivan")["ready"]
        assert hub.user_get("ivan", "api/status").status_code == 200
        assert asyncio.run(run_code(hub, "ivan", "2+3")) == "5"
        assert len(instances(emu)) == 1
        creates = [r for r in emu.requests_seen() if r["method"] == "PUT"]
        assert len(creates) == 1
        hub.stop_server("ivan")
    finally:
        hub.stop()


def test_a_fresh_proxy_sends_what_has_no_route_yet_to_the_hub(fresh, tmp_path):
    """Between the proxy's start and the hub adding its routes (every hub
    restart in the compose stack, where the proxy runs in the hub's
    container), the proxy must not answer 404 itself: JupyterLab takes a 404
    from its kernel's URL for a dead kernel. A second proxy started with the
    very command the hub used, before anyone adds a route, passes a user's
    server URL to the hub."""
    spawn_ready(fresh, "quinn")
    pid = int((fresh.workdir / "proxy.pid").read_text())
    command = Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").decode().split("\0")
    port, api_port = free_port(), free_port()
    for flag, value in (("--port", port), ("--api-port", api_port)):
        command[command.index(flag) + 1] = str(value)
    token = secrets.token_hex(8)
    with open(tmp_path / "proxy.log", "wb") as log:
        proxy = subprocess.Popen(command, env={**os.environ, "CONFIGPROXY_AUTH_TOKEN": token},
                                 stdout=log, stderr=subprocess.STDOUT)
    try:
        api = requests.Session()
        api.trust_env = False
        api.headers["Authorization"] = f"token {token}"
        wait_for_http(f"http://127.0.0.1:{api_port}/api/routes", timeout=30, session=api)
        r = requests.get(f"http://127.0.0.1:{port}/user/quinn/api/status", allow_redirects=False, timeout=30,
                         headers={"Authorization": f"token {fresh.token}"})
        # the hub answered (its version header), not the proxy's bare 404
        assert r.status_code != 404 and "X-JupyterHub-Version" in r.headers, (r.status_code, dict(r.headers))
    finally:
        proxy.terminate()
        proxy.wait(10)
    assert fresh.user_get("quinn", "api/status").status_code == 200


def test_polls_reuse_one_ssh_connection(fresh, emu):
    """poll() checks the server over the connection it has; it does not make
    a new one (and a new reverse tunnel) every time."""
    import time

    hub = fresh
    spawn_ready(hub, "pat")
    log = emu.state_dir / "instances" / hub.instance_name("pat") / "sshd.log"
    logins = lambda: log.read_text().count("authenticated as")  # noqa: E731
    before = logins()
    time.sleep(7)  # the test hub polls every 2 s
    assert hub.server_model("pat")["ready"]
    assert logins() == before, log.read_text()[-2000:]
    assert hub.user_get("pat", "api/status").status_code == 200


def test_a_huge_or_forged_option_is_refused_without_flooding_the_log(fresh, emu):
    hub = fresh
    before = hub.log_path.stat().st_size
    huge = "x" * 2_000_000
    forged = "small\n[E 2026-01-01 00:00:00 JupyterHub] forged line"
    for options in ({"profile": huge}, {huge[:100_000]: "small"}, {"profile": forged}):
        r = hub.spawn("vera", options=options)
        assert r.status_code in (201, 202, 400), r.text[:300]
        events = hub.progress("vera")
        assert events[-1].get("failed") and len(events[-1]["message"]) < 500, events[-1]["message"][:300]
        hub.wait_for(lambda: hub.server_model("vera") is None, 30, what="the refused server to clear")
    grown = hub.log_path.stat().st_size - before
    assert grown < 50_000, f"the log grew by {grown} bytes"
    assert "\n[E 2026-01-01 00:00:00 JupyterHub] forged line" not in hub.log_tail(200_000)
    assert instances(emu) == {}
