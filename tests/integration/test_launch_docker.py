"""The hub image's entrypoint (aml-jupyterhub-launch) in the real image, with
the secrets in the container's environment as compose's env_file puts them.

A hub-like command takes the secrets as hub/jupyterhub_config.py does, then
starts a child in the idle culler's place. Read as the hub's user (the
services' seat): neither PID 1, nor the command, nor its child holds a secret
in its /proc environ or in a descriptor, and the command got them all through
the pipe. The pure parts are tests/unit/test_launch.py.

The image is the one compose builds (the end-to-end suite's): built through
compose.yaml, so the layer cache serves both; AML_E2E_NO_BUILD=1 uses it as it is.
"""

from __future__ import annotations

import json
import os
import secrets
import time

import pytest

from aml_jupyterhub.settings import SECRET_VARIABLES, SECRETS_FD_VARIABLE
from tests.e2e.stack import ComposeStack, no_docker_reason
from tests.harness.repo import example_env

pytestmark = pytest.mark.docker

# What the hub does with them: hub/jupyterhub_config.py takes them, hubconfig.configure
# scrubs os.environ; then JupyterHub starts its services.
HUB_LIKE = """
import json, os, subprocess, time
from aml_jupyterhub.hubconfig import scrub_secrets
from aml_jupyterhub.settings import SECRET_VARIABLES, take_launcher_secrets
take_launcher_secrets(os.environ)
got = {name: os.environ.get(name) for name in SECRET_VARIABLES}
scrub_secrets(os.environ)
service = subprocess.Popen(["sleep", "3600"], close_fds=False)  # inherits every descriptor the hub still has
print(json.dumps({"pid": os.getpid(), "service": service.pid, "got": got}), flush=True)
time.sleep(3600)
"""

# Run by `docker exec` as the image's user, as a service of the hub would run it.
READER = """
import json, os, sys
seen = {}
for pid in sys.argv[1:]:
    p = f"/proc/{pid}"
    fds = {}
    for fd in os.listdir(f"{p}/fd"):
        if int(fd) < 3:
            continue  # stdio: docker's log pipes, which a read would take lines from
        target = os.readlink(f"{p}/fd/{fd}")
        try:
            f = os.open(f"{p}/fd/{fd}", os.O_RDONLY | os.O_NONBLOCK)
        except OSError as e:  # a socket, or not ours to open
            fds[fd] = [target, f"unreadable: {e}"]
            continue
        try:
            data = os.read(f, 1 << 20).decode(errors="replace")
        except BlockingIOError:
            data = ""  # a pipe with nothing in it and a writer still open
        finally:
            os.close(f)
        fds[fd] = [target, data]
    seen[pid] = {"environ": open(f"{p}/environ", "rb").read().decode(errors="replace").split("\\0"),
                 "cmdline": open(f"{p}/cmdline", "rb").read().decode().split("\\0"),
                 "ppid": int(open(f"{p}/stat").read().rsplit(")", 1)[1].split()[1]), "fds": fds}
print(json.dumps(seen))
"""


@pytest.fixture(scope="module")
def hub_image(tmp_path_factory) -> str:
    """The hub image as compose.yaml builds it (the e2e suite's tag and layer cache)."""
    reason = no_docker_reason()
    if reason:
        pytest.skip(reason)
    stack = ComposeStack(tmp_path_factory.mktemp("hub-image"))
    stack.write_files()
    if os.environ.get("AML_E2E_NO_BUILD") != "1":
        stack.compose("build", "hub", timeout=3600)
    return json.loads(stack.compose("config", "--format", "json", timeout=60).stdout)["services"]["hub"]["image"]


@pytest.fixture
def run(docker_client, hub_image):
    """run(command, environment) -> a started container of the hub image; all removed at the end."""
    made = []

    def start(command, environment):
        c = docker_client.containers.run(hub_image, command, environment=environment, detach=True,
                                         name=f"aml-launch-test-{secrets.token_hex(4)}")
        made.append(c)
        return c

    yield start
    for c in made:
        c.remove(v=True, force=True)  # and the anonymous volume of the image's VOLUME /srv/jupyterhub


def first_line(container, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = container.logs(stdout=True, stderr=False).decode()
        if out.strip():
            return json.loads(out.splitlines()[0])
        container.reload()
        assert container.status in ("created", "running"), container.logs().decode()[-2000:]
        time.sleep(0.3)
    raise AssertionError(f"the command said nothing in {timeout:.0f} s: {container.logs().decode()[-2000:]}")


def test_no_secret_in_pid_1_the_hub_or_what_it_starts_and_the_hub_gets_them_through_the_pipe(run):
    values = {name: f"{name.lower()}-{secrets.token_hex(8)}" for name in SECRET_VARIABLES}
    container = run(["python3", "-c", HUB_LIKE], {**values, "HOST": "hub.example.org"})
    said = first_line(container)
    assert said["got"] == values  # every secret reached the hub

    hub, service = str(said["pid"]), str(said["service"])
    r = container.exec_run(["python3", "-c", READER, "1", hub, service])
    assert r.exit_code == 0, r.output.decode()[-2000:]
    seen = json.loads(r.output)
    assert seen["1"]["cmdline"][0] == "tini", seen["1"]["cmdline"]  # the launcher became tini: PID 1 stays an init
    assert seen[hub]["ppid"] == 1 and seen[service]["ppid"] == int(hub)
    for pid, what in (("1", "PID 1 (tini)"), (hub, "the hub"), (service, "the hub's service")):
        environ = "\n".join(seen[pid]["environ"])
        fds = json.dumps(seen[pid]["fds"])
        for name, value in values.items():
            assert name not in environ and value not in environ, f"{name} is in the environ of {what}"
            assert value not in fds, f"{name} can be read from a descriptor of {what}: {seen[pid]['fds']}"
    # the hub was started with the pipe's number, not the secrets: they came through the pipe
    assert any(v.startswith(f"{SECRETS_FD_VARIABLE}=") for v in seen[hub]["environ"]), seen[hub]["environ"]
    assert not any(v.startswith(f"{SECRETS_FD_VARIABLE}=") for v in seen[service]["environ"])
    # tini still holds the pipe, emptied: opening it through /proc gives nothing
    pipes = [data for target, data in seen["1"]["fds"].values() if target.startswith("pipe:")]
    assert pipes and all(data == "" for data in pipes), seen["1"]["fds"]
    assert not any(t.startswith("pipe:") for t, _ in seen[hub]["fds"].values()), seen[hub]["fds"]


def test_commands_of_the_image_still_get_their_settings_and_their_exit_status(run):
    # aml-jupyterhub-check reads the settings as the hub does: the emulator's token, a secret, via the pipe
    check = run(["aml-jupyterhub-check"], example_env())
    assert check.wait(timeout=120)["StatusCode"] == 0, check.logs().decode()[-2000:]
    assert "aml-jupyterhub: settings ok: local mode" in check.logs().decode()
    # no secret given: no pipe, nothing added; the command's exit status comes through tini
    plain = run(["sh", "-c", f'test -z "${SECRETS_FD_VARIABLE}" && exit 3'], {"HOST": "hub.example.org"})
    assert plain.wait(timeout=60)["StatusCode"] == 3, plain.logs().decode()[-2000:]
