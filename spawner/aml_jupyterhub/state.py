"""What a server remembers in JupyterHub's database: :class:`ServerState`.

Two parts. The instance (its name, workspace, owner and which key opens it)
outlives a stop, so a server always comes back to its own instance and disk,
also after a rename. The run (addresses, ports, the server's process, the
JupyterLab URL) is forgotten when the server stops.

The saved dict carries a ``version``; :meth:`ServerState.from_dict` reads any
version this package ever wrote and migrates it, and reads a newer one's
known fields (a downgrade) rather than losing the instance. No secret is
ever part of it: keys live in the secrets volume.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

VERSION = 2

INSTANCE_FIELDS = ("instance_name", "workspace", "owner", "ssh_key")


@dataclass
class ServerState:
    # -- the instance: kept across stops and renames
    instance_name: str = ""
    workspace: dict | None = None  # subscription_id, resource_group, workspace_name
    owner: dict | None = None  # ownership.Owner.to_state(): whose instance it is (None: version 0.1's)
    ssh_key: str = ""  # "instance" (its own key), "shared" (0.1's key), "" (0.1: either)
    # -- one run of the server
    resource_id: str = ""
    mode: str = ""  # proxy, direct or redirect: how this run was connected
    vm_size: str = ""
    profile: str = ""
    ssh_host: str = ""
    ssh_port: int = 0
    host_key: str = ""  # the instance's SSH host key, pinned for the run
    remote_port: int = 0
    server_ip: str = ""  # direct mode: the instance's private IP, which the proxy routes to
    scheme: str = ""  # "https" when the server was started with internal TLS ("" is http)
    api_port: int = 0  # the instance's end of the reverse tunnel to the hub's API
    local_port: int = 0  # the hub's end of the tunnel to the server
    pid: int = 0
    pid_start: int = 0  # the process's start time: a recycled pid is not the server
    lab_url: str = ""
    stop_at: int = 0  # epoch seconds at which the runtime limit stops the server (0: no limit)
    stop_rule: str = ""  # that limit in words, as it was when the server started

    def to_dict(self) -> dict:
        """The dict for get_state(): empty when there is no instance to remember."""
        if not self.instance_name:
            return {}
        return {"version": VERSION, **asdict(self)}

    @classmethod
    def from_dict(cls, saved: dict | None, *, default_mode: str = "") -> "ServerState":
        saved = dict(saved or {})
        if not saved.get("instance_name"):
            return cls()
        version = saved.get("version") or 1
        if version < 2:
            saved = _from_version_1(saved)
        state = cls()
        for f in fields(cls):
            if f.name in saved:
                setattr(state, f.name, _as(f.type, saved[f.name]))
        state.mode = state.mode or default_mode
        return state

    def forget_run(self) -> None:
        """After a stop: the run's fields back to empty, the instance kept."""
        blank = ServerState()
        for f in fields(self):
            if f.name not in INSTANCE_FIELDS:
                setattr(self, f.name, getattr(blank, f.name))

    @property
    def started(self) -> bool:
        """Whether a server was started on the instance in this run."""
        return bool(self.lab_url) if self.mode == "redirect" else bool(self.pid)


def _from_version_1(saved: dict) -> dict:
    """Version 0.1 kept the instance only while the server ran and recorded
    neither its owner nor its key: those stay unknown (None and "") and the
    spawner then accepts the untagged instance 0.1 made, with either key."""
    migrated = {k: v for k, v in saved.items() if k not in ("owner", "ssh_key")}
    migrated["workspace"] = saved.get("workspace") or None
    return migrated


def _as(kind: str, value):
    """A saved value as the field's type (the database may hold None or a string for a number)."""
    if kind == "int":
        return int(value or 0)
    if kind == "str":
        return str(value or "")
    return value or None
