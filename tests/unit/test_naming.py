import itertools

import pytest

from aml_jupyterhub.emulator.rules import name_problem
from aml_jupyterhub.naming import instance_name

USERS = ["alice", "a", "alice@aml-local.example", "erin_contoso.example#ext#@aml-local.example",
         "x" * 80, "12345", "a.b", "a_b", "Ünïcødé", "-", "ab-", "0b8848a7-587a-41fc-96d6-287e5c8deacc"]
SERVERS = ["", "gpu", "my-long-named-server-number-1", "1", "a-1"]


@pytest.mark.parametrize("user,server", list(itertools.product(USERS, SERVERS)))
def test_names_are_valid_for_aml(user, server):
    name = instance_name(user, server)
    assert name_problem(name) is None, name
    assert name == instance_name(user, server)  # deterministic


def test_names_are_distinct():
    names = {instance_name(u, s) for u, s in itertools.product(USERS, SERVERS)}
    assert len(names) == len(USERS) * len(SERVERS)


def test_readable_and_hub_scoped():
    assert instance_name("alice").startswith("jhalice-")
    assert instance_name("alice", "gpu").startswith("jhalice-gpu-")
    assert instance_name("erin_contoso.example#ext#@t.example").startswith("jherincontoso")
    assert instance_name("alice", hub_id="hub1") != instance_name("alice", hub_id="hub2")
    assert instance_name("alice", prefix="lab").startswith("labalice-")


@pytest.mark.parametrize("prefix", ["", "1x", "has-hyphen", "waytoolongprefix", "UP"])
def test_bad_prefix(prefix):
    with pytest.raises(ValueError, match="prefix"):
        instance_name("alice", prefix=prefix)
