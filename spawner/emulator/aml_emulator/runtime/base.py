"""What the emulator asks of a compute-instance runtime.

The control plane (``models``) owns the AML state machine; a runtime owns the
"machine": its disk, its SSH server, its processes or container. The backend
calls these hooks at the edges of each transition and persists
``RuntimeInstance.data`` (the runtime's own bookkeeping: pids, ports,
container ids) together with the instance, so an emulator restart can find the
machine again with :meth:`InstanceRuntime.recover`.
"""

from __future__ import annotations

import abc
import hashlib
import re
from dataclasses import dataclass, field


class RuntimeFailure(Exception):
    """The machine could not be made, booted or stopped.

    The message is shown to the user as AML's own error text (for example in
    ``provisioningErrors`` of a CreateFailed instance), so it must say what
    went wrong in words a person can act on.
    """


@dataclass
class Connectivity:
    """Where the instance's SSH server answers, as AML reports it."""

    public_ip: str
    private_ip: str
    ssh_port: int  # at public_ip; a real instance says 50000
    # at private_ip (VNet access): the runtimes' own bookkeeping; AML reports
    # no such field, so the ARM answers leave it out
    private_ssh_port: int = 22


@dataclass(frozen=True)
class Lab:
    """AML's own JupyterLab on a machine: where it answers (a plain-HTTP
    origin and its base path) and the token it requires of every request.
    Only the emulator holds the token, as only AML's gateway reaches a real
    instance's Lab: another instance that reaches the address gets nothing."""

    origin: str
    base_path: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token}"}

    @classmethod
    def recorded(cls, info: dict | None) -> "Lab | None":
        """The Lab a runtime recorded when it started one (None if it recorded
        none, or one from before Labs had tokens: such a Lab is not reused)."""
        info = info or {}
        if not (info.get("origin") and info.get("token")):
            return None
        return cls(info["origin"], info.get("base_path") or "/", info["token"])


@dataclass
class RuntimeInstance:
    name: str
    vm_size: str
    ssh_public_key: str | None = None  # admin public key given at creation, if SSH is enabled
    data: dict = field(default_factory=dict)  # runtime-private, persisted by the backend
    # the workspace the instance belongs to ("subscription/resource group/name"):
    # every instance of a workspace mounts the workspace's file share (see
    # workspace_share_id); empty: unknown, and the instance has no share
    workspace: str = ""


def workspace_share_id(workspace: str) -> str:
    """A name for a workspace's file share that fits Docker volume names and
    file names: the workspace's name made safe, then a hash of the whole
    identity (two workspaces of one name in different resource groups or
    subscriptions get different shares). Case-insensitive, as AML's names
    are. ``""`` for an unknown workspace (no share)."""
    key = "/".join(part.strip() for part in workspace.strip().strip("/").lower().split("/"))
    if not key:
        return ""
    name = re.sub(r"[^a-z0-9_.-]+", "-", key.rsplit("/", 1)[-1]).strip("-._")[:32].strip("-._") or "ws"
    return f"{name}-{hashlib.sha256(key.encode()).hexdigest()[:8]}"


class InstanceRuntime(abc.ABC):
    kind: str = "abstract"

    @abc.abstractmethod
    async def create(self, inst: RuntimeInstance) -> None:
        """Make the instance's disk (called while Creating, before the first boot)."""

    @abc.abstractmethod
    async def boot(self, inst: RuntimeInstance) -> Connectivity:
        """Start the machine (SSH server and all) on its existing disk; return where SSH answers."""

    @abc.abstractmethod
    async def shutdown(self, inst: RuntimeInstance) -> None:
        """Stop the machine and everything running on it; keep the disk. Idempotent."""

    @abc.abstractmethod
    async def destroy(self, inst: RuntimeInstance) -> None:
        """Remove the machine and its disk. Idempotent."""

    @abc.abstractmethod
    async def is_running(self, inst: RuntimeInstance) -> bool:
        """True if the machine (its SSH server) is up."""

    async def recover(self, inst: RuntimeInstance) -> Connectivity:
        """After an emulator restart: the instance is recorded Running.

        Re-attach to the machine if it still runs, otherwise boot it again.
        """
        if await self.is_running(inst):
            conn = inst.data.get("connectivity")
            if conn:
                return Connectivity(**conn)
        return await self.boot(inst)

    @abc.abstractmethod
    async def application_url(self, inst: RuntimeInstance, base_path: str) -> Lab:
        """Make sure AML's own JupyterLab runs on the instance, started lazily on
        first use with ``base_url=base_path`` (e.g. ``/instances/ci-alice/``), and
        return it: the plain-HTTP origin the emulator proxies to
        (``http://host:port``) and its token."""

    async def running_lab(self, inst: RuntimeInstance) -> Lab | None:
        """AML's own JupyterLab on the machine if it runs; None if it was
        never started (or the machine is down). Never starts it: idle
        detection only looks (see ``idle``). Default: it never runs."""
        return None

    async def start(self) -> None:
        """At emulator start, before any request: make what the runtime keeps ready (default: nothing)."""

    async def sweep(self, known: set[str]) -> list[str]:
        """After the state is loaded: remove the machines (and disks) of this
        runtime that no instance of the state knows, because the state that
        made them was deleted (``docker compose down -v``); return their names.
        Default: nothing to find (a runtime whose machines live in the state
        directory goes with it)."""
        return []

    async def close(self) -> None:
        """Release client resources (not the machines: they outlive the emulator)."""
