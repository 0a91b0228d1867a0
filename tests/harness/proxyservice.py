"""The product's proxy container as a local process: ``aml-jupyterhub-proxy``
(configurable-http-proxy and the tunnel service) on free ports, for a test
hub that uses it as its external proxy (``Hub(..., proxy=ProxyService(...))``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import requests

from tests.harness.hub import chp_command
from tests.harness.net import free_port, wait_for_http
from tests.harness.processes import descendants, end_processes


class ProxyService:
    def __init__(self, workdir: Path, hub_port: int | None = None):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port, self.api_port, self.tunnel_api_port = free_port(), free_port(), free_port()
        self.hub_port = hub_port or free_port()  # the hub that will use it binds this
        self.token_file = self.workdir / "proxy-secrets" / "token"
        self.tls_dir = self.workdir / "proxy-secrets" / "internal-ssl"  # a hub with internal TLS shares certs here
        self.state_dir = self.workdir / "tunnels"
        self.log_path = self.workdir / "proxy.log"
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def tunnel_url(self) -> str:
        return f"http://127.0.0.1:{self.tunnel_api_port}"

    @property
    def token(self) -> str:
        return self.token_file.read_text().strip()

    def start(self, timeout: float = 30) -> "ProxyService":
        argv = [sys.executable, "-m", "aml_jupyterhub.proxy_service", "--token-file", str(self.token_file),
                "--hub-url", f"http://127.0.0.1:{self.hub_port}", "--port", str(self.port),
                "--api-port", str(self.api_port), "--chp", chp_command(), "--tunnel-api-ip", "127.0.0.1",
                "--tunnel-api-port", str(self.tunnel_api_port), "--tunnel-ip", "127.0.0.1",
                "--state-dir", str(self.state_dir), "--internal-ssl", str(self.tls_dir)]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTERHUB_", "CONFIGPROXY_"))}
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env,
                                         start_new_session=True)
        wait_for_http(f"{self.tunnel_url}/health", timeout=timeout, proc=self.proc, log=self.log_tail)
        wait_for_http(f"{self.url}/_chp_healthz", timeout=timeout, proc=self.proc, log=self.log_tail)
        return self

    def tunnels(self) -> dict:
        r = requests.get(f"{self.tunnel_url}/tunnels", headers={"Authorization": f"token {self.token}"}, timeout=10)
        r.raise_for_status()
        return r.json()["tunnels"]

    def ssh_pids(self) -> list[int]:
        """The ssh processes this service runs (its children)."""
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid), "-x", "ssh"], capture_output=True, text=True)
        return sorted(int(p) for p in out.stdout.split())

    def chp_pids(self) -> list[int]:
        """The configurable-http-proxy processes this service runs (its children)."""
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid), "-f", "configurable-http-proxy"],
                             capture_output=True, text=True)
        return sorted(int(p) for p in out.stdout.split())

    def log_tail(self, n: int = 6000) -> str:
        return self.log_path.read_text(errors="replace")[-n:] if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            started = descendants(self.proc.pid)  # its proxy and ssh tunnels, ended below if they outlive it
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
            end_processes(started)
