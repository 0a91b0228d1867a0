"""The docker runtime: real containers of docker/instance.Dockerfile, no mocks.

Skipped (with the reason) when no Docker engine answers. Builds the instance
image first if it is missing, which takes a few minutes the first time.
"""

from __future__ import annotations

import contextlib
import uuid

import aiohttp
import asyncssh
import docker
import docker.errors
import pytest

from aml_emulator.runtime.base import RuntimeFailure, RuntimeInstance
from aml_emulator.runtime.docker import NETWORK_LABEL, DockerRuntime, container_name, volume_name


pytestmark = pytest.mark.docker


@pytest.fixture
def name():
    return f"ci-t{uuid.uuid4().hex[:8]}"


def _key() -> asyncssh.SSHKey:
    return asyncssh.generate_private_key("ssh-ed25519")


def _connect(conn, key):
    return asyncssh.connect(
        conn.public_ip, conn.ssh_port, username="azureuser", client_keys=[key],
        known_hosts=None, agent_path=None, connect_timeout=10,
    )


@contextlib.asynccontextmanager
async def _runtime(tmp_path, **kwargs):
    runtime = DockerRuntime(tmp_path, **kwargs)
    try:
        yield runtime
    finally:
        await runtime.close()


@pytest.mark.asyncio
async def test_lifecycle_ssh_disk_and_destroy(tmp_path, docker_client, image, name):
    key = _key()
    inst = RuntimeInstance(name=name, vm_size="Standard_DS1_v2", ssh_public_key=key.export_public_key().decode())
    async with _runtime(tmp_path, image=image) as runtime:
        try:
            await runtime.create(inst)
            assert docker_client.volumes.get(volume_name(inst)).attrs["Labels"]["aml-jupyterhub.instance"] == name

            conn = await runtime.boot(inst)
            assert await runtime.is_running(inst)
            assert conn.public_ip == "127.0.0.1" and conn.private_ssh_port == 50000
            assert conn.private_ip.count(".") == 3 and conn.private_ip != "127.0.0.1"
            assert inst.data["connectivity"] == conn.__dict__

            async with _connect(conn, key) as ssh:
                result = await ssh.run(
                    "echo hi > f.txt; pwd; whoami; echo FOO=$FOO; sudo -n id -u; "
                    "/anaconda/envs/azureml_py310_sdkv2/bin/python -c 'import sys; print(sys.version_info >= (3, 10))'",
                    env={"FOO": "bar"},
                )
                assert result.exit_status == 0, result.stderr
                lines = result.stdout.splitlines()
                # Debian's stock AcceptEnv (LANG LC_*) drops FOO, as a real instance's sshd would
                assert lines[:4] == ["/home/azureuser", "azureuser", "FOO=", "0"]
                assert lines[4] == "True"  # AML's env (no JupyterHub in it: test_instance_image_docker.py)
                assert (await ssh.run("exit 5")).exit_status == 5

            with pytest.raises(asyncssh.PermissionDenied):
                async with _connect(conn, _key()):
                    pass

            await runtime.shutdown(inst)
            assert not await runtime.is_running(inst)
            await runtime.shutdown(inst)  # idempotent

            conn2 = await runtime.boot(inst)
            async with _connect(conn2, key) as ssh:
                result = await ssh.run("cat f.txt; python3 -c 'print(6*7)'", check=True)
                assert result.stdout == "hi\n42\n"
        finally:
            await runtime.destroy(inst)
        with pytest.raises(docker.errors.NotFound):
            docker_client.containers.get(container_name(inst))
        with pytest.raises(docker.errors.NotFound):
            docker_client.volumes.get(volume_name(inst))
        assert not await runtime.is_running(inst)
        await runtime.destroy(inst)  # idempotent


@pytest.mark.asyncio
async def test_on_a_network_with_forwarding_env_and_jupyterlab(tmp_path, docker_client, image, name):
    network = docker_client.networks.create(f"aml-test-{name}", labels={"aml-jupyterhub.test": "1"})
    key = _key()
    inst = RuntimeInstance(name=name, vm_size="Standard_DS1_v2", ssh_public_key=key.export_public_key().decode())
    try:
        async with _runtime(tmp_path, image=image, network=network.name, ssh_accept_env="*") as runtime:
            try:
                await runtime.create(inst)
                conn = await runtime.boot(inst)
                assert conn.public_ip == conn.private_ip != "127.0.0.1"
                assert conn.ssh_port == conn.private_ssh_port == 50000
                async with _connect(conn, key) as ssh:
                    result = await ssh.run("echo FOO=$FOO", env={"FOO": "bar"}, check=True)
                    assert result.stdout == "FOO=bar\n"
                    await ssh.run(
                        "echo served > page.txt; nohup python3 -m http.server 8123 --bind 127.0.0.1 "
                        ">/dev/null 2>&1 </dev/null &", check=True,
                    )
                    await ssh.run("for i in $(seq 50); do python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", 8123))' 2>/dev/null && break; sleep 0.1; done")
                    listener = await ssh.forward_local_port("127.0.0.1", 0, "127.0.0.1", 8123)
                    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
                        async with http.get(f"http://127.0.0.1:{listener.get_port()}/page.txt") as resp:
                            assert await resp.text() == "served\n"
                    listener.close()

                base = f"/instances/{name}/"
                lab = await runtime.application_url(inst, base)
                assert lab.origin == f"http://{conn.private_ip}:8890"
                async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
                    async with http.get(f"{lab.origin}{base}api/status", headers=lab.headers) as resp:
                        assert resp.status == 200
                    async with http.get(f"{lab.origin}{base}api/status") as resp:  # no token: refused
                        assert resp.status == 403
                assert await runtime.application_url(inst, base) == lab
            finally:
                await runtime.destroy(inst)
    finally:
        for slot in docker_client.containers.list(all=True, filters={"label": f"{NETWORK_LABEL}={network.name}"}):
            slot.remove(force=True)  # the network slot the instance shared
        network.remove()


@pytest.mark.asyncio
async def test_published_jupyterlab_without_network(tmp_path, docker_client, image, name):
    inst = RuntimeInstance(name=name, vm_size="Standard_DS1_v2", ssh_public_key=None)
    async with _runtime(tmp_path, image=image) as runtime:
        try:
            await runtime.create(inst)
            await runtime.boot(inst)  # no key: sshd runs and refuses everyone
            base = f"/instances/{name}/"
            lab = await runtime.application_url(inst, base)
            assert lab.origin.startswith("http://127.0.0.1:")
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
                async with http.get(f"{lab.origin}{base}api/status", headers=lab.headers) as resp:
                    assert resp.status == 200
        finally:
            await runtime.destroy(inst)


@pytest.mark.asyncio
async def test_missing_image_says_how_to_build_it(tmp_path, docker_client, name):
    inst = RuntimeInstance(name=name, vm_size="Standard_DS1_v2")
    async with _runtime(tmp_path, image="aml-jupyterhub-instance:no-such-tag") as runtime:
        with pytest.raises(RuntimeFailure, match="make image"):
            await runtime.create(inst)
        with pytest.raises(docker.errors.NotFound):
            docker_client.volumes.get(volume_name(inst))


@pytest.mark.asyncio
async def test_unreachable_engine_says_what_to_check(tmp_path):
    client = docker.DockerClient(base_url="unix:///nonexistent/docker.sock", version="1.41")
    async with _runtime(tmp_path, client=client) as runtime:
        with pytest.raises(RuntimeFailure, match="socket"):
            await runtime.create(RuntimeInstance(name="ci-nowhere", vm_size="Standard_DS1_v2"))


@pytest.mark.asyncio
async def test_jupyterlab_that_cannot_start_is_reported_with_its_log(tmp_path, docker_client, image, name):
    inst = RuntimeInstance(name=name, vm_size="Standard_DS1_v2")
    async with _runtime(tmp_path, image=image, jupyter_extra_args=["--ServerApp.port_retries=not-a-number"]) as runtime:
        try:
            await runtime.create(inst)
            await runtime.boot(inst)
            with pytest.raises(RuntimeFailure, match=r"(?s)exited.*not-a-number"):
                await runtime.application_url(inst, f"/instances/{name}/")
        finally:
            await runtime.destroy(inst)
