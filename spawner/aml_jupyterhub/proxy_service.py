"""``aml-jupyterhub-proxy``: the containers that outlive the hub.

One command, two roles (compose.yaml runs each in a container of its own):

- ``--no-tunnels``: configurable-http-proxy (JupyterHub's external-proxy
  setup: the hub adds and removes routes through CHP's API and never starts or
  stops it), and the error page CHP shows while the hub is away;
- ``--chp ""``: the tunnel service (:mod:`tunnel_service`), the only place
  that holds instance keys, apart from the internet-facing proxy.

Both take the same token, the file ``--token-file`` on a volume shared with
the hub only, made by whoever starts first (0600). A hub restart leaves
routes, tunnels and every open connection, websockets included, alone.
Without either flag both roles run in one process (a hub on one machine
without compose, and the tests).

CHP gets only the token (in its environment, which is how it reads it) and
PATH. It is started again if it ends (the hub puts its routes back at its
next check). It follows what the hub publishes for it by itself, its
internal TLS (direct mode) and whether it routes by host (users' servers on
subdomains): see ``published_setup``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import secrets
import signal
import sys
from pathlib import Path

from tornado import web
from tornado.httpclient import AsyncHTTPClient
from tornado.httpserver import HTTPServer

from .tunnel_service import TunnelRegistry, make_app

log = logging.getLogger("aml_jupyterhub.proxy")


def shared_token(path: Path) -> str:
    """The token in ``path``, made on first use (0600). Whoever comes first
    (this service or the hub) writes it to a temporary file and links it into
    place, so nobody ever reads a half-written token."""
    path = Path(path)
    try:
        text = path.read_text().strip()
        if text:
            return text
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32) + "\n")
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass  # the other side was first: use theirs
    finally:
        tmp.unlink()
    return path.read_text().strip()


HUB_AWAY_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><meta http-equiv="refresh" content="10">
<title>JupyterHub is restarting</title></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 4em auto">
<h1>JupyterHub is not answering</h1>
<p>It is probably restarting. Your notebook server and its files are not affected, and an open JupyterLab
keeps working. This page tries again every 10 seconds.</p>
<p>If this lasts more than a few minutes, tell the hub's admin (<code>docker compose logs hub</code> says why
it is down).</p>
</body></html>
"""


class ErrorPageHandler(web.RequestHandler):
    """configurable-http-proxy's error target: the hub's own error page while
    the hub answers, and a page that says the hub is restarting (and reloads
    itself) while it does not. CHP passes on the status and body only; a 503
    is what JupyterLab retries."""

    def initialize(self, hub_url: str, cert_dir: str = ""):
        self.hub_url = hub_url.rstrip("/")
        self.cert_dir = cert_dir

    def _hub(self) -> tuple[str, dict]:
        """The hub's address and, with its internal TLS, the proxy's client certificate (the hub wants one)."""
        if not tls_published(self.cert_dir):
            return self.hub_url, {}
        d = self.cert_dir
        return hub_target(self.hub_url, True), {"client_key": f"{d}/proxy-client.key",
                                                "client_cert": f"{d}/proxy-client.crt",
                                                "ca_certs": f"{d}/proxy-client-ca.crt"}

    async def get(self, code):
        status = int(code) if code.isdigit() and 400 <= int(code) <= 599 else 503
        query = f"?{self.request.query}" if self.request.query else ""
        hub, tls = self._hub()
        try:
            response = await AsyncHTTPClient().fetch(f"{hub}/hub/error/{status}{query}", request_timeout=3,
                                                     connect_timeout=2, raise_error=False, **tls)
        except OSError:
            response = None
        self.set_status(status)
        if response is not None and response.code == status:
            self.set_header("Content-Type", response.headers.get("Content-Type", "text/html"))
            return self.finish(response.body)
        self.set_status(503)
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.finish(HUB_AWAY_PAGE)


# JupyterHub's internal TLS (direct mode): the hub, which keeps the CA keys,
# puts the proxy's certificates in --internal-ssl's directory when it starts
# with internal TLS (and removes them when it starts without): CHP's API
# certificate and whom it trusts as API clients, its client certificate for
# the targets (the hub, the servers) and whom it trusts as targets. It writes
# READY last, holding a digest of the set; CHP reads TLS files only when it
# starts, so it is started again whenever READY changes or goes.
TLS_FILES = ("proxy-api.key", "proxy-api.crt", "proxy-api-ca.crt",
             "proxy-client.key", "proxy-client.crt", "proxy-client-ca.crt")
TLS_READY = "READY"
# Beside them: HOST_ROUTING exists while the hub puts users' servers on
# subdomains (CHP then looks routes up by host and path); APPLIED is this
# side's answer, the setup CHP now runs with, which the hub waits for before
# its first routes so none is added to a CHP about to be replaced.
HOST_ROUTING = "HOST_ROUTING"
APPLIED = "APPLIED"


def tls_args(cert_dir: str) -> list[str]:
    """configurable-http-proxy's options for internal TLS, as JupyterHub gives them to a CHP it starts."""
    d = Path(cert_dir)
    return [
        "--api-ssl-key", str(d / "proxy-api.key"), "--api-ssl-cert", str(d / "proxy-api.crt"),
        "--api-ssl-ca", str(d / "proxy-api-ca.crt"), "--api-ssl-request-cert", "--api-ssl-reject-unauthorized",
        "--client-ssl-key", str(d / "proxy-client.key"), "--client-ssl-cert", str(d / "proxy-client.crt"),
        "--client-ssl-ca", str(d / "proxy-client-ca.crt"), "--client-ssl-request-cert",
        "--client-ssl-reject-unauthorized",
    ]


def tls_published(cert_dir: str) -> str:
    """The digest in READY: the hub's certificate set now ("" when the hub runs without internal TLS)."""
    if not cert_dir:
        return ""
    try:
        return (Path(cert_dir) / TLS_READY).read_text().strip()
    except (FileNotFoundError, NotADirectoryError):
        return ""


def published_setup(cert_dir: str) -> tuple[str, bool]:
    """What the hub asks of CHP now: its internal TLS digest ("" for none), and routing by host."""
    host_routing = bool(cert_dir) and (Path(cert_dir) / HOST_ROUTING).exists()
    return tls_published(cert_dir), host_routing


def setup_label(setup: tuple[str, bool]) -> str:
    """``setup`` as APPLIED holds it (and the hub compares)."""
    tls, host_routing = setup
    return f"tls={tls or '-'} host-routing={'yes' if host_routing else 'no'}"


def write_private(path: Path, data: bytes) -> None:
    """``path`` replaced at once by ``data``, 0600: a reader on the shared volume never sees half a file."""
    tmp = path.with_name(f".{path.name}.new")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def say_applied(cert_dir: str, setup: tuple[str, bool]) -> None:
    if not cert_dir:
        return
    Path(cert_dir).mkdir(parents=True, exist_ok=True, mode=0o700)
    write_private(Path(cert_dir) / APPLIED, (setup_label(setup) + "\n").encode())


def hub_target(hub_url: str, tls: bool) -> str:
    """The hub's address for CHP: https with internal TLS (the hub then takes nothing else)."""
    if tls and hub_url.startswith("http://"):
        return "https://" + hub_url[len("http://"):]
    return hub_url


def chp_command(args, tls: bool = False, host_routing: bool = False) -> list[str]:
    return [
        args.chp, "--ip", "0.0.0.0", "--port", str(args.port),
        "--api-ip", "0.0.0.0", "--api-port", str(args.api_port),
        # what has no route (yet) goes to the hub, which sends it on once the
        # route is there; errors go to ErrorPageHandler (the hub's pages, or one of its own while the hub is away)
        "--default-target", hub_target(args.hub_url, tls),
        "--error-target", f"http://127.0.0.1:{args.tunnel_api_port}/error",
        "--log-level", args.chp_log_level,
        *(tls_args(args.internal_ssl) if tls else []),
        *(["--host-routing"] if host_routing else []),
    ]


async def _setup_changes(args, published: tuple[str, bool]) -> None:
    """Returns once what the hub publishes differs from ``published``."""
    while published_setup(args.internal_ssl) == published:
        await asyncio.sleep(2)


async def _say_applied_once_up(args, setup: tuple[str, bool], proc) -> None:
    """APPLIED once this CHP answers on its API port (routes sent earlier would reach the one before)."""
    for _ in range(100):
        if proc.returncode is not None:
            return
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", args.api_port)
            writer.close()
            say_applied(args.internal_ssl, setup)
            return
        except OSError:
            await asyncio.sleep(0.2)


async def keep_chp_running(args, token: str, stopping: asyncio.Event) -> None:
    env = {"PATH": os.environ.get("PATH", ""), "CONFIGPROXY_AUTH_TOKEN": token}
    delay = 1.0
    while not stopping.is_set():
        published = published_setup(args.internal_ssl)
        tls, host_routing = published
        proc = await asyncio.create_subprocess_exec(*chp_command(args, tls=bool(tls), host_routing=host_routing),
                                                    env=env)
        log.info("configurable-http-proxy started (pid %d) on port %d, API on %d%s%s", proc.pid, args.port,
                 args.api_port, ", with the hub's internal TLS" if tls else "",
                 ", routing by host (users' servers on subdomains)" if host_routing else "")
        applied = asyncio.ensure_future(_say_applied_once_up(args, published, proc))
        waiter = asyncio.ensure_future(proc.wait())
        stopper = asyncio.ensure_future(stopping.wait())
        changed = asyncio.ensure_future(_setup_changes(args, published))
        await asyncio.wait([waiter, stopper, changed], return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        applied.cancel()
        if stopping.is_set() or changed.done():
            if proc.returncode is None:
                proc.terminate()
                await proc.wait()
            if stopping.is_set():
                return
            # the hub started with (other) certificates or routing: it waits for APPLIED before its routes
            log.info("the hub's internal TLS or routing changed; starting configurable-http-proxy again")
            delay = 1.0
            continue
        changed.cancel()
        log.error("configurable-http-proxy ended (exit %s); starting it again in %.0f s", proc.returncode, delay)
        await asyncio.sleep(delay)
        delay = min(30.0, delay * 2)


async def serve(args) -> None:
    token = shared_token(Path(args.token_file))
    registry = TunnelRegistry(Path(args.state_dir), bind_ip=args.tunnel_ip, ssh=args.ssh) if args.tunnels else None
    pages = [(r"/error/([0-9]+)", ErrorPageHandler, {"hub_url": args.hub_url, "cert_dir": args.internal_ssl})]
    server = HTTPServer(make_app(registry, token, pages))
    server.listen(args.tunnel_api_port, args.tunnel_api_ip)
    log.info("%s on %s:%d", "tunnel service" if registry else "error pages and health", args.tunnel_api_ip,
             args.tunnel_api_port)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    chp = asyncio.ensure_future(keep_chp_running(args, token, stopping)) if args.chp else None
    await stopping.wait()
    server.stop()
    if registry is not None:
        log.info("stopping: closing %d tunnels", len(registry.tunnels))
        await registry.close_all()
    if chp is not None:
        await chp


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="aml-jupyterhub-proxy", description=__doc__.split("\n\n")[0])
    p.add_argument("--token-file", default="/srv/proxy-secrets/token",
                   help="the token shared with the hub (made here if missing)")
    p.add_argument("--hub-url", default="http://hub:8081", help="the hub's own address, as this container reaches it")
    p.add_argument("--port", type=int, default=8000, help="configurable-http-proxy's public port")
    p.add_argument("--api-port", type=int, default=8001, help="configurable-http-proxy's API port")
    p.add_argument("--chp", default="configurable-http-proxy",
                   help="the configurable-http-proxy command; empty: run only the tunnel service")
    p.add_argument("--internal-ssl", default="/srv/proxy-secrets/internal-ssl", metavar="DIR",
                   help="where a hub with internal TLS puts the proxy's certificates: CHP uses them (and the "
                        "hub's https address) while they are there, and starts again when they change or go")
    p.add_argument("--chp-log-level", default="info", choices=["debug", "info", "warn", "error"])
    p.add_argument("--no-tunnels", dest="tunnels", action="store_false",
                   help="no tunnel service here (the proxy's container: instance keys never reach it)")
    p.add_argument("--tunnel-api-ip", default="0.0.0.0")
    p.add_argument("--tunnel-api-port", type=int, default=8002,
                   help="the tunnel service's API port (also /health, and CHP's error pages)")
    p.add_argument("--tunnel-ip", default="0.0.0.0",
                   help="where the tunnels' local ends listen (the proxy and the hub connect to them)")
    p.add_argument("--state-dir", default="/run/aml-tunnels", help="instance keys while their tunnels are open")
    p.add_argument("--ssh", default="ssh", help="the OpenSSH client")
    return p.parse_args(argv)


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="[%(levelname).1s %(asctime)s %(name)s] %(message)s",
                        stream=sys.stderr)
    asyncio.run(serve(parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
