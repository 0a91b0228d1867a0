"""A real JupyterHub (with configurable-http-proxy) as a subprocess, for
integration tests and benchmarks, driven through its REST API.

With an emulator the hub runs the AML spawner against it; its users log in
with JupyterHub's dummy authenticator unless ``login`` says otherwise: a dict
of settings gives the product's own Azure AD login (``product_login_traits``),
a string is the configuration of another authenticator.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import requests

from aml_jupyterhub.naming import instance_name
from tests.harness.emulator import DEFAULT_RG, DEFAULT_SUB, DEFAULT_WORKSPACE, DEFAULT_WS
from tests.harness.login import browser, open_with_login
from tests.harness.net import free_port, free_ports, wait_for_http, wait_until
from tests.harness.processes import command_line, descendants, end_processes
from tests.harness.repo import ROOT, example_env

CHP = ROOT / ".venv" / "chp" / "node_modules" / ".bin" / "configurable-http-proxy"
WHEEL_CACHE = ROOT / ".venv" / "wheelhouse"


def chp_command() -> str:
    if CHP.exists():
        return str(CHP)
    raise RuntimeError("configurable-http-proxy is missing: run `make venv`")


def product_login_traits(hub_url: str, data_dir: Path, emulator, **settings: str) -> tuple[type, dict]:
    """The product's authenticator class and its configuration, made by the
    product's own ``hubconfig.configure`` from local-mode settings
    (.env.example's, pointed at ``emulator``'s Azure AD, ``settings`` over
    them) as hub/jupyterhub_config.py does; only the hub's public URL is this
    test hub's (plain http on its own port, where the product has https
    behind Caddy)."""
    from traitlets.config import Config

    from aml_jupyterhub.hubconfig import configure, load_settings

    host, port = hub_url.split("//", 1)[1].split(":")
    values = load_settings({
        **example_env(),
        # a test hub's public URL is an address (plain http): every server on its origin
        "HOST": host, "HTTPS_PORT": port, "HUB_USER_SUBDOMAINS": "false",
        "EMULATOR_URL": emulator.base_url, "EMULATOR_PUBLIC_URL": emulator.base_url,
        "EMULATOR_CA": emulator.ca_file,
        "HUB_DATA_DIR": str(data_dir), "AML_PROFILES_FILE": str(ROOT / "hub" / "profiles.json"),
        **settings,
    })
    scratch = Config()
    configure(scratch, values, environ={})
    public = f"https://{host}:{port}"
    cls = scratch.JupyterHub.authenticator_class
    traits = {name: value.replace(public, hub_url) if isinstance(value, str) else value
              for name, value in scratch[cls.__name__].items()}
    return cls, traits


def config_lines(section: str, traits: dict) -> str:
    """``c.<section>.<name> = <value>`` lines of a JupyterHub config file."""
    return "".join(f"c.{section}.{name} = {value!r}\n" for name, value in traits.items())


class Hub:
    """A JupyterHub on free ports; with ``emulator``, the AML spawner against it.

    ``login``: None for JupyterHub's dummy authenticator (anyone, any
    password); a dict of settings (AAD_*) for the product's own login against
    the emulator's Azure AD, with an app registration of this hub's own; a
    string for the configuration lines of another authenticator.
    """

    def __init__(self, workdir: Path, emulator=None, extra_config: str = "", slow_spawn_timeout: float = 0,
                 login: dict | str | None = None, proxy=None, instances_page: bool = False):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.emulator = emulator
        # proxy: a started tests.harness.proxyservice.ProxyService, the product's proxy
        # container (its proxy and tunnels outlive this hub); None: the hub starts its own CHP
        self.proxy = proxy
        # three distinct ports (picked one by one, the kernel may hand out the same one twice)
        self.port, self.hub_port, self.proxy_api_port = (
            (proxy.port, proxy.hub_port, proxy.api_port) if proxy else free_ports(3))
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = secrets.token_hex(16)
        self.proxy_token = secrets.token_hex(16)
        self.crypt_key = secrets.token_hex(32)
        self.extra_config = extra_config
        self.login = login
        # the admin's instances page (the product's service), on a port of its own
        self.instances_page_port = free_port() if instances_page else 0
        self.client_id = f"hub-test-{secrets.token_hex(4)}"  # its app registration, with product login
        self.client_secret = secrets.token_hex(16)
        # 0: the REST API answers 202 at once and the spawn is watched through
        # its progress stream (JupyterHub's default waits up to 10 s first).
        self.slow_spawn_timeout = slow_spawn_timeout
        self.proc: subprocess.Popen | None = None
        self.left_by_kill: list[int] = []  # the processes a killed hub had started (stop() ends those left)
        self.log_path = self.workdir / "hub.log"
        self.session = requests.Session()
        self.session.trust_env = False
        self.session.headers["Authorization"] = f"token {self.token}"

    @property
    def secrets_dir(self) -> Path:
        return self.workdir / "secrets"

    @property
    def hub_id(self) -> str:
        """The id the hub made when it started (secrets/hub-id)."""
        path = self.secrets_dir / "hub-id"
        self.wait_for(path.exists, 30, 0.1, what=f"{path} to be made")
        return path.read_text().strip()

    def instance_name(self, user: str, server: str = "") -> str:
        """The instance name this hub gives ``user``'s server in the default workspace."""
        return instance_name(user, server, hub_id=self.hub_id, workspace=DEFAULT_WORKSPACE)

    def login_config(self) -> str:
        if self.login is None:
            return 'c.JupyterHub.authenticator_class = "dummy"\nc.Authenticator.allow_all = True\n'
        if isinstance(self.login, str):
            return textwrap.dedent(self.login)
        cls, traits = product_login_traits(self.url, self.workdir / "login-settings", self.emulator,
                                           AAD_CLIENT_ID=self.client_id, AAD_CLIENT_SECRET=self.client_secret,
                                           **self.login)
        return (f"c.JupyterHub.authenticator_class = {cls.__module__ + '.' + cls.__qualname__!r}\n"
                + config_lines(cls.__name__, traits))

    def proxy_config(self) -> str:
        if self.proxy is None:
            return (f'c.ConfigurableHTTPProxy.command = ["{chp_command()}"]\n'
                    f'c.ConfigurableHTTPProxy.auth_token = "{self.proxy_token}"\n'
                    f'c.ConfigurableHTTPProxy.pid_file = "{self.workdir}/proxy.pid"\n')
        return (f"c.ConfigurableHTTPProxy.should_start = False\n"
                f'c.ConfigurableHTTPProxy.auth_token = "{self.proxy.token}"\n'
                f'c.AMLSpawner.tunnel_service_url = "{self.proxy.tunnel_url}"\n'
                f'c.AMLSpawner.tunnel_service_token = "{self.proxy.token}"\n')

    def spawner_config(self) -> str:
        if self.emulator is None:
            return ""
        return textwrap.dedent(
            f"""
            c.JupyterHub.spawner_class = "aml"
            c.Spawner.poll_interval = 2
            c.Spawner.poll_jitter = 0
            c.AMLSpawner.subscription_id = "{DEFAULT_SUB}"
            c.AMLSpawner.resource_group = "{DEFAULT_RG}"
            c.AMLSpawner.workspace_name = "{DEFAULT_WS}"
            c.AMLSpawner.arm_endpoint = "{self.emulator.base_url}"
            c.AMLSpawner.credential_type = "static-token"
            c.AMLSpawner.static_token = "{self.emulator.token}"
            c.AMLSpawner.ca_bundle = "{self.emulator.ca_file}"
            c.AMLSpawner.secrets_dir = "{self.secrets_dir}"
            c.AMLSpawner.ssh_key_file = "{self.workdir}/ssh/id_ed25519"
            # as the product's config does (redirect mode's page, access log, reconcilers)
            from aml_jupyterhub.hubconfig import apply_essentials
            apply_essentials(c)
            if {self.instances_page_port}:
                from aml_jupyterhub.hubconfig import add_instances_page
                add_instances_page(c, "http://127.0.0.1:{self.instances_page_port}")
            c.AMLSpawner.wait_interval = 0.5
            c.AMLSpawner.retry_total = 6
            # JupyterHub's wheels for instances without it, fetched once per machine (the image ships them)
            c.AMLSpawner.wheel_cache_dir = "{WHEEL_CACHE}"
            """
        )

    def write_config(self) -> Path:
        cfg = textwrap.dedent(
            f"""
            c = get_config()  # noqa
            c.JupyterHub.ip = "127.0.0.1"
            c.JupyterHub.port = {self.port}
            c.JupyterHub.hub_ip = "127.0.0.1"
            c.JupyterHub.hub_port = {self.hub_port}
            c.JupyterHub.db_url = "sqlite:///{self.workdir}/jupyterhub.sqlite"
            c.JupyterHub.cookie_secret_file = "{self.workdir}/cookie_secret"
            c.JupyterHub.pid_file = "{self.workdir}/hub.pid"
            c.JupyterHub.cleanup_servers = False
            c.JupyterHub.cleanup_proxy = False
            c.JupyterHub.allow_named_servers = True
            c.JupyterHub.last_activity_interval = 5
            c.JupyterHub.tornado_settings = {{"slow_spawn_timeout": {self.slow_spawn_timeout}}}
            c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{self.proxy_api_port}"
            c.JupyterHub.services = [{{"name": "tester", "api_token": "{self.token}"}}]
            c.JupyterHub.load_roles = [{{
                "name": "tester",
                "scopes": ["admin:users", "admin:servers", "admin:server_state", "access:servers",
                           "admin:auth_state", "read:hub", "groups", "admin:groups", "read:metrics"],
                "services": ["tester"],
            }}]
            """
        ) + self.proxy_config() + self.login_config() + self.spawner_config() + textwrap.dedent(self.extra_config)
        path = self.workdir / "jupyterhub_config.py"
        path.write_text(cfg)
        return path

    def start(self, timeout: float = 60, env_extra: dict | None = None) -> "Hub":
        if isinstance(self.login, dict):
            self.emulator.register_app(self.client_id, self.client_secret, [f"{self.url}/hub/oauth_callback"])
        cfg = self.write_config()
        env = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTERHUB_")}
        env.update(env_extra or {})
        env["JUPYTERHUB_CRYPT_KEY"] = self.crypt_key
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "jupyterhub", "-f", str(cfg)],
                cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT, env=env,
            )
        wait_for_http(f"{self.url}/hub/api/", timeout=timeout, session=self.session, proc=self.proc,
                      log=self.log_tail)
        return self

    def browser_login(self, who: str) -> requests.Session:
        """A browser signed in to this hub as the test identity ``who`` (product login)."""
        session = browser(self.emulator.ca_file)
        r = open_with_login(session, f"{self.url}/hub/oauth_login?next=/hub/home", who, f"{who}-password")
        assert r.status_code == 200 and r.url.startswith(self.url), (r.status_code, r.url, r.text[:300])
        return session

    def form_login(self, who: str) -> requests.Session:
        """A browser signed in through the hub's own login form (JupyterHub's dummy authenticator)."""
        session = requests.Session()
        session.trust_env = False
        session.get(f"{self.url}/hub/login", timeout=30)
        r = session.post(f"{self.url}/hub/login?next=/hub/home", timeout=30,
                         data={"username": who, "password": "any", "_xsrf": session.cookies.get("_xsrf", "")})
        assert r.status_code == 200 and r.url.endswith("/hub/home"), (r.status_code, r.url, r.text[:300])
        return session

    def log_tail(self, n: int = 6000) -> str:
        return self.log_path.read_text(errors="replace")[-n:] if self.log_path.exists() else ""

    def kill(self) -> None:
        """Kill the hub as a crash would (the proxy, a separate process, keeps running for the next hub
        to adopt; its services are left to end by themselves, and stop() ends any that did not)."""
        if self.proc and self.proc.poll() is None:
            self.left_by_kill += descendants(self.proc.pid)
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        """Stop the hub, then end whatever it started that outlived it: the proxy (kept on purpose for
        the next hub), a service that ignored the stop, what a hub killed before left behind."""
        started = descendants(self.proc.pid) if self.proc and self.proc.poll() is None else []
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        pidfile = self.workdir / "proxy.pid"
        if self.proxy is None and pidfile.exists():
            try:
                pid = int(pidfile.read_text().strip())
            except ValueError:
                pid = 0
            if "configurable-http-proxy" in command_line(pid):  # not another process that took a stale pid
                started.append(pid)
        end_processes([*started, *self.left_by_kill])
        self.left_by_kill = []

    # ---- REST helpers --------------------------------------------------

    def api(self, method: str, path: str, **kw) -> requests.Response:
        return self.session.request(method, f"{self.url}/hub/api{path}", timeout=60, **kw)

    def create_user(self, name: str) -> None:
        r = self.api("POST", f"/users/{name}")
        assert r.status_code in (201, 409), r.text

    def server_path(self, user: str, server: str = "") -> str:
        return f"/users/{user}/servers/{server}" if server else f"/users/{user}/server"

    def spawn(self, user: str, server: str = "", options: dict | None = None) -> requests.Response:
        self.create_user(user)
        return self.api("POST", self.server_path(user, server), json={"user_options": options or {}})

    def progress_events(self, user: str, server: str = "", timeout: float = 180):
        """The spawn's event stream, as the events arrive, to its end."""
        path = f"/users/{user}/servers/{server}/progress" if server else f"/users/{user}/server/progress"
        with self.session.get(f"{self.url}/hub/api{path}", stream=True, timeout=timeout) as r:
            r.raise_for_status()
            for line in r.iter_lines(decode_unicode=True):
                if line and line.startswith("data:"):
                    event = json.loads(line[5:])
                    yield event
                    if event.get("ready") or event.get("failed"):
                        return

    def progress(self, user: str, server: str = "", timeout: float = 180) -> list[dict]:
        """The spawn's event stream, read to its end."""
        return list(self.progress_events(user, server, timeout))

    def user_model(self, user: str) -> dict:
        r = self.api("GET", f"/users/{user}")
        r.raise_for_status()
        return r.json()

    def server_model(self, user: str, server: str = "") -> dict | None:
        return self.user_model(user)["servers"].get(server)

    def wait_for(self, predicate, timeout: float = 120, interval: float = 0.5, what: str = "condition"):
        """``predicate()``'s first truthy value; on timeout, the hub's log says why."""
        return wait_until(predicate, timeout, what, interval=interval, log=self.log_tail)

    def stop_server(self, user: str, server: str = "", timeout: float = 120) -> None:
        r = self.api("DELETE", self.server_path(user, server))
        assert r.status_code in (202, 204), r.text
        self.wait_for(lambda: self.server_model(user, server) is None, timeout, what=f"{user}'s server to stop")

    def user_get(self, user: str, path: str, server: str = "", **kw) -> requests.Response:
        prefix = f"/user/{user}/{server + '/' if server else ''}"
        return self.session.get(f"{self.url}{prefix}{path}", timeout=30, **kw)

    def user_request(self, method: str, user: str, path: str, server: str = "", **kw) -> requests.Response:
        prefix = f"/user/{user}/{server + '/' if server else ''}"
        return self.session.request(method, f"{self.url}{prefix}{path}", timeout=30, **kw)


def spawn_ready(hub: Hub, user: str, server: str = "", options: dict | None = None) -> list[dict]:
    """Spawn ``user``'s server and read its progress to the end, which must be ready."""
    r = hub.spawn(user, server, options)
    assert r.status_code in (201, 202), r.text
    events = hub.progress(user, server)
    assert events[-1].get("ready"), (events, hub.log_tail())
    return events
