"""The emulator as a process (``python -m aml_emulator``), its defaults, and
reading what it holds."""

from __future__ import annotations

import json
import subprocess
import sys
import weakref
from pathlib import Path

import requests

from tests.harness.net import free_port, wait_for_http

DEFAULT_SUB = "00000000-0000-0000-0000-000000000000"
DEFAULT_RG = "aml-local"
DEFAULT_WS = "aml-local"
DEFAULT_TOKEN = "aml-emulator-local-token"  # what it accepts when given neither --arm-token nor --arm-token-file
CONTROL_SECRET_HEADER = "X-Emulator-Secret"
DEFAULT_WORKSPACE = f"{DEFAULT_SUB}/{DEFAULT_RG}/{DEFAULT_WS}"  # as instance names are keyed by it
SECOND_WS = "aml-local-2"  # same region as the default: names must be unique across both
EAST_WS = "aml-east"  # another region
FAST = [
    "--transition", "all=0.3", "--poll-interval", "0.2", "--page-size", "2",
    "--workspace", f"{DEFAULT_SUB}/{DEFAULT_RG}/{DEFAULT_WS}/westeurope",
    "--workspace", f"{DEFAULT_SUB}/{DEFAULT_RG}/{SECOND_WS}/westeurope",
    "--workspace", f"{DEFAULT_SUB}/{DEFAULT_RG}/{EAST_WS}/eastus",
]


class EmulatorProcess:
    """A running ``python -m aml_emulator`` and ways to talk to it.

    Every one records each ARM response it sends (``--record-responses``) to
    ``responses_path``; ``new_responses()`` hands over those not yet read, so
    the suite's hook (tests/conftest.py) checks all of them against Azure's
    definitions. ``EmulatorProcess.every()`` lists those this run made.
    """

    _made: "weakref.WeakSet[EmulatorProcess]" = weakref.WeakSet()

    def __init__(self, state_dir: Path, extra_args=(), port: int | None = None):
        self.state_dir = Path(state_dir)
        self.port = port or free_port()
        self.extra_args = list(extra_args)
        self.responses_path = self.state_dir / "arm-responses.jsonl"
        self._responses_read = 0  # bytes of responses_path already handed over
        EmulatorProcess._made.add(self)
        self.base_url = f"https://127.0.0.1:{self.port}"
        self.token = DEFAULT_TOKEN  # with --arm-token-file: the token it made there (read at start)
        self.control_secret: str | None = None  # read at start (its file: STATE_DIR/control-secret)
        self.proc: subprocess.Popen | None = None
        self.log_path = self.state_dir / "emulator.log"

    @property
    def ca_file(self) -> str:
        return str(self.state_dir / "ca.pem")

    def log_tail(self, n: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-n:] if self.log_path.exists() else ""

    def start(self, timeout: float = 30) -> "EmulatorProcess":
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "aml_emulator", "--port", str(self.port),
                 "--state-dir", str(self.state_dir), "--record-responses", str(self.responses_path),
                 *self.extra_args],
                stdout=log, stderr=subprocess.STDOUT,
            )
        # until the emulator has made its CA file, requests cannot load it: "not yet"
        wait_for_http(f"{self.base_url}/_emulator/health", timeout=timeout, verify=self.ca_file,
                      proc=self.proc, log=self.log_tail, interval=0.1)
        # sent with every control call, so they work from any address (the loopback needs none);
        # an emulator from before control secrets makes no file
        secret_file = Path(self._flag("--control-secret-file") or self.state_dir / "control-secret")
        self.control_secret = secret_file.read_text().strip() if secret_file.exists() else None
        token_file = self._flag("--arm-token-file")
        if token_file:
            self.token = Path(token_file).read_text().strip()
        return self

    def _flag(self, name: str) -> str | None:
        """The value given to flag ``name`` in extra_args, if any."""
        args = self.extra_args
        return next((args[i + 1] for i, a in enumerate(args[:-1]) if a == name), None)

    @classmethod
    def every(cls) -> list["EmulatorProcess"]:
        return list(cls._made)

    def new_responses(self) -> list[dict]:
        """The ARM responses recorded since the last call (whole lines only)."""
        try:
            with open(self.responses_path, "rb") as f:
                f.seek(self._responses_read)
                data = f.read()
        except FileNotFoundError:
            return []
        complete = data[: data.rfind(b"\n") + 1]
        self._responses_read += len(complete)
        return [json.loads(line) for line in complete.splitlines() if line.strip()]

    def stop(self, kill: bool = False) -> None:
        if self.proc and self.proc.poll() is None:
            (self.proc.kill if kill else self.proc.terminate)()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def control(self, method: str, path: str, json=None, **kw) -> requests.Response:
        headers = {**({CONTROL_SECRET_HEADER: self.control_secret} if self.control_secret else {}),
                   **kw.pop("headers", {})}
        return requests.request(method, self.base_url + path, json=json, headers=headers, verify=self.ca_file,
                                timeout=60, **kw)

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

    def register_app(self, client_id: str, client_secret: str, redirect_uris: list[str]) -> None:
        """An app registration in the emulated Azure AD (a hub on a random port needs its own)."""
        r = self.control("POST", "/_emulator/aad/apps", json={
            "client_id": client_id, "client_secret": client_secret, "redirect_uris": redirect_uris})
        assert r.status_code in (200, 201), r.text

    def ml_client(self, workspace: str = DEFAULT_WS, token: str | None = None, **kwargs):
        """The real azure-ai-ml MLClient, pointed at this emulator."""
        from aml_jupyterhub.compute.sdk import StaticTokenCredential, make_ml_client

        kwargs.setdefault("polling_interval", 1)
        return make_ml_client(
            StaticTokenCredential(token or self.token),
            DEFAULT_SUB, DEFAULT_RG, workspace,
            arm_endpoint=self.base_url,
            ca_bundle=self.ca_file,
            **kwargs,
        )


# ---- what the emulator holds --------------------------------------------


def instances(emu) -> dict:
    """Every instance the emulator has, by name."""
    return {i["name"]: i for i in emu.control("GET", "/_emulator/instances").json()}


def instance(emu, name: str) -> dict | None:
    return instances(emu).get(name)


def instance_of(emu, user: str, server: str = "") -> str:
    """The name of the one instance tagged as ``user``'s server."""
    names = [i["name"] for i in instances(emu).values()
             if i["tags"].get("jupyterhub-user") == user and i["tags"].get("jupyterhub-server") == (server or "default")]
    assert len(names) == 1, (user, server, names)
    return names[0]


def state_of(emu, name: str) -> str | None:
    return (instance(emu, name) or {}).get("state")


def make_instance(emu, name: str, tags: dict, ssh_public_key: str | None = None, vm_size: str = "Standard_DS2_v2",
                  workspace: str | None = None) -> None:
    """An instance made straight through ARM (as by somebody else, or by an older hub), left Running."""
    pp = {"vmSize": vm_size}
    if ssh_public_key:
        pp["sshSettings"] = {"sshPublicAccess": "Enabled", "adminPublicKey": ssh_public_key}
    path = (emu.ws_path(ws=workspace) if workspace else emu.ws_path()) + f"/computes/{name}"
    r = emu.arm("PUT", path, json={"tags": tags, "properties": {"computeType": "ComputeInstance", "properties": pp}})
    assert r.status_code in (200, 201), r.text
    emu.control("POST", "/_emulator/wait").raise_for_status()
    assert state_of(emu, name) == "Running"


def arm_calls(emu, name: str) -> list[tuple[str, str]]:
    """(method, path tail) of every ARM request about instance ``name``."""
    return [(r["method"], r["path"].split(f"/computes/{name}", 1)[1]) for r in emu.requests_seen()
            if f"/computes/{name}" in r["path"]]
