"""The demo a newcomer runs (``make up``, project ``aml-jupyterhub``, ports 80,
443 and 8443, network ``aml-jupyterhub``), up on the same Docker engine while
the end-to-end stack runs: the suite must not care what the user runs.

When no demo is there, one is made with ``make up`` in a temporary copy of the
repository (its files as they are in the working tree), given an
emulated instance (a container on the demo's network, as a user's server
leaves behind), and at the end removed with ``make clean-local``, which must
leave no container, network or volume of the project. A demo that was already
there (the user's own) is left exactly as it is.
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from pathlib import Path

import requests

PROJECT = "aml-jupyterhub"
NETWORK = "aml-jupyterhub"
EMULATOR = "https://localhost:8443"
WS_PATH = ("/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/aml-local/providers/"
           "Microsoft.MachineLearningServices/workspaces/aml-local")


def _run(args, cwd=None, timeout=900, check=True, **kw) -> subprocess.CompletedProcess:
    r = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout, **kw)
    if check and r.returncode != 0:
        raise RuntimeError(f"`{' '.join(args)}` failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return r


def project_leftovers() -> list[str]:
    """Containers, networks and volumes of the demo's project (and its instances)."""
    found = []
    for kind, args in (("container", ["ps", "-a", "--filter", f"label=com.docker.compose.project={PROJECT}"]),
                       ("instance", ["ps", "-a", "--filter", f"network={NETWORK}"]),  # and network slots
                       ("instance", ["ps", "-a", "--filter", f"label=aml-jupyterhub.network={NETWORK}"]),
                       ("network", ["network", "ls", "--filter", f"name=^{NETWORK}$"]),
                       ("volume", ["volume", "ls", "--filter", f"label=com.docker.compose.project={PROJECT}"])):
        out = _run(["docker", *args, "--format", "{{.Name}}" if kind in ("network", "volume") else "{{.Names}}"])
        found += [f"{kind} {line}" for line in out.stdout.split() if f"{kind} {line}" not in found]
    return found


def copy_of_repo(root: Path, prefix: str) -> Path:
    """A temporary copy of the repository: tracked files and new ones not ignored, as in the working tree."""
    copy = Path(tempfile.mkdtemp(prefix=prefix))
    files = _run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=root).stdout.split("\0")
    tar = subprocess.run(["tar", "-cf", "-", *[f for f in files if f and (root / f).exists()]],
                         cwd=root, capture_output=True, check=True)
    subprocess.run(["tar", "-xf", "-"], cwd=copy, input=tar.stdout, check=True)
    return copy


class Demo:
    def __init__(self, root: Path):
        self.root = root
        self.copy: Path | None = None  # set when this run made the demo
        self.instance = "jhdemo-leftover-ci"

    def start(self) -> None:
        if project_leftovers():
            print("[e2e] a demo stack is already on this engine: running beside it, leaving it alone", flush=True)
            return
        self.copy = copy_of_repo(self.root, "aml-demo-")
        t0 = time.monotonic()
        try:
            _run(["make", "up"], cwd=self.copy, timeout=1800)
            print(f"[e2e] demo stack up in {self.copy} ({time.monotonic() - t0:.0f} s)", flush=True)
            self._leave_an_instance()
        except BaseException:
            self.remove()  # what it made so far, so no half demo is left on the engine
            raise

    def _leave_an_instance(self) -> None:
        """What a user's server leaves: an emulated instance on the demo's network."""
        ca = self.copy / "demo-emulator-ca.pem"
        _run(["docker", "compose", "cp", "emulator:/srv/emulator/ca.pem", str(ca)], cwd=self.copy)
        # the ARM token the demo's emulator made for its hub
        token = _run(["docker", "compose", "exec", "-T", "emulator", "cat", "/srv/emulator-ca/arm-token"],
                     cwd=self.copy).stdout.strip()
        body = {"properties": {"computeType": "ComputeInstance", "properties": {"vmSize": "Standard_DS2_v2"}}}
        r = requests.put(f"{EMULATOR}{WS_PATH}/computes/{self.instance}", params={"api-version": "2023-08-01-preview"},
                         json=body, headers={"Authorization": f"Bearer {token}"}, verify=str(ca), timeout=60)
        assert r.status_code in (200, 201), r.text
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if _run(["docker", "ps", "-q", "--filter", f"label=aml-jupyterhub.network={NETWORK}", "--filter",
                     f"label=aml-jupyterhub.instance={self.instance}"]).stdout.strip():
                return
            time.sleep(1)
        raise AssertionError("the demo's emulated instance did not start")

    def up(self) -> str:
        """``make up`` in the copy again, while the e2e stack runs; what it printed."""
        r = _run(["make", "up"], cwd=self.copy, timeout=1800)
        return r.stdout + r.stderr

    def down(self) -> str:
        """``make down`` in the copy (the demo's instance still runs); what it printed."""
        r = _run(["make", "down"], cwd=self.copy, timeout=600)
        return r.stdout + r.stderr

    def remove(self) -> list[str]:
        """``make clean-local`` in the copy; what of the project is left after it."""
        if self.copy is None:
            return []
        copy, self.copy = self.copy, None
        _run(["make", "clean-local", "YES=1"], cwd=copy, timeout=600)
        subprocess.run(["rm", "-rf", str(copy)], check=False)
        left = project_leftovers()
        volume = f"aml-ci-{self.instance}-home"
        if _run(["docker", "volume", "ls", "-q", "--filter", f"name=^{volume}$"]).stdout.strip():
            left.append(f"volume {volume}")
        # the workspace's file share, which outlives the instance as on AML
        shares = _run(["docker", "volume", "ls", "-q", "--filter", "label=aml-jupyterhub.workspace-share",
                       "--filter", f"label=aml-jupyterhub.network={NETWORK}"]).stdout.split()
        left += [f"volume {v}" for v in shares]
        return left
