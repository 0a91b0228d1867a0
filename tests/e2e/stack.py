"""The compose stack under test, and how the end-to-end tests talk to it.

:class:`ComposeStack` runs the repository's ``compose.yaml`` in local mode
under a project name of its own (so its volumes start empty), with settings
from ``.env.example`` written to a temporary env file. The hub gets that file
through a small override compose file, because ``compose.yaml`` reads the
hub's settings from ``.env`` at the repository root, which the tests must not
write. Everything is reached the way a user reaches it: the hub through Caddy
at https://localhost:<a free port>, the emulated Azure AD at another one: ports
and the Docker network are the stack's own, so a demo stack (``make up``) on
the same engine is no obstacle, and the run removes only what it made.

The helpers below it sign users in through the emulated Azure AD login page
(as a browser would, with requests), make API tokens, drive the hub's REST
API and run code in a kernel over the websocket through Caddy.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import select
import shutil
import ssl
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote, urljoin

import requests
from jupyterhub.utils import subdomain_hook_idna

from aml_jupyterhub.naming import instance_name
from tests.harness.browser import CHROMIUM, CHROMIUM_ARGS
from tests.harness.emulator import DEFAULT_WORKSPACE
from tests.harness.kernel import execute
from tests.harness.login import browser, open_with_login
from tests.harness.net import free_port

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"

HOST = "localhost"
DOMAIN = "aml-local.example"  # the packaged test identities' UPN domain
INSTANCE_LABEL = "aml-jupyterhub.instance"  # on the containers and volumes the emulator makes
CADDY_ROOT_IN_VOLUME = "/data/caddy/pki/authorities/local/root.crt"
EMULATOR_CA_IN_CONTAINER = "/srv/emulator/ca.pem"
ARM_RESPONSES_IN_CONTAINER = "/srv/emulator/arm-responses.jsonl"  # the emulator's --record-responses
CONTROL_SECRET_IN_CONTAINER = "/srv/emulator/control-secret"  # made on its first start
CONTROL_SECRET_HEADER = "X-Emulator-Secret"  # the host reaches it through Docker's port, not its loopback


def upn(name: str) -> str:
    """The hub user name of a packaged test user (AAD_USERNAME_CLAIM=upn)."""
    return f"{name}@{DOMAIN}"


def password(name: str) -> str:
    return f"{name}-password"


def no_docker_reason() -> str | None:
    """Why there is no usable Docker engine and compose, or None if there is."""
    if not shutil.which("docker"):
        return "no docker CLI on PATH"
    try:
        info = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True,
                              text=True, timeout=30)
    except subprocess.TimeoutExpired:
        return "the Docker engine does not answer"
    if info.returncode != 0:
        return f"no Docker engine: {info.stderr.strip()[:200]}"
    return None


def wait_until(predicate, timeout: float, what: str, interval: float = 0.5):
    """``predicate()``'s first truthy value within ``timeout`` seconds; an
    exception counts as "not yet" and the last one is reported on timeout."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            value = predicate()
            if value:
                return value
            last = value
        except Exception as exc:  # noqa: BLE001 - reported below if it never succeeds
            last = exc
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")
        time.sleep(interval)


class Timer:
    """Prints how long each phase of the run took."""

    def __init__(self):
        self.started = time.monotonic()
        self.phases: list[tuple[str, float]] = []

    @contextmanager
    def phase(self, name: str):
        t0 = time.monotonic()
        try:
            yield
        finally:
            took = time.monotonic() - t0
            self.phases.append((name, took))
            print(f"\n[e2e] {name}: {took:.1f} s", flush=True)

    def summary(self) -> str:
        lines = [f"  {name:<52} {took:7.1f} s" for name, took in self.phases]
        lines.append(f"  {'total':<52} {time.monotonic() - self.started:7.1f} s")
        return "\n".join(lines)


# ---- the stack -------------------------------------------------------------------


def _env_text(overrides: dict[str, str]) -> str:
    """``.env.example`` with some values replaced (or appended)."""
    lines, seen = [], set()
    for line in (ROOT / ".env.example").read_text().splitlines():
        key = line.split("=", 1)[0] if "=" in line and not line.startswith("#") else None
        if key in overrides:
            line = f"{key}={overrides[key]}"
            seen.add(key)
        lines.append(line)
    lines += [f"{k}={v}" for k, v in overrides.items() if k not in seen]
    return "\n".join(lines) + "\n"


class ComposeStack:
    """``compose.yaml`` in local mode, under a project of its own."""

    services = ("caddy", "hub", "emulator")

    def __init__(self, workdir: Path, project: str | None = None, settings: dict[str, str] | None = None):
        self.workdir = Path(workdir)
        self.settings = dict(settings or {})  # .env settings over the e2e run's own
        self.workdir.mkdir(parents=True, exist_ok=True)
        token = secrets.token_hex(3)
        self.project = project or f"aml-e2e-{token}"
        # mixed into instance names, so this run's instances never collide with
        # another stack's (the emulator names containers after instances)
        self.hub_id = f"e2e{token}"
        self.env_file = self.workdir / "e2e.env"
        self.override_file = self.workdir / "compose.e2e.yaml"
        self.caddy_root = self.workdir / "caddy-root.crt"
        self.emulator_ca = self.workdir / "emulator-ca.pem"
        self.ca_bundle = self.workdir / "ca-bundle.pem"  # both, for the requests that cross from one to the other
        # ports and network of its own, so a demo stack (make up) on the same engine is no obstacle
        self.http_port, self.https_port, self.emulator_port = free_port(), free_port(), free_port()
        self.network = self.project
        self.hub_url = f"https://{HOST}:{self.https_port}"
        self.emulator_url = f"https://{HOST}:{self.emulator_port}"  # the emulator as the browser reaches it
        self.env = {**os.environ, "COMPOSE_PROJECT_NAME": self.project}
        self.env.pop("COMPOSE_FILE", None)
        self.env.pop("COMPOSE_PROFILES", None)  # from the env file
        self.up_once = False
        self._responses_read = 0  # bytes of the emulator's response record already checked
        self._control_secret: str | None = None
        self.arm_responses_checked = 0

    @property
    def hosts_per_user(self) -> bool:
        """HUB_USER_SUBDOMAINS, as this stack runs (the default: true)."""
        return self.settings.get("HUB_USER_SUBDOMAINS", "true") != "false"

    def user_origin(self, user: str) -> str:
        """Where ``user``'s servers are: a host of their own under HOST, named as JupyterHub names it
        (the hub's own origin without hosts_per_user)."""
        if not self.hosts_per_user:
            return self.hub_url
        return f"https://{subdomain_hook_idna(user, HOST, kind='user')}:{self.https_port}"

    def service_url(self, name: str) -> str:
        """A service of the hub (``/services/<name>/``), on a host of its own with HUB_USER_SUBDOMAINS."""
        if not self.hosts_per_user:
            return f"{self.hub_url}/services/{name}/"
        return f"https://{subdomain_hook_idna(name, HOST, kind='service')}:{self.https_port}/services/{name}/"

    # -- files -----------------------------------------------------------------

    def write_files(self) -> None:
        self.env_file.write_text(_env_text({
            "COMPOSE_PROFILES": "local", "LOCAL_MODE": "true", "HOST": HOST, "AML_HUB_ID": self.hub_id,
            "HTTP_PORT": str(self.http_port), "HTTPS_PORT": str(self.https_port),
            "EMULATOR_PORT": str(self.emulator_port), "EMULATOR_PUBLIC_URL": self.emulator_url,
            "STACK_NETWORK": self.network,
            # every ARM answer the stack's emulator gives, checked against AML's definitions (conftest)
            "EMULATOR_EXTRA_ARGS": f"--record-responses {ARM_RESPONSES_IN_CONTAINER}",
            **self.settings,
        }))
        # a YAML flow mapping is JSON: no YAML library needed
        self.override_file.write_text(json.dumps(
            {"services": {"hub": {"env_file": [{"path": str(self.env_file), "required": True}]}}}, indent=2
        ) + "\n")

    # -- compose -----------------------------------------------------------------

    def compose_command(self, *args: str) -> list[str]:
        return ["docker", "compose", "--project-directory", str(ROOT), "-p", self.project,
                "--env-file", str(self.env_file), "-f", str(ROOT / "compose.yaml"), "-f", str(self.override_file),
                *args]

    def compose(self, *args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess:
        cmd = self.compose_command(*args)
        r = subprocess.run(cmd, cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise RuntimeError(f"`{' '.join(cmd[2:])}` failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-5000:]}")
        return r

    def build(self) -> None:
        """Build the hub, emulator and compute-instance images. The layer cache
        makes this quick when nothing changed; AML_E2E_NO_BUILD=1 skips it
        (the images must then exist)."""
        if os.environ.get("AML_E2E_NO_BUILD") == "1":
            return
        self.compose("--profile", "local", "--profile", "build", "build", timeout=3600)

    def up(self) -> None:
        self.compose("up", "-d", "--wait", "--wait-timeout", "180", timeout=400)
        self.up_once = True

    def down(self, volumes: bool = False) -> subprocess.CompletedProcess:
        return self.compose("down", *(["-v"] if volumes else []), "--remove-orphans", timeout=300, check=False)

    def stop(self, service: str) -> int:
        """``docker compose stop``; returns the exit code the service stopped
        with (137: compose had to SIGKILL it after its grace period)."""
        self.compose("stop", service, timeout=180)
        r = self.compose("ps", "--all", "--format", "{{.ExitCode}}", service, timeout=60)
        return int(r.stdout.strip().splitlines()[-1])

    def start(self, service: str) -> None:
        self.compose("start", service, timeout=180)

    def restart(self, service: str) -> int:
        """``docker compose restart`` as its two halves; returns :meth:`stop`'s exit code."""
        code = self.stop(service)
        self.start(service)
        return code

    def logs(self, tail: int = 200) -> str:
        parts = []
        for service in self.services:
            r = self.compose("logs", "--no-color", f"--tail={tail}", service, timeout=60, check=False)
            parts.append(f"===== {service} (last {tail} lines) =====\n{r.stdout}{r.stderr}")
        return "\n".join(parts)

    def new_arm_responses(self) -> list[dict]:
        """The ARM responses the emulator recorded since the last call (none while it is not running)."""
        r = self.compose("exec", "-T", "emulator", "tail", "-c", f"+{self._responses_read + 1}",
                         ARM_RESPONSES_IN_CONTAINER, timeout=60, check=False)
        if r.returncode != 0:
            return []
        data = r.stdout.encode()
        complete = data[: data.rfind(b"\n") + 1]
        self._responses_read += len(complete)
        records = [json.loads(line) for line in complete.splitlines() if line.strip()]
        self.arm_responses_checked += len(records)
        return records

    # -- what the stack made -------------------------------------------------------

    def fetch_certs(self) -> None:
        """Caddy's local root and the emulator's CA, copied out of the containers."""
        def cp(src: str, dest: Path) -> bool:
            return self.compose("cp", src, str(dest), timeout=60, check=False).returncode == 0 and dest.exists()

        wait_until(lambda: cp(f"caddy:{CADDY_ROOT_IN_VOLUME}", self.caddy_root), 60,
                   "Caddy's local CA root certificate")
        wait_until(lambda: cp(f"emulator:{EMULATOR_CA_IN_CONTAINER}", self.emulator_ca), 60,
                   "the emulator's CA certificate")
        self.ca_bundle.write_text(self.caddy_root.read_text() + "\n" + self.emulator_ca.read_text())

    def wait_https(self, timeout: float = 90) -> float:
        """Seconds until the hub answers through Caddy over HTTPS. Caddy has no
        healthcheck, so `up --wait` returns before it has issued its
        certificate; a browser opened at once would see a TLS error."""
        t0 = time.monotonic()
        wait_until(lambda: requests.get(f"{self.hub_url}/hub/health", verify=str(self.caddy_root), timeout=10).ok,
                   timeout, f"{self.hub_url}/hub/health through Caddy", interval=0.5)
        return time.monotonic() - t0

    def control_secret(self) -> str:
        """The secret of the emulator's control API, read in its container ("" while it is not running)."""
        if not self._control_secret:
            r = self.compose("exec", "-T", "emulator", "cat", CONTROL_SECRET_IN_CONTAINER, timeout=60, check=False)
            self._control_secret = r.stdout.strip() if r.returncode == 0 else ""
        return self._control_secret

    def emulator(self, method: str, path: str, **kw) -> requests.Response:
        """The emulator's own API (``/_emulator/...``), as published on the host."""
        given = kw.pop("headers", {})
        for _attempt in range(2):
            headers = {CONTROL_SECRET_HEADER: self.control_secret(), **given}
            r = requests.request(method, self.emulator_url + path, headers=headers, verify=str(self.emulator_ca),
                                 timeout=60, **kw)
            if r.status_code != 401 or CONTROL_SECRET_HEADER in given:
                return r
            self._control_secret = None  # an emulator made anew (down -v) made a new secret
        return r

    def emulator_instances(self) -> dict[str, dict]:
        r = self.emulator("GET", "/_emulator/instances")
        r.raise_for_status()
        return {i["name"]: i for i in r.json()}

    def instance_name(self, user: str, server: str = "") -> str:
        return instance_name(user, server, hub_id=self.hub_id, workspace=DEFAULT_WORKSPACE)

    def container_state(self, container: str) -> str | None:
        r = subprocess.run(["docker", "inspect", "--format", "{{.State.Status}}", container],
                           capture_output=True, text=True)
        return r.stdout.strip() if r.returncode == 0 else None

    def remove_network(self) -> None:
        """The emulator's network slots and file shares on this run's network, then the network (after compose down)."""
        r = subprocess.run(["docker", "ps", "-aq", "--filter", "label=aml-jupyterhub.slot=1",
                            "--filter", f"label=aml-jupyterhub.network={self.network}"], capture_output=True, text=True)
        if r.stdout.split():
            subprocess.run(["docker", "rm", "-f", *r.stdout.split()], capture_output=True)
        # the workspace's file share (kept, as on AML, when its instances go: not when the whole run goes)
        r = subprocess.run(["docker", "volume", "ls", "-q", "--filter", f"label=aml-jupyterhub.network={self.network}"],
                           capture_output=True, text=True)
        if r.stdout.split():
            subprocess.run(["docker", "volume", "rm", "-f", *r.stdout.split()], capture_output=True)
        subprocess.run(["docker", "network", "rm", self.network], capture_output=True)

    def remove_instances(self, users=()) -> list[str]:
        """Remove the containers and volumes the emulator made for this run.

        They are not compose's, so ``down -v`` leaves them. The emulator's own
        reset removes them; what it missed (or everything, if it is gone) is
        found by name: the instances it knew and those of ``users``, whose
        names carry this run's hub id."""
        names = set()
        try:
            names |= set(self.emulator_instances())
            self.emulator("POST", "/_emulator/reset")
        except (requests.RequestException, OSError, ValueError):
            pass
        names |= {self.instance_name(u) for u in users}
        r = subprocess.run(["docker", "ps", "-a", "--filter", f"label={INSTANCE_LABEL}",
                            "--format", f'{{{{.Names}}}} {{{{.Label "{INSTANCE_LABEL}"}}}}'],
                           capture_output=True, text=True)
        removed = []
        for line in r.stdout.splitlines():
            container, _, label = line.partition(" ")
            if label.strip() in names:
                subprocess.run(["docker", "rm", "-f", container], capture_output=True)
                removed.append(container)
        for name in names:
            subprocess.run(["docker", "volume", "rm", "-f", f"aml-ci-{name}-home"], capture_output=True)
        return removed


# ---- the hub, as a user and as an admin ---------------------------------------------


def hub_session(stack: ComposeStack) -> requests.Session:
    """A cookie-keeping session that trusts Caddy's and the emulator's CAs."""
    return browser(str(stack.ca_bundle))


def sign_in(stack: ComposeStack, name: str, next_path: str = "/hub/home") -> tuple[requests.Session, requests.Response]:
    """Log ``name`` in through the hub's Azure AD login (the emulated login page)."""
    s = hub_session(stack)
    r = open_with_login(s, f"{stack.hub_url}/hub/oauth_login?next={quote(next_path)}", name, password(name))
    return s, r


def create_token(stack: ComposeStack, session: requests.Session, user: str, note: str = "aml-e2e") -> str:
    """An API token for the logged-in ``user``, made with the session cookie
    (JupyterHub wants the ``_xsrf`` cookie echoed in X-XSRFToken)."""
    xsrf = session.cookies.get("_xsrf")
    if not xsrf:  # the cookie is set by any page that renders a form
        session.get(f"{stack.hub_url}/hub/token", timeout=60)
        xsrf = session.cookies.get("_xsrf")
    assert xsrf, f"no _xsrf cookie after visiting the hub: {session.cookies.keys()}"
    r = session.post(f"{stack.hub_url}/hub/api/users/{quote(user, safe='@')}/tokens",
                     json={"note": note, "expires_in": 4 * 3600},
                     headers={"X-XSRFToken": xsrf, "Referer": f"{stack.hub_url}/hub/token"}, timeout=60)
    assert r.status_code in (200, 201), (r.status_code, r.text)
    return r.json()["token"]


class HubApi:
    """The hub's REST API through Caddy, with an API token."""

    def __init__(self, stack: ComposeStack, token: str):
        self.stack = stack
        self.token = token
        self.session = requests.Session()
        self.session.trust_env = False
        self.session.verify = str(stack.caddy_root)
        self.session.headers["Authorization"] = f"token {token}"

    def api(self, method: str, path: str, **kw) -> requests.Response:
        kw.setdefault("timeout", 60)
        return self.session.request(method, f"{self.stack.hub_url}/hub/api{path}", **kw)

    @staticmethod
    def user_path(user: str) -> str:
        return f"/users/{quote(user, safe='@')}"

    def user_model(self, user: str, **params) -> dict:
        r = self.api("GET", self.user_path(user), params=params)
        r.raise_for_status()
        return r.json()

    def server(self, user: str, name: str = "") -> dict | None:
        return self.user_model(user)["servers"].get(name)

    def server_url(self, user: str, name: str = "") -> str:
        """https://<user's host>/user/<name>/[<server>/] (as the hub spells it)."""
        server = self.server(user, name)
        assert server, f"{user} has no server {name!r}"
        return urljoin(self.stack.hub_url, server["url"])  # on the user's own host with HUB_USER_SUBDOMAINS

    def start_server(self, user: str, options: dict | None = None) -> None:
        r = self.api("POST", self.user_path(user) + "/server", json={"user_options": options or {}})
        assert r.status_code in (201, 202), (r.status_code, r.text)

    def progress_messages(self, user: str, timeout: float = 300) -> list[dict]:
        """The spawn's event stream, read to its end (ready or failed)."""
        events = []
        with self.session.get(f"{self.stack.hub_url}/hub/api{self.user_path(user)}/server/progress",
                              stream=True, timeout=timeout) as r:
            r.raise_for_status()
            for line in r.iter_lines(decode_unicode=True):
                if line and line.startswith("data:"):
                    events.append(json.loads(line[5:]))
                    if events[-1].get("ready") or events[-1].get("failed"):
                        break
        return events

    def wait_ready(self, user: str, timeout: float = 300) -> dict:
        def ready():
            server = self.server(user)
            return server if server and server.get("ready") else None

        return wait_until(ready, timeout, f"{user}'s server to be ready", interval=1)

    def stop_server(self, user: str, timeout: float = 180) -> None:
        r = self.api("DELETE", self.user_path(user) + "/server")
        assert r.status_code in (202, 204), (r.status_code, r.text)
        wait_until(lambda: self.server(user) is None, timeout, f"{user}'s server to stop", interval=1)

    def user_request(self, method: str, user: str, path: str, **kw) -> requests.Response:
        """A request to the user's own server (through Caddy and the proxy)."""
        kw.setdefault("timeout", 60)
        return self.session.request(method, self.server_url(user) + path, **kw)


def ssl_context(cafile: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cafile))


async def run_code(hub: HubApi, user: str, code: str) -> str:
    """Run ``code`` in a kernel on the user's server over wss:// through Caddy."""
    return await execute(hub.server_url(user) + "api", hub.token, code, username=user,
                         ssl_context=ssl_context(hub.stack.caddy_root))


def run_code_sync(hub: HubApi, user: str, code: str) -> str:
    return asyncio.run(run_code(hub, user, code))


# ---- the browser ---------------------------------------------------------------


def browser_home(stack: ComposeStack) -> Path:
    """A HOME for Chromium whose NSS database trusts Caddy's and the
    emulator's CAs, as `certutil` would set up a user's own."""
    home = stack.workdir / "browser-home"
    nssdb = home / ".pki" / "nssdb"
    shutil.rmtree(nssdb, ignore_errors=True)  # the CAs of this stack, not of an earlier one
    nssdb.mkdir(parents=True)
    db = f"sql:{nssdb}"
    subprocess.run(["certutil", "-N", "-d", db, "--empty-password"], check=True, capture_output=True)
    for nick, cert in (("aml-e2e caddy local CA", stack.caddy_root), ("aml-e2e emulator CA", stack.emulator_ca)):
        subprocess.run(["certutil", "-A", "-d", db, "-n", nick, "-t", "C,,", "-i", str(cert)],
                       check=True, capture_output=True)
    return home


def host_network_settled(quiet: float = 3.0, limit: float = 30.0) -> None:
    """Until this host's links and addresses have been still for ``quiet`` seconds.

    Chromium aborts its requests in flight (``net::ERR_NETWORK_CHANGED``) on
    every such change, and starting containers makes them: an interface per
    container, its IPv6 address a moment later. The stack's own start (and a
    ``compose restart``) does it once; a person opening the browser after
    ``make up`` never sees it, a test that starts at once does. (The emulated
    instances make none: they share the emulator's network slots.)"""
    if shutil.which("ip") is None:
        time.sleep(quiet)
        return
    deadline = time.monotonic() + limit
    monitor = subprocess.Popen(["ip", "-o", "monitor", "link", "address"], stdout=subprocess.PIPE)
    try:
        fd = monitor.stdout.fileno()
        last_change = time.monotonic()
        while time.monotonic() < deadline:
            readable, _, _ = select.select([fd], [], [], 0.2)
            if readable and os.read(fd, 65536):
                last_change = time.monotonic()
            elif time.monotonic() - last_change >= quiet:
                return
    finally:
        monitor.terminate()
        monitor.wait()


def launch_chromium(playwright, stack: ComposeStack):
    host_network_settled()
    home = browser_home(stack)
    env = {**os.environ, "HOME": str(home)}
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, env=env, headless=True)


def console_run(page, code: str, expect: str, timeout_ms: int) -> None:
    """Type ``code`` into JupyterLab's console prompt and wait for ``expect`` among its outputs.

    Keys typed before the prompt's editor is ready are lost without a trace,
    so the code is seen in the prompt before Shift+Enter sends it."""
    prompt = page.locator(".jp-CodeConsole-promptCell .cm-content")
    prompt.click()
    page.keyboard.press("Control+a")
    page.keyboard.type(code)
    page.locator(".jp-CodeConsole-promptCell .cm-content", has_text=code).wait_for(timeout=10_000)
    page.keyboard.press("Shift+Enter")
    page.locator(".jp-CodeConsole-content .jp-OutputArea-output", has_text=expect).first.wait_for(timeout=timeout_ms)
