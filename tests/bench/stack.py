"""Figures of the distribution: image sizes, seconds from `docker compose up`
to a healthy hub, and the hub's memory with many running servers."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from tests.harness.emulator import EmulatorProcess
from tests.harness.hub import Hub
from tests.harness.repo import ROOT

IMAGES = {
    "hub": "ghcr.io/aml-jupyterhub/aml-jupyterhub:0.1.0",
    "emulator": "aml-jupyterhub-emulator:0.1.0",
    "instance": "aml-jupyterhub-instance:local",
}


def _run(*args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), cwd=ROOT, capture_output=True, text=True, **kw)


def bench_images() -> None:
    for role, image in IMAGES.items():
        r = _run("docker", "image", "inspect", "--format", "{{.Size}}", image)
        size = f"{int(r.stdout) / 1e6:.0f} MB" if r.returncode == 0 else "not built (make image)"
        print(f"image {role:<9} {image:<48} {size}")


def bench_compose_up() -> None:
    """Fresh volumes, images already built: `up` to a healthy hub, twice
    (first start makes secrets and the database; second is a restart)."""
    project = f"aml-bench-{os.getpid()}"
    env_file = Path(tempfile.mkdtemp()) / "env"
    shutil.copy(ROOT / ".env.example", env_file)
    compose = ["docker", "compose", "-p", project, "--env-file", str(env_file)]
    env = {**os.environ, "COMPOSE_PROFILES": "local"}
    try:
        for label in ("first start (fresh volumes)", "restart (existing volumes)"):
            t0 = time.perf_counter()
            r = subprocess.run([*compose, "up", "-d", "--wait", "hub"], cwd=ROOT, env=env, capture_output=True,
                               text=True, timeout=600)
            wall = time.perf_counter() - t0
            if r.returncode != 0:
                print(f"compose up failed: {r.stderr[-1500:]}")
                return
            print(f"docker compose up -> healthy hub, {label}: {wall:.1f} s (emulator included)")
            subprocess.run([*compose, "stop"], cwd=ROOT, env=env, capture_output=True, timeout=300)
    finally:
        subprocess.run([*compose, "down", "-v"], cwd=ROOT, env=env, capture_output=True, timeout=300)
        shutil.rmtree(env_file.parent, ignore_errors=True)


def _rss_mb(pid: int) -> float:
    """Resident memory of a process and its children, MB."""
    total = 0
    pids = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(c) for c in children]
    except OSError:
        pass
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def bench_hub_memory(servers: int = 50) -> None:
    """The hub's memory (hub process, its proxy and services, as in the hub
    container) with ``servers`` running servers, each on its own emulated
    instance with JupyterHub's minimal single-user server."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        emu = EmulatorProcess(tmp / "emu", ["--transition", "all=0.5", "--poll-interval", "0.25"]).start()
        emu.control("PUT", "/_emulator/quota", json={"family": "standardDSv2Family", "limit": 1000})
        emu.control("PUT", "/_emulator/quota", json={"family": "total", "limit": 1000})
        hub = Hub(tmp / "hub", emu, "c.JupyterHub.concurrent_spawn_limit = 0\n"
                  'c.AMLSpawner.cmd = ["python3", "-m", "jupyterhub.tests.mocksu"]\n').start()
        peak = [0.0]
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                peak[0] = max(peak[0], _rss_mb(hub.proc.pid))
                time.sleep(0.5)

        sampler = threading.Thread(target=sample, daemon=True)
        try:
            idle = _rss_mb(hub.proc.pid)
            sampler.start()
            names = [f"mem{i}" for i in range(servers)]
            for name in names:
                hub.create_user(name)
                hub.api("POST", f"/users/{name}/server", json={"user_options": {}})
            hub.wait_for(lambda: all(hub.user_model(n)["servers"].get("", {}).get("ready") for n in names),
                         900, 2, what="all servers ready")
            time.sleep(10)  # a few poll rounds with everything running
            stop.set()
            sampler.join()
            print(f"hub memory (hub + proxy + services): idle {idle:.0f} MB, peak with {servers} running servers "
                  f"{peak[0]:.0f} MB, now {_rss_mb(hub.proc.pid):.0f} MB")
        finally:
            stop.set()
            for name in [f"mem{i}" for i in range(servers)]:
                hub.api("DELETE", f"/users/{name}/server")
            time.sleep(5)
            hub.stop()
            emu.reset()
            emu.stop()
