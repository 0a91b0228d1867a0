"""Proxy mode with the product's proxy container (``aml-jupyterhub-proxy``:
configurable-http-proxy and the tunnel service) as a local process: a real
hub uses it as its external proxy, tunnels are OpenSSH processes there, the
instances are the emulator's (process runtime, its own sshd)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess

import pytest
import requests

from tests.harness.emulator import instances
from tests.harness.hub import Hub, spawn_ready
from tests.harness.kernel import KernelChannel
from tests.harness.net import wait_until
from tests.harness.proxyservice import ProxyService


@pytest.fixture
def proxy(tmp_path):
    p = ProxyService(tmp_path / "proxy").start()
    yield p
    p.stop()


@pytest.fixture
def hub_with(emulator, emu, tmp_path):
    hubs = []

    def make(proxy: ProxyService, name: str = "hub") -> Hub:
        hub = Hub(tmp_path / name, emulator, proxy=proxy).start()
        hubs.append(hub)
        return hub

    yield make
    for hub in hubs:
        if hub.proc and hub.proc.poll() is None:
            for user in hub.api("GET", "/users").json():
                for server in list(user.get("servers", {})):
                    hub.api("DELETE", hub.server_path(user["name"], server))
        hub.stop()


def listening_pids(port: int) -> set[int]:
    """The processes that listen on TCP ``port`` (from ss)."""
    out = subprocess.run(["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True).stdout
    return {int(part.split("=")[1].split(",")[0]) for part in out.replace(")", ",").split("pid")[1:]
            if "=" in part}


def test_users_traffic_and_websockets_do_not_pass_through_the_hub_and_outlive_its_kill(proxy, hub_with, emu):
    hub = hub_with(proxy)
    spawn_ready(hub, "olga")
    tunnels = proxy.tunnels()
    assert len(tunnels) == 1, tunnels
    (tunnel,) = tunnels.values()
    legs_before = [leg["pid"] for leg in tunnel["legs"]]
    assert len(legs_before) == 2 and all(leg["running"] for leg in tunnel["legs"]), tunnel
    # the route is the tunnel service's port, and what listens there is an ssh of the service: not the hub
    assert hub.server_model("olga")["url"] == "/user/olga/"
    assert proxy.ssh_pids() == sorted(legs_before)
    owners = listening_pids(tunnel["local_port"])
    assert owners and owners <= set(legs_before) and hub.proc.pid not in owners, owners

    async def across_a_hub_kill() -> tuple[str, str, bool]:
        async with KernelChannel(f"{hub.url}/user/olga/api", hub.token) as kernel:
            before = await kernel.run("x = 6 * 7; x")
            hub.kill()
            # while the hub is away: the same socket, the same kernel, its state kept
            during = await kernel.run("x + 1")
            await asyncio.to_thread(hub.start)
            after = await kernel.run("x + 2")
            return before, during + "/" + after, kernel.ws.closed

    before, rest, closed = asyncio.run(across_a_hub_kill())
    assert (before, rest, closed) == ("42", "43/44", False)
    # the restarted hub found the tunnels where they were: same processes, nothing opened twice
    hub.wait_for(lambda: hub.server_model("olga") and hub.server_model("olga")["ready"], 60, what="olga ready")
    (tunnel_after,) = proxy.tunnels().values()
    assert [leg["pid"] for leg in tunnel_after["legs"]] == legs_before
    assert [leg["starts"] for leg in tunnel_after["legs"]] == [1, 1]
    assert hub.user_get("olga", "api/status").status_code == 200
    assert len(instances(emu)) == 1

    # stopping the server closes its tunnels: no ssh left in the service, its key gone from disk
    hub.stop_server("olga")
    assert proxy.tunnels() == {}
    assert proxy.ssh_pids() == []
    assert list(proxy.state_dir.iterdir()) == []


def test_a_tunnel_whose_ssh_dies_is_started_again_on_the_same_port(proxy, hub_with, emu):
    hub = hub_with(proxy)
    spawn_ready(hub, "pavel")
    (tunnel,) = proxy.tunnels().values()
    way_in = tunnel["legs"][0]
    os.kill(way_in["pid"], signal.SIGKILL)
    hub.wait_for(lambda: (t := next(iter(proxy.tunnels().values())))["legs"][0]["starts"] == 2
                 and t["legs"][0]["running"], 30, what="the supervisor to start ssh again")
    (again,) = proxy.tunnels().values()
    assert again["local_port"] == tunnel["local_port"]
    assert again["legs"][0]["pid"] != way_in["pid"]
    hub.wait_for(lambda: hub.user_get("pavel", "api/status").status_code == 200, 30, what="pavel's server again")


def test_tunnels_opened_again_after_the_proxy_container_restarts(proxy, hub_with, emu):
    """The proxy's own restart loses its routes and tunnels (memory, tmpfs);
    the hub's next poll opens the tunnel again and its route check adds the route."""
    hub = hub_with(proxy)
    spawn_ready(hub, "quinn")

    def ssh_pids() -> set:
        return {leg["pid"] for tunnel in proxy.tunnels().values() for leg in tunnel["legs"]}

    before = ssh_pids()
    assert before
    proxy.stop()
    proxy.start()
    # the restart lost them (the hub's poll, every 2 s, may open them again before we look: by new processes)
    hub.wait_for(lambda: len(proxy.tunnels()) == 1 and not ssh_pids() & before, 60,
                 what="the hub's poll to open the tunnel again")
    hub.wait_for(lambda: hub.user_get("quinn", "api/status").status_code == 200, 120,
                 what="quinn's route and tunnel back")


def test_the_tunnel_api_wants_the_token_and_says_what_is_wrong(proxy):
    url = f"{proxy.tunnel_url}/tunnels/x"
    assert requests.get(f"{proxy.tunnel_url}/tunnels", timeout=10).status_code == 403
    assert requests.put(url, json={}, headers={"Authorization": "token wrong"}, timeout=10).status_code == 403
    auth = {"Authorization": f"token {proxy.token}"}
    r = requests.put(url, json={"host": "127.0.0.1"}, headers=auth, timeout=10)
    assert r.status_code == 400 and "private_key" in r.json()["error"]
    key = "-----BEGIN OPENSSH PRIVATE KEY-----\nx\n-----END OPENSSH PRIVATE KEY-----"
    r = requests.put(url, json={"host": "-oProxyCommand=x", "port": 22, "user": "azureuser",
                                "host_key": "ssh-ed25519 AAAA", "remote_port": 1, "private_key": key},
                     headers=auth, timeout=10)
    assert r.status_code == 400 and "host" in r.json()["error"], r.text
    r = requests.put(f"{proxy.tunnel_url}/tunnels/..%2Fetc", json={}, headers=auth, timeout=10)
    assert r.status_code in (400, 404)
    # nothing reachable on that port: ssh's own words, and nothing left behind
    r = requests.put(url, json={"host": "127.0.0.1", "port": 1, "user": "azureuser", "host_key": "ssh-ed25519 AAAA",
                                "remote_port": 8888, "private_key": key}, headers=auth, timeout=60)
    assert r.status_code == 502 and "127.0.0.1:1" in r.json()["error"], r.text
    assert proxy.tunnels() == {} and proxy.ssh_pids() == []
    # the error page CHP shows while the hub is away (no hub here): a 503 (JupyterLab retries those)
    # that says so and reloads itself
    r = requests.get(f"{proxy.url}/hub/home", timeout=10)
    assert r.status_code == 503 and "restarting" in r.text and 'http-equiv="refresh"' in r.text, r.text


def test_the_error_page_logs_no_oauth_code_or_state(proxy):
    """A user's OAuth callback that reaches no server goes to CHP's error page with its URL: the proxy's
    log says what failed, but not the callback's code and state (the hub's log hides them too)."""
    r = requests.get(f"{proxy.url}/user/alice/oauth_callback?code=C0DE-SECRET&state=ST4TE-SECRET", timeout=10)
    assert r.status_code == 503
    wait_until(lambda: "oauth_callback" in proxy.log_tail(20_000), 10, "the error page's log line")
    log = proxy.log_tail(20_000)
    assert "C0DE-SECRET" not in log and "ST4TE-SECRET" not in log, log[-2000:]


def test_an_upgrade_to_the_proxy_container_keeps_a_running_server(emulator, emu, tmp_path):
    """A hub of the old layout (its own proxy, tunnels in the hub) restarted as
    the new one: its running server is found, its tunnel opened in the service
    and its route moved there, without a new start."""
    old = Hub(tmp_path / "hub", emulator).start()
    try:
        spawn_ready(old, "rosa")
        assert old.user_get("rosa", "api/status").status_code == 200
    finally:
        old.stop()  # the hub and the proxy it started
    proxy = ProxyService(tmp_path / "proxy").start()
    new = Hub(tmp_path / "hub", emulator, proxy=proxy)
    try:
        new.start()
        new.wait_for(lambda: new.user_get("rosa", "api/status").status_code == 200, 60,
                     what="rosa's server through the proxy container")
        (tunnel,) = proxy.tunnels().values()
        assert new.server_model("rosa")["ready"]
        assert len(instances(emu)) == 1
        assert [r for r in emu.requests_seen() if r["method"] == "PUT"].__len__() == 1  # not created again
        assert tunnel["legs"][0]["running"]
        new.stop_server("rosa")
        assert proxy.tunnels() == {}
    finally:
        new.stop()
        proxy.stop()


def test_a_restarted_hub_closes_tunnels_that_no_server_of_it_uses(proxy, hub_with, emu):
    """A hub that died between a server's stop and closing its tunnel leaves
    the tunnel open, retried by the service forever: the next hub start closes
    it, and leaves the tunnels of its running servers alone."""
    hub = hub_with(proxy)
    spawn_ready(hub, "sven")
    (name, tunnel), = proxy.tunnels().items()
    hub.kill()
    # what such a hub leaves: a tunnel under a name no server has (here: sven's, opened again under another name)
    (key_file,) = [p for p in (hub.secrets_dir / "instance-keys").rglob("jh*") if p.is_file() and p.suffix != ".pub"]
    auth = {"Authorization": f"token {proxy.token}"}
    r = requests.put(f"{proxy.tunnel_url}/tunnels/ghost-00000000",
                     json={**tunnel["spec"], "api_port": 0, "hub_host": "", "hub_port": 0,  # sven's holds the way back
                           "private_key": key_file.read_text()}, headers=auth, timeout=60)
    assert r.status_code == 200, r.text
    assert set(proxy.tunnels()) == {name, "ghost-00000000"}
    legs = [leg["pid"] for leg in proxy.tunnels()[name]["legs"]]
    hub.start()
    hub.wait_for(lambda: set(proxy.tunnels()) == {name}, 60, what="the ghost tunnel to be closed")
    assert [leg["pid"] for leg in proxy.tunnels()[name]["legs"]] == legs  # sven's own left alone
    assert "closing tunnel ghost-00000000" in hub.log_tail(20000)
    assert hub.user_get("sven", "api/status").status_code == 200
    assert sorted(proxy.ssh_pids()) == sorted(legs)


def test_a_tunnel_service_whose_ssh_cannot_run_says_so_at_once_and_keeps_nothing(tmp_path):
    from aml_jupyterhub.tunnel_service import TunnelError, TunnelRegistry
    from aml_jupyterhub.tunnels import TunnelSpec

    async def attempt() -> str:
        registry = TunnelRegistry(tmp_path / "state", bind_ip="127.0.0.1", ssh=str(tmp_path / "no-ssh-here"))
        spec = TunnelSpec(host="127.0.0.1", port=22, user="azureuser", host_key="ssh-ed25519 AAAA", remote_port=8888)
        with pytest.raises(TunnelError) as e:
            await registry.open("x", spec, "-----BEGIN OPENSSH PRIVATE KEY-----\nx\n-----END OPENSSH PRIVATE KEY-----")
        assert registry.tunnels == {} and list((tmp_path / "state").iterdir()) == []
        return str(e.value)

    message = asyncio.run(attempt())
    assert message.startswith(f"cannot run ssh ({tmp_path / 'no-ssh-here'})"), message
    assert "OpenSSH" in message
