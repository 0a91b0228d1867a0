"""How a user reaches the server on their instance: one connector per mode.

Every connector answers the same small interface, so the spawner has no
``if mode == ...`` of its own:

- ``check_settings()``: refuses settings that cannot work in the mode, before
  anything is asked of Azure;
- ``access(project, name, creating)``: the connector's part of the instance
  spec (the SSH public key the hub will use, or the user the instance is
  assigned to);
- ``connect(info)``: from a Running instance to the URL the proxy routes to;
- ``url()``, ``server_alive()`` (True, False, or None when it cannot tell),
  ``stop_server()``, and ``abandon()`` after a failed start;
- ``checks_the_server``: whether ``server_alive()`` looks at the server
  itself (then poll() may read the instance from AML less often).

:class:`ProxyConnector` runs jupyterhub-singleuser on the instance over SSH
and tunnels to it (every hub feature works: the culler, named servers, the
hub's API). :class:`DirectConnector` starts it the same way, but the proxy
routes to the instance's private IP with internal TLS (a hub in the
instances' VNet). :class:`RedirectConnector` sends the user to AML's own
JupyterLab on an instance assigned to them.

With the hub's internal TLS on (``c.JupyterHub.internal_ssl``), the server
speaks TLS in either SSH mode, with a certificate made for the address the
proxy uses (``servertls``).

A connector reads the spawner's settings and saved state (``spawner``) and
keeps only what lives in this hub process (the SSH connection).
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Awaitable

import jupyterhub

from . import bootstrap, builders, interpreters, remote, servertls, wheelhouse
from .clients import operation_times
from .errors import spawn_error
from .progress import fmt_elapsed, fraction_done, time_left
from .ssh import Connection, SSHError, SSHTarget, public_key_text, read_key
from .tunnels import TunnelSpec, tunnel_name

if TYPE_CHECKING:
    from .aml_spawner import AMLSpawner
    from .profiles import Project


# JupyterHub's own floor for the server's Python, from its metadata (">=3.10" for 6.x)
REQUIRES_PYTHON = importlib.metadata.metadata("jupyterhub").get("Requires-Python") or ">=3.10"


def own_host(sp) -> str:
    """The user's own host when users' servers are on subdomains (JupyterHub's subdomain_host), else ""."""
    settings = getattr(sp.user, "settings", None) or {}
    return sp.user.domain if settings.get("subdomain_host") else ""


@dataclass(frozen=True)
class ServerPython:
    python: str
    port: int  # free on the instance: the server's
    api_port: int  # free too: the instance's end of a reverse tunnel to the hub


async def _nothing() -> None:
    return None


class RedirectConnector:
    mode = "redirect"
    checks_the_server = False  # only AML knows whether its JupyterLab is there

    def __init__(self, spawner: "AMLSpawner"):
        self.spawner = spawner

    def check_settings(self) -> None:
        return None

    async def access(self, project: "Project", name: str, *, creating: bool) -> dict:
        """The instance is assigned to the user's Azure AD identity (AML's
        JupyterLab lets only them in), read from the login's auth_state."""
        auth_state = await self.spawner.user.get_auth_state() or {}
        claims = auth_state.get("user") or {}
        oid, tid = claims.get("oid"), claims.get("tid")
        if not (oid and tid):
            raise spawn_error(
                "Redirect mode needs your Azure AD object id, but the hub has no login details for you. "
                "Log out and log in again; an admin must enable auth_state (JUPYTERHUB_CRYPT_KEY).",
                reason="auth_state",
            )
        return {"assigned_user": (oid, tid)}

    async def connect(self, info) -> str:
        sp = self.spawner
        if not info.lab_url:
            raise spawn_error(
                f"Compute instance {info.name} reports no JupyterLab endpoint; AML may still be setting it up. Try again.",
                reason="no_endpoint",
                status_code=500,
            )
        sp.server_state.lab_url = info.lab_url
        redirector = await self._redirector()
        sp.emit("launch", f"Sending you to JupyterLab on {info.name}.", fraction=1.0)
        return redirector.url

    def url(self) -> str | None:
        redirector = self.spawner.fleet.redirector
        return redirector.url if redirector.port else None

    async def server_alive(self) -> bool | None:
        # AML's JupyterLab lives as long as the instance; after a hub restart
        # the in-hub endpoint the proxy routes to must exist again
        await self._redirector()
        return True

    async def _redirector(self):
        sp = self.spawner
        redirector = sp.fleet.redirector
        redirector.configure(sp.redirect_bind_ip, sp.redirect_port, sp.redirect_connect_ip)
        # the hub's origin when users' servers have hosts of their own (JupyterHub's public_host is then set)
        origin = sp.hub.public_host if own_host(sp) else ""
        await redirector.ensure_started(sp.hub.base_url, origin)
        return redirector

    async def stop_server(self) -> None:
        return None

    def abandon(self) -> Awaitable[None]:
        return _nothing()


class ProxyConnector:
    mode = "proxy"
    checks_the_server = True  # over SSH, between the (rarer) reads of the instance

    def __init__(self, spawner: "AMLSpawner"):
        self.spawner = spawner
        self.conn: Connection | None = None
        self._key = None  # the key access() chose, for connect()
        self._api_tunnel = False  # the reverse tunnel is up on self.conn
        self._lock = asyncio.Lock()

    @property
    def _log_name(self) -> str:
        return self.spawner._log_name

    def check_settings(self) -> None:
        """Before anything is asked of Azure: a spawn error if the hub's settings cannot work in this mode."""
        return None

    # ---- keys ------------------------------------------------------------

    async def access(self, project: "Project", name: str, *, creating: bool) -> dict:
        self._key = await self._ssh_key(project, name, fresh=creating)
        return {"ssh_public_key": public_key_text(self._key)}

    async def _ssh_key(self, project: "Project", name: str, *, fresh: bool):
        """The key that opens instance ``name``: a new one for a new instance;
        its own, or the 0.1 shared key for instances made with that. (Files
        and key generation in a thread: never on the hub's event loop.)"""
        sp, state = self.spawner, self.spawner.server_state
        store = sp.key_store
        if fresh:
            state.ssh_key = "instance"
            return await asyncio.to_thread(store.create, project.key, name)
        key = await asyncio.to_thread(store.load, project.key, name)
        if key is not None:
            state.ssh_key = "instance"
            return key
        shared = await asyncio.to_thread(read_key, sp.ssh_key_file)
        if shared is not None:
            state.ssh_key = "shared"
            return shared
        raise spawn_error(
            f"The hub has no SSH key for your compute instance {name} (it was made by another hub, or the hub's "
            "secrets volume was replaced). Ask an admin: your files are on the instance; they can copy them off "
            "in Azure ML studio and delete it, and the hub makes a new one at your next start.",
            reason="no_key",
            status_code=500,
        )

    async def _connection_key(self):
        # "" is a server started by version 0.1: its own key if it has one, else the shared one
        sp, state = self.spawner, self.spawner.server_state
        key = None
        if state.ssh_key != "shared":
            key = await asyncio.to_thread(sp.key_store.load, sp.project_from_state().key, state.instance_name)
        if key is None and state.ssh_key != "instance":
            key = await asyncio.to_thread(read_key, sp.ssh_key_file)
        if key is None:
            raise SSHError(f"the hub's SSH key for {state.instance_name} is missing from {sp.secrets_dir}")
        return key

    # ---- start -------------------------------------------------------------

    def _ssh_target(self, info) -> SSHTarget:
        sp = self.spawner
        host = info.private_ip if sp.ssh_address == "private" else info.public_ip
        if not host:
            raise spawn_error(
                f"Compute instance {info.name} has no {sp.ssh_address} IP address to SSH to. "
                + ("Set ssh_address to 'private' for instances without a public IP." if sp.ssh_address == "public"
                   else "Is the instance in a VNet?"),
                reason="no_address",
                status_code=500,
            )
        port = sp.ssh_port or info.ssh_port or 50000
        return SSHTarget(host, int(port), sp.ssh_user)

    async def _open_ssh(self, target: SSHTarget, key, deadline: float) -> Connection:
        sp = self.spawner
        while True:
            try:
                return await Connection.open(target, key, host_key=sp.server_state.host_key or None,
                                             timeout=sp.ssh_connect_timeout)
            except SSHError as e:
                if "host key" in str(e) or "refused the hub's key" in str(e) or time.monotonic() >= deadline:
                    raise
            await asyncio.sleep(2)

    async def connect(self, info) -> str:
        sp, state = self.spawner, self.spawner.server_state
        target = self._ssh_target(info)
        state.ssh_host, state.ssh_port = target.host, target.port
        sp.emit("connect", f"Connecting to {info.name} over SSH ({target.host}:{target.port}).")
        try:
            conn = await self._open_ssh(target, self._key, time.monotonic() + sp.ssh_ready_timeout)
        except SSHError as e:
            raise spawn_error(f"Could not reach your compute instance: {e}", reason="ssh", status_code=500) from None
        await self._set_connection(conn)
        state.host_key = conn.host_key or ""
        try:
            found = await self._server_python(conn, info)
            state.remote_port = found.port
            sp.emit("launch", f"Starting the Jupyter server (JupyterHub {jupyterhub.__version__}) on {info.name}.")
            await self._open_ways(info, conn, found)
            if sp.internal_ssl:
                await self._push_tls(conn, found.python)
            env = builders.server_env(sp.get_env(), hub_api_url=sp.hub.api_url,
                                      tunnel_port=state.api_port if self._hub_tunnel else None)
            argv = builders.server_argv(sp.cmd, sp.get_args(), found.python)
            state.pid, state.pid_start = await remote.launch(conn, self._server_key, argv, env)
            await self._after_launch(conn)
            await self._wait_listening(conn)
        except SSHError as e:
            raise spawn_error(f"Could not start Jupyter on your compute instance: {e}", reason="ssh",
                              status_code=500) from None
        sp.emit("launch", "Jupyter server is up; connecting you.", fraction=1.0)
        return self.url()

    async def _server_python(self, conn: Connection, info) -> "ServerPython":
        """The Python that runs the server on the instance, JupyterHub installed
        first when none has the hub's version (``bootstrap``, ``interpreters``)."""
        sp = self.spawner
        version = jupyterhub.__version__
        pythons = list(sp.singleuser_pythons)
        report = await bootstrap.probe(conn, version, pythons)
        try:
            choice = interpreters.choose(report.candidates, version, REQUIRES_PYTHON, report.installed,
                                         report.installed_version)
        except interpreters.NoInterpreter as e:
            if not sp.singleuser_install_command:
                raise SSHError(str(e)) from None
            choice = None
        if choice is None or (choice.action == interpreters.INSTALL and sp.singleuser_install_command):
            sp.emit("install", f"Installing JupyterHub {version} on {info.name} with the hub's install command.")
            await bootstrap.install_with_command(conn, sp.singleuser_install_command, version, sp.install_timeout)
            report = await bootstrap.probe(conn, version, pythons)
            choice = interpreters.choose(report.candidates, version, REQUIRES_PYTHON, report.installed,
                                         report.installed_version)
            if choice.action != interpreters.READY:
                raise SSHError(f"JupyterHub {version} is still not found after the install command "
                               "(singleuser_install_command); check that singleuser_pythons lists where it installs")
        python = choice.python
        if choice.action == interpreters.INSTALL:
            python = await self._install(conn, info, report, choice, version)
        sp.log.info("[%s] server Python on %s: %s (%s)", self._log_name, info.name, python, choice.reason)
        if bootstrap.is_hub_install(python, version):
            seen = await bootstrap.prepare(conn, python, lab_news=sp.lab_news)
            sp.log.info("[%s] AML kernels for the server: %s%s", self._log_name, ", ".join(seen["kernels"]) or "none",
                        "; opens in the workspace file share" if seen.get("share") else "")
        return ServerPython(python, report.port, report.api_port)

    async def _install(self, conn: Connection, info, report, choice, version: str) -> str:
        """JupyterHub from the hub's wheels onto the instance (no index there), as its own
        phase with elapsed time and an estimate from this hub's earlier installs."""
        sp = self.spawner
        times = operation_times(sp.fleet, sp)
        expected, basis = times.expected("install", sp.server_state.vm_size or None)
        target = wheelhouse.Target.of(choice.version, report.machine, report.libc)
        started = time.monotonic()

        def tick(what: str) -> None:
            elapsed = time.monotonic() - started
            sp.emit("install", f"{what}, {fmt_elapsed(elapsed)} elapsed{time_left(elapsed, expected, basis)}.",
                    fraction=fraction_done(elapsed, expected), elapsed=elapsed)

        sp.emit("install", f"First start on {info.name}: installing JupyterHub {version} for {target.label} "
                f"({choice.reason}).", fraction=0.0)
        try:
            wheels, fetched = await bootstrap.wait_with_progress(
                wheelhouse.wheels_for(version, target, list(sp.wheelhouse_dirs), sp.wheel_cache_dir,
                                      download=sp.wheel_download),
                lambda: tick(f"Fetching JupyterHub {version}'s wheels for {target.label}"))
        except wheelhouse.WheelsMissing as e:
            raise SSHError(str(e)) from None
        size = wheelhouse.total_bytes(wheels) / 1e6
        if fetched:
            sp.log.info("[%s] fetched %d wheels for %s into %s", self._log_name, len(wheels), target.label,
                        sp.wheel_cache_dir)
        installed = await bootstrap.wait_with_progress(
            bootstrap.install(conn, version, choice.python, wheels, sp.install_timeout),
            lambda: tick(f"Installing JupyterHub {version} on {info.name} ({len(wheels)} packages, {size:.0f} MB, "
                         "no internet needed there)"))
        elapsed = time.monotonic() - started
        times.record("install", sp.server_state.vm_size or None, elapsed)
        sp.emit("install", f"JupyterHub {version} installed on {info.name} in {fmt_elapsed(elapsed)} "
                f"({installed.sent_bytes / 1e6:.0f} MB sent); later starts reuse it.", fraction=1.0)
        return installed.python

    @property
    def _hub_tunnel(self) -> bool:
        """Whether the server reaches the hub's API through a reverse tunnel
        (the instance cannot reach the hub's own address)."""
        return self.spawner.hub_connect_url is None

    async def _open_ways(self, info, conn: Connection, found) -> None:
        """Before the server starts: the tunnels to it and back to the hub
        (as OpenSSH processes in the tunnel service, or in this process)."""
        sp, state = self.spawner, self.spawner.server_state
        service = self._tunnel_service
        if service is not None:
            # both tunnels in the proxy's container, before the server starts
            # (its environment names the reverse tunnel's port)
            state.api_port = found.api_port if self._hub_tunnel else 0
            state.local_port = await service.open(self._tunnel_name, self._tunnel_spec(),
                                                  self._key.export_private_key().decode(), state.local_port)
        elif self._hub_tunnel:
            state.api_port = await conn.forward_remote(*builders.hub_api_address(sp.hub.api_url),
                                                       state.api_port or 0)
            self._api_tunnel = True
        sp.port = state.remote_port
        sp.ip = "127.0.0.1"

    async def _after_launch(self, conn: Connection) -> None:
        sp, state = self.spawner, self.spawner.server_state
        if self._tunnel_service is None:
            state.local_port = await conn.forward_local(state.remote_port, state.local_port or 0, sp.tunnel_bind_ip)

    @property
    def _route_host(self) -> str:
        """The host the proxy (and the hub) reach the server at."""
        return self._tunnel_host

    async def _push_tls(self, conn: Connection, python: str) -> None:
        """Internal TLS: the server's own certificate, for the address the proxy
        uses, made now (not by JupyterHub before start(): see servertls) and
        sent to the instance; the hub keeps no copy of its key."""
        sp, state = self.spawner, self.spawner.server_state
        # and the user's own host (users' servers on subdomains): the proxy checks the certificate
        # against the name the browser asked for, as JupyterHub's own server certificates allow
        names = servertls.alt_names([self._route_host, own_host(sp)])
        record = f"server-{tunnel_name(sp.user.name, sp.name)}"
        tls = await asyncio.to_thread(servertls.make_server_tls, sp.internal_certs_location, record, names,
                                      sp.internal_trust_bundles[servertls.NOTEBOOKS_CA])
        paths = await remote.put_tls(conn, self._server_key, python,
                                     {"key": tls.key, "cert": tls.cert, "ca": tls.ca})
        sp.cert_paths = {"keyfile": paths["key"], "certfile": paths["cert"], "cafile": paths["ca"]}
        state.scheme = "https"

    @property
    def _server_key(self) -> str:
        sp = self.spawner
        return f"{sp.user.name}-{sp.name or 'default'}"

    # ---- the tunnel service (tunnels outside the hub) --------------------------

    @property
    def _tunnel_service(self):
        sp = self.spawner
        if not sp.tunnel_service_url:
            return None
        return sp.fleet.tunnel_client(sp.tunnel_service_url, sp.tunnel_service_token)

    @property
    def _tunnel_name(self) -> str:
        return tunnel_name(self.spawner.user.name, self.spawner.name)

    def _tunnel_spec(self) -> TunnelSpec:
        sp, state = self.spawner, self.spawner.server_state
        hub_host, hub_port = builders.hub_api_address(sp.hub.api_url) if state.api_port else ("", 0)
        return TunnelSpec(host=state.ssh_host, port=state.ssh_port, user=sp.ssh_user, host_key=state.host_key,
                          remote_port=state.remote_port, api_port=state.api_port, hub_host=hub_host,
                          hub_port=hub_port)

    async def _ensure_service_tunnel(self, service) -> None:
        """The server's tunnels are open in the service (found there after a
        hub restart; opened again after a restart of the proxy's container)."""
        sp, state = self.spawner, self.spawner.server_state
        spec = self._tunnel_spec()
        found = await service.find(self._tunnel_name)
        if found is not None and found.get("spec") == spec.to_json():
            state.local_port = int(found["local_port"])
            return
        key = await self._connection_key()
        state.local_port = await service.open(self._tunnel_name, spec, key.export_private_key().decode(),
                                              state.local_port)
        sp.log.info("[%s] tunnel to %s opened again in the tunnel service (port %s)", self._log_name,
                    state.instance_name, state.local_port)

    async def _close_service_tunnel(self) -> None:
        service = self._tunnel_service
        if service is None:
            return
        try:
            await service.close(self._tunnel_name)
        except SSHError as e:
            self.spawner.log.warning("[%s] could not close the tunnel: %s", self._log_name, e)

    @property
    def _tunnel_host(self) -> str:
        service = self._tunnel_service
        if service is not None:
            return service.host
        sp = self.spawner
        return sp.tunnel_connect_ip or sp.tunnel_bind_ip

    def url(self) -> str | None:
        state = self.spawner.server_state
        if not state.local_port:
            return None
        return f"{state.scheme or 'http'}://{self._tunnel_host}:{state.local_port}"

    def _check_address(self) -> tuple[str, int]:
        """Where the hub itself connects to check that the server listens."""
        sp, state = self.spawner, self.spawner.server_state
        return (self._tunnel_host if self._tunnel_service else sp.tunnel_bind_ip), state.local_port

    async def _wait_listening(self, conn: Connection) -> None:
        """Until the server accepts connections through the tunnel, or its process ends."""
        sp, state = self.spawner, self.spawner.server_state
        deadline = time.monotonic() + sp.http_timeout
        while time.monotonic() < deadline:
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(*self._check_address()), 5)
                if state.scheme == "https":
                    # it takes the connection; JupyterHub's own check then speaks TLS with the hub's certificate
                    writer.close()
                    return
                writer.write(b"GET " + sp.server_prefix.encode() + b"api HTTP/1.0\r\n\r\n")
                await writer.drain()
                head = await asyncio.wait_for(reader.read(12), 5)
                writer.close()
                if head.startswith(b"HTTP/"):
                    return
            except (OSError, asyncio.TimeoutError):
                pass
            if not await remote.alive(conn, state.pid, state.pid_start):
                tail = await remote.log_tail(conn, self._server_key)
                raise SSHError(f"the Jupyter server exited while starting. Its log ends with:\n{tail}")
            await asyncio.sleep(0.2)
        raise SSHError(f"the Jupyter server did not answer within {sp.http_timeout:.0f} s")

    async def _set_connection(self, conn: Connection) -> None:
        old, self.conn = self.conn, conn
        if old is not None:
            await old.close()

    # ---- a running server --------------------------------------------------

    async def reattach(self) -> Connection:
        """The live SSH connection, re-made with its tunnels after a hub restart or a drop."""
        sp, state = self.spawner, self.spawner.server_state
        async with self._lock:
            conn = self.conn
            if conn is None or not conn.alive:
                if conn is not None:
                    # a dead connection may still hold the instance's end of the reverse tunnel
                    await conn.close()
                    self.conn = None
                target = SSHTarget(state.ssh_host, state.ssh_port, sp.ssh_user)
                conn = await Connection.open(target, await self._connection_key(),
                                             host_key=state.host_key or None, timeout=sp.ssh_connect_timeout)
                try:
                    await self._reopen_way_in(conn)
                except (SSHError, OSError):
                    await conn.close()
                    raise
                await self._set_connection(conn)
                self._api_tunnel = False
                sp.log.info("[%s] re-attached to %s (server at port %s)", self._log_name, state.instance_name,
                            state.local_port)
            await self._keep_ways(conn)
            return conn

    async def _reopen_way_in(self, conn: Connection) -> None:
        # the user's way in first: it needs nothing but this connection
        sp, state = self.spawner, self.spawner.server_state
        if state.remote_port and self._tunnel_service is None:
            state.local_port = await conn.forward_local(state.remote_port, state.local_port, sp.tunnel_bind_ip)

    async def _keep_ways(self, conn: Connection) -> None:
        """The tunnels are there (opened again where they were lost)."""
        sp, state = self.spawner, self.spawner.server_state
        service = self._tunnel_service
        if service is not None:
            if state.remote_port:
                await self._ensure_service_tunnel(service)
        elif self._hub_tunnel and state.api_port and not self._api_tunnel:
            # The server was started with this port in its hub API URL. An
            # instance-side sshd may hold it a while after the old connection
            # died; then the next poll tries again.
            try:
                await conn.forward_remote(*builders.hub_api_address(sp.hub.api_url), state.api_port)
                self._api_tunnel = True
            except SSHError as e:
                sp.log.warning("[%s] reverse tunnel to the hub API not back yet: %s", self._log_name, e)

    async def server_alive(self) -> bool | None:
        sp, state = self.spawner, self.spawner.server_state
        try:
            conn = await self.reattach()
            return await remote.alive(conn, state.pid, state.pid_start)
        except (SSHError, OSError) as e:
            sp.log.info("[%s] SSH check of %s failed (%s); asking AML", self._log_name, state.instance_name, e)
            return None

    async def stop_server(self) -> None:
        sp, state = self.spawner, self.spawner.server_state
        conn = self.conn
        if state.pid and state.ssh_host:
            try:
                conn = await self.reattach()
                await remote.stop(conn, state.pid)
                if state.scheme == "https":
                    await remote.remove_tls(conn, self._server_key)
            except (SSHError, OSError) as e:
                sp.log.info("[%s] could not stop the server process over SSH (%s)", self._log_name, e)
        await self._close_service_tunnel()
        self.conn = None
        if conn is not None:
            await conn.close()

    def abandon(self) -> Awaitable[None]:
        """After a failed start: the server process and connection this start
        made, detached now (poll() then says "not running", so the hub will
        not call stop()) and ended by the returned coroutine."""
        sp, state = self.spawner, self.spawner.server_state
        conn, self.conn = self.conn, None
        pid, state.pid = state.pid, 0
        tls = state.scheme == "https"
        server_key = self._server_key if tls else ""

        async def end() -> None:
            await self._close_service_tunnel()
            if conn is None:
                return
            try:
                if pid:
                    await remote.stop(conn, pid)
                if tls:
                    await remote.remove_tls(conn, server_key)
            except (SSHError, OSError) as e:
                sp.log.info("[%s] could not stop the half-started server (%s)", self._log_name, e)
            await conn.close()

        return end()


class DirectConnector(ProxyConnector):
    """Direct mode, for a hub in the instances' VNet: SSH only to start and
    watch the server, which listens on the instance's private IP with the
    hub's internal TLS (its certificate made for that IP and pushed over SSH;
    it accepts only clients with a certificate of the hub's CAs: the hub and
    the proxy). The proxy routes straight to it; the server calls the hub's
    own address. No tunnel, so no byte passes through an SSH process."""

    mode = "direct"

    @property
    def _hub_tunnel(self) -> bool:
        return False

    @property
    def _tunnel_service(self):
        return None  # the proxy reaches the server itself

    def check_settings(self) -> None:
        if not self.spawner.internal_ssl:
            raise spawn_error(
                "Direct mode needs JupyterHub's internal TLS, which is off: the server would listen on the "
                "network unencrypted. Ask an admin to set c.JupyterHub.internal_ssl = True (the product's "
                "configuration does with AML_CONNECT_MODE=direct).",
                reason="config", status_code=500,
            )

    async def connect(self, info) -> str:
        if not info.private_ip:
            raise spawn_error(
                f"Compute instance {info.name} has no private IP address; direct mode needs instances in a VNet "
                "the hub is in (AML_SUBNET_ID). Ask an admin.",
                reason="no_address", status_code=500,
            )
        return await super().connect(info)

    async def _open_ways(self, info, conn: Connection, found) -> None:
        sp, state = self.spawner, self.spawner.server_state
        state.server_ip = info.private_ip
        state.local_port = state.remote_port  # the port the proxy routes to is the server's own
        sp.ip, sp.port = state.server_ip, state.remote_port

    async def _after_launch(self, conn: Connection) -> None:
        return None

    @property
    def _route_host(self) -> str:
        return self.spawner.server_state.server_ip

    @property
    def _tunnel_host(self) -> str:
        return self.spawner.server_state.server_ip

    def _check_address(self) -> tuple[str, int]:
        state = self.spawner.server_state
        return state.server_ip, state.remote_port

    async def _reopen_way_in(self, conn: Connection) -> None:
        return None

    async def _keep_ways(self, conn: Connection) -> None:
        return None


CONNECTORS = {c.mode: c for c in (ProxyConnector, DirectConnector, RedirectConnector)}
