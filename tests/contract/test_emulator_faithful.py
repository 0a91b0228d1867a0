"""Where the emulator's ARM answers follow real AML rather than the bare spec
(what real traffic shows: tests/contract/aml_rest_spec/README.md and
shared/reference/aml-rest-spec/README.md): bodies through each instance's
life, api-versions, request ids, refusals and the async-operation status."""

from __future__ import annotations

import json
import re
import uuid

import asyncssh
import jwt
import pytest
import requests

from aml_emulator.roles import STATIC_TOKEN_OID
from aml_jupyterhub.compute import ComputeClient, InvalidRequest
from tests.harness.emulator import make_instance, state_of
from tests.harness.identity import APP, TENANT_ID

API = {"api-version": "2023-08-01-preview"}
CREATE = {"location": "westeurope",
          "properties": {"computeType": "ComputeInstance", "properties": {"vmSize": "Standard_DS1_v2"}}}


def compute_path(emu, name: str) -> str:
    return emu.ws_path() + f"/computes/{name}"


def get_pp(emu, name: str) -> dict:
    r = emu.arm("GET", compute_path(emu, name))
    assert r.status_code == 200, r.text
    return r.json()["properties"]["properties"]


def status_of(emu, url: str) -> dict:
    return requests.get(url, headers={"Authorization": f"Bearer {emu.token}"}, verify=emu.ca_file, timeout=30).json()


def wait(emu):
    emu.control("POST", "/_emulator/wait").raise_for_status()


def test_a_running_instance_lists_no_errors_and_no_custom_services_as_empty_lists(emu):
    make_instance(emu, "ci-lists", {})
    pp = get_pp(emu, "ci-lists")
    assert pp["errors"] == [] and pp["customServices"] == []


def test_connectivity_endpoints_hold_only_amls_fields(emu):
    make_instance(emu, "ci-conn", {})
    assert set(get_pp(emu, "ci-conn")["connectivityEndpoints"]) == {"publicIpAddress", "privateIpAddress"}


def test_a_stopped_instance_keeps_its_addresses(emu):
    make_instance(emu, "ci-ips", {})
    running = get_pp(emu, "ci-ips")["connectivityEndpoints"]
    assert running["publicIpAddress"] and running["privateIpAddress"]
    assert emu.arm("POST", compute_path(emu, "ci-ips") + "/stop").status_code == 202
    wait(emu)
    stopped = get_pp(emu, "ci-ips")
    assert stopped["state"] == "Stopped"
    assert stopped["connectivityEndpoints"] == running


def test_the_201_of_a_create_has_no_runtime_fields_until_the_instance_runs(emu):
    emu.set_transitions(create=1.5)
    r = emu.arm("PUT", compute_path(emu, "ci-new"), json=CREATE)
    assert r.status_code == 201
    props = r.json()["properties"]
    pp = props["properties"]
    assert props["provisioningState"] == "Creating"
    assert pp["state"] is None and pp["lastOperation"] is None
    assert pp["sshSettings"] is None  # recorded: the whole of it, not only its port
    assert pp["connectivityEndpoints"] is None and pp["applications"] is None
    # while it is made: its state, its operation, still no machine to reach
    creating = get_pp(emu, "ci-new")
    assert creating["state"] == "Creating"
    assert creating["lastOperation"]["operationName"] == "Create"
    assert creating["lastOperation"]["operationStatus"] == "InProgress"
    assert creating["connectivityEndpoints"] is None and creating["applications"] is None
    assert creating["sshSettings"]["sshPort"] is None
    wait(emu)
    ran = get_pp(emu, "ci-new")
    assert ran["state"] == "Running" and ran["sshSettings"]["sshPort"]
    assert ran["connectivityEndpoints"]["publicIpAddress"] and ran["applications"]


@pytest.mark.parametrize("version", ["2023-08-01-preview", "2024-04-01-preview", "2024-04-01", "2025-12-01"])
def test_published_api_versions_are_accepted(emu, version):
    assert emu.arm("GET", emu.ws_path() + "/computes", params={"api-version": version}).status_code == 200


@pytest.mark.parametrize("tail,kind", [("", "workspaces"), ("/computes/ci-any", "workspaces/computes")])
def test_an_unknown_api_version_is_refused_as_arm_refuses_it(emu, tail, kind):
    r = emu.arm("GET", emu.ws_path() + tail, params={"api-version": "2099-01-01"})
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["code"] == "NoRegisteredProviderFound"
    assert error["message"].startswith(
        f"No registered resource provider found for location 'westeurope' and API version '2099-01-01' for type "
        f"'{kind}'. The supported api-versions are '")
    supported = re.search(r"The supported api-versions are '([^']*)'", error["message"]).group(1).split(", ")
    assert {"2023-08-01-preview", "2024-04-01-preview"} <= set(supported)


def test_an_unknown_api_version_on_a_location_names_that_location(emu):
    path = "/subscriptions/00000000-0000-0000-0000-000000000000/providers/Microsoft.MachineLearningServices" \
           "/locations/eastus/vmSizes"
    error = emu.arm("GET", path, params={"api-version": "2015-01-01"}).json()["error"]
    assert error["code"] == "NoRegisteredProviderFound"
    assert "location 'eastus' and API version '2015-01-01' for type 'locations/vmSizes'" in error["message"]


def test_every_arm_answer_carries_arms_request_ids(emu):
    answers = [
        emu.arm("GET", emu.ws_path() + "/computes"),
        emu.arm("GET", compute_path(emu, "ci-none")),  # 404
        emu.arm("GET", emu.ws_path(), token="forged"),  # 401
        emu.arm("GET", emu.ws_path(), params={"api-version": "1999-01-01"}),  # 400
    ]
    for r in answers:
        for header in ("x-ms-request-id", "x-ms-correlation-request-id"):
            uuid.UUID(r.headers[header])  # a GUID
    ids = {r.headers["x-ms-correlation-request-id"] for r in answers}
    assert len(ids) == len(answers)
    # a client's own correlation id is carried through, as ARM does
    mine = str(uuid.uuid4())
    r = emu.arm("GET", emu.ws_path(), headers={"x-ms-correlation-request-id": mine})
    assert r.headers["x-ms-correlation-request-id"] == mine


def test_starting_a_running_instance_is_refused_with_amls_code_at_the_top(emu):
    make_instance(emu, "ci-twice", {})
    r = emu.arm("POST", compute_path(emu, "ci-twice") + "/start")
    assert r.status_code == 409
    error = r.json()["error"]
    assert error["code"] == "StartComputeInstanceOnlyAllowedInStoppedState"
    assert "only allowed when it is Stopped" in error["message"] and "'ci-twice' is Running" in error["message"]
    assert state_of(emu, "ci-twice") == "Running"


@pytest.mark.asyncio
async def test_the_hub_says_why_a_running_instance_cannot_be_started(emu):
    make_instance(emu, "ci-said", {})
    with pytest.raises(InvalidRequest) as err:
        await ComputeClient(emu.ml_client()).start("ci-said")
    assert err.value.code == "StartComputeInstanceOnlyAllowedInStoppedState"
    assert "it must be Stopped for that" in err.value.message and "Reload the page" in err.value.message


def test_the_status_of_a_running_operation_says_only_in_progress(emu):
    emu.set_transitions(create=1.5)
    r = emu.arm("PUT", compute_path(emu, "ci-op"), json=CREATE)
    url = r.headers["Azure-AsyncOperation"]
    running = status_of(emu, url)
    assert running["status"] == "InProgress"
    assert "percentComplete" not in running and "endTime" not in running
    wait(emu)
    done = status_of(emu, url)
    assert done["status"] == "Succeeded" and done["percentComplete"] == 100 and done["endTime"]
    assert done["id"] == running["id"] and done["startTime"] == running["startTime"]


def test_every_arm_response_is_recorded_with_its_headers_and_body(emu):
    # read the file itself: new_responses() is the suite's hook's to consume
    before = emu.responses_path.stat().st_size
    r = emu.arm("GET", compute_path(emu, "ci-unknown"))
    emu.control("GET", "/_emulator/instances")  # not ARM: not recorded
    with open(emu.responses_path, "rb") as f:
        f.seek(before)
        lines = f.read().splitlines()
    [record] = [json.loads(line) for line in lines]
    assert (record["method"], record["path"], record["status"]) == ("GET", compute_path(emu, "ci-unknown"), 404)
    assert record["query"] == "api-version=2023-08-01-preview"
    assert record["headers"]["x-ms-request-id"] == r.headers["x-ms-request-id"]
    assert record["body"] == r.json()


# ---- compute bodies as recorded real traffic shows them ---------------------
# (azure-ai-ml's recorded e2e tests, Azure/azure-sdk-assets
# python/sdk/ml/azure-ai-ml/tests/recordings/compute/e2etests/test_compute.py
# TestComputetest_compute_instance_{create_and_delete,stop_start_restart}.json:
# the 201 of a create and GETs of the Running and the Stopped instance.)


def app_token(emu) -> str:
    """An app-only ARM token of the hub's app registration, from the emulated Azure AD."""
    r = requests.post(f"{emu.base_url}/{TENANT_ID}/oauth2/v2.0/token", verify=emu.ca_file, timeout=30, data={
        "grant_type": "client_credentials", "client_id": APP.client_id, "client_secret": APP.client_secret,
        "scope": "https://management.azure.com/.default"})
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


def test_created_by_is_the_tenant_and_object_id_of_the_callers_token(emu):
    # recorded: "createdBy": {"userOrgId": <tenant id>, "userId": <object id>}, no user name
    token = app_token(emu)
    claims = jwt.decode(token, options={"verify_signature": False})
    made = emu.arm("PUT", compute_path(emu, "ci-by-app"), json=CREATE, token=token)
    assert made.status_code == 201, made.text
    expected = {"userOrgId": claims["tid"], "userId": claims["oid"]}
    assert made.json()["properties"]["properties"]["createdBy"] == expected
    wait(emu)
    assert get_pp(emu, "ci-by-app")["createdBy"] == expected
    # a static token stands for the emulated hub identity: this tenant, a stable object id
    make_instance(emu, "ci-by-static", {})
    assert get_pp(emu, "ci-by-static")["createdBy"] == {"userOrgId": TENANT_ID, "userId": STATIC_TOKEN_OID}


def test_no_compute_answer_carries_system_data(emu):
    # recorded: the workspace's body has systemData, no compute body has it
    made = emu.arm("PUT", compute_path(emu, "ci-nosys"), json=CREATE)
    assert made.status_code == 201 and "systemData" not in made.json()
    wait(emu)
    assert "systemData" not in emu.arm("GET", compute_path(emu, "ci-nosys")).json()
    again = emu.arm("PUT", compute_path(emu, "ci-nosys"), json=CREATE)
    assert again.status_code == 200 and "systemData" not in again.json()
    listed = emu.arm("GET", emu.ws_path() + "/computes").json()["value"]
    assert listed and all("systemData" not in c for c in listed)


def test_versions_runtime_is_set_once_the_instance_has_run(emu):
    # recorded: "versions": null in the 201, {"runtime": "3.0.02853.0001"} in the GETs of the
    # Running instance and of the Stopped one
    emu.set_transitions(create=1.5)
    made = emu.arm("PUT", compute_path(emu, "ci-ver"), json=CREATE)
    assert made.json()["properties"]["properties"]["versions"] is None
    assert get_pp(emu, "ci-ver")["versions"] is None  # still being made: nothing runs yet
    wait(emu)
    running = get_pp(emu, "ci-ver")
    assert running["state"] == "Running" and running["versions"] == {"runtime": "3.0.02853.0001"}
    assert emu.arm("POST", compute_path(emu, "ci-ver") + "/stop").status_code == 202
    wait(emu)
    stopped = get_pp(emu, "ci-ver")
    assert stopped["state"] == "Stopped" and stopped["versions"] == {"runtime": "3.0.02853.0001"}


def test_a_failed_create_reports_no_runtime_version(emu):
    emu.fault(kind="create_failed", code="AllocationFailed", message="Allocation failed.")
    emu.arm("PUT", compute_path(emu, "ci-nover"), json=CREATE)
    wait(emu)
    pp = get_pp(emu, "ci-nover")
    assert pp["state"] == "CreateFailed" and pp["versions"] is None


def test_os_patching_and_custom_services_are_echoed_in_the_inner_properties(emu):
    service = {"name": "rstudio", "image": {"type": "docker", "reference": "ghcr.io/azure/rstudio-workbench:latest"},
               "endpoints": [{"protocol": "http", "name": "connect", "target": 8787, "published": 8787}]}
    body = {"location": "westeurope", "properties": {"computeType": "ComputeInstance", "properties": {
        "vmSize": "Standard_DS1_v2", "enableOSPatching": True, "customServices": [service]}}}
    assert emu.arm("PUT", compute_path(emu, "ci-echo"), json=body).status_code == 201
    wait(emu)
    r = emu.arm("GET", compute_path(emu, "ci-echo")).json()
    assert r["properties"]["properties"]["enableOSPatching"] is True
    assert r["properties"]["properties"]["customServices"] == [service]
    assert "enableOSPatching" not in r["properties"] and "customServices" not in r["properties"]
    # not given: false and [] (recorded), never null
    make_instance(emu, "ci-noecho", {})
    pp = get_pp(emu, "ci-noecho")
    assert pp["enableOSPatching"] is False and pp["customServices"] == []


def test_the_201_reports_ssh_settings_only_once_the_instance_is_provisioned(emu):
    pub = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().strip()
    body = {"location": "westeurope", "properties": {"computeType": "ComputeInstance", "properties": {
        "vmSize": "Standard_DS1_v2", "sshSettings": {"sshPublicAccess": "Enabled", "adminPublicKey": pub}}}}
    made = emu.arm("PUT", compute_path(emu, "ci-ssh201"), json=body)
    assert made.status_code == 201
    assert made.json()["properties"]["properties"]["sshSettings"] is None
    wait(emu)
    ssh = get_pp(emu, "ci-ssh201")["sshSettings"]
    assert ssh["sshPublicAccess"] == "Enabled" and ssh["adminUserName"] == "azureuser"
    assert ssh["adminPublicKey"] == pub and ssh["sshPort"]


def test_the_201_of_a_create_is_shaped_as_amls(emu):
    # recorded 201: no computeLocation and no schedules yet, tags null when none were given,
    # the size upper-cased, and null for what only a provisioned instance reports
    made = emu.arm("PUT", compute_path(emu, "ci-shape"), json=CREATE).json()
    assert made["tags"] is None and "systemData" not in made
    props = made["properties"]
    assert "computeLocation" not in props
    pp = props["properties"]
    assert pp["vmSize"] == "STANDARD_DS1_V2"
    assert "schedules" not in pp
    for key in ("errors", "customServices", "osImageMetadata", "applicationSharingPolicy", "subnet",
                "personalComputeInstanceSettings", "setupScripts"):
        assert key in pp and pp[key] is None, key


def test_a_get_is_shaped_as_amls(emu):
    # recorded GET: the size as the PUT spelled it; null keys for what was not given;
    # disableLocalAuth as given (false when the PUT had none, even with SSH off)
    body = {"location": "westeurope", "properties": {"computeType": "ComputeInstance",
                                                     "properties": {"vmSize": "standard_ds1_V2"}}}
    emu.arm("PUT", compute_path(emu, "ci-get"), json=body)
    wait(emu)
    r = emu.arm("GET", compute_path(emu, "ci-get")).json()
    assert r["tags"] == {} and r["properties"]["computeLocation"] == "westeurope"
    assert r["properties"]["disableLocalAuth"] is False
    pp = r["properties"]["properties"]
    assert pp["vmSize"] == "standard_ds1_V2"
    assert pp["applicationSharingPolicy"] == "Shared" and pp["errors"] == []
    for key in ("subnet", "personalComputeInstanceSettings", "setupScripts", "autologgerSettings", "containers",
                "dataDisks", "dataMounts"):
        assert key in pp and pp[key] is None, key
    assert pp["osImageMetadata"]["osPatchingStatus"] is None
    assert pp["schedules"] == {"computeStartStop": []}
    body["properties"]["disableLocalAuth"] = True
    emu.arm("PUT", compute_path(emu, "ci-noauth"), json=body)
    wait(emu)
    assert emu.arm("GET", compute_path(emu, "ci-noauth")).json()["properties"]["disableLocalAuth"] is True
