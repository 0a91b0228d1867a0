"""The emulator's process runtime: real SSH servers and processes on this machine, no mocks."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from pathlib import Path

import aiohttp
import asyncssh
import pytest

from aml_emulator.runtime.base import Connectivity, RuntimeFailure, RuntimeInstance
from aml_emulator.runtime.process import ProcessRuntime
from tests.harness.net import free_port, wait_for_port

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="the process runtime needs Linux /proc")


def _key() -> asyncssh.SSHKey:
    return asyncssh.generate_private_key("ssh-ed25519")


def _gone(pid: int) -> bool:
    """Dead, or a zombie nobody reaped yet (this machine's PID 1 may not reap)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rindex(")") + 2] in "ZX"


async def _until(predicate, timeout: float = 10.0):
    for _ in range(int(timeout / 0.1)):
        if predicate():
            return True
        await asyncio.sleep(0.1)
    return predicate()


def _non_loopback_ip() -> str | None:
    """This machine's address on its default route, if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(("192.0.2.1", 9))  # UDP: picks a route, sends nothing
        except OSError:
            return None
        ip = sock.getsockname()[0]
    return None if ip.startswith("127.") else ip


def _connect(conn: Connectivity, key, username: str = "azureuser"):
    return asyncssh.connect(
        conn.public_ip, conn.ssh_port, username=username, client_keys=[key] if key else [],
        known_hosts=None, agent_path=None, connect_timeout=10,
    )


@contextlib.asynccontextmanager
async def _machine(tmp_path: Path, name: str, public_key: str | None, ssh_port: int | None = None):
    """A booted instance that is destroyed (all processes killed) whatever the
    test does; ``ssh_port``: the port it is recorded to have had before."""
    runtime = ProcessRuntime(tmp_path)
    inst = RuntimeInstance(name=name, vm_size="Standard_DS1_v2", ssh_public_key=public_key)
    if ssh_port:
        inst.data["ssh_port"] = ssh_port
    await runtime.create(inst)
    try:
        conn = await runtime.boot(inst)
        yield runtime, inst, conn
    finally:
        await runtime.destroy(inst)


@pytest.mark.asyncio
async def test_exec_runs_in_home_with_client_env_and_exit_status(tmp_path):
    key = _key()
    async with _machine(tmp_path, "ci-exec", key.export_public_key().decode()) as (runtime, inst, conn):
        assert (conn.public_ip, conn.private_ip) == ("127.0.0.1", "127.0.0.1")
        assert conn.ssh_port == conn.private_ssh_port == inst.data["ssh_port"]
        assert inst.data["connectivity"] == conn.__dict__
        home = runtime.home_dir(inst)
        async with _connect(conn, key) as ssh:
            result = await ssh.run("echo hi > f.txt; pwd; echo $FOO; whoami_=$USER; echo $whoami_ $HOME", env={"FOO": "bar baz"})
            assert result.exit_status == 0, result.stderr
            assert result.stdout.splitlines() == [str(home), "bar baz", f"azureuser {home}"]
            assert (home / "f.txt").read_text() == "hi\n"

            failing = await ssh.run("echo oops >&2; exit 7")
            assert failing.exit_status == 7
            assert failing.stderr == "oops\n"

            # neither stream loses its tail when the other one closes first
            for _ in range(5):
                both = await ssh.run("seq 2000; seq 3 >&2")
                assert (both.stdout, both.stderr) == ("".join(f"{i}\n" for i in range(1, 2001)), "1\n2\n3\n")
                both = await ssh.run("seq 3; seq 2000 >&2")
                assert (both.stdout, both.stderr) == ("1\n2\n3\n", "".join(f"{i}\n" for i in range(1, 2001)))

            echoed = await ssh.run("tr a-z A-Z", input="through stdin\n")
            assert echoed.stdout == "THROUGH STDIN\n"

            # the instance's python is the emulator's venv, first on PATH
            which = await ssh.run("command -v python3 jupyterhub-singleuser")
            bin_dir = str(Path(runtime.python).parent)
            assert which.stdout.splitlines() == [f"{bin_dir}/python3", f"{bin_dir}/jupyterhub-singleuser"]


@pytest.mark.asyncio
async def test_interactive_shell_on_a_pty(tmp_path):
    key = _key()
    async with _machine(tmp_path, "ci-pty", key.export_public_key().decode()) as (_, _, conn):
        async with _connect(conn, key) as ssh:
            proc = await ssh.create_process(term_type="xterm", term_size=(80, 24))
            proc.stdin.write("tty; echo answer=$((6*7)); exit 3\n")
            result = await asyncio.wait_for(proc.wait(), 15)
            assert "answer=42" in result.stdout
            assert "/dev/pts/" in result.stdout
            assert result.exit_status == 3


@pytest.mark.asyncio
async def test_wrong_key_and_wrong_user_are_refused(tmp_path):
    key, other = _key(), _key()
    async with _machine(tmp_path, "ci-auth", key.export_public_key().decode()) as (_, _, conn):
        with pytest.raises(asyncssh.PermissionDenied):
            async with _connect(conn, other):
                pass
        with pytest.raises(asyncssh.PermissionDenied):
            async with _connect(conn, key, username="root"):
                pass
        with pytest.raises(asyncssh.PermissionDenied):
            async with _connect(conn, None):  # no key at all: no password fallback either
                pass
        async with _connect(conn, key) as ssh:  # and the right one still works
            assert (await ssh.run("true")).exit_status == 0


@pytest.mark.asyncio
async def test_instance_created_without_key_runs_but_refuses_every_key(tmp_path):
    key = _key()
    async with _machine(tmp_path, "ci-nokey", None) as (runtime, inst, conn):
        assert await runtime.is_running(inst)
        with pytest.raises(asyncssh.PermissionDenied):
            async with _connect(conn, key):
                pass


@pytest.mark.asyncio
async def test_forward_to_background_server_which_shutdown_kills(tmp_path):
    key = _key()
    async with _machine(tmp_path, "ci-fwd", key.export_public_key().decode()) as (runtime, inst, conn):
        port = free_port()
        async with _connect(conn, key) as ssh:
            await ssh.run("echo served > page.txt", check=True)
            started = await ssh.run(
                f"nohup python3 -m http.server {port} --bind 127.0.0.1 >http.log 2>&1 </dev/null & echo $!; "
                "setsid sh -c 'echo $$ > escaped.pid; exec sleep 600' >/dev/null 2>&1 </dev/null &",
                check=True,
            )
            http_pid = int(started.stdout)
        # the client is gone; the background server must not be

        await asyncio.to_thread(wait_for_port, port, timeout=10)  # the machine's loopback is this one's
        async with _connect(conn, key) as ssh:
            listener = await ssh.forward_local_port("127.0.0.1", 0, "127.0.0.1", port)
            url = f"http://127.0.0.1:{listener.get_port()}/page.txt"
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
                async with http.get(url) as resp:
                    assert await resp.text() == "served\n"
            listener.close()
            # only loopback destinations may be forwarded: a listener this
            # machine reaches on a non-loopback address is refused
            outside_ip = _non_loopback_ip()
            if outside_ip:
                server = await asyncio.start_server(lambda r, w: w.close(), "0.0.0.0", 0)
                outside_port = server.sockets[0].getsockname()[1]
                try:
                    _, w = await asyncio.open_connection(outside_ip, outside_port)  # reachable directly
                    w.close()
                    with pytest.raises(asyncssh.ChannelOpenError):
                        await ssh.open_connection(outside_ip, outside_port)
                finally:
                    server.close()

        home = runtime.home_dir(inst)
        escaped_pid = int((home / "escaped.pid").read_text())
        sshd_pid = inst.data["sshd_pid"]
        assert not _gone(http_pid) and not _gone(escaped_pid) and not _gone(sshd_pid)

        await runtime.shutdown(inst)
        assert not await runtime.is_running(inst)
        assert await _until(lambda: _gone(http_pid) and _gone(escaped_pid) and _gone(sshd_pid))
        with pytest.raises(OSError):
            await asyncio.open_connection("127.0.0.1", conn.ssh_port)
        await runtime.shutdown(inst)  # idempotent


@pytest.mark.asyncio
async def test_disk_survives_shutdown_and_boot_and_destroy_removes_it(tmp_path):
    key = _key()
    runtime = ProcessRuntime(tmp_path)
    inst = RuntimeInstance(name="ci-disk", vm_size="Standard_DS1_v2", ssh_public_key=key.export_public_key().decode())
    await runtime.create(inst)
    instance_dir = runtime.instance_dir(inst)
    assert instance_dir == (tmp_path / "instances" / "ci-disk").resolve()
    try:
        conn = await runtime.boot(inst)
        assert await runtime.boot(inst) == conn  # booting a running machine changes nothing
        async with _connect(conn, key) as ssh:
            await ssh.run("mkdir -p work && echo kept > work/notes.txt", check=True)
        await runtime.shutdown(inst)
        assert not await runtime.is_running(inst)
        conn2 = await runtime.boot(inst)
        assert await runtime.is_running(inst)
        async with _connect(conn2, key) as ssh:
            result = await ssh.run("cat work/notes.txt; python3 -c 'print(6*7)'", check=True)
            assert result.stdout == "kept\n42\n"
    finally:
        await runtime.destroy(inst)
    assert not instance_dir.exists()
    assert not await runtime.is_running(inst)
    await runtime.destroy(inst)  # idempotent


@pytest.mark.asyncio
async def test_boot_takes_the_recorded_port_when_free_and_another_when_taken(tmp_path):
    """The port a machine had is kept across shutdown and boot when nothing
    holds it. Both cases are made here, not found: a port this test holds
    open, then one the kernel just handed out and nobody has used (no
    connection, so nothing lingers on it)."""
    key = _key()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        async with _machine(tmp_path, "ci-port", key.export_public_key().decode(), ssh_port=taken) as (
                runtime, inst, conn):
            holder.close()
            assert conn.ssh_port != taken and inst.data["ssh_port"] == conn.ssh_port
            await runtime.shutdown(inst)
            assert inst.data["ssh_port"] == conn.ssh_port  # remembered, as a VM keeps its address

            unused = free_port()
            inst.data["ssh_port"] = unused
            conn = await runtime.boot(inst)
            assert conn.ssh_port == unused
            async with _connect(conn, key) as ssh:
                assert (await ssh.run("true")).exit_status == 0


@pytest.mark.asyncio
async def test_recorded_pid_of_another_process_is_not_the_machine(tmp_path):
    key = _key()
    async with _machine(tmp_path, "ci-pid", key.export_public_key().decode()) as (runtime, inst, conn):
        real_pid = inst.data["sshd_pid"]
        inst.data["sshd_pid"] = os.getpid()  # alive, but not this machine's sshd
        assert not await runtime.is_running(inst)
        inst.data["sshd_pid"] = real_pid
        assert await runtime.is_running(inst)
        # recover() re-attaches to the running machine
        assert await runtime.recover(inst) == conn
        assert inst.data["sshd_pid"] == real_pid


@pytest.mark.asyncio
async def test_boot_without_disk_fails_with_a_message(tmp_path):
    runtime = ProcessRuntime(tmp_path)
    with pytest.raises(RuntimeFailure, match="disk"):
        await runtime.boot(RuntimeInstance(name="ci-never-created", vm_size="Standard_DS1_v2"))


@pytest.mark.asyncio
async def test_application_url_serves_jupyterlab_at_the_base_path(tmp_path):
    async with _machine(tmp_path, "ci-lab", None) as (runtime, inst, _):
        base = "/instances/ci-lab/"
        lab = await runtime.application_url(inst, base)
        origin = lab.origin
        assert origin.startswith("http://127.0.0.1:")
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
            async with http.get(f"{origin}{base}api/status", headers=lab.headers) as resp:
                assert resp.status == 200
                assert "started" in await resp.json()
            async with http.get(f"{origin}{base}api/contents", headers=lab.headers) as resp:  # rooted in the home
                assert resp.status == 200
            async with http.get(f"{origin}{base}api/contents") as resp:  # only the emulator's proxy holds the token
                assert resp.status == 403
        lab_pid = inst.data["jupyter"]["pid"]
        assert await runtime.application_url(inst, base) == lab  # reused, not restarted
        assert inst.data["jupyter"]["pid"] == lab_pid

        await runtime.shutdown(inst)
        assert await _until(lambda: _gone(lab_pid))
        with pytest.raises(RuntimeFailure, match="not running"):
            await runtime.application_url(inst, base)


@pytest.mark.asyncio
async def test_jupyterlab_that_cannot_start_is_reported_with_its_log(tmp_path):
    runtime = ProcessRuntime(tmp_path, jupyter_extra_args=["--ServerApp.port_retries=not-a-number"])
    inst = RuntimeInstance(name="ci-badlab", vm_size="Standard_DS1_v2")
    await runtime.create(inst)
    try:
        await runtime.boot(inst)
        with pytest.raises(RuntimeFailure, match=r"(?s)exited.*not-a-number"):
            await runtime.application_url(inst, "/instances/ci-badlab/")
    finally:
        await runtime.destroy(inst)
