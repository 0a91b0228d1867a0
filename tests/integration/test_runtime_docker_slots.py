"""Network slots of the docker runtime: an instance's life leaves the host's network alone.

A browser on the Docker host aborts its requests in flight whenever an
interface or address appears or goes (``net::ERR_NETWORK_CHANGED``): that is
what made the hub's Stop and Start buttons report failures. With slots, the
instances share the network of containers made at emulator start; the test
watches the host's links and addresses (``ip monitor``) through a whole life.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import uuid

import asyncssh
import docker
import docker.errors
import pytest

from aml_emulator.runtime.base import RuntimeInstance
from aml_emulator.runtime.docker import NETWORK_LABEL, SLOT_LABEL, DockerRuntime, container_name

IMAGE = "aml-jupyterhub-instance:local"

pytestmark = [pytest.mark.docker, pytest.mark.asyncio]


@pytest.fixture
def network():
    try:
        client = docker.from_env()
        client.ping()
        client.images.get(IMAGE)
    except docker.errors.ImageNotFound:
        pytest.skip(f"no {IMAGE}: test_runtime_docker.py builds it (make image)")
    except docker.errors.DockerException as exc:
        pytest.skip(f"Docker engine not reachable ({exc})")
    net = client.networks.create(f"aml-slots-{uuid.uuid4().hex[:8]}", labels={"aml-jupyterhub.test": "1"})
    yield client, net.name
    for c in client.containers.list(all=True, filters={"label": f"{NETWORK_LABEL}={net.name}"}):
        c.remove(force=True)
    net.remove()
    client.close()


@contextlib.asynccontextmanager
async def runtime_on(tmp_path, network: str, slots: int):
    runtime = DockerRuntime(tmp_path, image=IMAGE, network=network, slots=slots)
    try:
        await runtime.start()
        yield runtime
    finally:
        await runtime.close()


def instance(key) -> RuntimeInstance:
    return RuntimeInstance(name=f"ci-s{uuid.uuid4().hex[:8]}", vm_size="Standard_DS1_v2",
                           ssh_public_key=key.export_public_key().decode())


async def ssh_run(conn, key, command: str) -> str:
    async with asyncssh.connect(conn.public_ip, conn.ssh_port, username="azureuser", client_keys=[key],
                                known_hosts=None, agent_path=None, connect_timeout=10) as ssh:
        return (await ssh.run(command, check=True)).stdout


async def _watch():
    if shutil.which("ip") is None:
        pytest.skip("needs iproute2's ip to watch the host's network")
    return await asyncio.create_subprocess_exec("ip", "-o", "monitor", "link", "address",
                                                stdout=asyncio.subprocess.PIPE)


async def settled(quiet: float = 3.0, limit: float = 30.0) -> None:
    """Until the host's network has been still for ``quiet`` seconds: the slots'
    own interfaces get their IPv6 addresses a moment after they are made (at
    emulator start, before anybody uses the hub)."""
    monitor = await _watch()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    try:
        while loop.time() < deadline:
            try:
                await asyncio.wait_for(monitor.stdout.readline(), quiet)
            except asyncio.TimeoutError:
                return
        raise AssertionError(f"the host's network did not settle within {limit:.0f} s")
    finally:
        monitor.terminate()
        await monitor.wait()


@contextlib.asynccontextmanager
async def host_network_changes():
    """Every link or address change on this host while the block runs (one line each)."""
    await settled()
    monitor = await _watch()
    seen: list[str] = []
    await asyncio.sleep(0.5)  # ip subscribes before the block acts
    try:
        yield seen
    finally:
        await asyncio.sleep(3.0)  # an address comes a moment after its interface
        monitor.terminate()
        out, _ = await monitor.communicate()
        seen.extend(line for line in out.decode().splitlines() if line.strip())


async def test_create_start_stop_delete_change_nothing_on_the_host(tmp_path, network):
    client, net = network
    key = asyncssh.generate_private_key("ssh-ed25519")
    async with runtime_on(tmp_path, net, slots=2) as runtime:
        inst = instance(key)
        async with host_network_changes() as changes:
            await runtime.create(inst)
            first = await runtime.boot(inst)
            assert (await ssh_run(first, key, "echo kept > note.txt && cat note.txt")) == "kept\n"
            await runtime.shutdown(inst)
            assert not await runtime.is_running(inst)
            again = await runtime.boot(inst)
            assert again.public_ip == first.public_ip  # a stopped instance keeps its address, as on AML
            assert (await ssh_run(again, key, "cat note.txt")) == "kept\n"
            await runtime.destroy(inst)
        assert changes == [], "the host's network changed:\n" + "\n".join(changes)
        with pytest.raises(docker.errors.NotFound):
            client.containers.get(container_name(inst))


async def test_slots_are_shared_out_made_when_short_and_taken_again(tmp_path, network):
    client, net = network
    key = asyncssh.generate_private_key("ssh-ed25519")
    async with runtime_on(tmp_path, net, slots=1) as runtime:
        a, b = instance(key), instance(key)
        for inst in (a, b):
            await runtime.create(inst)
        conn_a, conn_b = await runtime.boot(a), await runtime.boot(b)  # b finds no free slot: one is made
        assert conn_a.public_ip != conn_b.public_ip
        for conn in (conn_a, conn_b):
            assert (await ssh_run(conn, key, "echo up")) == "up\n"
        slots = client.containers.list(filters={"label": [f"{SLOT_LABEL}=1", f"{NETWORK_LABEL}={net}"]})
        assert len(slots) == 2
        slot_of_a = client.containers.get(container_name(a)).labels[SLOT_LABEL]
        await runtime.destroy(a)
        c = instance(key)
        await runtime.create(c)
        conn_c = await runtime.boot(c)
        assert client.containers.get(container_name(c)).labels[SLOT_LABEL] == slot_of_a
        assert conn_c.public_ip == conn_a.public_ip
        for inst in (b, c):
            await runtime.destroy(inst)


async def test_an_instance_whose_slot_went_is_made_again_on_its_disk(tmp_path, network):
    client, net = network
    key = asyncssh.generate_private_key("ssh-ed25519")
    async with runtime_on(tmp_path, net, slots=1) as runtime:
        inst = instance(key)
        await runtime.create(inst)
        conn = await runtime.boot(inst)
        await ssh_run(conn, key, "echo mine > note.txt")
        await runtime.shutdown(inst)
        slot = client.containers.get(container_name(inst)).labels[SLOT_LABEL]
        client.containers.get(slot).remove(force=True)  # e.g. removed by hand, or by a clean-up
        conn = await runtime.boot(inst)
        assert (await ssh_run(conn, key, "cat note.txt")) == "mine\n"
        assert client.containers.get(container_name(inst)).labels[SLOT_LABEL] != ""
        await runtime.destroy(inst)


async def test_instances_no_state_knows_are_swept_at_start_and_only_those(tmp_path, network):
    """``docker compose down -v`` deletes the emulator's state but not the containers and disks it made:
    the next emulator on that network removes them; what its state knows, and other networks', stay."""
    client, net = network
    other = client.networks.create(f"aml-slots-{uuid.uuid4().hex[:8]}", labels={"aml-jupyterhub.test": "1"})
    key = asyncssh.generate_private_key("ssh-ed25519")
    kept, orphan, disk_only, elsewhere = instance(key), instance(key), instance(key), instance(key)
    try:
        async with runtime_on(tmp_path / "a", net, slots=1) as runtime:
            for inst in (kept, orphan):
                await runtime.create(inst)
                await runtime.boot(inst)
            await runtime.create(disk_only)  # Creating when the state went: a disk, no machine yet
        async with runtime_on(tmp_path / "b", other.name, slots=1) as runtime:
            await runtime.create(elsewhere)
            await runtime.boot(elsewhere)
        async with runtime_on(tmp_path / "c", net, slots=1) as fresh:
            removed = await fresh.sweep({kept.name.upper()})  # names compare as AML's do, case-insensitively
            assert removed == sorted([orphan.name, disk_only.name])
            assert await fresh.sweep({kept.name}) == []
            for gone in (orphan, disk_only):
                with pytest.raises(docker.errors.NotFound):
                    client.containers.get(container_name(gone))
                with pytest.raises(docker.errors.NotFound):
                    client.volumes.get(f"aml-ci-{gone.name}-home")
            assert client.containers.get(container_name(kept)).status == "running"
            assert client.containers.get(container_name(elsewhere)).status == "running"
            await fresh.destroy(kept)
    finally:
        for c in client.containers.list(all=True, filters={"label": f"{NETWORK_LABEL}={other.name}"}):
            c.remove(force=True)
        with contextlib.suppress(docker.errors.NotFound):
            client.volumes.get(f"aml-ci-{elsewhere.name}-home").remove(force=True)
        other.remove()
