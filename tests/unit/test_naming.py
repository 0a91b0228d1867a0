import itertools

import pytest

from aml_emulator.rules import name_problem
from aml_jupyterhub.naming import HASH_LEN, instance_name, legacy_instance_name

USERS = ["alice", "a", "alice@aml-local.example", "erin_contoso.example#ext#@aml-local.example",
         "x" * 80, "12345", "a.b", "a_b", "Ünïcødé", "-", "ab-", "0b8848a7-587a-41fc-96d6-287e5c8deacc"]
SERVERS = ["", "gpu", "my-long-named-server-number-1", "1", "a-1"]
WS = "sub/rg/ws"


def name(user, server="", hub_id="hub1", workspace=WS, **kw):
    return instance_name(user, server, hub_id=hub_id, workspace=workspace, **kw)


@pytest.mark.parametrize("user,server", list(itertools.product(USERS, SERVERS)))
def test_names_are_valid_for_aml(user, server):
    n = name(user, server)
    assert name_problem(n) is None, n
    assert n == name(user, server)  # deterministic
    assert name_problem(legacy_instance_name(user, server)) is None


def test_names_are_distinct():
    names = {name(u, s) for u, s in itertools.product(USERS, SERVERS)}
    assert len(names) == len(USERS) * len(SERVERS)


def test_readable_and_keyed_by_hub_and_workspace():
    assert name("alice").startswith("jhalice-")
    assert name("alice", "gpu").startswith("jhalice-gpu-")
    assert name("erin_contoso.example#ext#@t.example").startswith("jherincont")
    assert name("alice", hub_id="hub1") != name("alice", hub_id="hub2")
    assert name("alice", workspace="s/rg/ws1") != name("alice", workspace="s/rg/ws2")
    assert name("alice", workspace="S/RG/WS") == name("alice", workspace="s/rg/ws")  # ARM ids ignore case
    assert name("alice", prefix="lab").startswith("labalice-")


def test_the_hash_is_long_enough_not_to_be_aimed_at():
    # The attack on 0.1: users sharing their first letters, a named-server name
    # brute-forced onto the victim's 6-letter hash. Now 12 letters (26**12 tries).
    victim = name("alexandra.smith")
    tail = victim.rsplit("-", 1)[1]
    assert len(tail) == HASH_LEN == 12 and tail.isalpha()
    assert victim.startswith("jhalexandra-")  # the readable part alone says nothing about whose it is


def test_legacy_names_are_what_version_0_1_gave():
    # values computed with 0.1's naming.instance_name (tests/unit/test_naming.py at 1384b4a)
    assert legacy_instance_name("alice") == "jhalice-bowaml"
    assert legacy_instance_name("alice", "gpu").startswith("jhalice-gpu-")
    assert legacy_instance_name("alice") != name("alice")


def test_empty_hub_id_is_refused():
    with pytest.raises(ValueError, match="hub id"):
        name("alice", hub_id="")


@pytest.mark.parametrize("prefix", ["", "1x", "has-hyphen", "waytoolongprefix", "UP"])
def test_bad_prefix(prefix):
    with pytest.raises(ValueError, match="prefix"):
        name("alice", prefix=prefix)
