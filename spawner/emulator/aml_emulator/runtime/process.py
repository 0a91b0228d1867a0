"""Compute instances as process trees on this machine.

Each instance is a directory ``<state_dir>/instances/<name>/``:

- ``home/``: the disk, azureuser's home; survives shutdown and boot;
- ``sshd.log``, ``jupyterlab.log``: what the machine's services printed;
- ``aml_lab_config.py``: AML's own JupyterLab's config (see :mod:`.lab`);
- ``ssh_host_ed25519_key``: the machine's host key, stable across boots.

The workspace file share is a directory ``<state_dir>/workspaces/<workspace
id>/code`` (see :func:`~.base.workspace_share_id`), shared by every instance
of the workspace and kept when they are deleted; ``~/cloudfiles/code`` links
to it, as on AML.

Kinder than Azure, as far as a process tree cannot help it: it runs the
emulator's own Python env (JupyterHub included) as the emulator's user, with
no /anaconda, no old system Python, no /mnt temp disk and open internet.
Nor does it keep instances apart: every machine runs as the same user, on
the emulator's own host, and reaches the emulator's files and its loopback
address (where the control API needs no secret). Only the Docker runtime
keeps one instance from another and from the emulator.

A running machine is the small SSH server of :mod:`.sshd`, started detached as
the leader of its own session and process group, plus AML's own JupyterLab
when someone opens it. Everything the machine runs carries the marker variable
``AML_EMULATOR_MACHINE=<instance dir>``; shutdown kills the process groups it
recorded and every process still carrying the marker (``setsid``-escaped
daemons included), SIGTERM first, SIGKILL after a grace period.

Linux only: liveness and the marker are read from ``/proc``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shutil
import signal
import sys
import time
from pathlib import Path

from .base import Connectivity, InstanceRuntime, Lab, RuntimeFailure, RuntimeInstance, workspace_share_id
from .lab import LAB_CONFIG, LAB_CONFIG_NAME, jupyterlab_args, lab_environment, new_lab_token, normalize_base_path
from .probes import LOOPBACK, free_port, http_ok, wait_for_file, wait_for_http, wait_for_ssh_banner
from .sshd import MARKER_ENV

log = logging.getLogger(__name__)

SSHD_MODULE = "aml_emulator.runtime.sshd"
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


def _log_tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# -- /proc ----------------------------------------------------------------------


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, pgid) of a live process, None if gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    return fields[0], int(fields[2])


def _alive(pid: int | None) -> bool:
    stat = _proc_stat(pid) if pid else None
    return stat is not None and stat[0] not in ("Z", "X")


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def _machine_pids(marker: str, pgids: set[int]) -> set[int]:
    """Every live process of a machine: in its process groups or carrying its marker."""
    needle = f"{MARKER_ENV}={marker}".encode()
    me = os.getpid()
    found = set()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        if pid == me:
            continue
        stat = _proc_stat(pid)
        if stat is None or stat[0] in ("Z", "X"):
            continue
        if stat[1] in pgids:
            found.add(pid)
            continue
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        if needle in environ.split(b"\0"):
            found.add(pid)
    return found


def _signal_all(pids: set[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


class ProcessRuntime(InstanceRuntime):
    """Instances as local process trees (see the module docstring).

    :param state_dir: where instance directories live (``instances/<name>/``).
    :param python: the interpreter of the environment the instance "has
        installed": it runs the SSH server and JupyterLab, and its ``bin``
        directory comes first on PATH of SSH commands (so ``python3``,
        ``jupyter`` and ``jupyterhub-singleuser`` are that env's). Not resolved
        through symlinks, so a venv's ``bin/python`` keeps its venv.
    :param boot_timeout: seconds to wait for the SSH server to greet.
    :param stop_grace: seconds between SIGTERM and SIGKILL at shutdown.
    :param jupyter_timeout: seconds to wait for JupyterLab's ``api/status``.
    :param jupyter_extra_args: appended to JupyterLab's command line.
    """

    kind = "process"

    def __init__(
        self,
        state_dir: Path | str,
        python: str = sys.executable,
        *,
        boot_timeout: float = 30.0,
        stop_grace: float = 5.0,
        jupyter_timeout: float = 90.0,
        jupyter_extra_args: tuple[str, ...] | list[str] = (),
    ):
        self.state_dir = Path(state_dir)
        self.python = python
        self.bin_dir = str(Path(python).parent)
        self.boot_timeout = boot_timeout
        self.stop_grace = stop_grace
        self.jupyter_timeout = jupyter_timeout
        self.jupyter_extra_args = list(jupyter_extra_args)
        self._locks: dict[str, asyncio.Lock] = {}

    # -- layout ---------------------------------------------------------------

    def instance_dir(self, inst: RuntimeInstance) -> Path:
        if not _SAFE_NAME.match(inst.name):
            raise RuntimeFailure(f"invalid instance name {inst.name!r}")
        return (self.state_dir / "instances" / inst.name).resolve()

    def home_dir(self, inst: RuntimeInstance) -> Path:
        return self.instance_dir(inst) / "home"

    def share_dir(self, inst: RuntimeInstance) -> Path | None:
        """The workspace file share's directory; None when the workspace is unknown."""
        share = workspace_share_id(inst.workspace)
        return (self.state_dir / "workspaces" / share / "code").resolve() if share else None

    def _link_share(self, inst: RuntimeInstance) -> None:
        """~/cloudfiles/code -> the workspace's share (made on first use, never removed here)."""
        share = self.share_dir(inst)
        if share is None:
            return
        share.mkdir(parents=True, exist_ok=True)
        cloudfiles = self.home_dir(inst) / "cloudfiles"
        cloudfiles.mkdir(mode=0o755, exist_ok=True)
        link = cloudfiles / "code"
        if link.is_symlink() or not link.exists():  # a directory the user made there is theirs
            if link.is_symlink() and Path(os.readlink(link)) == share:
                return
            link.unlink(missing_ok=True)
            link.symlink_to(share, target_is_directory=True)

    def _lock(self, inst: RuntimeInstance) -> asyncio.Lock:
        return self._locks.setdefault(inst.name, asyncio.Lock())

    def _machine_env(self, inst: RuntimeInstance) -> dict[str, str]:
        """A clean environment for the machine's own services."""
        home = self.home_dir(inst)
        return {
            "HOME": str(home),
            "USER": "azureuser",
            "LOGNAME": "azureuser",
            "SHELL": "/bin/bash",
            "PATH": f"{self.bin_dir}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "LANG": "C.UTF-8",
            MARKER_ENV: str(self.instance_dir(inst)),
        }

    async def _spawn_detached(self, argv: list[str], log_path: Path, cwd: Path, env: dict[str, str]) -> tuple[int, int]:
        """Start argv as a daemon in a new session; return (pid, pgid).

        A throwaway ``sh`` becomes the session leader, backgrounds argv and
        exits, so the daemon is not our child: it outlives this event loop
        and this emulator, and nothing here has to reap it.
        """
        proc = await asyncio.create_subprocess_exec(
            "/bin/sh", "-c", 'log="$1"; shift; "$@" </dev/null >>"$log" 2>&1 & echo $!',
            "sh", str(log_path), *argv,
            cwd=cwd, env=env, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, start_new_session=True,
        )
        out, _ = await proc.communicate()
        if proc.returncode != 0 or not out.strip().isdigit():
            raise RuntimeFailure(f"could not start {argv[0]}: {_log_tail(log_path)}")
        return int(out.strip()), proc.pid

    # -- InstanceRuntime --------------------------------------------------------

    async def create(self, inst: RuntimeInstance) -> None:
        home = self.home_dir(inst)
        await asyncio.to_thread(home.mkdir, mode=0o755, parents=True, exist_ok=True)
        await asyncio.to_thread(self._link_share, inst)
        if os.geteuid() == 0:
            # A real instance's user is azureuser, not root; when the emulator
            # runs as root (CI, containers) its "machines" do too, and Jupyter
            # refuses root unless told otherwise. The instance's own config says so.
            cfg = home / ".jupyter" / "jupyter_server_config.json"
            await asyncio.to_thread(cfg.parent.mkdir, parents=True, exist_ok=True)
            await asyncio.to_thread(cfg.write_text, '{"ServerApp": {"allow_root": true}}\n')

    async def boot(self, inst: RuntimeInstance) -> Connectivity:
        async with self._lock(inst):
            if await self.is_running(inst) and inst.data.get("connectivity"):
                return Connectivity(**inst.data["connectivity"])
            idir, home = self.instance_dir(inst), self.home_dir(inst)
            if not home.is_dir():
                raise RuntimeFailure(f"the disk of instance {inst.name} is missing ({home}); was it created?")
            await asyncio.to_thread(self._install_admin_key, inst)
            await asyncio.to_thread(self._link_share, inst)  # instances made before shares existed too
            # stale children of a machine that died without shutdown go first
            await self._kill_machine(inst)
            log_path, ready_file = idir / "sshd.log", idir / "sshd.ready"
            port = inst.data.get("ssh_port")
            for _attempt in range(3):
                port = free_port(port)
                argv = [
                    self.python, "-m", SSHD_MODULE,
                    "--host", LOOPBACK, "--port", str(port), "--home", str(home),
                    "--authorized-keys", str(home / ".ssh" / "authorized_keys"),
                    "--authorized-keys", str(home / ".ssh" / "authorized_keys2"),
                    "--host-key", str(idir / "ssh_host_ed25519_key"),
                    "--path-prefix", self.bin_dir,
                    "--ready-file", str(ready_file),
                ]
                ready_file.unlink(missing_ok=True)
                env = self._machine_env(inst)
                if os.environ.get("PYTHONPATH"):  # so the sshd module imports as it does here
                    env["PYTHONPATH"] = os.environ["PYTHONPATH"]
                pid, pgid = await self._spawn_detached(argv, log_path, home, env)
                inst.data.update(sshd_pid=pid, sshd_pgid=pgid, ssh_port=port)
                try:
                    await wait_for_file(ready_file, str(pid), self.boot_timeout, alive=lambda: _alive(pid))
                    await wait_for_ssh_banner(LOOPBACK, port, self.boot_timeout, alive=lambda: _alive(pid))
                    break
                except ProcessLookupError:
                    port = None  # lost a race for the port, most likely: try another
                except TimeoutError:
                    await self._kill_machine(inst)
                    raise RuntimeFailure(
                        f"the SSH server of instance {inst.name} did not start within "
                        f"{self.boot_timeout:.0f} s:\n{_log_tail(log_path)}"
                    ) from None
            else:
                raise RuntimeFailure(f"the SSH server of instance {inst.name} failed to start:\n{_log_tail(log_path)}")
            conn = Connectivity(public_ip=LOOPBACK, private_ip=LOOPBACK, ssh_port=port, private_ssh_port=port)
            inst.data["connectivity"] = conn.__dict__.copy()
            log.info("instance %s booted: sshd pid %d on %s:%d", inst.name, pid, LOOPBACK, port)
            return conn

    def _install_admin_key(self, inst: RuntimeInstance) -> None:
        """As AML does at provisioning: the admin key goes into ~/.ssh/authorized_keys."""
        if not inst.ssh_public_key:
            return
        ssh_dir = self.home_dir(inst) / ".ssh"
        ssh_dir.mkdir(mode=0o700, exist_ok=True)
        keys = ssh_dir / "authorized_keys"
        key = inst.ssh_public_key.strip()
        existing = keys.read_text().splitlines() if keys.exists() else []
        if key not in (line.strip() for line in existing):
            with keys.open("a") as f:
                if existing and not keys.read_text().endswith("\n"):
                    f.write("\n")
                f.write(key + "\n")
        keys.chmod(0o600)

    async def is_running(self, inst: RuntimeInstance) -> bool:
        pid = inst.data.get("sshd_pid")
        if not _alive(pid):
            return False
        # a recycled pid would not be our sshd serving this very home
        argv = _cmdline(pid)
        return SSHD_MODULE in argv and str(self.home_dir(inst)) in argv

    async def shutdown(self, inst: RuntimeInstance) -> None:
        async with self._lock(inst):
            await self._kill_machine(inst)
            for key in ("sshd_pid", "sshd_pgid", "jupyter", "connectivity"):
                inst.data.pop(key, None)

    def _live_pgids(self, inst: RuntimeInstance) -> set[int]:
        """The recorded process groups that are still ours.

        A group id is trusted only while the recorded process is alive, in that
        group and carries this machine's marker: a stale id could by now name
        somebody else's group.
        """
        marker = f"{MARKER_ENV}={self.instance_dir(inst)}".encode()
        jupyter = inst.data.get("jupyter") or {}
        pgids = set()
        for pid, pgid in ((inst.data.get("sshd_pid"), inst.data.get("sshd_pgid")), (jupyter.get("pid"), jupyter.get("pgid"))):
            stat = _proc_stat(pid) if pid and pgid else None
            if stat is None or stat[1] != pgid:
                continue
            try:
                if marker in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
                    pgids.add(pgid)
            except OSError:
                pass
        return pgids

    async def _kill_machine(self, inst: RuntimeInstance) -> None:
        marker = str(self.instance_dir(inst))
        pgids = self._live_pgids(inst)
        pids = await asyncio.to_thread(_machine_pids, marker, pgids)
        if not pids:
            return
        log.info("instance %s: stopping %d processes", inst.name, len(pids))
        _signal_all(pids, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_grace
        while pids and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            pids = {p for p in pids if _alive(p)}
        # SIGKILL the rest, and whatever they spawned meanwhile
        for _ in range(3):
            pids = await asyncio.to_thread(_machine_pids, marker, pgids)
            if not pids:
                return
            _signal_all(pids, signal.SIGKILL)
            await asyncio.sleep(0.1)

    async def destroy(self, inst: RuntimeInstance) -> None:
        await self.shutdown(inst)
        idir = self.instance_dir(inst)
        await asyncio.to_thread(shutil.rmtree, idir, ignore_errors=True)
        if idir.exists():
            raise RuntimeFailure(f"could not remove the disk of instance {inst.name} ({idir})")
        inst.data.clear()

    async def running_lab(self, inst: RuntimeInstance) -> Lab | None:
        info = inst.data.get("jupyter") or {}
        pid = info.get("pid")
        if not (_alive(pid) and "jupyterlab" in _cmdline(pid)):
            return None
        return Lab.recorded(info)

    async def application_url(self, inst: RuntimeInstance, base_path: str) -> Lab:
        base_path = normalize_base_path(base_path)
        async with self._lock(inst):
            if not await self.is_running(inst):
                raise RuntimeFailure(f"instance {inst.name} is not running")
            info = inst.data.get("jupyter") or {}
            pid = info.get("pid")
            known = Lab.recorded(info)
            if _alive(pid) and "jupyterlab" in _cmdline(pid):
                if (known and known.base_path == base_path
                        and await http_ok(f"{known.origin}{base_path}api/status", headers=known.headers)):
                    return known
                # wrong base path, wedged, or from before Labs had tokens: start afresh
                if info.get("pgid") in self._live_pgids(inst):
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(info["pgid"], signal.SIGTERM)
            port = free_port(info.get("port"))
            idir, home = self.instance_dir(inst), self.home_dir(inst)
            config_file, log_path = idir / LAB_CONFIG_NAME, idir / "jupyterlab.log"
            await asyncio.to_thread(config_file.write_text, LAB_CONFIG)
            argv = [self.python, "-m", "jupyterlab",
                    *jupyterlab_args(LOOPBACK, port, base_path, str(home), str(config_file)), *self.jupyter_extra_args]
            lab = Lab(f"http://{LOOPBACK}:{port}", base_path, new_lab_token())
            env = {**self._machine_env(inst), **lab_environment(lab.token)}
            pid, pgid = await self._spawn_detached(argv, log_path, home, env)
            inst.data["jupyter"] = {"pid": pid, "pgid": pgid, "port": port, "base_path": base_path,
                                    "origin": lab.origin, "token": lab.token}
            origin = lab.origin
            try:
                await wait_for_http(f"{origin}{base_path}api/status", self.jupyter_timeout, alive=lambda: _alive(pid),
                                    headers=lab.headers)
            except (TimeoutError, ProcessLookupError) as exc:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pgid, signal.SIGKILL)
                raise RuntimeFailure(f"JupyterLab on instance {inst.name} did not start ({exc}):\n{_log_tail(log_path)}") from None
            log.info("instance %s: JupyterLab pid %d at %s%s", inst.name, pid, origin, base_path)
            return lab
