"""SSH to a compute instance: commands, and the two tunnels of a server.

- a *local* forward: the hub side listens on 127.0.0.1:<local> and carries
  connections to the notebook server on the instance (127.0.0.1:<remote>);
  the hub's proxy routes to the local end.
- a *remote* forward: the instance listens on its 127.0.0.1:<api> and carries
  connections back to the hub's API, so the server reaches the hub without any
  network path from the instance to the hub.

The instance's host key is trusted on first use and pinned in the spawner's
state (a public key, not a secret): a re-attach after a hub restart refuses a
different key.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import asyncssh

log = logging.getLogger("aml_jupyterhub.ssh")


ENCRYPTION = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com", "chacha20-poly1305@openssh.com", "aes128-ctr",
              "aes256-ctr")


class SSHError(Exception):
    """Could not reach or use the instance over SSH; the message says why."""


@dataclass(frozen=True)
class SSHTarget:
    host: str
    port: int
    user: str = "azureuser"


def read_key(path: str | os.PathLike) -> asyncssh.SSHKey | None:
    """The private key at ``path`` (permissions tightened to 0600), or None if
    there is none. Keys are made by ``keys.KeyStore``, never here."""
    path = Path(path)
    if not path.exists():
        return None
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        os.chmod(path, 0o600)
        log.warning("tightened permissions of %s from %o to 600", path, mode)
    return asyncssh.read_private_key(str(path))


def public_key_text(key: asyncssh.SSHKey) -> str:
    return key.export_public_key().decode().strip()


class Connection:
    """One SSH connection to one instance, and the tunnels on it."""

    def __init__(self, conn: asyncssh.SSHClientConnection, target: SSHTarget):
        self._conn = conn
        self.target = target
        self._listeners: list[asyncssh.SSHListener] = []
        self._closed = asyncio.Event()
        conn_lost = getattr(conn, "wait_closed", None)
        self._watch = asyncio.ensure_future(self._wait(conn_lost)) if conn_lost else None

    async def _wait(self, wait_closed) -> None:
        try:
            await wait_closed()
        finally:
            self._closed.set()

    @classmethod
    async def open(
        cls,
        target: SSHTarget,
        client_key: asyncssh.SSHKey,
        *,
        host_key: str | None = None,
        timeout: float = 20,
    ) -> "Connection":
        known_hosts = None
        if host_key:
            known_hosts = ([asyncssh.import_public_key(host_key)], [], [])
        try:
            conn = await asyncio.wait_for(
                asyncssh.connect(
                    target.host,
                    target.port,
                    username=target.user,
                    client_keys=[client_key],
                    known_hosts=known_hosts,
                    agent_path=None,
                    config=[],
                    keepalive_interval=30,
                    keepalive_count_max=4,
                    # AES-GCM first (as the tunnel service's ssh): with AES-NI the cheapest per byte
                    encryption_algs=ENCRYPTION,
                ),
                timeout,
            )
        except asyncio.TimeoutError:
            raise SSHError(
                f"SSH to {target.host}:{target.port} did not answer within {timeout:.0f} s. The instance may "
                "still be booting, or a firewall/NSG blocks the port."
            ) from None
        except asyncssh.HostKeyNotVerifiable:
            raise SSHError(
                f"The SSH host key of {target.host}:{target.port} is not the one this server was started with; "
                "refusing to connect. If the instance was recreated, stop the server and start it again."
            ) from None
        except asyncssh.PermissionDenied:
            raise SSHError(
                f"SSH to {target.user}@{target.host}:{target.port} refused the hub's key. The instance was "
                "probably created without it (e.g. by someone else, or in redirect mode)."
            ) from None
        except (OSError, asyncssh.Error) as e:
            raise SSHError(f"SSH to {target.host}:{target.port} failed: {e}") from None
        return cls(conn, target)

    @property
    def host_key(self) -> str | None:
        key = self._conn.get_server_host_key()
        return key.export_public_key().decode().strip() if key else None

    @property
    def alive(self) -> bool:
        return not self._closed.is_set()

    async def run(self, command: str, *, input: str | None = None, env: dict | None = None,
                  timeout: float = 120, check: bool = True) -> asyncssh.SSHCompletedProcess:
        try:
            result = await asyncio.wait_for(
                self._conn.run(command, input=input, env=env or {}, check=False), timeout
            )
        except asyncio.TimeoutError:
            raise SSHError(f"a command on {self.target.host} did not finish within {timeout:.0f} s") from None
        except (OSError, asyncssh.Error) as e:
            raise SSHError(f"running a command on {self.target.host} failed: {e}") from None
        if check and result.exit_status != 0:
            detail = (result.stderr or result.stdout or "").strip()[-2000:]
            raise SSHError(f"a command on {self.target.host} failed (exit {result.exit_status}): {detail}")
        return result

    async def put_files(self, paths: list, remote_dir: str, timeout: float = 600) -> int:
        """Copy local files into ``remote_dir`` (relative to the home directory) over SFTP,
        skipping those already there with the same size; the bytes sent."""
        try:
            return await asyncio.wait_for(self._put_files(paths, remote_dir), timeout)
        except asyncio.TimeoutError:
            raise SSHError(f"sending files to {self.target.host} did not finish within {timeout:.0f} s") from None
        except (OSError, asyncssh.Error) as e:
            raise SSHError(f"sending files to {self.target.host} failed: {e}") from None

    async def _put_files(self, paths: list, remote_dir: str) -> int:
        sent = 0
        async with self._conn.start_sftp_client() as sftp:
            present = {}
            for entry in await sftp.readdir(remote_dir):
                if entry.attrs.size is not None:
                    present[entry.filename] = entry.attrs.size
            for path in paths:
                path = Path(path)
                size = path.stat().st_size
                if present.get(path.name) == size:
                    continue
                partial = f"{remote_dir}/.{path.name}.part"
                await sftp.put(str(path), partial)
                try:
                    await sftp.posix_rename(partial, f"{remote_dir}/{path.name}")
                except asyncssh.SFTPOpUnsupported:  # a server without OpenSSH's extension
                    if path.name in present:
                        await sftp.remove(f"{remote_dir}/{path.name}")
                    await sftp.rename(partial, f"{remote_dir}/{path.name}")
                sent += size
        return sent

    async def forward_local(self, remote_port: int, local_port: int = 0, local_host: str = "127.0.0.1") -> int:
        """Listen on local_host:local_port (0: any free port; a taken port falls
        back to a free one) and carry connections to the instance's 127.0.0.1:remote_port."""
        try:
            listener = await self._conn.forward_local_port(local_host, local_port, "127.0.0.1", remote_port)
        except OSError:
            if local_port == 0:
                raise
            listener = await self._conn.forward_local_port(local_host, 0, "127.0.0.1", remote_port)
        self._listeners.append(listener)
        return listener.get_port()

    async def forward_remote(self, dest_host: str, dest_port: int, remote_port: int = 0) -> int:
        """Make the instance listen on its 127.0.0.1:remote_port and carry
        connections back to dest_host:dest_port on the hub's side."""
        try:
            listener = await self._conn.forward_remote_port("127.0.0.1", remote_port, dest_host, dest_port)
        except asyncssh.ChannelListenError as e:
            raise SSHError(
                f"the instance refused a reverse tunnel on port {remote_port or 'any'} ({e}); "
                "its sshd must allow TCP forwarding"
            ) from None
        self._listeners.append(listener)
        return listener.get_port()

    async def close(self) -> None:
        for listener in self._listeners:
            listener.close()
        self._listeners.clear()
        self._conn.close()
        try:
            await asyncio.wait_for(self._conn.wait_closed(), 5)
        except (asyncio.TimeoutError, Exception):
            pass
        if self._watch:
            self._watch.cancel()
