"""Shared fixtures: a real emulator process, started once per test session.

``emulator`` is session-scoped (starting it costs about a second); ``emu`` is
the same emulator, reset after each test so tests cannot see each other's
instances, faults or quotas.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "tests" / "artifacts"
DEFAULT_SUB = "00000000-0000-0000-0000-000000000000"
DEFAULT_RG = "aml-local"
DEFAULT_WS = "aml-local"
DEFAULT_TOKEN = "aml-emulator-local-token"
DEFAULT_WORKSPACE = f"{DEFAULT_SUB}/{DEFAULT_RG}/{DEFAULT_WS}"  # as instance names are keyed by it


def example_env() -> dict[str, str]:
    """The settings .env.example gives (local mode, the emulator's test identity), as a user's .env starts."""
    env = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            env[name] = value
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class EmulatorProcess:
    """A running ``python -m aml_emulator`` and ways to talk to it."""

    def __init__(self, state_dir: Path, extra_args=(), port: int | None = None):
        self.state_dir = Path(state_dir)
        self.port = port or free_port()
        self.extra_args = list(extra_args)
        self.base_url = f"https://127.0.0.1:{self.port}"
        self.token = DEFAULT_TOKEN
        self.proc: subprocess.Popen | None = None
        self.log_path = self.state_dir / "emulator.log"

    @property
    def ca_file(self) -> str:
        return str(self.state_dir / "ca.pem")

    def start(self, timeout: float = 30) -> "EmulatorProcess":
        self.state_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "aml_emulator", "--port", str(self.port),
             "--state-dir", str(self.state_dir), *self.extra_args],
            stdout=log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"emulator exited with {self.proc.returncode}:\n{self.log_path.read_text()[-3000:]}")
            try:
                if self.control("GET", "/_emulator/health").ok:
                    return self
            except (requests.ConnectionError, OSError):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"emulator did not answer in {timeout}s:\n{self.log_path.read_text()[-3000:]}")

    def stop(self, kill: bool = False) -> None:
        if self.proc and self.proc.poll() is None:
            (self.proc.kill if kill else self.proc.terminate)()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def control(self, method: str, path: str, json=None, **kw) -> requests.Response:
        return requests.request(method, self.base_url + path, json=json, verify=self.ca_file, timeout=60, **kw)

    def arm(self, method: str, path: str, token: str | None = "default", **kw) -> requests.Response:
        headers = kw.pop("headers", {})
        if token:
            headers["Authorization"] = f"Bearer {self.token if token == 'default' else token}"
        params = kw.pop("params", {"api-version": "2023-08-01-preview"})
        return requests.request(method, self.base_url + path, headers=headers, params=params,
                                verify=self.ca_file, timeout=60, **kw)

    def ws_path(self, sub=DEFAULT_SUB, rg=DEFAULT_RG, ws=DEFAULT_WS) -> str:
        return f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.MachineLearningServices/workspaces/{ws}"

    def reset(self) -> None:
        r = self.control("POST", "/_emulator/reset")
        r.raise_for_status()

    def set_transitions(self, **seconds) -> None:
        self.control("PUT", "/_emulator/transitions", json=seconds).raise_for_status()

    def fault(self, **fault) -> None:
        self.control("POST", "/_emulator/faults", json=fault).raise_for_status()

    def requests_seen(self) -> list[dict]:
        return self.control("GET", "/_emulator/requests").json()

    def ml_client(self, workspace: str = DEFAULT_WS, token: str | None = None, **kwargs):
        """The real azure-ai-ml MLClient, pointed at this emulator."""
        from aml_jupyterhub.compute.sdk import make_ml_client, StaticTokenCredential

        kwargs.setdefault("polling_interval", 1)
        return make_ml_client(
            StaticTokenCredential(token or self.token),
            DEFAULT_SUB, DEFAULT_RG, workspace,
            arm_endpoint=self.base_url,
            ca_bundle=self.ca_file,
            **kwargs,
        )


SECOND_WS = "aml-local-2"  # same region as the default: names must be unique across both
EAST_WS = "aml-east"  # another region
FAST = [
    "--transition", "all=0.3", "--poll-interval", "0.2", "--page-size", "2",
    "--workspace", f"{DEFAULT_SUB}/{DEFAULT_RG}/{DEFAULT_WS}/westeurope",
    "--workspace", f"{DEFAULT_SUB}/{DEFAULT_RG}/{SECOND_WS}/westeurope",
    "--workspace", f"{DEFAULT_SUB}/{DEFAULT_RG}/{EAST_WS}/eastus",
]


@pytest.fixture(scope="session")
def emulator(tmp_path_factory):
    emu = EmulatorProcess(tmp_path_factory.mktemp("emulator"), FAST).start()
    yield emu
    try:
        emu.reset()
    finally:
        emu.stop()


@pytest.fixture
def emu(emulator):
    emulator.reset()
    emulator.set_transitions(all=0.3)
    yield emulator
    emulator.reset()
    emulator.set_transitions(all=0.3)
