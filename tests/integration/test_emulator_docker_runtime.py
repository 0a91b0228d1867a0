"""The emulator with ``--runtime docker``: the real SDK creates an instance
that is a container, SSH reaches it, and stop/start keep its disk."""

import asyncio
import contextlib
import uuid

import asyncssh
import docker
import pytest
from azure.ai.ml.entities import ComputeInstance, ComputeInstanceSshSettings

from aml_emulator.runtime.base import RuntimeInstance
from aml_emulator.runtime.docker import share_volume_name
from tests.harness.emulator import DEFAULT_RG, DEFAULT_SUB, EmulatorProcess

pytestmark = pytest.mark.docker
# a workspace of its own: its file share (a volume that outlives instances) is
# this test's to remove, never the local demo's (the default workspace's)
WORKSPACE = f"ws-dock-{uuid.uuid4().hex[:8]}"
SHARE = share_volume_name(RuntimeInstance(name="-", vm_size="-", workspace=f"{DEFAULT_SUB}/{DEFAULT_RG}/{WORKSPACE}"))


@pytest.fixture(scope="module")
def docker_emulator(docker_client, image, tmp_path_factory):
    emu = EmulatorProcess(tmp_path_factory.mktemp("emu-docker"),
                          ["--runtime", "docker", "--transition", "all=0.2", "--poll-interval", "0.2",
                           "--workspace", f"{DEFAULT_SUB}/{DEFAULT_RG}/{WORKSPACE}/westeurope"]).start()
    yield emu
    try:
        emu.reset()
    finally:
        emu.stop()
        with contextlib.suppress(docker.errors.NotFound):
            docker_client.volumes.get(SHARE).remove(force=True)


def ssh(port, key, command):
    async def run():
        async with asyncssh.connect("127.0.0.1", port, username="azureuser", client_keys=[key],
                                    known_hosts=None) as conn:
            return (await conn.run(command, check=True)).stdout
    return asyncio.run(run())


def test_container_instance_lifecycle(docker_emulator):
    key = asyncssh.generate_private_key("ssh-ed25519")
    ml = docker_emulator.ml_client(WORKSPACE)
    made = ml.compute.begin_create_or_update(ComputeInstance(
        name="ci-dock", size="Standard_DS1_v2", ssh_public_access_enabled=True,
        ssh_settings=ComputeInstanceSshSettings(ssh_key_value=key.export_public_key().decode()))).result()
    port = int(made.ssh_settings.ssh_port)
    assert ssh(port, key, "whoami").strip() == "azureuser"
    # as on AML: no JupyterHub on the instance (a spawner brings its own), the workspace share linked
    assert "No module named 'jupyterhub'" in ssh(port, key, "/anaconda/envs/azureml_py310_sdkv2/bin/python -c "
                                                         "'import jupyterhub' 2>&1 || true")
    assert ssh(port, key, "readlink ~/cloudfiles/code").strip() == \
        "/mnt/batch/tasks/shared/LS_root/mounts/clusters/ci-dock/code"
    ssh(port, key, "echo persisted > ~/file.txt")
    ml.compute.begin_stop("ci-dock").result()
    assert docker.from_env().containers.get("aml-ci-ci-dock").status == "exited"
    ml.compute.begin_start("ci-dock").result()
    port = int(ml.compute.get("ci-dock").ssh_settings.ssh_port)
    assert ssh(port, key, "cat ~/file.txt").strip() == "persisted"
    ml.compute.begin_delete("ci-dock").result()
    with pytest.raises(docker.errors.NotFound):
        docker.from_env().containers.get("aml-ci-ci-dock")
