"""The tunnel service: every proxy-mode server's SSH tunnels, as OpenSSH processes.

It runs in the proxy's container (see :mod:`proxy_service`), so a user's
bytes go browser -> Caddy -> configurable-http-proxy -> ``ssh`` -> instance
and never through the hub, and a hub restart leaves both the proxy's routes
and the tunnels alone. The hub asks for tunnels through a small HTTP API
(:mod:`tunnel_client`), authenticated with the proxy's token:

- ``PUT /tunnels/<name>`` with a :class:`tunnels.TunnelSpec` and the
  instance's private key: opens the tunnels (or answers with the ones that
  are already open for the same spec) once the server's end listens;
- ``GET /tunnels``: what is open (the hub re-finds its servers' tunnels here
  after it restarts);
- ``DELETE /tunnels/<name>``: closes them and forgets the key;
- ``GET /health`` (no token): for the container's health check.

Each server gets two processes: the way in (``-L``) and the way back to the
hub's API (``-R``). Apart, a reverse port still held on the instance by a
dropped session (sshd keeps it until it notices) cannot keep the user out.
A process that ends is started again with a back-off, on the same local
port, until the hub closes the tunnel. Keys are written 0600 in a 0700
directory under ``--state-dir`` (a tmpfs in compose.yaml: never on a disk),
readable only by this service's user; the keys never reach a command line.
"""

from __future__ import annotations

import asyncio
import collections
import hmac
import json
import logging
import os
import shutil
import socket
import time
from pathlib import Path

from tornado import web

from .accesslog import log_service_request
from .tunnels import TunnelSpec, TunnelSpecError, check_key, known_hosts_line, ssh_command

log = logging.getLogger("aml_jupyterhub.tunnels")

READY_TIMEOUT = 30.0  # seconds a PUT waits for the tunnel's local end (ssh's ConnectTimeout is 20)
BACKOFF_MAX = 30.0


class TunnelError(Exception):
    """A tunnel that could not be opened; the message has ssh's own words."""


def free_port(ip: str, preferred: int = 0, taken: set[int] = frozenset()) -> int:
    """``preferred`` if it is free (and not another tunnel's), else any free port on ``ip``."""
    for port in ([preferred] if preferred and preferred not in taken else []) + [0]:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((ip, port))
            except OSError:
                continue
            got = s.getsockname()[1]
            if got not in taken:
                return got
    return free_port(ip, 0, taken)


class Leg:
    """One ``ssh -N`` process, kept running until closed."""

    def __init__(self, name: str, argv: list[str], ready_line: str | None = None):
        self.name = name
        self.argv = argv
        self.ready_line = ready_line  # a line of ssh's stderr that says the forward is up (the reverse one)
        self.proc: asyncio.subprocess.Process | None = None
        self.starts = 0
        self.up = asyncio.Event()
        self.stderr: collections.deque[str] = collections.deque(maxlen=12)
        self._closing = False
        self._task: asyncio.Task | None = None
        self.cannot_run = ""  # why ssh could not even be started (then it is not tried again)

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        delay = 1.0
        while not self._closing:
            began = time.monotonic()
            self.up.clear()
            try:
                self.proc = await asyncio.create_subprocess_exec(
                    *self.argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.PIPE, start_new_session=True, env={"PATH": os.environ.get("PATH", "")})
            except OSError as e:
                self.cannot_run = f"cannot run ssh ({self.argv[0]}): {e}"
                self.stderr.append(self.cannot_run)
                return
            self.starts += 1
            await self._read_stderr(self.proc)
            code = await self.proc.wait()
            self.up.clear()
            if self._closing:
                return
            if time.monotonic() - began > 60:
                delay = 1.0  # it ran a while: a new failure, not the same one again
            log.warning("tunnel %s ended (exit %s): %s; again in %.0f s", self.name, code, self.last_error, delay)
            try:
                await asyncio.sleep(delay)
            except asyncio.CancelledError:
                return
            delay = min(BACKOFF_MAX, delay * 2)

    async def _read_stderr(self, proc) -> None:
        while True:
            line = await proc.stderr.readline()
            if not line:
                return
            text = line.decode(errors="replace").rstrip()
            if self.ready_line and self.ready_line in text:
                self.up.set()
            if text.startswith("debug"):
                continue  # the reverse leg logs at debug1 only to say when it is up
            self.stderr.append(text)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    @property
    def last_error(self) -> str:
        return " / ".join(self.stderr) or "no message from ssh"

    async def close(self) -> None:
        self._closing = True
        proc = self.proc
        if proc is not None and proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 5)
            except asyncio.TimeoutError:
                proc.kill()
                await proc.wait()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass


class Tunnel:
    """A server's tunnels: the key and pinned host key on disk, and its legs."""

    def __init__(self, name: str, spec: TunnelSpec, directory: Path, bind_ip: str, local_port: int, ssh: str):
        self.name, self.spec, self.directory = name, spec, directory
        self.bind_ip, self.local_port = bind_ip, local_port
        self.since = time.time()
        common = dict(key_file=str(directory / "id"), known_hosts_file=str(directory / "known_hosts"), ssh=ssh)
        self.legs = [Leg(f"{name} (way in, port {local_port})",
                         ssh_command(spec, "in", bind_ip=bind_ip, local_port=local_port, **common))]
        if spec.api_port:
            self.legs.append(Leg(f"{name} (way back to the hub, instance port {spec.api_port})",
                                 ssh_command(spec, "back", **common), ready_line="remote forward success"))

    def write_files(self, private_key: str) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.directory, 0o700)
        for name, text in (("id", private_key.strip() + "\n"), ("known_hosts", known_hosts_line(self.spec.host_key))):
            path = self.directory / name
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(text)

    async def open(self, timeout: float = READY_TIMEOUT) -> None:
        for leg in self.legs:
            leg.start()
        deadline = time.monotonic() + timeout
        for leg in self.legs:
            await self._wait_up(leg, deadline)

    async def _wait_up(self, leg: Leg, deadline: float) -> None:
        while time.monotonic() < deadline:
            if leg.cannot_run:
                raise TunnelError(f"{leg.cannot_run}: is OpenSSH's client in the tunnels container?")
            if leg.starts and not leg.running and leg.proc is not None:
                raise TunnelError(f"ssh to {self.spec.host}:{self.spec.port} ended: {leg.last_error}")
            if leg.ready_line is None:
                if leg.running and await self._accepts():
                    return
            elif leg.up.is_set():
                return
            await asyncio.sleep(0.1)
        raise TunnelError(f"ssh to {self.spec.host}:{self.spec.port} did not set up {leg.name} within "
                          f"{READY_TIMEOUT:.0f} s: {leg.last_error}")

    async def _accepts(self) -> bool:
        host = "127.0.0.1" if self.bind_ip in ("0.0.0.0", "") else self.bind_ip
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, self.local_port), 2)
        except (OSError, asyncio.TimeoutError):
            return False
        writer.close()
        return True

    async def close(self) -> None:
        await asyncio.gather(*(leg.close() for leg in self.legs))
        shutil.rmtree(self.directory, ignore_errors=True)

    def describe(self) -> dict:
        return {
            "name": self.name,
            "spec": self.spec.to_json(),
            "local_port": self.local_port,
            "since": self.since,
            "up": all(leg.running for leg in self.legs),
            "legs": [{"name": leg.name, "pid": leg.proc.pid if leg.proc else None, "running": leg.running,
                      "starts": leg.starts, "last_error": leg.last_error if leg.starts > 1 or not leg.running else ""}
                     for leg in self.legs],
        }


class TunnelRegistry:
    """The open tunnels, by name; one PUT or DELETE per name at a time."""

    def __init__(self, state_dir: Path, bind_ip: str = "0.0.0.0", ssh: str = "ssh"):
        self.state_dir, self.bind_ip, self.ssh = Path(state_dir), bind_ip, ssh
        self.tunnels: dict[str, Tunnel] = {}
        self._locks: dict[str, asyncio.Lock] = collections.defaultdict(asyncio.Lock)
        self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.state_dir, 0o700)
        for stale in self.state_dir.iterdir():  # keys of a previous run of this service
            shutil.rmtree(stale, ignore_errors=True)

    async def open(self, name: str, spec: TunnelSpec, private_key: str, local_port: int = 0) -> Tunnel:
        async with self._locks[name]:
            old = self.tunnels.get(name)
            if old is not None and old.spec == spec and all(leg.starts for leg in old.legs):
                return old  # the hub re-finding what is open: leave the connections alone
            if old is not None:
                await self._close(name)
            taken = {t.local_port for t in self.tunnels.values()}
            port = free_port(self.bind_ip if self.bind_ip != "0.0.0.0" else "", local_port, taken)
            tunnel = Tunnel(name, spec, self.state_dir / name, self.bind_ip, port, self.ssh)
            tunnel.write_files(private_key)
            self.tunnels[name] = tunnel
            try:
                await tunnel.open()
            except BaseException:
                await self._close(name)
                raise
            log.info("tunnel %s open: port %d -> %s:%d", name, port, spec.host, spec.remote_port)
            return tunnel

    async def close(self, name: str) -> bool:
        async with self._locks[name]:
            return await self._close(name)

    async def _close(self, name: str) -> bool:
        tunnel = self.tunnels.pop(name, None)
        if tunnel is None:
            return False
        await tunnel.close()
        log.info("tunnel %s closed", name)
        return True

    async def close_all(self) -> None:
        await asyncio.gather(*(self.close(name) for name in list(self.tunnels)))


# ---- the HTTP API --------------------------------------------------------------


class _Handler(web.RequestHandler):
    def initialize(self, registry: TunnelRegistry, token: str):
        self.registry, self.token = registry, token

    def prepare(self):
        if self.request.path == "/health":
            return
        given = self.request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"token {self.token}".encode()):
            raise web.HTTPError(403)

    def write_error(self, status_code, **kwargs):
        reason = kwargs.get("message") or self._reason
        self.finish({"error": reason})

    def fail(self, status: int, message: str) -> None:
        self.set_status(status)
        self.finish({"error": message})


class HealthHandler(_Handler):
    def get(self):
        self.finish({"tunnels": len(self.registry.tunnels) if self.registry is not None else None})


class ListHandler(_Handler):
    def get(self):
        self.finish({"tunnels": {name: t.describe() for name, t in self.registry.tunnels.items()}})


class TunnelHandler(_Handler):
    async def put(self, name):
        try:
            check_key(name)
            body = json.loads(self.request.body or b"null")
            if not isinstance(body, dict):
                raise TunnelSpecError("the body must be a JSON object")
            key = body.pop("private_key", None)
            local_port = body.pop("local_port", 0)
            if not isinstance(key, str) or "PRIVATE KEY" not in key:
                raise TunnelSpecError("private_key must be the instance's OpenSSH private key")
            if not isinstance(local_port, int) or not 0 <= local_port <= 65535:
                raise TunnelSpecError("local_port must be a port number or 0")
            spec = TunnelSpec.from_json(body)
        except (ValueError, TunnelSpecError) as e:
            return self.fail(400, str(e))
        try:
            tunnel = await self.registry.open(name, spec, key, local_port)
        except TunnelError as e:
            return self.fail(502, str(e))
        self.finish(tunnel.describe())

    async def delete(self, name):
        try:
            check_key(name)
        except TunnelSpecError as e:
            return self.fail(400, str(e))
        found = await self.registry.close(name)
        self.set_status(204 if found else 404)
        self.finish()

    def get(self, name):
        tunnel = self.registry.tunnels.get(name)
        if tunnel is None:
            return self.fail(404, f"no tunnel {name}")
        self.finish(tunnel.describe())


def make_app(registry: TunnelRegistry | None, token: str, extra_handlers: list = ()) -> web.Application:
    """The API (without ``registry``: only /health and ``extra_handlers``)."""
    args = {"registry": registry, "token": token}
    tunnels = [(r"/tunnels/?", ListHandler, args), (r"/tunnels/([^/]+)", TunnelHandler, args)] if registry else []
    return web.Application([(r"/health", HealthHandler, args), *tunnels, *extra_handlers],
                           log_function=log_service_request)
