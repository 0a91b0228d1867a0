"""Spend limits: the refusals, their numbers, and the runtime limit's words."""

import time

import pytest
from traitlets import TraitError

from aml_jupyterhub.aml_spawner import AMLSpawner
from aml_jupyterhub.limits import (Running, group_vcpus_refusal, parse_group_limits, runtime_hours, stop_warning,
                                   user_servers_refusal)
from aml_jupyterhub.profiles import parse_profiles
from aml_jupyterhub.settings import ConfigError, load_settings
from tests.harness.repo import example_env


def test_group_limits_from_pairs_and_mappings():
    assert parse_group_limits(["physics=32", " chem = 8 "]) == {"physics": 32, "chem": 8}
    assert parse_group_limits({"a=b": "4"}) == {"a=b": 4}  # a group name may hold '='; the last one splits
    assert parse_group_limits(["a=b=4"]) == {"a=b": 4}


@pytest.mark.parametrize("raw,words", [
    (["physics"], "needs a group name"),
    (["=4"], "needs a group name"),
    (["physics=lots"], "whole number, not 'lots'"),
    (["physics=-1"], "0 or more"),
])
def test_bad_group_limits_say_which(raw, words):
    with pytest.raises(ValueError, match=words):
        parse_group_limits(raw)


def test_group_limits_setting_is_checked_with_the_variable_named():
    base = example_env()
    assert load_settings({**base, "AML_GROUP_VCPU_LIMITS": "g1=16,g2=4"})["AML_GROUP_VCPU_LIMITS"] == {"g1": 16, "g2": 4}
    with pytest.raises(ConfigError, match="AML_GROUP_VCPU_LIMITS is not valid: the vCPU limit of group 'g1'"):
        load_settings({**base, "AML_GROUP_VCPU_LIMITS": "g1=many"})
    with pytest.raises(TraitError, match="group_vcpu_limits"):
        AMLSpawner(group_vcpu_limits={"g": "x"})


def test_servers_per_user():
    assert user_servers_refusal(["", "gpu"], 0) is None  # no limit
    assert user_servers_refusal(["gpu"], 2) is None
    msg = user_servers_refusal(["", "gpu"], 2)
    assert msg.startswith("You already have 2 servers running (the default one, 'gpu')")
    assert "allows 2 servers per user" in msg and "Stop one" in msg
    assert "1 server per user" in user_servers_refusal(["x"], 1)


def _run(user, groups, vcpus, server=""):
    return Running(user, server, frozenset(groups), vcpus)


def test_group_vcpus_counts_every_member_and_names_the_group():
    running = [_run("ann", {"phys"}, 8), _run("bob", {"phys", "chem"}, 4), _run("cat", {"chem"}, 16)]
    limits = {"phys": 16, "chem": 64}
    assert group_vcpus_refusal({"phys"}, "Small", 4, running, limits) is None  # 12 + 4 = 16
    msg = group_vcpus_refusal({"phys"}, "Medium (Standard_DS3_v2)", 8, running, limits, {"phys": "Physics"})
    assert "Your group 'Physics' may run 16 vCPUs at a time" in msg
    assert "use 12 now and Medium (Standard_DS3_v2) needs 8" in msg
    assert "ann" not in msg and "bob" not in msg  # colleagues' names are not shown
    # every limited group of the user must have room; an unlimited one does not matter
    assert "'chem'" in group_vcpus_refusal({"chem", "other"}, "X", 48, running, {"chem": 64})
    assert group_vcpus_refusal({"other"}, "X", 500, running, limits) is None


def test_group_vcpus_refuses_when_the_size_is_unknown_only_for_limited_groups():
    assert "cannot be read from Azure now" in group_vcpus_refusal({"phys"}, "Small", None, [], {"phys": 8})
    assert group_vcpus_refusal({"free"}, "Small", None, [], {"phys": 8}) is None


def test_runtime_hours_profile_before_hub():
    assert runtime_hours(None, 8) == 8
    assert runtime_hours(2, 8) == 2
    assert runtime_hours(0, 8) == 0  # the profile lifts the hub's limit
    assert runtime_hours(None, 0) == 0


def test_profiles_take_max_hours_and_refuse_bad_ones():
    (p,) = parse_profiles([{"slug": "gpu", "vm_size": "Standard_NC4as_T4_v3", "max_hours": 4}])
    assert p.max_hours == 4.0
    (q,) = parse_profiles([{"slug": "s", "vm_size": "Standard_DS2_v2"}])
    assert q.max_hours is None
    for bad in (-1, "4", True):
        with pytest.raises(ValueError, match="max_hours must be a number of hours"):
            parse_profiles([{"slug": "gpu", "vm_size": "Standard_NC4as_T4_v3", "max_hours": bad}])


def test_stop_warning_says_when_and_why():
    now = time.time()
    text = stop_warning("gpu", now + 25 * 60, now, "the 4 h limit of GPU")
    assert text.startswith("Your server 'gpu' will be stopped in 25 minutes (at ")
    assert "UTC" in text and "the 4 h limit of GPU" in text
    assert "in 2.0 hours" in stop_warning("", now + 7200, now, "r")


class _User:
    def __init__(self, name):
        self.name, self.groups, self.admin = name, [], False


def test_runtime_notice_only_within_the_warning_window():
    sp = AMLSpawner(runtime_warning_minutes=30)
    sp.user = _User("ann")
    sp._spawn_pending = True  # active
    now = time.time()
    sp.server_state.stop_at, sp.server_state.stop_rule = int(now + 3600), "this hub's 1 h limit"
    assert sp.runtime_notice(now) == ""
    assert "will be stopped in 20 minutes" in sp.runtime_notice(now + 40 * 60)
    sp._spawn_pending = False  # not running: nothing to warn of
    assert sp.runtime_notice(now + 40 * 60) == ""
