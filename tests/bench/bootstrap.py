"""What the hub's install of JupyterHub costs a first spawn (``make bench SUITES=bootstrap``).

Instances are the realistic emulated ones (Docker runtime, no JupyterHub, no
internet: an internal network); AML's own transitions take 0.2 s, so the
figures are the hub's and the instance's work, side by side in one run:

- a first spawn with the hub's wheel cache cold (it fetches the wheels from
  its package index first: a hub without the image's wheelhouse), then one
  with it warm (as the image ships it), each on a fresh instance;
- the second start of a server (the install is found and reused);
- the hub image's size and what its wheelhouse takes of it.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
import time
from pathlib import Path

from tests.harness.docker_instances import docker_emulator
from tests.harness.emulator import instance
from tests.harness.hub import Hub
from tests.harness.net import wait_until

HUB_IMAGE = "ghcr.io/aml-jupyterhub/aml-jupyterhub:0.1.0"


def _timed_spawn(hub: Hub, user: str) -> dict:
    """Wall seconds of a spawn, and of its install phase (first to last install event, as they arrive)."""
    t0 = time.monotonic()
    r = hub.spawn(user)
    assert r.status_code in (201, 202), r.text
    install_start = install_end = None
    last = {}
    for event in hub.progress_events(user, timeout=600):
        now = time.monotonic() - t0
        message = event.get("message", "")
        if "installing JupyterHub" in message and install_start is None:
            install_start = now
        if re.search(r"JupyterHub \S+ installed on", message):
            install_end = now
        last = event
    if not last.get("ready"):
        raise RuntimeError(f"{user}'s spawn failed: {last}")
    total = time.monotonic() - t0
    install = (install_end - install_start) if install_start is not None and install_end is not None else 0.0
    return {"total": total, "install": install}


def _stop(hub: Hub, emu, user: str) -> None:
    hub.stop_server(user)
    name = hub.instance_name(user)
    wait_until(lambda: (instance(emu, name) or {}).get("state") in ("Stopped", None), 120, f"{name} to stop",
               interval=0.5)


def bench_bootstrap() -> None:
    import docker

    client = docker.from_env()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        with docker_emulator(client, tmp / "emu", internet="none") as (emu, _):
            emu.set_transitions(all=0.2)
            hub = Hub(tmp / "hub", emu, f'c.AMLSpawner.wheel_cache_dir = "{tmp / "wheels"}"').start()
            try:
                cold = _timed_spawn(hub, "cold")
                warm = _timed_spawn(hub, "warm")
                _stop(hub, emu, "warm")
                again = _timed_spawn(hub, "warm")
                for user in ("cold", "warm"):
                    hub.stop_server(user)
            finally:
                hub.stop()
    print("first spawn on a fresh realistic instance (no JupyterHub, no internet; AML transitions 0.2 s)")
    print(f"{'':<34} {'spawn':>8} {'install phase':>14}")
    print(f"{'wheel cache cold (fetch + install)':<34} {cold['total']:>7.1f}s {cold['install']:>13.1f}s")
    print(f"{'wheel cache warm (as the image)':<34} {warm['total']:>7.1f}s {warm['install']:>13.1f}s")
    print(f"{'second start (install reused)':<34} {again['total']:>7.1f}s {again['install']:>13.1f}s")
    print(f"seconds the bootstrap adds to a first spawn: {warm['total'] - again['total']:.1f} "
          f"(cache warm), {cold['total'] - again['total']:.1f} (cache cold)")
    _image_figures()


def _image_figures() -> None:
    inspect = subprocess.run(["docker", "image", "inspect", "--format", "{{.Size}}", HUB_IMAGE],
                             capture_output=True, text=True)
    if inspect.returncode != 0:
        print(f"hub image {HUB_IMAGE}: not built (make image): no image figures")
        return
    du = subprocess.run(["docker", "run", "--rm", "--entrypoint", "du", HUB_IMAGE, "-sb",
                         "/opt/aml-jupyterhub/wheelhouse"], capture_output=True, text=True)
    wheels = int(du.stdout.split()[0]) if du.returncode == 0 and du.stdout else 0
    total = int(inspect.stdout)
    print(f"hub image {total / 1e6:.0f} MB, of which the instances' wheelhouse (CPython 3.10-3.13, x86_64) "
          f"{wheels / 1e6:.0f} MB")
