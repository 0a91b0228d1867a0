"""aml-jupyterhub-launch's parts that start nothing: which variables leave the
environment, the pipe that hands them over and the hub's side that reads it.
The image running it (PID 1, the hub, a grandchild) is
tests/integration/test_launch_docker.py."""

import contextlib
import json
import os
import re
import tomllib

import pytest

from aml_jupyterhub.launch import LaunchError, hand_over, init_command, split_secrets
from aml_jupyterhub.settings import SECRET_VARIABLES, SECRETS_FD_VARIABLE, ConfigError, take_launcher_secrets
from tests.harness.repo import ROOT

SECRETS = {name: f"{name.lower()}-value" for name in SECRET_VARIABLES}


def test_every_secret_leaves_the_environment_and_nothing_else_does():
    environ = {**SECRETS, "HOST": "hub.example.org", "AAD_CLIENT_ID": "c-id", "PATH": "/usr/bin"}
    clean, secrets = split_secrets(environ)
    assert clean == {"HOST": "hub.example.org", "AAD_CLIENT_ID": "c-id", "PATH": "/usr/bin"}
    assert secrets == SECRETS


def test_an_empty_secret_is_not_handed_over():
    clean, secrets = split_secrets({"AAD_CLIENT_SECRET": "s", "HUB_DB_PASSWORD": "", "HOST": "h"})
    assert (clean, secrets) == ({"HOST": "h"}, {"AAD_CLIENT_SECRET": "s"})


def test_the_command_runs_under_tini_and_none_is_refused():
    assert init_command(["jupyterhub", "-f", "/etc/jupyterhub/jupyterhub_config.py"]) == [
        "tini", "--", "jupyterhub", "-f", "/etc/jupyterhub/jupyterhub_config.py"]
    with pytest.raises(LaunchError, match="no command to run: give one"):
        init_command([])


def test_the_hub_reads_the_handed_over_secrets_once_and_the_pipe_is_closed():
    fd = hand_over(SECRETS)
    assert os.get_inheritable(fd)  # the command gets it across tini's exec and its own
    environ = {SECRETS_FD_VARIABLE: str(fd), "HOST": "hub.example.org"}
    take_launcher_secrets(environ)
    assert environ == {"HOST": "hub.example.org", **SECRETS}
    with pytest.raises(OSError):
        os.fstat(fd)  # closed: nothing the hub starts later inherits it


def test_a_second_reader_is_told_the_secrets_are_gone():
    fd = hand_over(SECRETS)
    kept = os.dup(fd)  # the pipe as tini keeps it open, or as a later command of the container inherits it
    try:
        take_launcher_secrets({SECRETS_FD_VARIABLE: str(fd)})
        with pytest.raises(ConfigError, match=rf"^{SECRETS_FD_VARIABLE}='{kept}' names no secrets .* "
                                              r"run each command in a container of its own"):
            take_launcher_secrets({SECRETS_FD_VARIABLE: str(kept)})
    finally:
        with contextlib.suppress(OSError):
            os.close(kept)


def test_only_secrets_come_in_through_the_pipe():
    read, write = os.pipe()
    os.write(write, json.dumps({"AAD_CLIENT_SECRET": "s", "HUB_IDLE_CULL_TIMEOUT": "0"}).encode())
    os.close(write)
    environ = {SECRETS_FD_VARIABLE: str(read), "HUB_IDLE_CULL_TIMEOUT": "3600"}
    take_launcher_secrets(environ)
    assert environ == {"AAD_CLIENT_SECRET": "s", "HUB_IDLE_CULL_TIMEOUT": "3600"}


def test_without_the_launcher_the_environment_stays_as_it_is():
    environ = {**SECRETS, "HOST": "h"}
    take_launcher_secrets(environ)
    assert environ == {**SECRETS, "HOST": "h"}


def test_the_image_starts_everything_through_the_launcher_and_its_health_check_drops_every_secret():
    dockerfile = (ROOT / "docker" / "hub.Dockerfile").read_text()
    scripts = tomllib.loads((ROOT / "spawner" / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["aml-jupyterhub-launch"] == "aml_jupyterhub.launch:main"
    assert re.search(r'^ENTRYPOINT \["aml-jupyterhub-launch"\]$', dockerfile, re.M)
    # Docker starts the health check with the container's environment, not the launcher's
    health = re.search(r"^HEALTHCHECK .*?CMD (\[.*?\])$", dockerfile, re.M | re.S).group(1)
    command = json.loads(health.replace("\\\n", ""))
    assert command[0] == "env" and command[-3:] == ["python3", "-m", "aml_jupyterhub.health"]
    assert {command[i + 1] for i, arg in enumerate(command) if arg == "-u"} == set(SECRET_VARIABLES)
