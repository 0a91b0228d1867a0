"""Users' servers on hosts of their own (HUB_USER_SUBDOMAINS), with the
proxy in its own container as compose runs it: the hub asks the proxy's
container for routing by host, waits until it runs so before its first
routes, and each user's server answers on that user's host alone."""

from __future__ import annotations

import requests

from tests.harness.hub import Hub, spawn_ready
from tests.harness.proxyservice import ProxyService


def test_the_proxy_container_follows_the_hub_to_routing_by_host_and_back(emulator, emu, tmp_path):
    proxy = ProxyService(tmp_path / "proxy").start()
    try:
        follow_to_host_routing_and_back(emulator, tmp_path, proxy)
    finally:
        proxy.stop()


def follow_to_host_routing_and_back(emulator, tmp_path, proxy: ProxyService) -> None:
    first_chp = proxy.chp_pids()

    def hub_with(subdomains: bool) -> Hub:
        host = f"http://localhost:{proxy.port}" if subdomains else ""
        return Hub(tmp_path / "hub", emulator, proxy=proxy, extra_config=f"""
            c.JupyterHub.subdomain_host = {host!r}
            c.HubDefaultProxy.tls_share_dir = "{proxy.tls_dir}"
            c.AMLSpawner.stop_action = "stop"
        """)

    hub = hub_with(subdomains=True)
    try:
        hub.start()
        assert (proxy.tls_dir / "HOST_ROUTING").exists()
        # the hub's first routes wait for a CHP started with --host-routing: it answers on the users' hosts
        hub.wait_for(lambda: (proxy.tls_dir / "APPLIED").read_text().strip() == "tls=- host-routing=yes", 30,
                     what="the proxy's container to route by host")
        host_chp = proxy.chp_pids()
        assert host_chp and host_chp != first_chp
        spawn_ready(hub, "fern")
        url = hub.server_model("fern")["url"]
        assert url.startswith(f"http://fern.localhost:{proxy.port}/user/fern/"), url
        session = requests.Session()
        session.trust_env = False
        session.headers["Authorization"] = f"token {hub.token}"
        r = session.get(f"{url}api/status", timeout=30, allow_redirects=False)
        assert r.status_code == 200 and "started" in r.json(), (r.status_code, r.text[:300])
        # on the hub's own host (or anyone else's) the path reaches the hub, never fern's server
        for other in (f"http://localhost:{proxy.port}", f"http://gus.localhost:{proxy.port}"):
            r = session.get(f"{other}/user/fern/api/status", timeout=30, allow_redirects=False)
            assert r.status_code != 200 and "X-JupyterHub-Version" in r.headers and "started" not in r.text, \
                (other, r.status_code, r.text[:300])
        hub.stop_server("fern")
        assert "has not confirmed" not in hub.log_tail(100_000)
    finally:
        hub.stop()
    # the same proxy under a hub on the hub's origin again: CHP routes by path once more
    hub = hub_with(subdomains=False)
    try:
        hub.start()
        assert not (proxy.tls_dir / "HOST_ROUTING").exists()
        hub.wait_for(lambda: (proxy.tls_dir / "APPLIED").read_text().strip() == "tls=- host-routing=no", 30,
                     what="the proxy's container to route by path")
        assert proxy.chp_pids() not in ([], host_chp)
        spawn_ready(hub, "fern")
        assert hub.user_get("fern", "api/status").status_code == 200
        hub.stop_server("fern")
    finally:
        hub.stop()
