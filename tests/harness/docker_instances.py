"""The emulator's Docker runtime for tests and benchmarks: the instance image,
and an emulator whose instances are containers on a network of their own,
removed with everything on it afterwards."""

from __future__ import annotations

import contextlib
import uuid
from pathlib import Path

import docker

from tests.harness.emulator import FAST, EmulatorProcess
from tests.harness.repo import ROOT

IMAGE = "aml-jupyterhub-instance:local"
NETWORK_LABEL = "aml-jupyterhub.network"  # the emulator's label on what it made for a network


def ensure_image(client: docker.DockerClient) -> str:
    """The emulated compute-instance image, built from docker/instance.Dockerfile if missing."""
    try:
        client.images.get(IMAGE)
    except docker.errors.ImageNotFound:
        client.images.build(path=str(ROOT / "docker"), dockerfile="instance.Dockerfile", tag=IMAGE, rm=True)
    return IMAGE


def remove_network(client: docker.DockerClient, network: str) -> None:
    """Every container and volume the emulator made for ``network`` (share volumes too), and the network."""
    for c in client.containers.list(all=True, filters={"label": f"{NETWORK_LABEL}={network}"}):
        c.remove(force=True)
    for v in client.volumes.list(filters={"label": f"{NETWORK_LABEL}={network}"}):
        v.remove(force=True)
    for n in client.networks.list(names=[network]):
        n.remove()


@contextlib.contextmanager
def docker_emulator(client: docker.DockerClient, state_dir: Path, *, internet: str = "none", extra=()):
    """An emulator (FAST settings) whose instances are containers on a network of
    their own, with no route out unless ``internet="open"``; yields (emulator, network)."""
    ensure_image(client)
    network = f"aml-t-{uuid.uuid4().hex[:6]}"
    emu = EmulatorProcess(state_dir, [*FAST, "--runtime", "docker", "--docker-network", network,
                                      "--docker-internet", internet, "--docker-slots", "0", *extra])
    try:
        emu.start()
        yield emu, network
    finally:
        try:
            if emu.proc is not None:
                emu.reset()
        finally:
            emu.stop()
            remove_network(client, network)
