"""The real azure-ai-ml MLClient against a started emulator.

Every operation the project uses, and every refusal, as the SDK sees it: if
these pass, the SDK cannot tell the emulator from AML for what we do.
"""

from __future__ import annotations

import asyncssh
import pytest
import requests
from azure.ai.ml.entities import (
    AssignedUserConfiguration,
    ComputeInstance,
    ComputeInstanceSshSettings,
    CustomApplications,
    EndpointsSettings,
    IdentityConfiguration,
    ImageSettings,
)
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
)

from tests.harness.emulator import DEFAULT_WS, EAST_WS, SECOND_WS

OID = "11111111-2222-4333-8444-555555555555"
TID = "aaaaaaaa-0000-4000-8000-000000000001"


@pytest.fixture(scope="module")
def keypair():
    key = asyncssh.generate_private_key("ssh-ed25519")
    return key, key.export_public_key().decode().strip()


def ci(name, size="Standard_DS1_v2", **kw):
    return ComputeInstance(name=name, size=size, **kw)


def create(ml, entity):
    return ml.compute.begin_create_or_update(entity).result()


def state(entity) -> str:
    return getattr(entity.state, "value", entity.state)


# ---- reads ------------------------------------------------------------


def test_get_missing_is_404_with_arm_body_and_no_retry_after(emu):
    ml = emu.ml_client()
    with pytest.raises(ResourceNotFoundError) as err:
        ml.compute.get("ci-missing")
    assert err.value.status_code == 404
    assert err.value.error.code == "ResourceNotFound"
    raw = emu.arm("GET", emu.ws_path() + "/computes/ci-missing")
    assert raw.status_code == 404
    assert "Retry-After" not in raw.headers
    assert raw.json()["error"]["code"] == "ResourceNotFound"


def test_workspace_get_has_location(emu):
    body = emu.arm("GET", emu.ws_path()).json()
    assert body["location"] == "westeurope"
    assert body["name"] == DEFAULT_WS
    east = emu.arm("GET", emu.ws_path(ws=EAST_WS)).json()
    assert east["location"] == "eastus"
    assert emu.arm("GET", emu.ws_path(ws="nope")).status_code == 404


def test_published_api_versions_accepted_and_missing_one_refused(emu):
    assert emu.arm("GET", emu.ws_path(), params={"api-version": "2025-12-01"}).status_code == 200
    r = emu.arm("GET", emu.ws_path(), params={})
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "MissingApiVersionParameter"


def test_missing_or_bad_token_is_401(emu):
    r = emu.arm("GET", emu.ws_path() + "/computes", token=None)
    assert r.status_code == 401 and r.json()["error"]["code"] == "AuthenticationFailed"
    r = emu.arm("GET", emu.ws_path() + "/computes", token="forged")
    assert r.status_code == 401 and r.json()["error"]["code"] == "InvalidAuthenticationToken"
    with pytest.raises(ClientAuthenticationError):
        emu.ml_client(token="forged").compute.get("ci-any")


def test_vm_sizes_and_region_offers(emu):
    ml = emu.ml_client()
    sizes = {s.name: s for s in ml.compute.list_sizes()}
    ds3 = sizes["Standard_DS3_v2"]
    # 1.35 puts multi-word fields under their wire names.
    assert ds3.__dict__["vCPUs"] == 4 and ds3.__dict__["memoryGB"] == 14
    assert "Standard_ND96asr_v4" not in sizes
    east = {s.name for s in ml.compute.list_sizes(location="eastus", compute_type="ComputeInstance")}
    assert "Standard_ND96asr_v4" in east
    seen = [(r["method"], r["path"].rsplit("/", 1)[-1]) for r in emu.requests_seen()]
    # list_sizes() without a location reads the workspace first, then vmSizes.
    assert seen[:2] == [("GET", DEFAULT_WS), ("GET", "vmSizes")]


def test_usages_follow_instances(emu):
    ml = emu.ml_client()
    before = {u.name.value if hasattr(u.name, "value") else u.name["value"]: u for u in ml.compute.list_usage()}
    assert before["Cores"].__dict__["currentValue"] == 0
    create(ml, ci("ci-usage", "Standard_DS3_v2"))
    after = {}
    for u in ml.compute.list_usage():
        key = u.name.value if hasattr(u.name, "value") else u.name["value"]
        after[key] = u.__dict__
    assert after["Cores"]["currentValue"] == 4
    assert after["standardDSv2Family"]["currentValue"] == 4
    assert after["standardDSv2Family"]["limit"] > 0


# ---- the lifecycle ----------------------------------------------------


def test_full_lifecycle_with_ssh(emu, keypair):
    key, pub = keypair
    ml = emu.ml_client()
    made = create(
        ml,
        ci("ci-life", "Standard_DS2_v2", ssh_public_access_enabled=True,
           ssh_settings=ComputeInstanceSshSettings(ssh_key_value=pub), idle_time_before_shutdown_minutes=30,
           tags={"owner": "alice"}),
    )
    assert state(made) == "Running"
    assert made.provisioning_state == "Succeeded"
    assert made.size == "Standard_DS2_v2"
    assert made.ssh_settings.admin_username == "azureuser"
    assert made.ssh_public_access_enabled is True
    assert made.idle_time_before_shutdown_minutes == 30
    assert made.tags == {"owner": "alice"}
    assert made.network_settings.public_ip_address == "127.0.0.1"
    assert made.last_operation["operationName"] == "Create"
    assert made.last_operation["operationStatus"] == "Succeeded"
    apps = {s["displayName"]: s["endpointUri"] for s in made.services}
    assert apps["Jupyter Lab"].endswith("/instances/ci-life/lab")
    assert made.created_on

    port = int(made.ssh_settings.ssh_port)

    async def ssh_round_trip(command, port=port):
        async with asyncssh.connect("127.0.0.1", port, username="azureuser", client_keys=[key],
                                    known_hosts=None) as conn:
            return (await conn.run(command, check=True)).stdout

    import asyncio

    asyncio.run(ssh_round_trip("echo kept > notes.txt"))

    ml.compute.begin_stop("ci-life").result()
    stopped = ml.compute.get("ci-life")
    assert state(stopped) == "Stopped"
    assert stopped.last_operation["operationName"] == "Stop"
    with pytest.raises(OSError):
        asyncio.run(ssh_round_trip("true"))

    ml.compute.begin_start("ci-life").result()
    running = ml.compute.get("ci-life")
    assert state(running) == "Running"
    # where SSH answers is read again: a machine may come back elsewhere
    assert asyncio.run(ssh_round_trip("cat notes.txt", int(running.ssh_settings.ssh_port))).strip() == "kept"

    ml.compute.begin_restart("ci-life").result()
    assert state(ml.compute.get("ci-life")) == "Running"

    nodes = list(ml.compute.list_nodes("ci-life"))
    assert len(nodes) == 1

    ml.compute.begin_delete("ci-life").result()
    with pytest.raises(ResourceNotFoundError):
        ml.compute.get("ci-life")


def test_create_request_sequence(emu):
    ml = emu.ml_client()
    emu.control("DELETE", "/_emulator/requests")
    create(ml, ci("ci-seq"))
    seen = emu.requests_seen()
    kinds = []
    for r in seen:
        tail = r["path"].split("/")
        kinds.append((r["method"], "status" if "computeOperationsStatus" in r["path"] else tail[-1]))
    assert kinds[0] == ("GET", DEFAULT_WS)
    assert kinds[1] == ("PUT", "ci-seq")
    assert kinds[-1] == ("GET", "ci-seq")  # the one final read
    assert set(kinds[2:-1]) == {("GET", "status")}
    assert seen[1]["status"] == 201


def test_async_operation_resource_shape(emu):
    emu.set_transitions(create=1.5)
    body = {"location": "westeurope", "properties": {"computeType": "ComputeInstance",
            "properties": {"vmSize": "Standard_DS1_v2"}}}
    r = emu.arm("PUT", emu.ws_path() + "/computes/ci-raw", json=body)
    assert r.status_code == 201
    assert r.json()["properties"]["properties"]["state"] is None  # as AML's 201: no state until it is made
    assert r.json()["properties"]["provisioningState"] == "Creating"
    op_url = r.headers["Azure-AsyncOperation"]
    assert op_url.startswith("https://") and "/computeOperationsStatus/" in op_url
    assert float(r.headers.get("Retry-After") or int(r.headers["retry-after-ms"]) / 1000) > 0
    status = requests.get(op_url, headers={"Authorization": f"Bearer {emu.token}"}, verify=emu.ca_file).json()
    assert status["status"] == "InProgress" and "percentComplete" not in status  # AML says no more while it runs
    emu.control("POST", "/_emulator/wait")
    status = requests.get(op_url, headers={"Authorization": f"Bearer {emu.token}"}, verify=emu.ca_file).json()
    assert status["status"] == "Succeeded" and "endTime" in status and status["percentComplete"] == 100
    # start/stop answer 202, never 200, with the async header
    r = emu.arm("POST", emu.ws_path() + "/computes/ci-raw/stop")
    assert r.status_code == 202 and "Azure-AsyncOperation" in r.headers
    # DELETE of something missing is 204
    assert emu.arm("DELETE", emu.ws_path() + "/computes/ci-nothing",
                   params={"api-version": "2023-08-01-preview", "underlyingResourceAction": "Delete"}).status_code == 204


def test_list_is_paged_and_filtered(emu):
    ml = emu.ml_client()
    for n in ("ci-la", "ci-lb", "ci-lc"):
        ml.compute.begin_create_or_update(ci(n))
    emu.control("POST", "/_emulator/wait")
    names = sorted(c.name for c in ml.compute.list(compute_type="ComputeInstance"))
    assert names == ["ci-la", "ci-lb", "ci-lc"]
    first = emu.arm("GET", emu.ws_path() + "/computes").json()
    assert len(first["value"]) == 2 and first["nextLink"]


def test_put_again_with_same_spec_is_idempotent(emu):
    ml = emu.ml_client()
    first = create(ml, ci("ci-again"))
    again = create(ml, ci("ci-again"))
    assert again.name == first.name and state(again) == "Running"
    with pytest.raises(ResourceExistsError):
        create(ml, ci("ci-again", "Standard_DS3_v2"))


def test_list_keys(emu):
    create(emu.ml_client(), ci("ci-keys"))
    r = emu.arm("POST", emu.ws_path() + "/computes/ci-keys/listKeys")
    assert r.status_code == 200 and r.json() == {"computeType": "ComputeInstance"}


# ---- refusals ---------------------------------------------------------


@pytest.mark.parametrize("name", ["ab", "1abc", "ci-01", "name-", "a" * 25, "ci_x", "a-1"])
def test_invalid_names_refused(emu, name):
    with pytest.raises(HttpResponseError) as err:
        create(emu.ml_client(), ci(name))
    assert err.value.status_code == 400
    assert "is not available. Reason: Invalid" in err.value.message


def test_size_not_offered_in_region(emu):
    with pytest.raises(HttpResponseError) as err:
        create(emu.ml_client(), ci("ci-a100", "Standard_ND96asr_v4"))
    assert err.value.status_code == 400
    assert "not supported" in err.value.message and "westeurope" in err.value.message


def test_quota_exceeded_with_numbers(emu):
    emu.control("PUT", "/_emulator/quota", json={"location": "westeurope", "family": "standardDSv2Family", "limit": 4})
    ml = emu.ml_client()
    create(ml, ci("ci-q1", "Standard_DS2_v2"))
    with pytest.raises(HttpResponseError) as err:
        create(ml, ci("ci-q2", "Standard_DS3_v2"))
    assert err.value.status_code == 400
    assert err.value.error.code == "BadRequest"
    assert "has a Standard DSv2 family vCPU quota of 4 and cannot accomodate" in err.value.message
    assert "maps to 4 vCPUs" in err.value.message
    usage = {(u.name.value if hasattr(u.name, "value") else u.name["value"]): u.__dict__ for u in ml.compute.list_usage()}
    assert usage["standardDSv2Family"]["limit"] == 4 and usage["standardDSv2Family"]["currentValue"] == 2


def test_ssh_key_refused_on_behalf_of_another_user(emu, keypair):
    _, pub = keypair
    with pytest.raises(HttpResponseError) as err:
        create(
            emu.ml_client(),
            ci("ci-obo", ssh_public_access_enabled=True, ssh_settings=ComputeInstanceSshSettings(ssh_key_value=pub),
               create_on_behalf_of=AssignedUserConfiguration(user_tenant_id=TID, user_object_id=OID)),
        )
    assert err.value.status_code == 400
    assert "Setting SSH key at creation time is not allowed" in err.value.message


def test_on_behalf_of_without_key_is_assigned(emu):
    made = create(emu.ml_client(), ci("ci-obo2", create_on_behalf_of=AssignedUserConfiguration(
        user_tenant_id=TID, user_object_id=OID)))
    assert made.create_on_behalf_of.user_object_id == OID
    assert made.create_on_behalf_of.user_tenant_id == TID


def test_idle_time_out_of_range(emu):
    with pytest.raises(HttpResponseError) as err:
        create(emu.ml_client(), ci("ci-idle", idle_time_before_shutdown_minutes=5))
    assert err.value.status_code == 400 and "15 minutes" in err.value.message


def test_names_unique_across_region(emu):
    create(emu.ml_client(), ci("ci-dup"))
    with pytest.raises(ResourceExistsError) as err:
        create(emu.ml_client(workspace=SECOND_WS), ci("ci-dup"))
    assert "AlreadyExists" in err.value.message
    # another region is fine
    assert state(create(emu.ml_client(workspace=EAST_WS), ci("ci-dup"))) == "Running"


def test_start_of_running_and_stop_of_stopped_refused(emu):
    ml = emu.ml_client()
    create(ml, ci("ci-rules"))
    # AML: 409 (the SDK's ResourceExistsError), its own code at the top of the error
    with pytest.raises(ResourceExistsError) as err:
        ml.compute.begin_start("ci-rules").result()
    assert err.value.status_code == 409 and "only allowed when it is Stopped" in err.value.message
    assert err.value.error.code == "StartComputeInstanceOnlyAllowedInStoppedState"
    ml.compute.begin_stop("ci-rules").result()
    with pytest.raises(ResourceExistsError) as err:
        ml.compute.begin_stop("ci-rules").result()
    assert err.value.status_code == 409 and err.value.error.code == "StopComputeInstanceOnlyAllowedInRunningState"


def test_operation_in_progress_is_409(emu):
    emu.set_transitions(stop=2)
    ml = emu.ml_client()
    create(ml, ci("ci-busy"))
    ml.compute.begin_stop("ci-busy")
    with pytest.raises(ResourceExistsError) as err:
        ml.compute.begin_restart("ci-busy")
    assert "another operation is in progress" in err.value.message


# ---- faults -----------------------------------------------------------


def test_create_failed_reaches_the_sdk(emu):
    emu.fault(kind="create_failed", code="AllocationFailed", message="Allocation failed: no capacity for this size.")
    ml = emu.ml_client()
    with pytest.raises(HttpResponseError) as err:
        create(ml, ci("ci-fail"))
    assert "Allocation failed" in str(err.value)
    failed = ml.compute.get("ci-fail")
    assert state(failed) == "CreateFailed"
    assert failed.provisioning_state == "Failed"
    assert failed.provisioning_errors == "AllocationFailed"


def test_throttling_is_retried_by_the_sdk(emu):
    emu.fault(kind="throttle", count=2, retry_after=0)
    ml = emu.ml_client()
    with pytest.raises(ResourceNotFoundError):
        ml.compute.get("ci-throttled")
    # this compute's requests only: a poller of an earlier test may still be asking after its own
    statuses = [r["status"] for r in emu.requests_seen() if r["path"].rstrip("/").endswith("/computes/ci-throttled")]
    assert statuses == [429, 429, 404]


def test_throttling_beyond_budget_surfaces(emu):
    emu.fault(kind="throttle", count=10, retry_after=0)
    ml = emu.ml_client(retry_total=2)
    with pytest.raises(HttpResponseError) as err:
        ml.compute.get("ci-throttled")
    assert err.value.status_code == 429


def test_server_errors_on_get_retried(emu):
    emu.fault(kind="error", count=1, status=500)
    create(emu.ml_client(), ci("ci-err"))
    assert [r["status"] for r in emu.requests_seen()][:2] == [500, 200]


def test_sso_only_by_assigned_user(emu):
    create(emu.ml_client(), ci("ci-sso", create_on_behalf_of=AssignedUserConfiguration(
        user_tenant_id=TID, user_object_id=OID)))
    r = emu.arm("POST", emu.ws_path() + "/computes/ci-sso/enableSso",
                params={"api-version": "2024-04-01-preview"}, json={"enableSSO": True})
    assert r.status_code == 403


# ---- what a create gave, read back (as recorded real traffic shows) ---------


def test_os_patching_and_custom_applications_given_at_creation_are_read_back(emu):
    rstudio = CustomApplications(name="rstudio",
                                 image=ImageSettings(reference="ghcr.io/azure/rstudio-workbench:latest"),
                                 endpoints=[EndpointsSettings(target=8787, published=8787)],
                                 environment_variables={"RSP_LICENSE": "x"})
    made = create(emu.ml_client(), ci("ci-apps", enable_os_patching=True, custom_applications=[rstudio]))
    assert made.enable_os_patching is True
    [app] = made.custom_applications
    assert app.name == "rstudio" and app.image.reference == "ghcr.io/azure/rstudio-workbench:latest"
    assert [(e.target, e.published) for e in app.endpoints] == [(8787, 8787)]
    assert app.environment_variables == {"RSP_LICENSE": "x"}
    # without them: AML's defaults, no patching and no applications
    plain = create(emu.ml_client(), ci("ci-noapps"))
    assert plain.enable_os_patching is False and not plain.custom_applications


def test_a_system_assigned_identity_comes_back_with_its_principal_and_tenant(emu):
    # recorded: {"type": "SystemAssigned", "principalId": <guid>, "tenantId": <guid>} in the 201 and every GET
    made = create(emu.ml_client(), ci("ci-msi", identity=IdentityConfiguration(type="system_assigned")))
    assert made.identity.type == "system_assigned"
    assert made.identity.principal_id and made.identity.tenant_id
    again = emu.ml_client().compute.get("ci-msi")
    assert again.identity.principal_id == made.identity.principal_id
