"""AML's creation rules, as pure functions."""

import pytest

from aml_emulator import catalog, rules
from aml_emulator.errors import ArmError
from aml_emulator.faults import Fault, FaultPlan


@pytest.mark.parametrize("name", ["abc", "ci-alice", "A1b2", "ci-a1", "x" * 24, "a-b-c", "ci-1a"])
def test_valid_names(name):
    assert rules.name_problem(name) is None


@pytest.mark.parametrize(
    "name,why",
    [
        ("ab", "between 3 and 24"),
        ("x" * 25, "between 3 and 24"),
        ("1abc", "start with a letter"),
        ("ci_x", "start with a letter and contain only"),
        ("ci-01", "followed later by at least one letter"),
        ("a-1", "followed later by at least one letter"),
        ("name-", "must not end with '-'"),
    ],
)
def test_invalid_names(name, why):
    assert why in rules.name_problem(name)
    with pytest.raises(ArmError) as err:
        rules.check_name(name)
    assert err.value.status == 400 and f"Compute name '{name}' is not available. Reason: Invalid" in err.value.message


@pytest.mark.parametrize("value,minutes", [(None, None), ("PT15M", 15), ("PT4320M", 4320), ("PT60M", 60)])
def test_idle_accepted(value, minutes):
    assert rules.parse_idle_minutes(value) == minutes


@pytest.mark.parametrize("value", ["PT14M", "PT4321M", "PT1H", "30"])
def test_idle_refused(value):
    with pytest.raises(ArmError) as err:
        rules.parse_idle_minutes(value)
    assert err.value.status == 400


def test_vm_size_case_insensitive_and_regional():
    assert rules.check_vm_size("westeurope", "standard_ds3_v2").vcpus == 4
    with pytest.raises(ArmError) as err:
        rules.check_vm_size("westeurope", "Standard_ND96asr_v4")
    assert err.value.details[0]["code"] == "VmSizeNotSupportedInRegion"
    assert rules.check_vm_size("eastus", "Standard_ND96asr_v4").gpus == 8
    with pytest.raises(ArmError):
        rules.check_vm_size("westeurope", None)


def test_on_behalf_of_with_key_refused():
    rules.check_on_behalf_of_ssh(None, "ssh-ed25519 AAA")
    rules.check_on_behalf_of_ssh({"objectId": "x"}, None)
    with pytest.raises(ArmError) as err:
        rules.check_on_behalf_of_ssh({"objectId": "x"}, "ssh-ed25519 AAA")
    assert "not allowed when compute instance is provisioned on behalf of another user" in err.value.message


def test_quota_message_is_amls_own():
    """Azure ML's wording (not Azure Compute's): the quota, its limit, the vCPUs asked for; no usage."""
    err = rules.quota_error("westeurope", "Standard DSv2 Family", 8, 6, 4)
    assert err.status == 400 and err.code == "BadRequest"
    assert err.message.startswith("The specified subscription has a Standard DSv2 family vCPU quota of 8 and cannot "
                                  "accomodate for at least 1 requested compute instance's node which maps to 4 vCPUs.")
    assert "Current Limit" not in err.message and "how-to-manage-quotas" in err.message
    total = rules.quota_error("westeurope", "Total Regional", 10, 8, 4)
    assert "has a total vCPU quota of 10" in total.message


def test_every_size_has_a_quota_family():
    for spec in catalog.SIZES.values():
        assert spec.family in catalog.DEFAULT_FAMILY_CORES
        arm = spec.to_arm()
        assert arm["vCPUs"] == spec.vcpus and "ComputeInstance" in arm["supportedComputeTypes"]


def test_fault_plan_counts_and_filters():
    plan = FaultPlan()
    plan.add(Fault.from_json({"kind": "throttle", "count": 2, "methods": ["post"], "retry_after": 3}))
    assert plan.http_fault("GET", "/subscriptions/x") is None
    first = plan.http_fault("POST", "/x/start")
    assert first.status == 429 and first.retry_after == 3
    assert plan.http_fault("POST", "/x/start").status == 429
    assert plan.http_fault("POST", "/x/start") is None
    plan.add(Fault.from_json({"kind": "create_failed"}))
    assert plan.create_failure().kind == "create_failed" and plan.create_failure() is None


@pytest.mark.parametrize(
    "bad",
    [{"kind": "meteor"}, {"kind": "throttle", "count": 0}, {"kind": "error", "status": 200}, {"kind": "error", "x": 1}, []],
)
def test_fault_validation(bad):
    with pytest.raises((ValueError, TypeError)):
        Fault.from_json(bad)


def refusal(check, *args):
    with pytest.raises(ArmError) as err:
        check(*args)
    return err.value


@pytest.mark.parametrize(
    "body,status",
    [([1], 400), ({"properties": {"computeType": "AmlCompute"}}, 400), ({}, 400)],
)
def test_only_compute_instance_bodies_pass(body, status):
    assert refusal(rules.check_compute_body, body).status == status
    props, pp = rules.check_compute_body({"properties": {"computeType": "ComputeInstance", "properties": {"vmSize": "x"}}})
    assert props["computeType"] == "ComputeInstance" and pp == {"vmSize": "x"}


def test_names_are_unique_per_region_whatever_the_case():
    taken = [("ci-alice", "westeurope")]
    rules.check_name_available("ci-alice", "eastus", taken)
    rules.check_name_available("ci-bob", "westeurope", taken)
    err = refusal(rules.check_name_available, "CI-Alice", "WestEurope", taken)
    assert err.status == 409 and err.details[0]["code"] == "ComputeNameNotAvailable"


def test_ssh_and_network_settings():
    rules.check_ssh_key_given(True, "ssh-ed25519 AAA", None)
    rules.check_ssh_key_given(True, None, {"objectId": "x"})  # the assigned user's key comes later
    rules.check_ssh_key_given(False, None, None)
    assert refusal(rules.check_ssh_key_given, True, None, None).details[0]["code"] == "MissingSshPublicKey"
    rules.check_subnet_if_private(True, None)
    rules.check_subnet_if_private(False, "/subscriptions/s/subnets/x")
    assert refusal(rules.check_subnet_if_private, False, None).details[0]["code"] == "NoPublicIpRequiresSubnet"


def test_quota_checks_the_family_first_then_the_region():
    spec = catalog.SIZES["standard_ds3_v2"]  # 4 vCPUs, DSv2
    rules.check_quota("westeurope", spec, (8, {spec.family: 8}), (4, {spec.family: 4}))
    family = refusal(rules.check_quota, "westeurope", spec, (100, {spec.family: 6}), (4, {spec.family: 4}))
    assert "Standard DSv2 family vCPU quota of 6" in family.message
    total = refusal(rules.check_quota, "westeurope", spec, (6, {spec.family: 48}), (4, {}))
    assert "total vCPU quota of 6" in total.message
    assert "quota of 0" in refusal(rules.check_quota, "westeurope", spec, (100, {}), (0, {})).message


def test_an_existing_instance_keeps_its_size_and_user():
    rules.check_size_unchanged("ci-a", "Standard_DS3_v2", "standard_ds3_v2")
    rules.check_size_unchanged("ci-a", "Standard_DS3_v2", None)
    assert refusal(rules.check_size_unchanged, "ci-a", "Standard_DS3_v2", "Standard_DS4_v2").status == 409
    rules.check_assignee_unchanged("ci-a", {"objectId": "a"}, {"objectId": "a"})
    rules.check_assignee_unchanged("ci-a", None, {"objectId": "b"})
    assert refusal(rules.check_assignee_unchanged, "ci-a", {"objectId": "a"}, {"objectId": "b"}).status == 409


@pytest.mark.parametrize(
    "action,allowed,refused,code",
    [
        ("start", "Stopped", "Running", "StartComputeInstanceOnlyAllowedInStoppedState"),
        ("stop", "Running", "Stopped", "StopComputeInstanceOnlyAllowedInRunningState"),
        ("restart", "Running", "Unusable", "RestartComputeInstanceOnlyAllowedInRunningState"),
    ],
)
def test_actions_need_their_state(action, allowed, refused, code):
    rules.check_action(action, "ci-a", allowed)
    err = refusal(rules.check_action, action, "ci-a", refused)
    # AML's code is the error's own (409), not a detail under a generic one
    assert err.status == 409 and err.code == code and not err.details and f"'ci-a' is {refused}" in err.message


def test_busy_unknown_and_other_refusals():
    rules.check_not_busy("ci-a", "Running", False, "stop")
    busy = refusal(rules.check_not_busy, "ci-a", "Stopping", True, "start")
    assert busy.status == 409 and busy.details[0]["code"] == "OperationInProgress"
    assert refusal(rules.check_action, "explode", "ci-a", "Running").code == "BadRequest"
    rules.check_underlying_action("Detach")
    assert refusal(rules.check_underlying_action, "nope").status == 400
    rules.check_sso_change(None, None)
    rules.check_sso_change({"objectId": "a"}, "a")
    assert refusal(rules.check_sso_change, {"objectId": "a"}, "b").status == 403


def test_resize_needs_a_stopped_instance_a_target_and_an_offered_size():
    assert rules.check_resize("ci-a", "Stopped", "Standard_DS3_v2", "westeurope").name == "Standard_DS3_v2"
    for state in ("Running", "Starting", "Stopping"):
        with pytest.raises(ArmError) as err:
            rules.check_resize("ci-a", state, "Standard_DS3_v2", "westeurope")
        assert err.value.status == 400 and "only allowed when it is Stopped" in str(err.value.message)
    for target in (None, "", 5):
        with pytest.raises(ArmError, match="targetVMSize"):
            rules.check_resize("ci-a", "Stopped", target, "westeurope")
    with pytest.raises(ArmError):
        rules.check_resize("ci-a", "Stopped", "Standard_ND96asr_v4", "westeurope")
