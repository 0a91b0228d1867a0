"""The emulated compute instance presents itself as a real AML one, and is no kinder.

Checked from INSIDE instances the docker runtime made (real containers of
docker/instance.Dockerfile, real SSH as azureuser): the old system Python,
AML's /anaconda envs with no JupyterHub in any, the kernels registered in
jupyter_env's prefix, the workspace file share every instance of a workspace
mounts (kept when an instance is deleted), /mnt wiped on stop, and, with
``internet="none"``, no route out while the host still reaches sshd and
JupyterLab. Every test removes every container, volume and network it made.
"""

from __future__ import annotations

import contextlib
import json
import shlex
import uuid

import aiohttp
import asyncssh
import docker
import docker.errors
import pytest

from aml_emulator.runtime.base import RuntimeFailure, RuntimeInstance
from aml_emulator.runtime.docker import (
    JUPYTER_ENV,
    NETWORK_LABEL,
    OFFLINE_LABEL,
    SHARE_LABEL,
    DockerRuntime,
    container_name,
    share_mount,
    share_volume_name,
    volume_name,
)
from tests.harness.emulator import DEFAULT_SUB, EmulatorProcess

ENVS = ("azureml_py310_sdkv2", "azureml_py38", "jupyter_env")
KERNELS = {  # name: (display name, env)
    "python310-sdkv2": ("Python 3.10 - SDK v2", "azureml_py310_sdkv2"),
    "python38-azureml": ("Python 3.8 - AzureML", "azureml_py38"),
}
# One bounded probe that must fail: a TCP connect to a well-known outside address, 3 s at most.
INTERNET_PROBE = "/usr/bin/python3 -c \"import socket; socket.create_connection(('1.1.1.1', 443), timeout=3)\""

pytestmark = pytest.mark.docker


class Made:
    """What a test made on the engine, removed at its end whatever happened."""

    def __init__(self, client):
        self.client = client
        self.containers: set[str] = set()
        self.volumes: set[str] = set()
        self.networks: set[str] = set()

    def instance(self, workspace: str, key: asyncssh.SSHKey | None = None) -> RuntimeInstance:
        inst = RuntimeInstance(name=f"ci-i{uuid.uuid4().hex[:8]}", vm_size="Standard_DS1_v2", workspace=workspace,
                               ssh_public_key=key.export_public_key().decode() if key else None)
        self.containers.add(container_name(inst))
        self.volumes.update(v for v in (volume_name(inst), share_volume_name(inst)) if v)
        return inst

    def network(self, name: str) -> str:
        self.networks.add(name)
        return name

    def clean(self) -> None:
        for name in self.containers:
            with contextlib.suppress(docker.errors.NotFound):
                self.client.containers.get(name).remove(force=True)
        for net in self.networks:  # the slots the instances shared
            for c in self.client.containers.list(all=True, filters={"label": f"{NETWORK_LABEL}={net}"}):
                c.remove(force=True)
        for name in self.volumes:
            with contextlib.suppress(docker.errors.NotFound):
                self.client.volumes.get(name).remove(force=True)
        for net in self.networks:  # what was made for a network (a share is named after it too)
            for v in self.client.volumes.list(filters={"label": f"{NETWORK_LABEL}={net}"}):
                with contextlib.suppress(docker.errors.NotFound):
                    v.remove(force=True)
        for name in self.networks:
            with contextlib.suppress(docker.errors.NotFound):
                self.client.networks.get(name).remove()


@pytest.fixture
def made(docker_client):
    m = Made(docker_client)
    yield m
    m.clean()


def workspace() -> str:
    return f"{DEFAULT_SUB}/rg-image-test/ws-{uuid.uuid4().hex[:8]}"


@contextlib.asynccontextmanager
async def runtime_for(tmp_path, **kwargs):
    runtime = DockerRuntime(tmp_path, **kwargs)
    try:
        yield runtime
    finally:
        await runtime.close()


def connect(conn, key):
    return asyncssh.connect(conn.public_ip, conn.ssh_port, username="azureuser", client_keys=[key],
                            known_hosts=None, agent_path=None, connect_timeout=10)


async def out(ssh, command: str) -> str:
    result = await ssh.run(command)
    assert result.exit_status == 0, f"{command!r} failed ({result.exit_status}): {result.stderr}"
    return result.stdout


@pytest.mark.asyncio
async def test_the_instance_is_an_aml_one_not_a_kind_one(tmp_path, image, made):
    key = asyncssh.generate_private_key("ssh-ed25519")
    inst = made.instance(workspace(), key)
    async with runtime_for(tmp_path, image=image) as runtime:
        await runtime.create(inst)
        conn = await runtime.boot(inst)
        async with connect(conn, key) as ssh:
            assert (await out(ssh, "id -un; id -u; sudo -n id -u")).split() == ["azureuser", "1000", "0"]
            for tool in ("flock", "tar", "gzip", "tini", "ps"):
                await out(ssh, f"command -v {tool}")
            async with ssh.start_sftp_client() as sftp:  # sshd's sftp subsystem, as on Ubuntu
                assert ".ssh" in await sftp.listdir(".")

            # a non-interactive `ssh host cmd` sees only the old system Python
            assert (await out(ssh, "command -v python3")) == "/usr/bin/python3\n"
            assert (await out(ssh, "python3 --version")).startswith("Python 3.9.")
            assert "/anaconda" not in await out(ssh, "echo $PATH")
            assert (await ssh.run("command -v python")).exit_status != 0
            # terminals open with azureml_py38 active, as AML's do
            interactive = await out(ssh, "bash -ic 'command -v python; echo $CONDA_DEFAULT_ENV' 2>/dev/null")
            assert interactive.split() == ["/anaconda/envs/azureml_py38/bin/python", "azureml_py38"]

            for env in ENVS:
                python = f"/anaconda/envs/{env}/bin/python"
                version = await out(ssh, f"{python} -c 'import sys; print(*sys.version_info[:2])'")
                assert tuple(map(int, version.split())) >= (3, 10), (env, version)
            # no JupyterHub anywhere: not in any env, not in the system Python, no command
            for python in ["/usr/bin/python3", "/anaconda/bin/python3", *(f"/anaconda/envs/{e}/bin/python" for e in ENVS)]:
                result = await ssh.run(f"{python} -c 'import jupyterhub'")
                assert result.exit_status != 0 and "No module named 'jupyterhub'" in result.stderr, python
            for shell in ("sh -c", "bash -ic"):
                found = await ssh.run(f"{shell} 'command -v jupyterhub-singleuser || command -v jupyterhub' 2>/dev/null")
                assert found.exit_status != 0 and not found.stdout.strip(), (shell, found.stdout)

            # the kernels, registered in jupyter_env's prefix, each running its env's python
            for name, (display, env) in KERNELS.items():
                spec = json.loads(await out(ssh, f"cat {JUPYTER_ENV}/share/jupyter/kernels/{name}/kernel.json"))
                assert spec["argv"] == [f"/anaconda/envs/{env}/bin/python", "-m", "ipykernel_launcher", "-f",
                                        "{connection_file}"]
                assert spec["display_name"] == display and spec["language"] == "python"
            # ... and nowhere else: the envs carry no spec of their own, nothing system-wide
            others = await out(ssh, "find /anaconda/envs/azureml_py310_sdkv2/share /anaconda/envs/azureml_py38/share "
                                    "/usr/local/share /usr/share/jupyter -name kernel.json 2>/dev/null; true")
            assert others == ""
            listed = json.loads(await out(ssh, f"{JUPYTER_ENV}/bin/jupyter kernelspec list --json"))["kernelspecs"]
            assert set(KERNELS) <= set(listed)
            # a Jupyter server from another env does not see them (the harder assumption)
            foreign = json.loads(await out(
                ssh, "/anaconda/envs/azureml_py310_sdkv2/bin/jupyter kernelspec list --json"))["kernelspecs"]
            assert not set(KERNELS) & set(foreign)

            # the default kernel really runs, with its env's python
            run_kernel = (
                "from jupyter_client.manager import start_new_kernel\n"
                "km, kc = start_new_kernel(kernel_name='python310-sdkv2', startup_timeout=120)\n"
                "try:\n"
                "    kc.execute_interactive('import sys; print(sys.executable)', timeout=60)\n"
                "finally:\n"
                "    kc.stop_channels(); km.shutdown_kernel(now=True)\n"
            )
            ran = await out(ssh, f"cd /tmp && {JUPYTER_ENV}/bin/python -c {shlex.quote(run_kernel)}")
            assert "/anaconda/envs/azureml_py310_sdkv2/bin/python" in ran
        await runtime.destroy(inst)


@pytest.mark.asyncio
async def test_workspace_share_is_shared_and_kept_and_mnt_is_wiped_on_stop(tmp_path, image, made, docker_client):
    key = asyncssh.generate_private_key("ssh-ed25519")
    ws, other_ws = workspace(), workspace()
    a, b, elsewhere = made.instance(ws, key), made.instance(ws, key), made.instance(other_ws, key)
    async with runtime_for(tmp_path, image=image) as runtime:
        conns = {}
        for inst in (a, b, elsewhere):
            await runtime.create(inst)
            conns[inst.name] = await runtime.boot(inst)
        share = docker_client.volumes.get(share_volume_name(a))
        assert share.attrs["Labels"][SHARE_LABEL] == ws
        assert share_volume_name(b) == share.name != share_volume_name(elsewhere)

        async with connect(conns[a.name], key) as ssh:
            assert (await out(ssh, "readlink ~/cloudfiles/code")).strip() == share_mount(a)
            assert (await out(ssh, f"stat -c '%U %G %a' {share_mount(a)}")).strip() == "root root 777"
            await out(ssh, "echo shared > ~/cloudfiles/code/note.txt && mkdir ~/cloudfiles/code/Users")
            # entries are open to everyone, as on AML's share
            assert (await out(ssh, "stat -c %a ~/cloudfiles/code/Users")).strip() == "777"
            # /mnt is the temp disk; the home and the OS disk are not
            await out(ssh, "sudo sh -c 'echo scratch > /mnt/scratch.txt' && echo kept > ~/kept.txt "
                           "&& sudo sh -c 'echo os > /opt/os-disk.txt'")
        async with connect(conns[b.name], key) as ssh:
            assert (await out(ssh, "cat ~/cloudfiles/code/note.txt")) == "shared\n"
            await out(ssh, "echo from-b >> ~/cloudfiles/code/note.txt")
        async with connect(conns[elsewhere.name], key) as ssh:
            assert (await out(ssh, "ls -A ~/cloudfiles/code/")) == ""  # another workspace, another share

        await runtime.shutdown(a)
        conns[a.name] = await runtime.boot(a)
        async with connect(conns[a.name], key) as ssh:
            assert (await ssh.run("test -e /mnt/scratch.txt")).exit_status == 1
            assert (await out(ssh, "cat ~/kept.txt /opt/os-disk.txt")) == "kept\nos\n"
            assert (await out(ssh, "cat ~/cloudfiles/code/note.txt")) == "shared\nfrom-b\n"

        await runtime.destroy(a)  # the share outlives the instance
        with pytest.raises(docker.errors.NotFound):
            docker_client.volumes.get(volume_name(a))
        docker_client.volumes.get(share.name)
        async with connect(conns[b.name], key) as ssh:
            assert (await out(ssh, "cat ~/cloudfiles/code/note.txt")) == "shared\nfrom-b\n"
        again = made.instance(ws, key)  # a new instance of the workspace finds it
        await runtime.create(again)
        async with connect(await runtime.boot(again), key) as ssh:
            assert (await out(ssh, "cat ~/cloudfiles/code/note.txt; ls ~/cloudfiles/code")) == \
                "shared\nfrom-b\nUsers\nnote.txt\n"
        for inst in (b, elsewhere, again):
            await runtime.destroy(inst)
        docker_client.volumes.get(share.name)  # still: only its owner removes it


@pytest.mark.asyncio
async def test_without_internet_no_route_out_but_the_host_reaches_ssh_and_jupyterlab(
        tmp_path, image, made, docker_client):
    key = asyncssh.generate_private_key("ssh-ed25519")
    net = made.network(f"aml-offline-test-{uuid.uuid4().hex[:8]}")
    inst = made.instance(workspace(), key)
    async with runtime_for(tmp_path, image=image, internet="none", offline_network=net, slots=1) as runtime:
        await runtime.start()  # makes the internal network, and a slot on it
        network = docker_client.networks.get(net)
        assert network.attrs["Internal"] is True and network.attrs["Labels"].get(OFFLINE_LABEL) == "1"
        await runtime.create(inst)
        conn = await runtime.boot(inst)
        # no published ports: the address on the internal network, SSH on 50000
        assert conn.public_ip == conn.private_ip != "127.0.0.1"
        assert conn.ssh_port == conn.private_ssh_port == 50000
        container = docker_client.containers.get(container_name(inst))
        assert container.attrs["HostConfig"]["NetworkMode"].startswith("container:")  # on a slot
        assert not container.attrs["HostConfig"].get("PortBindings")

        async with connect(conn, key) as ssh:  # the test process reaches sshd directly
            probe = await ssh.run(INTERNET_PROBE)
            assert probe.exit_status != 0, "an instance without internet connected outside"
            # dropped (timed out) or refused a route (unreachable): either way, no connection
            assert "timed out" in probe.stderr or "Error" in probe.stderr, probe.stderr

            base = f"/instances/{inst.name}/"
            lab = await runtime.application_url(inst, base)
            assert lab.origin == f"http://{conn.private_ip}:8890"
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10), headers=lab.headers) as http:
                async with http.get(f"{lab.origin}{base}api/status") as resp:
                    assert resp.status == 200
                async with http.get(f"{lab.origin}{base}api/kernelspecs") as resp:
                    assert set(KERNELS) <= set((await resp.json())["kernelspecs"])
            # AML's Jupyter service: jupyter_env's, as azureuser
            lab = await out(ssh, "pid=$(cat /tmp/aml-jupyterlab.pid); ps -o user= -p $pid; "
                                 "tr '\\0' ' ' < /proc/$pid/cmdline")
            user, cmdline = lab.split("\n", 1)
            assert user.strip() == "azureuser"
            assert cmdline.startswith(f"{JUPYTER_ENV}/bin/python -m jupyterlab ")
        await runtime.destroy(inst)


@pytest.mark.asyncio
async def test_without_internet_a_network_that_is_not_internal_is_refused(tmp_path, image, made, docker_client):
    net = made.network(f"aml-open-test-{uuid.uuid4().hex[:8]}")
    docker_client.networks.create(net, labels={"aml-jupyterhub.test": "1"})
    inst = made.instance(workspace())
    async with runtime_for(tmp_path, image=image, network=net, internet="none") as runtime:
        with pytest.raises(RuntimeFailure, match=rf"(?s){net}.*internal.*docker network create --internal"):
            await runtime.start()
        with pytest.raises(RuntimeFailure, match="internal"):
            await runtime.create(inst)
    assert not docker_client.containers.list(all=True, filters={"label": f"{NETWORK_LABEL}={net}"})


def test_the_emulator_refuses_to_start_without_internet_on_an_open_network(tmp_path, image, made, docker_client):
    net = made.network(f"aml-open-test-{uuid.uuid4().hex[:8]}")
    docker_client.networks.create(net, labels={"aml-jupyterhub.test": "1"})
    emu = EmulatorProcess(tmp_path / "emu", ["--runtime", "docker", "--docker-network", net,
                                             "--docker-internet", "none", "--docker-slots", "0"])
    try:
        with pytest.raises(RuntimeError) as failed:
            emu.start(timeout=60)
        assert "internal" in str(failed.value) and net in str(failed.value)
    finally:
        emu.stop()
