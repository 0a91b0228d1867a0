"""An instance's JupyterLab endpoint: real JupyterLab, only for its assigned
user after the emulated Azure AD login; anyone else gets 403."""

from azure.ai.ml.entities import AssignedUserConfiguration, ComputeInstance

from aml_emulator.aad import IdentityConfig
from tests.harness.login import browser, open_with_login

IDENTITY = IdentityConfig.load(None)
USERS = {u.username: u for u in IDENTITY.users}


def test_lab_only_for_the_assigned_user(emu):
    alice = USERS["alice"]
    made = emu.ml_client().compute.begin_create_or_update(ComputeInstance(
        name="ci-lab", size="Standard_DS1_v2",
        create_on_behalf_of=AssignedUserConfiguration(user_tenant_id=IDENTITY.tenant_id, user_object_id=alice.oid),
    )).result()
    lab = {s["displayName"]: s["endpointUri"] for s in made.services}["Jupyter Lab"]

    as_alice = browser(emu.ca_file)
    r = open_with_login(as_alice, lab, "alice", "alice-password")
    assert r.status_code == 200, r.text[:500]
    assert r.url.rstrip("/").endswith("/instances/ci-lab/lab")
    assert "JupyterLab" in r.text
    api = as_alice.get(lab.replace("/lab", "/api/status"), timeout=30)
    assert api.status_code == 200 and "started" in api.json()

    as_bob = browser(emu.ca_file)
    r = open_with_login(as_bob, lab, "bob", "bob-password")
    assert r.status_code == 403
    assert "does not have access to compute instance ci-lab" in r.text

    anonymous = browser(emu.ca_file)
    r = anonymous.get(lab, allow_redirects=False, timeout=30)
    assert r.status_code in (302, 303) and "/login" in r.headers["Location"]


def test_lab_of_a_stopped_instance_says_so(emu):
    alice = USERS["alice"]
    ml = emu.ml_client()
    ml.compute.begin_create_or_update(ComputeInstance(
        name="ci-lab2", size="Standard_DS1_v2",
        create_on_behalf_of=AssignedUserConfiguration(user_tenant_id=IDENTITY.tenant_id, user_object_id=alice.oid),
    )).result()
    ml.compute.begin_stop("ci-lab2").result()
    r = open_with_login(browser(emu.ca_file), f"{emu.base_url}/instances/ci-lab2/lab", "alice", "alice-password")
    assert r.status_code == 409 and "Stopped" in r.text
