"""The hub's database on a real PostgreSQL server (HUB_DB_URL, HUB_DB_PASSWORD).

The product's own hub/jupyterhub_config.py, given the two settings in its
environment as .env gives them, runs a real JupyterHub whose tables and users
live in a PostgreSQL server started here from Debian's packages (on 127.0.0.1
only, a role with a SCRAM password, a database of its own); a user made
through the REST API is still there after a restart, in that database's
``users`` table, and the password is in no child's environment and no log.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from contextlib import closing
from pathlib import Path
from urllib.parse import quote

import pytest
import requests

from tests.harness.hub import chp_command
from tests.harness.net import free_port, wait_for_http, wait_until
from tests.harness.repo import ROOT

try:
    import psycopg2
except ImportError:  # the test extra has it
    psycopg2 = None

# Azure mode with fake identities: nothing here reaches Azure (no reconciler, no spawn)
AZURE_ENV = {
    "LOCAL_MODE": "false",
    "AAD_TENANT_ID": "11111111-1111-1111-1111-111111111111", "AAD_CLIENT_ID": "c-id", "AAD_CLIENT_SECRET": "c-secret",
    "AAD_ALLOWED_GROUPS": "g1", "AML_SUBSCRIPTION_ID": "sub", "AML_RESOURCE_GROUP": "rg", "AML_WORKSPACE": "ws",
    "AZURE_TENANT_ID": "11111111-1111-1111-1111-111111111111", "AZURE_CLIENT_ID": "sp-id",
    "AZURE_CLIENT_SECRET": "sp-secret",
    "AML_PROFILES_FILE": str(ROOT / "hub" / "profiles.json"),
    "AML_RECONCILE_INTERVAL": "0",
}


def postgres_bin() -> Path:
    """Debian's PostgreSQL server programs (the newest version installed)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                   key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0)
    if not found:
        pytest.fail("PostgreSQL's server is not installed (no /usr/lib/postgresql/*/bin/initdb): "
                    "apt-get install postgresql (.ci/run does)", pytrace=False)
    return found[-1].parent


class PostgresServer:
    """A PostgreSQL server in its own directory, on 127.0.0.1:``port`` only,
    with a login role ``user`` (SCRAM password) owning database ``database``."""

    def __init__(self):
        if psycopg2 is None:
            pytest.fail("psycopg2 is missing: pip install -e './spawner[test]'", pytrace=False)
        self.bin = postgres_bin()
        self.port = free_port()
        self.user, self.database = "hub", "jupyterhub"
        # every character a URL must quote, so that the product's quoting is what makes it work
        self.password = f"pg-{secrets.token_hex(6)}:p@ss/w%rd#?&"
        self.superuser_password = secrets.token_hex(12)
        # not under pytest's tmp_path: root's /tmp/pytest-of-root is 0700 and the server runs as another user
        self.dir = Path(tempfile.mkdtemp(prefix="aml-pg-"))
        self.data = self.dir / "data"
        self.log = self.dir / "postgres.log"
        self.as_user: list[str] = []
        self.owner: tuple[int, int] | None = None
        if os.geteuid() == 0:  # initdb and postgres refuse to run as root
            account = "postgres" if _user_exists("postgres") else "nobody"
            entry = pwd.getpwnam(account)
            self.owner = (entry.pw_uid, entry.pw_gid)
            os.chown(self.dir, *self.owner)
            self.as_user = ["runuser", "-u", account, "--"]

    def run(self, *command: str, timeout: float = 120) -> None:
        r = subprocess.run([*self.as_user, *command], capture_output=True, text=True, timeout=timeout)
        assert r.returncode == 0, (command, r.stdout[-2000:], r.stderr[-2000:], self.log_tail())

    def log_tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    def start(self) -> "PostgresServer":
        pwfile = self.dir / "pwfile"
        self.write(pwfile, self.superuser_password)
        self.run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "--pwfile", str(pwfile),
                 "--auth=scram-sha-256", "-E", "UTF8", "--locale=C")
        pwfile.unlink()
        with open(self.data / "postgresql.conf", "a") as f:
            f.write(f"listen_addresses = '127.0.0.1'\nport = {self.port}\nunix_socket_directories = '{self.dir}'\n"
                    "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n")
        self.write(self.data / "pg_hba.conf",
                   "local all all scram-sha-256\nhost all all 127.0.0.1/32 scram-sha-256\n")
        # -w -t: pg_ctl waits, at most 60 s, until the server accepts connections
        self.run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "start",
                 timeout=90)
        wait_until(self._accepts, 30, f"PostgreSQL on 127.0.0.1:{self.port}", log=self.log_tail)
        with closing(self.connect("postgres", "postgres", self.superuser_password)) as db:
            db.autocommit = True
            with db.cursor() as cur:
                cur.execute(f"CREATE ROLE {self.user} LOGIN PASSWORD %s", (self.password,))
                cur.execute(f"CREATE DATABASE {self.database} OWNER {self.user}")
        return self

    def write(self, path: Path, text: str) -> None:
        """A file only the server's user may read."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        if self.owner:
            os.chown(path, *self.owner)

    def _accepts(self) -> bool:
        try:
            self.connect("postgres", "postgres", self.superuser_password).close()
            return True
        except psycopg2.OperationalError:
            return False

    def connect(self, database: str | None = None, user: str | None = None, password: str | None = None):
        return psycopg2.connect(host="127.0.0.1", port=self.port, dbname=database or self.database,
                                user=user or self.user, password=self.password if password is None else password,
                                connect_timeout=5)

    def query(self, sql: str, *args) -> list[tuple]:
        with closing(self.connect()) as db, db.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall()

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                subprocess.run([*self.as_user, str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w",
                                "-t", "30", "stop"], capture_output=True, timeout=60)
        finally:
            pidfile = self.data / "postmaster.pid"
            if pidfile.exists():  # pg_ctl did not stop it in time
                try:
                    os.kill(int(pidfile.read_text().split()[0]), signal.SIGKILL)
                except (ValueError, IndexError, ProcessLookupError):
                    pass
            shutil.rmtree(self.dir, ignore_errors=True)


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


@pytest.fixture
def postgres():
    server = PostgresServer()
    try:
        yield server.start()
    finally:
        server.stop()


class ProductHub:
    """The product's hub/jupyterhub_config.py in a real JupyterHub, on free
    ports, with ``settings`` as its environment (.env's), restartable; a
    drop-in file of HUB_CONFIG_DIR gives this test an API token."""

    def __init__(self, workdir: Path, settings: dict):
        self.workdir = workdir
        self.data = workdir / "data"
        self.data.mkdir(parents=True, mode=0o700)
        self.port, hub_port, api_port = free_port(), free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = secrets.token_hex(16)
        self.config = workdir / "jupyterhub_config.py"
        self.config.write_text(
            f"exec(open({str(ROOT / 'hub' / 'jupyterhub_config.py')!r}).read())\n"
            f"c.JupyterHub.bind_url = 'http://127.0.0.1:{self.port}'\n"
            f"c.JupyterHub.hub_bind_url = 'http://127.0.0.1:{hub_port}'\n"
            f"c.ConfigurableHTTPProxy.api_url = 'http://127.0.0.1:{api_port}'\n"
            f"c.ConfigurableHTTPProxy.command = [{chp_command()!r}]\n"
        )
        config_d = workdir / "config.d"
        config_d.mkdir()
        (config_d / "50-tester.py").write_text(
            f"c.JupyterHub.services.append({{'name': 'tester', 'api_token': {self.token!r}}})\n"
            "c.JupyterHub.load_roles.append({'name': 'tester', 'scopes': ['admin:users'], 'services': ['tester']})\n"
        )
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("AML_", "AAD_", "HUB_", "AZURE_", "JUPYTERHUB_"))}
        self.env.update(settings, HUB_DATA_DIR=str(self.data), HUB_CONFIG_DIR=str(config_d), HUB_ON_CONFIG_ERROR="exit")
        self.log_path = workdir / "hub.log"
        self.proc: subprocess.Popen | None = None
        self.session = requests.Session()
        self.session.trust_env = False
        self.session.headers["Authorization"] = f"token {self.token}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def start(self) -> "ProductHub":
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "jupyterhub", "-f", str(self.config)],
                                         cwd=self.workdir, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        wait_for_http(f"{self.url}/hub/health", timeout=90, proc=self.proc, log=lambda: self.log()[-4000:])
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def api(self, method: str, path: str) -> requests.Response:
        return self.session.request(method, f"{self.url}/hub/api{path}", timeout=30)


def child_environments(pid: int) -> list[bytes]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [Path(f"/proc/{p}/environ").read_bytes() for p in out.split()]


def test_the_hub_keeps_its_users_in_postgresql(postgres, tmp_path):
    url = f"postgresql://{postgres.user}@127.0.0.1:{postgres.port}/{postgres.database}?sslmode=disable"
    hub = ProductHub(tmp_path, {**AZURE_ENV, "HUB_DB_URL": url, "HUB_DB_PASSWORD": postgres.password,
                                "HUB_LOG_LEVEL": "DEBUG"})  # JupyterHub's debug lines show its database URL
    try:
        hub.start()
        r = hub.api("POST", "/users/alice")
        assert r.status_code == 201, r.text
        # in PostgreSQL's tables, not in a SQLite file of the data dir
        assert postgres.query("SELECT name FROM users WHERE name = %s", "alice") == [("alice",)]
        assert not (hub.data / "jupyterhub.sqlite").exists()
        kids = child_environments(hub.proc.pid)
        assert len(kids) >= 2, kids  # the proxy and the idle culler
        assert not [env for env in kids if b"HUB_DB_PASSWORD" in env or postgres.password.encode() in env]

        hub.stop()
        hub.start()
        r = hub.api("GET", "/users/alice")
        assert r.status_code == 200 and r.json()["name"] == "alice", r.text
        tables = {name for (name,) in postgres.query(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")}
        assert {"users", "servers", "api_tokens", "alembic_version"} <= tables, tables
    finally:
        hub.stop()
    log = hub.log()
    assert "Connecting to db" in log  # the line that would show it
    for form in (postgres.password, quote(postgres.password, safe=""), quote(postgres.password)):
        assert form not in log
