"""The first spawn on a compute instance as Azure ML provisions it, with no internet.

The emulator's Docker runtime makes instances of docker/instance.Dockerfile
(no JupyterHub anywhere, system python3 3.9, AML's envs in /anaconda) on an
internal Docker network (``--docker-internet none``: a managed VNet that allows
only approved outbound). A real hub spawns on them: it must bring JupyterHub
itself (its wheels, over SSH), install it once, and give the user AML's kernels.
"""

from __future__ import annotations

import asyncio

import docker
import pytest

from tests.harness.docker_instances import docker_emulator
from tests.harness.emulator import instance
from tests.harness.hub import Hub, spawn_ready
from tests.harness.kernel import execute
from tests.harness.net import wait_until

pytestmark = pytest.mark.docker
INSTALL_LOG = "/home/azureuser/.aml-jupyterhub/install.log"


@pytest.fixture(scope="module")
def offline(docker_client, tmp_path_factory):
    """An emulator whose instances have no route out, and a hub in front of it."""
    with docker_emulator(docker_client, tmp_path_factory.mktemp("emu-offline"), internet="none") as (emu, network):
        hub = Hub(tmp_path_factory.mktemp("hub-offline"), emu).start()
        try:
            yield hub, emu, network
        finally:
            hub.stop()


def _sh(client, instance_name: str, command: str) -> str:
    result = client.containers.get(f"aml-ci-{instance_name}").exec_run(["sh", "-c", command], user="azureuser")
    return result.output.decode(errors="replace")


def _run(hub: Hub, user: str, code: str, kernel_name: str | None = None) -> str:
    return asyncio.run(execute(f"{hub.url}/user/{user}/api", hub.token, code, username=user, kernel_name=kernel_name))


def _stopped(emu, name: str) -> bool:
    return (instance(emu, name) or {}).get("state") == "Stopped"


def test_first_spawn_installs_offline_and_a_later_start_reuses_it(offline, docker_client):
    hub, emu, network = offline
    assert docker_client.networks.get(network).attrs["Internal"] is True  # no route out for the instances

    events = spawn_ready(hub, "alice")
    messages = [e["message"] for e in events]
    assert any("installing JupyterHub 6.1.1 for Python 3." in m for m in messages), messages
    assert any(m.startswith("JupyterHub 6.1.1 installed on") for m in messages), messages
    name = hub.instance_name("alice")
    log = _sh(docker_client, name, f"cat {INSTALL_LOG}")
    assert log.count("installing JupyterHub 6.1.1") == 1 and "installed JupyterHub 6.1.1 in" in log, log
    assert "no package index" in log

    # AML's kernels, each in its own env; the server's own Python offers none
    specs = hub.user_get("alice", "api/kernelspecs").json()
    assert {"python310-sdkv2", "python38-azureml"} <= set(specs["kernelspecs"]), specs["kernelspecs"].keys()
    assert "python3" not in specs["kernelspecs"] and specs["default"] == "python310-sdkv2"
    assert _run(hub, "alice", "import sys; sys.prefix") == "'/anaconda/envs/azureml_py310_sdkv2'"
    assert _run(hub, "alice", "import sys; sys.prefix", "python38-azureml") == "'/anaconda/envs/azureml_py38'"
    # the workspace file share, where AML's own Jupyter opens
    share = hub.user_get("alice", "api/contents/cloudfiles/code", params={"content": 0})
    assert share.status_code == 200 and share.json()["type"] == "directory", share.text
    # no Jupyter news fetched from the instance, and no first-run prompt about it (AML_LAB_NEWS off)
    notes = hub.user_get("alice", "lab/api/settings/@jupyterlab/apputils-extension:notification")
    assert notes.status_code == 200, notes.text
    defaults = notes.json()["schema"]["properties"]
    assert (defaults["fetchNews"]["default"], defaults["checkForUpdates"]["default"]) == ("false", False), defaults

    hub.stop_server("alice")
    hub.wait_for(lambda: _stopped(emu, name), 60, what="alice's instance to stop")
    events = spawn_ready(hub, "alice")
    assert not any("installing JupyterHub" in e["message"] for e in events), [e["message"] for e in events]
    log = _sh(docker_client, name, f"cat {INSTALL_LOG}")
    assert log.count("installing JupyterHub 6.1.1") == 1, log  # the second start installed nothing
    assert _run(hub, "alice", "1 + 1") == "2"
    hub.stop_server("alice")


def test_an_install_killed_half_way_is_redone_at_the_next_start(offline, docker_client):
    hub, emu, _ = offline
    r = hub.spawn("bob")
    assert r.status_code in (201, 202), r.text
    name = hub.instance_name("bob")

    def pip_running() -> bool:
        try:
            # the pip process itself (the install script's own text names pip too, quoted differently)
            return "bin/python -m pip install" in _sh(docker_client, name, "ps -eo args")
        except docker.errors.NotFound:
            return False

    wait_until(pip_running, 180, "the install's pip to run on bob's instance", interval=0.2, log=hub.log_tail)
    _sh(docker_client, name, "pkill -KILL -f 'bin/python -m pip install'")
    events = hub.progress("bob")
    assert events[-1].get("failed"), events
    assert "pip could not install JupyterHub 6.1.1" in events[-1]["message"], events[-1]
    # a failed start leaves nothing running (and billing); the half-made install is not marked done
    hub.wait_for(lambda: _stopped(emu, name), 60, what="bob's instance to stop after the failed start")
    hub.wait_for(lambda: hub.server_model("bob") is None, 30, what="bob's server record to go")

    events = spawn_ready(hub, "bob")
    log = _sh(docker_client, name, f"cat {INSTALL_LOG}")
    assert "FAILED: pip could not install" in log and "removing an unfinished install" in log, log
    assert "installed JupyterHub 6.1.1 in" in log.rstrip().splitlines()[-1], log
    # the kernel is the env's own Python: the hub's install does not leak into it
    assert _run(hub, "bob", "import importlib.util; importlib.util.find_spec('jupyterhub') is None") == "True"
    hub.stop_server("bob")
