"""Local mode trusts no instance: from a terminal on his emulated instance (a
container on the emulator's network, as in the compose stack), bob attacks
what he can reach. ARM refuses the once-published test token, the control
API (``/_emulator/``) refuses him without its secret, and alice's AML
JupyterLab, which he reaches at her instance's address, refuses him without
the token only the emulator's application proxy holds; alice herself, through
that proxy, still gets in (and a page of another site she opens does not).

The emulator runs as a process on this host, listening on the network's
gateway address: the instances reach it there as they reach the compose
stack's emulator (not on its loopback, where no control secret is needed)."""

from __future__ import annotations

import json
import uuid

import docker
import pytest
from azure.ai.ml.entities import AssignedUserConfiguration, ComputeInstance

from aml_emulator.aad import IdentityConfig
from aml_emulator.config import DEFAULT_ARM_TOKEN
from tests.harness.docker_instances import remove_network
from tests.harness.emulator import CONTROL_SECRET_HEADER, EmulatorProcess
from tests.harness.login import browser, open_with_login

pytestmark = pytest.mark.docker

IDENTITY = IdentityConfig.load(None)
USERS = {u.username: u for u in IDENTITY.users}
LAB_PORT = 8890  # the Docker runtime's JupyterLab port inside an instance

XSRF_FROM_COOKIE = "<the _xsrf cookie>"
# What bob runs on his instance: each request of argv[1] (method, url, headers,
# body), printing the statuses. Like a browser it keeps cookies, and a header
# whose value is XSRF_FROM_COOKIE gets Jupyter's _xsrf cookie (a double-submit
# token: whoever may read the cookie passes the check); no certificate checks,
# as an attacker makes none.
ATTACK = """
import http.cookiejar, json, ssl, sys, urllib.error, urllib.request
jar = http.cookiejar.CookieJar()
opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar),
                                     urllib.request.HTTPSHandler(context=ssl._create_unverified_context()))
def status(method, url, headers, body):
    xsrf = next((c.value for c in jar if c.name == "_xsrf"), "")
    headers = {k: xsrf if v == %r else v for k, v in headers.items()}
    request = urllib.request.Request(url, method=method, headers=headers, data=body.encode() if body else None)
    try:
        with opener.open(request, timeout=30) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except Exception as e:
        return repr(e)
print(json.dumps([status(*r) for r in json.loads(sys.argv[1])]))
""" % XSRF_FROM_COOKIE


@pytest.fixture(scope="module")
def local_mode(docker_client, image, tmp_path_factory):
    """An emulator whose instances are containers on a network of their own
    and reach it at the network's gateway; it keeps its ARM token in a file."""
    network = docker_client.networks.create(f"aml-trust-{uuid.uuid4().hex[:8]}", driver="bridge")
    try:
        gateway = network.attrs["IPAM"]["Config"][0]["Gateway"]
        state = tmp_path_factory.mktemp("emu-trust")
        emu = EmulatorProcess(state, [
            "--runtime", "docker", "--docker-network", network.name, "--docker-slots", "0",
            "--transition", "all=0.3", "--poll-interval", "0.2",
            "--host", gateway, "--hostname", gateway, "--arm-token-file", str(state / "arm-token")])
        emu.base_url = f"https://{gateway}:{emu.port}"
        try:
            emu.start()
            yield emu, network.name, gateway
        finally:
            try:
                if emu.proc is not None and emu.proc.poll() is None:
                    emu.reset()
            finally:
                emu.stop()
    finally:
        remove_network(docker_client, network.name)


@pytest.fixture(scope="module")
def instances(local_mode, docker_client):
    """alice's and bob's instances, each assigned to its user, as redirect mode makes them."""
    emu, network, _ = local_mode
    ml = emu.ml_client()
    names = {}
    for user in ("alice", "bob"):
        names[user] = f"ci-{user[0]}{uuid.uuid4().hex[:6]}"
        ml.compute.begin_create_or_update(ComputeInstance(
            name=names[user], size="Standard_DS1_v2",
            create_on_behalf_of=AssignedUserConfiguration(user_tenant_id=IDENTITY.tenant_id,
                                                          user_object_id=USERS[user].oid),
        )).result()
    return names


def container(docker_client, name: str):
    return docker_client.containers.get(f"aml-ci-{name}")


def from_instance(docker_client, name: str, *requests_: tuple) -> list:
    """The statuses the requests get, sent from a terminal on instance ``name`` (as azureuser)."""
    argv = json.dumps([[method, url, headers or {}, body or ""] for method, url, headers, body in requests_])
    result = container(docker_client, name).exec_run(["python3", "-c", ATTACK, argv], user="azureuser")
    assert result.exit_code == 0, result.output.decode(errors="replace")
    return json.loads(result.output.decode().strip().splitlines()[-1])


def test_arm_refuses_the_public_token_from_an_instance(local_mode, instances, docker_client):
    emu, _, gateway = local_mode
    computes = f"https://{gateway}:{emu.port}{emu.ws_path()}/computes"
    bearer = {"Authorization": f"Bearer {DEFAULT_ARM_TOKEN}"}
    statuses = from_instance(docker_client, instances["bob"],
                             ("GET", f"{computes}?api-version=2023-08-01-preview", bearer, None),
                             ("DELETE", f"{computes}/{instances['alice']}?api-version=2023-08-01-preview"
                                        "&underlyingResourceAction=Delete", bearer, None))
    assert statuses == [401, 401]
    assert emu.ml_client().compute.get(instances["alice"]).state == "Running"


def test_control_api_refuses_an_instance_without_its_secret(local_mode, instances, docker_client):
    emu, _, gateway = local_mode
    control = f"https://{gateway}:{emu.port}/_emulator"
    delete = json.dumps({"action": "delete"})
    json_type = {"Content-Type": "application/json"}
    statuses = from_instance(docker_client, instances["bob"],
                             ("GET", f"{control}/instances", None, None),
                             ("POST", f"{control}/instances/{instances['alice']}/force", json_type, delete),
                             ("POST", f"{control}/reset", None, None),
                             ("GET", f"{control}/health", None, None),
                             ("GET", f"{control}/instances", {CONTROL_SECRET_HEADER: emu.control_secret}, None))
    # health is open to all; with the secret (which only the host has) the API answers from anywhere
    assert statuses == [401, 401, 401, 200, 200]
    assert emu.ml_client().compute.get(instances["alice"]).state == "Running"


def test_an_instance_cannot_use_another_users_lab_but_its_user_can(local_mode, instances, docker_client):
    emu, network, _ = local_mode
    alice_name = instances["alice"]
    lab_url = f"{emu.base_url}/instances/{alice_name}/lab"
    as_alice = browser(emu.ca_file)
    r = open_with_login(as_alice, lab_url, "alice", "alice-password")  # starts her Lab
    assert r.status_code == 200 and "JupyterLab" in r.text, r.text[:300]

    # bob, at her instance's address: the Lab answers him (any of its pages gives him an _xsrf
    # cookie, its login page too), and refuses him
    alice_ip = container(docker_client, alice_name).attrs["NetworkSettings"]["Networks"][network]["IPAddress"]
    lab = f"http://{alice_ip}:{LAB_PORT}/instances/{alice_name}"
    note = json.dumps({"type": "file", "format": "text", "content": "bob was here"})
    with_xsrf = {"X-XSRFToken": XSRF_FROM_COOKIE, "Content-Type": "application/json"}
    statuses = from_instance(docker_client, instances["bob"],
                             ("GET", f"{lab}/lab", None, None),
                             ("PUT", f"{lab}/api/contents/pwned.txt", with_xsrf, note),
                             ("GET", f"{lab}/api/contents", None, None),
                             ("POST", f"{lab}/api/terminals", with_xsrf, None))
    assert statuses[0] == 200, statuses  # reached: the Lab's page, or its login page
    assert statuses[1:] == [403, 403, 403]
    home = container(docker_client, alice_name)
    assert home.exec_run(["test", "-e", "/home/azureuser/pwned.txt"]).exit_code != 0

    # alice, through the emulator's application proxy, as her JupyterLab's frontend sends it
    mine = json.dumps({"type": "file", "format": "text", "content": "alice's"})
    xsrf = {"X-XSRFToken": as_alice.cookies["_xsrf"], "Content-Type": "application/json"}
    r = as_alice.put(f"{emu.base_url}/instances/{alice_name}/api/contents/by-alice.txt", data=mine, headers=xsrf,
                     timeout=60)
    assert r.status_code == 201, r.text[:300]
    assert home.exec_run(["cat", "/home/azureuser/by-alice.txt"]).output.decode() == "alice's"
    # a page of another site she opens: her session, but not her Lab's XSRF token or origin
    r = as_alice.put(f"{emu.base_url}/instances/{alice_name}/api/contents/csrf.txt", data=mine,
                     headers={"Origin": "https://evil.example", "Content-Type": "application/json"}, timeout=60)
    assert r.status_code in (403, 404), (r.status_code, r.text[:300])
    assert home.exec_run(["test", "-e", "/home/azureuser/csrf.txt"]).exit_code != 0
