"""The two tunnels of a proxy-mode server, as an OpenSSH command (pure).

When the hub runs beside a tunnel service (``tunnel_service``, in the
proxy's container), a server's tunnels are one ``ssh -N`` process there
instead of forwards inside the hub's event loop, so that bytes between a
user and their server never pass through the hub and a hub restart leaves
them alone:

- ``-L <bind>:<local>:127.0.0.1:<remote>``: the proxy's side listens and
  carries connections to the notebook server on the instance;
- ``-R 127.0.0.1:<api>:<hub host>:<hub port>``: the instance listens on its
  loopback and carries the server's calls back to the hub's API.

This module only builds things (the request the hub sends, the command the
service runs); :mod:`tunnel_service` runs them and :mod:`tunnel_client` asks
for them.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import MISSING, asdict, dataclass, fields

# a name safe as a file name and a URL path segment: the hub's "<user>-<server>" keys, escaped
_KEY = re.compile(r"^[A-Za-z0-9._@-]{1,200}$")
# "ssh-ed25519 AAAA..." (an OpenSSH public key line, no comment needed)
_HOST_KEY = re.compile(r"^(ssh-[a-z0-9-]+|ecdsa-sha2-[a-z0-9-]+|sk-[a-z0-9@.-]+) [A-Za-z0-9+/=]+( .*)?$")
CIPHERS = "aes128-gcm@openssh.com,aes256-gcm@openssh.com,chacha20-poly1305@openssh.com,aes128-ctr,aes256-ctr"
HOST_ALIAS = "instance"  # the name the pinned host key is filed under (any host, any port)


class TunnelSpecError(ValueError):
    """A tunnel request that cannot be carried out; the message says which field."""


@dataclass(frozen=True)
class TunnelSpec:
    """One server's tunnels: where its instance's sshd is, and the ports."""

    host: str
    port: int
    user: str
    host_key: str  # the instance's pinned host key (trusted on first use by the hub)
    remote_port: int  # the notebook server, on the instance's loopback
    api_port: int = 0  # the instance's end of the reverse tunnel to the hub's API; 0: none
    hub_host: str = ""  # the hub's API as the tunnel service reaches it
    hub_port: int = 0

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data) -> "TunnelSpec":
        """The spec in a request body, checked field by field (TunnelSpecError says which is wrong)."""
        if not isinstance(data, dict):
            raise TunnelSpecError("the body must be a JSON object")
        known = {f.name: f for f in fields(cls)}
        values = {}
        for name, f in known.items():
            if name not in data:
                if f.default is MISSING:
                    raise TunnelSpecError(f"{name} is required")
                continue
            value = data[name]
            if f.type == "int":
                if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 65535:
                    raise TunnelSpecError(f"{name} must be a port number (0-65535), not {value!r}")
            elif not isinstance(value, str):
                raise TunnelSpecError(f"{name} must be a string, not {value!r}")
            values[name] = value
        spec = cls(**values)
        spec.check()
        return spec

    def check(self) -> None:
        # nothing here reaches a shell, but ssh reads "-..." as options and
        # "%" and spaces in -o values: keep every field plain
        if not re.fullmatch(r"[A-Za-z0-9.:_-]{1,253}", self.host) or self.host.startswith("-"):
            raise TunnelSpecError(f"host {self.host!r} is not a host name or IP address")
        if not re.fullmatch(r"[a-z_][a-z0-9_-]{0,31}", self.user):
            raise TunnelSpecError(f"user {self.user!r} is not a Unix user name")
        if not _HOST_KEY.match(self.host_key) or "\n" in self.host_key:
            raise TunnelSpecError("host_key must be the instance's OpenSSH public host key (one line)")
        if not self.port or not self.remote_port:
            raise TunnelSpecError("port and remote_port must be set")
        if self.api_port and not (self.hub_port and re.fullmatch(r"[A-Za-z0-9._-]{1,253}", self.hub_host)):
            raise TunnelSpecError("a reverse tunnel (api_port) needs hub_host and hub_port")


def check_key(key: str) -> str:
    if not _KEY.match(key) or key.startswith("."):
        raise TunnelSpecError(f"tunnel name {key!r} may hold only letters, digits and . _ @ -")
    return key


def known_hosts_line(host_key: str) -> str:
    """The known_hosts entry that pins ``host_key`` under :data:`HOST_ALIAS`."""
    kind, blob = host_key.split()[:2]
    return f"{HOST_ALIAS} {kind} {blob}\n"


def ssh_command(spec: TunnelSpec, leg: str, *, key_file: str, known_hosts_file: str, bind_ip: str = "",
                local_port: int = 0, ssh: str = "ssh") -> list[str]:
    """The ``ssh -N`` command that holds one leg of ``spec``'s tunnels open:
    ``"in"`` (``-L``, the way to the server) or ``"back"`` (``-R``, the way
    to the hub's API; it logs at debug1, the only level at which ssh says a
    remote forward was granted).

    It trusts only the pinned host key and only the given key file (no agent,
    no user or system config), exits when its forward cannot be set up (so the
    supervisor sees it and tries again, instead of a tunnel that silently
    lacks it), and notices a dead peer within ~45 s.
    """
    if leg == "in":
        forward = ["-L", f"{bind_ip}:{local_port}:127.0.0.1:{spec.remote_port}"]
    elif leg == "back" and spec.api_port:
        forward = ["-R", f"127.0.0.1:{spec.api_port}:{spec.hub_host}:{spec.hub_port}"]
    else:
        raise TunnelSpecError(f"no {leg!r} leg in this tunnel")
    return [
        ssh, "-N", "-T",
        "-F", "/dev/null",
        "-i", key_file,
        "-p", str(spec.port),
        "-l", spec.user,
        "-o", "IdentitiesOnly=yes",
        "-o", "IdentityAgent=none",
        "-o", "BatchMode=yes",
        "-o", "PasswordAuthentication=no",
        "-o", "KbdInteractiveAuthentication=no",
        "-o", f"HostKeyAlias={HOST_ALIAS}",
        "-o", f"UserKnownHostsFile={known_hosts_file}",
        "-o", "GlobalKnownHostsFile=/dev/null",
        "-o", "StrictHostKeyChecking=yes",
        "-o", "UpdateHostKeys=no",
        "-o", "ExitOnForwardFailure=yes",
        "-o", "ServerAliveInterval=15",
        "-o", "ServerAliveCountMax=3",
        "-o", "TCPKeepAlive=yes",
        # AES-GCM first: with AES-NI (every Azure VM) it moves about 1.5x the bytes of OpenSSH's
        # default chacha20-poly1305 per CPU second (make bench SUITES=dataplane); the rest as fallbacks
        "-o", f"Ciphers={CIPHERS}",
        "-o", "ConnectTimeout=20",
        "-o", "LogLevel=" + ("ERROR" if leg == "in" else "DEBUG1"),
        *forward,
        "--", spec.host,
    ]


def tunnel_name(user: str, server: str) -> str:
    """The tunnel service's name for a user's server: readable, and distinct
    for every (user, server) pair even where unusual characters are replaced."""
    raw = f"{user}/{server}"
    safe = "".join(c if c.isalnum() or c in "._@-" else "_" for c in f"{user}-{server or 'default'}")
    return f"{safe[:150].lstrip('.')}-{hashlib.sha256(raw.encode()).hexdigest()[:8]}"
