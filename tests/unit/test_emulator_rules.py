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


def test_quota_message_has_numbers():
    err = rules.quota_error("westeurope", "Standard DSv2 Family", 8, 6, 4)
    assert err.code == "QuotaExceeded"
    assert "Current Limit: 8, Current Usage: 6, Additional Required: 4, (Minimum) New Limit Required: 10" in err.message


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
