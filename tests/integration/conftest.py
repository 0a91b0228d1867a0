"""Fixtures for tests that drive a real hub against the emulator."""

from __future__ import annotations

import pytest

from tests.harness.docker_instances import ensure_image
from tests.harness.hub import Hub


@pytest.fixture(scope="module")
def docker_client():
    """The Docker engine (the emulator's Docker runtime), or the test skipped with the reason."""
    import docker

    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as exc:
        pytest.skip(f"Docker engine not reachable ({exc}): start Docker or set DOCKER_HOST")
    yield client
    client.close()


@pytest.fixture(scope="module")
def image(docker_client) -> str:
    """The emulated compute-instance image, built from docker/instance.Dockerfile if missing."""
    return ensure_image(docker_client)


@pytest.fixture
def make_hub(emulator, emu, tmp_path):
    """make_hub(extra_config, **Hub options) -> a started hub; all of them stopped at the end."""
    hubs = []

    def make(extra: str = "", **kw) -> Hub:
        hub = Hub(tmp_path / f"hub{len(hubs)}", emulator, extra, **kw).start()
        hubs.append(hub)
        return hub

    yield make
    for hub in hubs:
        hub.stop()
