"""Direct mode on the emulator's process runtime: the hub (with JupyterHub's
internal TLS) starts the server over SSH, the proxy routes straight to the
instance's private IP and the server's port, and the server accepts only the
hub's and the proxy's certificates. No tunnel carries a byte."""

from __future__ import annotations

import asyncio
import ssl
import subprocess

import pytest
import requests

from tests.harness.emulator import instance, state_of
from tests.harness.hub import Hub, spawn_ready
from tests.harness.kernel import KernelChannel
from tests.harness.net import free_port
from tests.harness.proxyservice import ProxyService


def listening_ports(pid: int) -> set[int]:
    """The TCP ports process ``pid`` listens on (from ss)."""
    out = subprocess.run(["ss", "-Hltnp"], capture_output=True, text=True).stdout
    return {int(line.split()[3].rsplit(":", 1)[1]) for line in out.splitlines() if f"pid={pid}," in line}


@pytest.fixture
def direct_hub(emulator, emu, tmp_path):
    workdir = tmp_path / "hub"
    hub = Hub(workdir, emulator, extra_config=f"""
        c.JupyterHub.internal_ssl = True
        c.JupyterHub.internal_certs_location = "{workdir}/internal-ssl"
        c.ConfigurableHTTPProxy.api_url = "https://127.0.0.1:{free_port()}"
        c.AMLSpawner.connect_mode = "direct"
        c.AMLSpawner.ssh_address = "private"
        c.AMLSpawner.stop_action = "stop"
    """)
    hub.certs = workdir / "internal-ssl"
    hub.start()
    yield hub
    hub.stop()


def server_state(hub: Hub, user: str) -> dict:
    return hub.user_model(user)["servers"][""]["state"]


def tls_client(hub: Hub, component: str | None) -> ssl.SSLContext:
    """A client context that trusts servers as the proxy does, with ``component``'s certificate (or none)."""
    ctx = ssl.create_default_context(cafile=str(hub.certs / "proxy-client-ca_trust.crt"))  # as the proxy trusts
    if component:
        ctx.load_cert_chain(hub.certs / component / f"{component}.crt", hub.certs / component / f"{component}.key")
    return ctx


async def status_with(ctx: ssl.SSLContext, host: str, port: int, path: str) -> str:
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port, ssl=ctx), 10)
    writer.write(f"GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
    await writer.drain()
    line = (await asyncio.wait_for(reader.readline(), 10)).decode()
    writer.close()
    return line.split()[1]


def test_direct_mode_routes_to_the_private_ip_with_internal_tls_and_no_tunnel(direct_hub, emu):
    hub = direct_hub
    events = spawn_ready(hub, "dora")
    assert not any("tunnel" in e["message"].lower() for e in events), events
    state = server_state(hub, "dora")
    name = state["instance_name"]
    private_ip = instance(emu, name)["connectivity"]["private_ip"]
    assert (state["mode"], state["server_ip"], state["scheme"]) == ("direct", private_ip, "https")
    assert state["api_port"] == 0 and state["local_port"] == state["remote_port"]
    port = state["remote_port"]

    # the user's traffic, websockets too, goes through the proxy to the server's own port
    assert hub.user_get("dora", "api/status").status_code == 200

    async def kernel_round_trip() -> str:
        async with KernelChannel(f"{hub.url}/user/dora/api", hub.token) as kernel:
            return await kernel.run("sum(range(10))")

    assert asyncio.run(kernel_round_trip()) == "45"
    # nothing of the hub listens for the server: no tunnel's local end, only the hub's own port
    assert listening_ports(hub.proc.pid) == {hub.hub_port}

    # the server takes TLS only, and only with a certificate of the hub's CAs (its cert names the private IP)
    assert asyncio.run(status_with(tls_client(hub, "proxy-client"), private_ip, port, "/user/dora/api")) == "200"
    with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError, asyncio.IncompleteReadError)):
        asyncio.run(status_with(tls_client(hub, None), private_ip, port, "/user/dora/api"))
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"http://{private_ip}:{port}/user/dora/api", timeout=10)

    # the server's key is on the instance only (0600), none is left in the hub's certificate store
    home = emu.state_dir / "instances" / name / "home"
    tls_dir = home / ".aml-jupyterhub" / "servers" / "dora-default" / "tls"
    assert sorted(p.name for p in tls_dir.iterdir()) == ["ca.pem", "cert.pem", "key.pem"]
    assert (tls_dir / "key.pem").stat().st_mode & 0o777 == 0o600
    assert not [p for p in hub.certs.iterdir() if p.name.startswith("server-")]

    # a hub restart (killed): the server keeps answering, and the new hub watches it over SSH again
    hub.kill()
    assert asyncio.run(status_with(tls_client(hub, "proxy-client"), private_ip, port, "/user/dora/api")) == "200"
    hub.start()
    hub.wait_for(lambda: hub.user_get("dora", "api/status").status_code == 200, 60, what="dora's server")
    assert server_state(hub, "dora")["remote_port"] == port

    # stop: the server ends, its key leaves the instance, and the instance is stopped
    hub.stop_server("dora")
    assert not tls_dir.exists()
    hub.wait_for(lambda: state_of(emu, name) == "Stopped", 60, what=f"{name} stopped")


def test_direct_mode_without_internal_tls_refuses_before_making_an_instance(make_hub, emu):
    hub = make_hub('c.AMLSpawner.connect_mode = "direct"\nc.AMLSpawner.stop_action = "stop"\n')
    r = hub.spawn("eli")
    assert r.status_code in (201, 202), r.text
    events = hub.progress("eli")
    assert events[-1].get("failed"), events
    assert "internal TLS" in events[-1]["message"], events[-1]
    # refused before anything was asked of Azure: no instance made
    assert instance(emu, hub.instance_name("eli")) is None


def test_direct_mode_with_the_proxy_container_the_hub_shares_its_tls_and_a_hub_kill_cuts_nothing(emulator, emu,
                                                                                                  tmp_path):
    """compose.yaml's layout: the proxy in its own container starts plain, takes the proxy's certificates
    the hub puts on the shared volume (never a CA key), and keeps running (same CHP, same websocket) across
    a hub kill; its API then takes only the hub's certificate."""
    proxy = ProxyService(tmp_path / "proxy").start()
    workdir = tmp_path / "hub"
    hub = Hub(workdir, emulator, proxy=proxy, extra_config=f"""
        c.JupyterHub.internal_ssl = True
        c.JupyterHub.internal_certs_location = "{workdir}/internal-ssl"
        c.ConfigurableHTTPProxy.api_url = "https://127.0.0.1:{proxy.api_port}"
        c.HubDefaultProxy.tls_share_dir = "{proxy.tls_dir}"
        c.AMLSpawner.connect_mode = "direct"
        c.AMLSpawner.tunnel_service_url = ""
        c.AMLSpawner.stop_action = "stop"
    """)
    hub.certs = workdir / "internal-ssl"
    try:
        plain_chp = proxy.chp_pids()
        hub.start()
        shared = sorted(p.name for p in proxy.tls_dir.iterdir())
        # (and APPLIED: the proxy's answer, the setup its CHP runs with)
        assert shared == ["APPLIED", "READY", "proxy-api-ca.crt", "proxy-api.crt", "proxy-api.key", "proxy-client-ca.crt",
                          "proxy-client.crt", "proxy-client.key"], shared
        assert all((proxy.tls_dir / n).stat().st_mode & 0o777 == 0o600 for n in shared)
        assert "PRIVATE KEY" not in "".join((proxy.tls_dir / n).read_text() for n in shared if n.endswith("ca.crt"))
        tls_chp = proxy.chp_pids()
        assert tls_chp and tls_chp != plain_chp  # started again with the certificates
        spawn_ready(hub, "fern")
        assert server_state(hub, "fern")["scheme"] == "https"

        async def across_a_hub_kill() -> tuple[str, bool]:
            async with KernelChannel(f"{hub.url}/user/fern/api", hub.token) as kernel:
                before = await kernel.run("y = 5; y")
                hub.kill()
                during = await kernel.run("y * 2")
                await asyncio.to_thread(hub.start)
                after = await kernel.run("y * 3")
                return f"{before}/{during}/{after}", kernel.ws.closed

        assert asyncio.run(across_a_hub_kill()) == ("5/10/15", False)
        assert proxy.chp_pids() == tls_chp  # the same certificates: the proxy was left alone
        hub.wait_for(lambda: hub.user_get("fern", "api/status").status_code == 200, 60, what="fern's server")

        # the proxy's API takes only a client with a certificate of the hub's
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get(f"http://127.0.0.1:{proxy.api_port}/api/routes", timeout=10)
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(f"https://127.0.0.1:{proxy.api_port}/api/routes", timeout=10,
                         verify=str(hub.certs / "hub-ca_trust.crt"))
        hub.stop_server("fern")
    finally:
        hub.stop()
        proxy.stop()
