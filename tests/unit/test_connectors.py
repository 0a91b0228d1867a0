"""The connectors' own decisions, with a stand-in spawner (no SSH, no hub)."""

from types import SimpleNamespace

import pytest
from jupyterhub.spawner import SpawnException

from aml_jupyterhub.connectors import CONNECTORS, DirectConnector, ProxyConnector, RedirectConnector
from aml_jupyterhub.state import ServerState

def user(auth_state):
    async def get_auth_state():
        return auth_state

    return SimpleNamespace(name="alice", get_auth_state=get_auth_state)


def test_one_connector_per_mode():
    assert set(CONNECTORS) == {"proxy", "direct", "redirect"}
    assert CONNECTORS["proxy"].checks_the_server and not CONNECTORS["redirect"].checks_the_server
    assert CONNECTORS["direct"].checks_the_server


def test_direct_mode_refuses_to_run_without_internal_tls_before_anything_is_done():
    sp = proxy_spawner()
    sp.internal_ssl = False
    with pytest.raises(SpawnException, match="internal TLS"):
        DirectConnector(sp).check_settings()
    sp.internal_ssl = True
    DirectConnector(sp).check_settings()
    ProxyConnector(sp).check_settings()  # proxy mode runs with or without it


@pytest.mark.asyncio
async def test_direct_mode_refuses_an_instance_without_a_private_ip():
    sp = proxy_spawner()
    sp.internal_ssl = True
    with pytest.raises(SpawnException, match="no private IP address"):
        await DirectConnector(sp).connect(SimpleNamespace(name="jhabc", private_ip=None, public_ip="20.1.2.3"))


def test_direct_url_is_the_servers_own_address_over_https_and_needs_no_tunnel():
    sp = proxy_spawner(server_ip="10.0.0.7", remote_port=41234, local_port=41234, scheme="https")
    sp.tunnel_service_url = "http://tunnels:8002"  # ignored: nothing is tunnelled in direct mode
    c = DirectConnector(sp)
    assert c.url() == "https://10.0.0.7:41234"
    assert c._check_address() == ("10.0.0.7", 41234) and c._tunnel_service is None and not c._hub_tunnel


def test_a_proxy_mode_server_started_with_internal_tls_is_routed_over_https():
    sp = proxy_spawner(local_port=40123, scheme="https")
    assert ProxyConnector(sp).url() == "https://127.0.0.1:40123"


@pytest.mark.asyncio
async def test_redirect_assigns_the_instance_to_the_users_azure_identity():
    c = RedirectConnector(SimpleNamespace(user=user({"user": {"oid": "o-1", "tid": "t-1"}})))
    assert await c.access(None, "jhabc", creating=True) == {"assigned_user": ("o-1", "t-1")}


@pytest.mark.asyncio
async def test_redirect_without_login_details_says_what_to_do():
    c = RedirectConnector(SimpleNamespace(user=user(None)))
    with pytest.raises(SpawnException) as e:
        await c.access(None, "jhabc", creating=True)
    assert "Log out and log in again" in e.value.jupyterhub_message


@pytest.mark.asyncio
async def test_redirect_refuses_an_instance_without_a_jupyterlab_endpoint():
    c = RedirectConnector(SimpleNamespace(server_state=ServerState()))
    with pytest.raises(SpawnException, match="reports no JupyterLab endpoint"):
        await c.connect(SimpleNamespace(name="jhabc", lab_url=""))


def proxy_spawner(**state):
    return SimpleNamespace(server_state=ServerState(instance_name="jhabc", mode="proxy", **state),
                           tunnel_bind_ip="127.0.0.1", tunnel_connect_ip="", ssh_address="public", ssh_port=0,
                           ssh_user="azureuser", _log_name="alice", log=None, tunnel_service_url="",
                           tunnel_service_token="")


def test_proxy_url_is_the_tunnel_once_there_is_one():
    sp = proxy_spawner()
    c = ProxyConnector(sp)
    assert c.url() is None
    sp.server_state.local_port = 40123
    assert c.url() == "http://127.0.0.1:40123"
    sp.tunnel_connect_ip = "hub"
    assert c.url() == "http://hub:40123"


def test_with_the_tunnel_service_the_url_is_the_services_host():
    from aml_jupyterhub.fleet import Fleet

    sp = proxy_spawner(local_port=40123)
    sp.fleet = Fleet()
    sp.tunnel_service_url, sp.tunnel_service_token = "http://tunnels:8002", "t"
    assert ProxyConnector(sp).url() == "http://tunnels:40123"


@pytest.mark.asyncio
async def test_a_failed_start_detaches_its_process_at_once():
    """poll() must say "not running" from the moment a start fails, so the hub does not call stop() on it."""
    sp = proxy_spawner(pid=4242)
    c = ProxyConnector(sp)
    ended = c.abandon()
    assert sp.server_state.pid == 0 and c.conn is None
    await ended  # no connection was made: nothing to stop


@pytest.mark.parametrize("address,ips,expected", [
    ("public", ("20.1.2.3", "10.0.0.4"), ("20.1.2.3", 50000)),
    ("private", ("20.1.2.3", "10.0.0.4"), ("10.0.0.4", 50000)),
])
def test_proxy_ssh_target(address, ips, expected):
    sp = proxy_spawner()
    sp.ssh_address = address
    info = SimpleNamespace(name="jhabc", public_ip=ips[0], private_ip=ips[1], ssh_port=None)
    target = ProxyConnector(sp)._ssh_target(info)
    assert (target.host, target.port, target.user) == (*expected, "azureuser")


def test_no_public_ip_says_what_to_set():
    info = SimpleNamespace(name="jhabc", public_ip=None, private_ip="10.0.0.4", ssh_port=None)
    with pytest.raises(SpawnException) as e:
        ProxyConnector(proxy_spawner())._ssh_target(info)
    assert "Set ssh_address to 'private'" in e.value.jupyterhub_message
