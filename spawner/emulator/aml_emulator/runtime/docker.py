"""Compute instances as Docker containers of the emulated instance image.

One instance is a container ``aml-ci-<name>`` of ``docker/instance.Dockerfile``
(sshd on 50000 and 22, azureuser, AML's envs under /anaconda/envs) and a
volume ``aml-ci-<name>-home`` mounted at /home/azureuser: the OS disk (the
container's own layer is the rest of it). Stop keeps both, so the disk
survives; destroy removes both. Besides:

- the workspace file share: one volume ``aml-ws-<workspace id>-code`` per
  workspace (see :func:`share_volume_name`), mounted in every instance of the
  workspace where AML mounts it, ``/mnt/batch/tasks/shared/LS_root/mounts/
  clusters/<name>/code``, and linked from ``~/cloudfiles/code`` by the image's
  entrypoint. It outlives every instance: destroy and the sweep leave it;
- ``/mnt`` is a tmpfs, AML's temp disk, wiped at every stop (the share's
  mount sits inside it: Docker mounts by depth, the tmpfs first).

Outbound internet (``internet``): ``open``, as a public-IP instance; or
``none``, as a managed VNet allowing only approved outbound (nothing for PyPI
or conda): the instances' network must then be a Docker *internal* network.
The network given is checked (the runtime refuses one that is not internal);
without one the runtime makes its own, ``aml-emulator-offline``, and uses it
as if it had been given (addresses on it, SSH port 50000, slots), since Docker
publishes no ports from an internal network; the Docker host reaches the
containers on it directly.

Where the emulator reaches the machines, and so what it reports:

- ``network`` given (the emulator and hub run in containers on that network):
  the container's address on it, SSH port 50000, JupyterLab's port as is.
  Nothing is published on the host. With ``slots`` (the default), the
  instance does not join the network itself: it shares the network of a
  *slot*, a sleeping container made on the network at emulator start and kept
  for good. Joining a bridge adds a network interface (and its addresses) on
  the Docker host, and leaving it removes them; a browser on that host (the
  demo on a Linux laptop) aborts its requests in flight on every such change
  (``net::ERR_NETWORK_CHANGED``), so the hub's Stop and Start buttons
  reported failures that were successes. With slots, creating, starting,
  stopping and deleting instances change nothing on the host; and an
  instance keeps its address while stopped, as a real one does. A slot is
  taken by the instance whose container names it, and free again when that
  container is removed; when all are taken a new one is made.
- no network (the emulator runs on the host): SSH and JupyterLab are
  published on random ports of ``publish_host`` (127.0.0.1); SSH is reported
  as that address and port, the private address is the container's on the
  default bridge. Docker may pick new host ports at every start, so they are
  read again at each boot.

The Docker SDK blocks: every call runs in this runtime's own thread pool.

A missing instance image is built from ``build_context`` when that holds
``instance.Dockerfile`` (the emulator's own image carries a copy at
/opt/instance-image), so a fresh ``docker compose`` stack needs no separate
build step; without it, creating an instance fails and says how to build it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import io
import logging
import shlex
import tarfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import docker
import docker.errors
import requests.exceptions

from .base import Connectivity, InstanceRuntime, Lab, RuntimeFailure, RuntimeInstance, workspace_share_id
from .lab import LAB_CONFIG, LAB_CONFIG_NAME, jupyterlab_args, lab_environment, new_lab_token, normalize_base_path
from .probes import http_ok, wait_for_http, wait_for_ssh_banner

log = logging.getLogger(__name__)

LABEL = "aml-jupyterhub.instance"
SLOT_LABEL = "aml-jupyterhub.slot"  # on a slot: "1"; on an instance: the name of its slot
NETWORK_LABEL = "aml-jupyterhub.network"  # instances and slots: the network they are on (or share)
SHARE_LABEL = "aml-jupyterhub.workspace-share"  # on a share volume: its workspace ("sub/rg/name")
OFFLINE_LABEL = "aml-jupyterhub.offline"  # on the internal network the runtime made for internet none
SSH_PORT = 50000
HOME = "/home/azureuser"
# AML's own Jupyter service lives in this env (since image 23.01)
JUPYTER_ENV = "/anaconda/envs/jupyter_env"
# where AML mounts the workspace's file share, per instance name
SHARE_MOUNT = "/mnt/batch/tasks/shared/LS_root/mounts/clusters/{name}/code"
# AML's temp disk: wiped on stop; exec allowed, as on a real disk (Docker's tmpfs default is noexec)
MNT_TMPFS = {"/mnt": "rw,exec,mode=0755"}
INTERNET = ("open", "none")
OFFLINE_NETWORK = "aml-emulator-offline"
JUPYTER_LOG = "/tmp/aml-jupyterlab.log"
JUPYTER_PIDFILE = "/tmp/aml-jupyterlab.pid"
LAB_CONFIG_FILE = f"/opt/aml-emulator/{LAB_CONFIG_NAME}"
# Where the emulator image keeps the instance image's build context.
BUILD_CONTEXT = Path("/opt/instance-image")
DOCKERFILE = "instance.Dockerfile"


def container_name(inst: RuntimeInstance) -> str:
    return f"aml-ci-{inst.name}"


def volume_name(inst: RuntimeInstance) -> str:
    return f"aml-ci-{inst.name}-home"


def share_volume_name(inst: RuntimeInstance, network: str | None = None) -> str | None:
    """The workspace file share's volume, None when the workspace is unknown. On a
    network, the network names it too: two emulators (two stacks) on one engine are
    two Azures, and their workspaces of the same name share nothing."""
    share = workspace_share_id(inst.workspace)
    if not share:
        return None
    return f"aml-ws-{network}-{share}-code" if network else f"aml-ws-{share}-code"


def share_mount(inst: RuntimeInstance) -> str:
    return SHARE_MOUNT.format(name=inst.name)


def slot_name(network: str, number: int) -> str:
    return f"aml-slot-{network}-{number}"


class DockerRuntime(InstanceRuntime):
    """Instances as containers (see the module docstring).

    :param state_dir: the emulator's state directory (unused: Docker keeps
        the machines; accepted so both runtimes are built alike).
    :param image: the instance image, built from ``docker/instance.Dockerfile``.
    :param network: Docker network to attach instances to, or None to publish
        their ports on ``publish_host`` instead (with ``internet="open"``).
    :param internet: ``"open"`` or ``"none"`` (see the module docstring):
        with none, ``network`` must be an internal Docker network, and
        without one the instances join ``offline_network``.
    :param offline_network: the internal network made for ``internet="none"``
        when no ``network`` is given.
    :param client: a ``docker.DockerClient``; default ``docker.from_env()``,
        made on first use.
    :param publish_host: host address published ports bind to (no network).
    :param ssh_accept_env: client variables the instance's sshd accepts
        (its ``AcceptEnv``). Default ``"LANG LC_*"``, Debian/Ubuntu's stock
        setting and so what a real instance most likely has [unverified]: a
        caller that passes ``env=`` over SSH learns here that it is dropped.
        ``"*"`` accepts everything, like the process runtime.
    :param jupyter_port: port of AML's own JupyterLab inside the container.
    :param boot_timeout: seconds to wait for sshd to greet after start.
    :param stop_timeout: seconds docker stop waits before SIGKILL.
    :param jupyter_timeout: seconds to wait for JupyterLab's ``api/status``.
    :param jupyter_extra_args: appended to JupyterLab's command line.
    :param max_workers: threads for blocking Docker SDK calls.
    :param slots: with ``network`` (or the offline one): how many network slots to keep ready
        (made at :meth:`start`); 0 lets every instance join the network itself.
    :param build_context: directory with ``instance.Dockerfile`` (and the
        ``instance/`` files it copies) to build ``image`` from when it is
        missing; default /opt/instance-image, present only in the emulator's
        image. None, or a directory without that file, never builds.
    """

    kind = "docker"

    def __init__(
        self,
        state_dir: Path | str,
        image: str = "aml-jupyterhub-instance:local",
        network: str | None = None,
        *,
        client: docker.DockerClient | None = None,
        publish_host: str = "127.0.0.1",
        ssh_accept_env: str = "LANG LC_*",
        jupyter_port: int = 8890,
        boot_timeout: float = 60.0,
        stop_timeout: int = 10,
        jupyter_timeout: float = 90.0,
        jupyter_extra_args: tuple[str, ...] | list[str] = (),
        max_workers: int = 4,
        build_context: Path | str | None = BUILD_CONTEXT,
        slots: int = 8,
        internet: str = "open",
        offline_network: str = OFFLINE_NETWORK,
    ):
        if internet not in INTERNET:
            raise ValueError(f"internet must be one of {', '.join(INTERNET)}, not {internet!r}")
        self.state_dir = Path(state_dir)
        self.image = image
        self.internet = internet
        # a network given is a stack's own (its leftovers may be swept); the
        # offline one the runtime makes may be shared by emulators on the host
        self._network_given = network is not None
        self.network = network if network is not None else (offline_network if internet == "none" else None)
        self._network_ok = False  # checked (internet none: internal) once
        self._network_lock = threading.Lock()
        self._client = client
        self.publish_host = publish_host
        self.ssh_accept_env = ssh_accept_env
        self.jupyter_port = jupyter_port
        self.boot_timeout = boot_timeout
        self.stop_timeout = stop_timeout
        self.jupyter_timeout = jupyter_timeout
        self.jupyter_extra_args = list(jupyter_extra_args)
        self._executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="aml-docker")
        self._locks: dict[str, asyncio.Lock] = {}
        self.build_context = Path(build_context) if build_context is not None else None
        # pool threads share it: one build at a time, the others wait for it
        self._image_lock = threading.Lock()
        self.slots = slots if self.network else 0
        self._slot_lock = threading.Lock()  # two instances never take one slot

    # -- plumbing ---------------------------------------------------------------

    async def _run(self, fn, *args, **kwargs):
        """Run a blocking Docker call in the pool; Docker trouble becomes RuntimeFailure."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))
        except (requests.exceptions.ConnectionError, docker.errors.DockerException) as exc:
            if isinstance(exc, docker.errors.APIError) and exc.response is not None:
                raise RuntimeFailure(f"Docker refused: {exc.explanation or exc}") from exc
            raise RuntimeFailure(
                f"cannot reach the Docker engine ({exc}): is Docker running, and is its socket "
                "mounted into the emulator (/var/run/docker.sock) or DOCKER_HOST set?"
            ) from exc

    def _docker(self) -> docker.DockerClient:  # in the pool only
        if self._client is None:
            self._client = docker.from_env()
        return self._client

    def _lock(self, inst: RuntimeInstance) -> asyncio.Lock:
        return self._locks.setdefault(inst.name, asyncio.Lock())

    def _get_container(self, inst: RuntimeInstance):  # in the pool only
        try:
            return self._docker().containers.get(container_name(inst))
        except docker.errors.NotFound:
            return None

    def _has_image(self) -> bool:  # in the pool only
        try:
            self._docker().images.get(self.image)
            return True
        except docker.errors.ImageNotFound:
            return False

    def _require_image(self) -> None:  # in the pool only
        if self._has_image():
            return
        context = self.build_context
        if context is None or not (context / DOCKERFILE).is_file():
            raise RuntimeFailure(
                f"the compute-instance image {self.image} is missing: build it with `make image` "
                f"(docker build -f docker/instance.Dockerfile -t {self.image} docker/)"
            )
        with self._image_lock:
            if not self._has_image():  # another thread may have built it meanwhile
                self._build_image(context)

    def _build_image(self, context: Path) -> None:  # in the pool only, under _image_lock
        log.warning("compute-instance image %s is missing: building it from %s (this takes a few minutes)",
                    self.image, context / DOCKERFILE)
        started = time.monotonic()
        try:
            self._docker().images.build(path=str(context), dockerfile=DOCKERFILE, tag=self.image,
                                        rm=True, forcerm=True)
        except docker.errors.BuildError as exc:
            lines = [str(chunk.get("stream") or chunk.get("error") or "").rstrip()
                     for chunk in exc.build_log or () if isinstance(chunk, dict)]
            tail = "\n".join(line for line in lines if line)[-2000:]
            raise RuntimeFailure(
                f"building the compute-instance image {self.image} from {context / DOCKERFILE} failed "
                f"({exc.msg}):\n{tail}"
            ) from None
        log.info("built compute-instance image %s in %.0f s", self.image, time.monotonic() - started)

    # -- network slots (see the module docstring) ---------------------------------

    async def start(self) -> None:
        if self.internet == "none":
            await self._run(self._ensure_network_sync)
        if self.slots:
            await self._run(self._ensure_slots_sync)

    def _ensure_network_sync(self) -> None:  # in the pool only
        """With internet none: the network exists and is internal (made so if
        missing); one that is not internal is refused, saying what to do."""
        if self.internet != "none" or self._network_ok:
            return
        client = self._docker()
        with self._network_lock:
            if self._network_ok:
                return
            try:
                network = client.networks.get(self.network)
            except docker.errors.NotFound:
                try:
                    network = client.networks.create(
                        self.network, driver="bridge", internal=True, check_duplicate=True,
                        labels={OFFLINE_LABEL: "1"} if not self._network_given else {})
                    log.info("made internal Docker network %s: instances have no outbound internet", self.network)
                except docker.errors.APIError as exc:
                    if exc.status_code != 409:  # made meanwhile by somebody else: check theirs
                        raise
                    network = client.networks.get(self.network)
            network.reload()
            if not network.attrs.get("Internal"):
                flag = "--docker-network" if self._network_given else "the emulator's own"
                raise RuntimeFailure(
                    f"--docker-internet none needs the instances' Docker network {self.network} ({flag}) to be "
                    "internal (no route out), and it is not. Remove it (docker network rm "
                    f"{self.network}: the emulator then makes it internal), or make it internal yourself "
                    f"(docker network create --internal {self.network}; in compose, internal: true), "
                    "or run with --docker-internet open"
                )
            self._network_ok = True

    def _slot_containers(self) -> dict:  # in the pool only
        found = self._docker().containers.list(
            all=True, filters={"label": [f"{SLOT_LABEL}=1", f"{NETWORK_LABEL}={self.network}"]})
        return {c.name: c for c in found}

    def _ensure_slots_sync(self) -> None:  # in the pool only
        """At least ``slots`` slots, all running (after a Docker restart too)."""
        self._require_image()
        self._ensure_network_sync()
        with self._slot_lock:
            existing = self._slot_containers()
            for number in range(self.slots):
                name = slot_name(self.network, number)
                if name not in existing:
                    existing[name] = self._make_slot(name)
            for container in existing.values():
                if container.status != "running":
                    self._reattach_network(container)
                    container.start()
        log.info("%d network slots ready on %s", len(existing), self.network)

    def _make_slot(self, name: str):  # in the pool only, under _slot_lock
        return self._docker().containers.run(
            self.image,
            name=name,
            entrypoint=["tini", "--", "sleep", "infinity"],
            network=self.network,
            labels={SLOT_LABEL: "1", NETWORK_LABEL: self.network},
            restart_policy={"Name": "unless-stopped"},
            detach=True,
        )

    def _take_slot(self, inst: RuntimeInstance):  # in the pool only
        """A running slot no other instance container names: this instance's now."""
        with self._slot_lock:
            slots = self._slot_containers()
            taken = {c.labels.get(SLOT_LABEL) for c in self._docker().containers.list(
                all=True, filters={"label": [LABEL, f"{NETWORK_LABEL}={self.network}"]})}
            free = sorted(name for name in slots if name not in taken)
            if free:
                slot = slots[free[0]]
            else:
                number = len(slots)
                while slot_name(self.network, number) in slots:
                    number += 1
                log.info("all %d network slots are taken: making another (it adds an interface on the host)",
                         len(slots))
                slot = self._make_slot(slot_name(self.network, number))
            if slot.status != "running":
                self._reattach_network(slot)
                slot.start()
            slot.reload()
            return slot

    def _slot_of(self, container):  # in the pool only
        name = container.labels.get(SLOT_LABEL)
        if not name:
            return None
        try:
            return self._docker().containers.get(name)
        except docker.errors.NotFound:
            return None

    # -- leftovers ------------------------------------------------------------------

    async def sweep(self, known: set[str]) -> list[str]:
        # only on a network of its own (a stack's): without one (or on the
        # offline network every emulator on the host may share), other
        # emulators' instances on the same engine cannot be told apart from orphans
        if not self.network or not self._network_given:
            return []
        return await self._run(self._sweep_sync, {name.lower() for name in known})

    def _sweep_sync(self, known: set[str]) -> list[str]:  # in the pool only
        client = self._docker()
        ours = {c.id: c for c in client.containers.list(
            all=True, filters={"label": [LABEL, f"{NETWORK_LABEL}={self.network}"]})}
        # made before instances carried the network label: on the network itself
        for c in client.containers.list(all=True, filters={"label": LABEL, "network": self.network}):
            ours.setdefault(c.id, c)
        removed = []
        for container in ours.values():
            name = container.labels.get(LABEL, "")
            if name and name.lower() not in known:
                container.remove(force=True)
                with contextlib.suppress(docker.errors.NotFound):
                    client.volumes.get(f"aml-ci-{name}-home").remove(force=True)
                removed.append(name)
        for volume in client.volumes.list(filters={"label": [LABEL, f"{NETWORK_LABEL}={self.network}"]}):
            labels = volume.attrs.get("Labels") or {}
            if SHARE_LABEL in labels:  # a workspace's file share outlives every instance
                continue
            name = labels.get(LABEL, "")
            if name and name.lower() not in known:
                with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
                    volume.remove(force=True)
                    if name not in removed:
                        removed.append(name)
        return sorted(removed)

    # -- InstanceRuntime --------------------------------------------------------

    async def create(self, inst: RuntimeInstance) -> None:
        await self._run(self._create_sync, inst)

    def _create_sync(self, inst: RuntimeInstance) -> None:
        self._require_image()
        self._ensure_network_sync()
        client = self._docker()
        try:
            client.volumes.get(volume_name(inst))
        except docker.errors.NotFound:
            labels = {LABEL: inst.name, **({NETWORK_LABEL: self.network} if self.network else {})}
            client.volumes.create(volume_name(inst), labels=labels)
        self._ensure_share_sync(inst)

    def _ensure_share_sync(self, inst: RuntimeInstance) -> str | None:  # in the pool only
        """The workspace's file share volume (made on first use, never removed here)."""
        name = share_volume_name(inst, self.network)
        if name is None:
            return None
        client = self._docker()
        try:
            client.volumes.get(name)
        except docker.errors.NotFound:
            labels = {SHARE_LABEL: inst.workspace, **({NETWORK_LABEL: self.network} if self.network else {})}
            # two instances of a workspace made at once: the second create of a
            # local volume with the same name and labels is a no-op for Docker
            client.volumes.create(name, labels=labels)
        return name

    async def boot(self, inst: RuntimeInstance) -> Connectivity:
        async with self._lock(inst):
            container = await self._run(self._start_sync, inst)
            conn, ssh_addr = await self._run(self._connectivity, container)
            name = container_name(inst)

            async def alive() -> bool:
                c = await self._run(self._get_container, inst)
                return c is not None and c.status == "running"

            try:
                await wait_for_ssh_banner(*ssh_addr, self.boot_timeout, alive=alive)
            except (TimeoutError, ProcessLookupError) as exc:
                logs = await self._run(self._logs_sync, container)
                raise RuntimeFailure(f"instance {inst.name} did not boot ({exc}); container {name} says:\n{logs}") from None
            inst.data.update(container=name, connectivity=conn.__dict__.copy())
            inst.data.pop("jupyter", None)
            log.info("instance %s booted: container %s, ssh at %s:%d", inst.name, name, *ssh_addr)
            return conn

    def _start_sync(self, inst: RuntimeInstance):
        self._ensure_network_sync()
        container = self._get_container(inst)
        if container is not None and self.slots and not self._slot_usable(container):
            # its slot is gone or was made anew: the container is only a process tree
            # over the disk (the volume), so it is made again on a slot
            log.info("container %s: its network slot is gone; making it again on another", container.name)
            container.remove(force=True)
            container = None
        if container is None:
            container = self._create_container(inst)
        if container.status != "running":
            if self.network and not self.slots:
                self._reattach_network(container)
            container.start()
        container.reload()
        return container

    def _slot_usable(self, container) -> bool:  # in the pool only
        slot = self._slot_of(container)
        if slot is None:
            return False
        if slot.status != "running":
            slot.start()
            slot.reload()
        mode = container.attrs["HostConfig"].get("NetworkMode", "")
        return mode in (f"container:{slot.id}", f"container:{slot.name}")

    def _create_container(self, inst: RuntimeInstance):  # in the pool only
        self._require_image()
        kwargs: dict = {"hostname": inst.name[:63]}
        labels = {LABEL: inst.name, "aml-jupyterhub.vm-size": inst.vm_size}
        if self.slots:
            slot = self._take_slot(inst)
            # a shared network namespace has the slot's host name
            kwargs = {"network_mode": f"container:{slot.id}"}
            labels.update({SLOT_LABEL: slot.name, NETWORK_LABEL: self.network})
        elif self.network:
            kwargs["network"] = self.network
            labels[NETWORK_LABEL] = self.network
        else:
            kwargs["ports"] = {
                f"{SSH_PORT}/tcp": (self.publish_host, None),
                f"{self.jupyter_port}/tcp": (self.publish_host, None),
            }
        volumes = {volume_name(inst): {"bind": HOME, "mode": "rw"}}
        environment = {
            "AML_ADMIN_PUBLIC_KEY": (inst.ssh_public_key or "").strip(),
            "AML_SSHD_ACCEPT_ENV": self.ssh_accept_env,
        }
        share = self._ensure_share_sync(inst)
        if share:
            volumes[share] = {"bind": share_mount(inst), "mode": "rw"}
            environment["AML_CI_NAME"] = inst.name  # the entrypoint links ~/cloudfiles/code to the mount
        return self._docker().containers.create(
            self.image,
            name=container_name(inst),
            labels=labels,
            environment=environment,
            volumes=volumes,
            # Docker mounts by depth: the tmpfs first, the share inside it after
            tmpfs=dict(MNT_TMPFS),
            detach=True,
            **kwargs,
        )

    def _reattach_network(self, container) -> None:  # in the pool only
        """Point a stopped container at the current network of its name.

        ``docker compose down`` removes the network and ``up`` makes a new one
        with the same name; a stopped container still refers to the old one
        by id and Docker refuses to start it ("network ... not found").
        """
        network = self._docker().networks.get(self.network)
        attached = (container.attrs["NetworkSettings"].get("Networks") or {}).get(self.network) or {}
        # a container that never ran has no network id yet: nothing is stale
        if attached and attached.get("NetworkID") in (network.id, "", None):
            return
        log.info("container %s: re-attaching to network %s (re-created since it last ran)", container.name, self.network)
        if attached:
            with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
                network.disconnect(container, force=True)
        network.connect(container)
        container.reload()

    def _connectivity(self, container) -> tuple[Connectivity, tuple[str, int]]:  # in the pool only
        """What AML reports, and where this emulator itself reaches sshd."""
        if self.slots:
            container = self._slot_of(container) or container  # the address is the slot's
        settings = container.attrs["NetworkSettings"]
        networks = settings.get("Networks") or {}
        if self.network:
            net = networks.get(self.network) or next(iter(networks.values()), {})
            ip = net.get("IPAddress")
            if not ip:
                raise RuntimeFailure(f"container {container.name} has no address on network {self.network}")
            return Connectivity(public_ip=ip, private_ip=ip, ssh_port=SSH_PORT, private_ssh_port=SSH_PORT), (ip, SSH_PORT)
        port = self._published(container, SSH_PORT)
        bridge = networks.get("bridge") or next(iter(networks.values()), {})
        private_ip = bridge.get("IPAddress") or self.publish_host
        conn = Connectivity(public_ip=self.publish_host, private_ip=private_ip, ssh_port=port, private_ssh_port=SSH_PORT)
        return conn, (self.publish_host, port)

    def _published(self, container, port: int) -> int:
        bindings = (container.attrs["NetworkSettings"].get("Ports") or {}).get(f"{port}/tcp") or []
        for binding in bindings:
            if binding.get("HostPort"):
                return int(binding["HostPort"])
        raise RuntimeFailure(
            f"container {container.name} publishes no port for {port}; it was made for another "
            "network setting: delete and recreate the instance"
        )

    def _logs_sync(self, container) -> str:
        try:
            return container.logs(tail=20).decode(errors="replace")
        except docker.errors.DockerException:
            return "(no logs)"

    async def shutdown(self, inst: RuntimeInstance) -> None:
        async with self._lock(inst):
            await self._run(self._stop_sync, inst)
            for key in ("connectivity", "jupyter"):
                inst.data.pop(key, None)

    def _stop_sync(self, inst: RuntimeInstance) -> None:
        container = self._get_container(inst)
        if container is not None and container.status in ("running", "restarting", "paused"):
            with contextlib.suppress(docker.errors.NotFound):
                if container.status == "paused":
                    container.unpause()
                container.stop(timeout=self.stop_timeout)

    async def destroy(self, inst: RuntimeInstance) -> None:
        async with self._lock(inst):
            await self._run(self._destroy_sync, inst)
            inst.data.clear()

    def _destroy_sync(self, inst: RuntimeInstance) -> None:
        container = self._get_container(inst)
        if container is not None:
            with contextlib.suppress(docker.errors.NotFound):
                container.remove(force=True)
        try:
            self._docker().volumes.get(volume_name(inst)).remove(force=True)
        except docker.errors.NotFound:
            pass

    async def is_running(self, inst: RuntimeInstance) -> bool:
        container = await self._run(self._get_container, inst)
        return container is not None and container.status == "running"

    async def running_lab(self, inst: RuntimeInstance) -> Lab | None:
        # recorded when it was started; a container that stopped since answers no probe
        return Lab.recorded(inst.data.get("jupyter"))

    async def application_url(self, inst: RuntimeInstance, base_path: str) -> Lab:
        base_path = normalize_base_path(base_path)
        async with self._lock(inst):
            container = await self._run(self._get_container, inst)
            if container is None or container.status != "running":
                raise RuntimeFailure(f"instance {inst.name} is not running")
            if self.network:
                ip = (await self._run(self._connectivity, container))[1][0]
                origin = f"http://{ip}:{self.jupyter_port}"
            else:
                origin = f"http://{self.publish_host}:{self._published(container, self.jupyter_port)}"
            known = Lab.recorded(inst.data.get("jupyter"))
            if (known and (known.origin, known.base_path) == (origin, base_path)
                    and await http_ok(f"{origin}{base_path}api/status", headers=known.headers)):
                return known  # already up, at this very base path, with the token we hold
            lab = Lab(origin, base_path, new_lab_token())
            await self._run(self._start_jupyter_sync, container, base_path, lab.token)
            inst.data["jupyter"] = {"base_path": base_path, "origin": origin, "token": lab.token}
            try:
                await wait_for_http(f"{origin}{base_path}api/status", self.jupyter_timeout,
                                    alive=lambda: self._run(self._jupyter_alive_sync, container), headers=lab.headers)
            except (TimeoutError, ProcessLookupError) as exc:
                logs = await self._run(self._exec_output, container, ["tail", "-n", "20", JUPYTER_LOG])
                raise RuntimeFailure(f"JupyterLab on instance {inst.name} did not start ({exc}):\n{logs}") from None
            log.info("instance %s: JupyterLab at %s%s", inst.name, origin, base_path)
            return lab

    def _start_jupyter_sync(self, container, base_path: str, token: str) -> None:
        # One JupyterLab per machine: a previous one (another base path, or
        # wedged) goes first. Its pid file may be from an earlier boot (the
        # container's /tmp survives stop), so check the pid is JupyterLab's.
        stop_previous = (
            f'pid=$(cat {JUPYTER_PIDFILE} 2>/dev/null) && grep -q jupyterlab "/proc/$pid/cmdline" 2>/dev/null && '
            f'{{ kill "$pid"; for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done; }}; '
            f"rm -f {JUPYTER_PIDFILE}"
        )
        container.exec_run(["/bin/sh", "-c", stop_previous], user="azureuser")
        self._put_lab_config_sync(container)
        # AML's Jupyter service: jupyter_env's, as azureuser, on every address
        # (the emulator reaches it over the network), admitting only the token
        argv = [f"{JUPYTER_ENV}/bin/python", "-m", "jupyterlab",
                *jupyterlab_args("0.0.0.0", self.jupyter_port, base_path, HOME, LAB_CONFIG_FILE),
                *self.jupyter_extra_args]
        container.exec_run(
            ["/bin/sh", "-c", f"echo $$ > {JUPYTER_PIDFILE}; exec {shlex.join(argv)} >>{JUPYTER_LOG} 2>&1 </dev/null"],
            user="azureuser",
            workdir=HOME,
            environment={"HOME": HOME, "USER": "azureuser", "SHELL": "/bin/bash",
                         "PATH": f"{JUPYTER_ENV}/bin:/usr/local/bin:/usr/bin:/bin", **lab_environment(token)},
            detach=True,
        )

    def _put_lab_config_sync(self, container) -> None:
        """The Lab's config file, root's (as AML's own services' files are), into the container."""
        data = LAB_CONFIG.encode()
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            folder = tarfile.TarInfo(str(Path(LAB_CONFIG_FILE).parent).lstrip("/"))
            folder.type, folder.mode, folder.mtime = tarfile.DIRTYPE, 0o755, int(time.time())
            tar.addfile(folder)
            info = tarfile.TarInfo(LAB_CONFIG_FILE.lstrip("/"))
            info.size, info.mode, info.mtime = len(data), 0o644, int(time.time())
            tar.addfile(info, io.BytesIO(data))
        if not container.put_archive("/", buf.getvalue()):
            raise RuntimeFailure(f"could not write {LAB_CONFIG_FILE} into container {container.name}")

    def _jupyter_alive_sync(self, container) -> bool:
        # no pid file yet means it is still starting
        check = f'[ ! -f {JUPYTER_PIDFILE} ] || kill -0 "$(cat {JUPYTER_PIDFILE})"'
        try:
            return container.exec_run(["/bin/sh", "-c", check], user="azureuser").exit_code == 0
        except docker.errors.DockerException:
            return False

    def _exec_output(self, container, argv: list[str]) -> str:
        try:
            return container.exec_run(argv, user="azureuser").output.decode(errors="replace")
        except docker.errors.DockerException as exc:
            return f"(could not read: {exc})"

    async def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.close()
