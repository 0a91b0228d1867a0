from aml_jupyterhub import ownership
from aml_jupyterhub.ownership import FOREIGN, LEGACY, MINE, Owner, verdict

ALICE = Owner("hub1", "alice", "")
ALICE_GPU = Owner("hub1", "alice", "gpu")


def test_tags_and_round_trip():
    assert ALICE.tags() == {"jupyterhub-hub": "hub1", "jupyterhub-user": "alice", "jupyterhub-server": "default"}
    assert ownership.owner_of(ALICE_GPU.tags()) == ALICE_GPU
    assert ownership.owner_of(ALICE.tags()) == ALICE
    assert Owner.from_state(ALICE_GPU.to_state()) == ALICE_GPU
    assert Owner.from_state(None) is None and Owner.from_state({"user": "x"}) is None


def test_only_all_three_tags_make_it_mine():
    assert verdict(ALICE.tags(), ALICE) == MINE
    assert verdict(ALICE.tags(), ALICE_GPU) == FOREIGN
    assert verdict(ALICE.tags(), Owner("hub2", "alice", "")) == FOREIGN
    assert verdict(ALICE.tags(), Owner("hub1", "alicia", "")) == FOREIGN
    assert verdict({**ALICE.tags(), "jupyterhub-user": "ALICE"}, ALICE) == FOREIGN  # exact names
    assert verdict({}, ALICE) == FOREIGN and verdict(None, ALICE) == FOREIGN


def test_legacy_only_when_asked_and_never_across_users():
    old = {"jupyterhub-user": "alice", "jupyterhub-server": "default"}  # what 0.1 tagged
    assert verdict(old, ALICE) == FOREIGN
    assert verdict(old, ALICE, allow_legacy=True) == LEGACY
    assert verdict(old, Owner("hub1", "bob", ""), allow_legacy=True) == FOREIGN
    # a hub tag that is not ours is never "legacy"
    assert verdict({**old, "jupyterhub-hub": "other"}, ALICE, allow_legacy=True) == FOREIGN


def test_refusal_says_whose_it_is_not_and_what_to_do():
    text = ownership.refusal("jhalice-abc", ALICE_GPU)
    assert "jhalice-abc" in text and "alice/gpu" in text and "nothing was changed" in text
    assert "admin" in text and "AML_INSTANCE_PREFIX" in text


def test_hub_ids():
    assert ownership.valid_hub_id("h0123abcd") and ownership.valid_hub_id("research.hub-1")
    assert not ownership.valid_hub_id("") and not ownership.valid_hub_id("-x") and not ownership.valid_hub_id("a b")
    assert not ownership.valid_hub_id("x" * 65)
