"""The reconciler's decision (pure): which of AML's instances to bring to rest."""

from aml_jupyterhub.compute import InstanceInfo
from aml_jupyterhub.ownership import Owner
from aml_jupyterhub.reconciler import Snapshot, plan

HUB = "hub1"


def inst(name, state="Running", tags=None):
    return InstanceInfo(name=name, id=None, state=state, provisioning_state="Succeeded", vm_size="Standard_DS2_v2",
                        location="westeurope", ssh_user="azureuser", ssh_port=50000, public_ip=None, private_ip=None,
                        applications={}, assigned_user_oid=None, last_operation={}, error=None, tags=tags or {})


def ours(name, user="alice", server="", state="Running"):
    return inst(name, state, Owner(HUB, user, server).tags())


def run(snapshot, suspects=None, in_use=(), stop_action="stop", min_age=5):
    return plan(snapshot, hub_id=HUB, in_use=set(in_use), suspects=suspects or {}, min_age=min_age,
                stop_action=stop_action)


def test_an_orphan_is_acted_on_at_its_second_sighting_only():
    first = run(Snapshot.of(100, [ours("jha-x")]))
    assert first.actions == [] and first.suspects == {"jha-x": 100}
    too_soon = run(Snapshot.of(102, [ours("jha-x")]), first.suspects)
    assert too_soon.actions == []
    second = run(Snapshot.of(110, [ours("jha-x")]), first.suspects)
    assert [(a.kind, a.name, a.owner) for a in second.actions] == [("stop", "jha-x", Owner(HUB, "alice", ""))]
    assert "no server" in second.actions[0].why


def test_in_use_other_hubs_and_untagged_are_never_touched():
    snap = [ours("jha-used"), inst("jhb-other", tags=Owner("hub2", "bob", "").tags()),
            inst("jhc-bare"), inst("jhd-legacy", tags={"jupyterhub-user": "dan", "jupyterhub-server": "default"})]
    first = run(Snapshot.of(100, snap), in_use={"jha-used"})
    second = run(Snapshot.of(200, snap), first.suspects, in_use={"jha-used"})
    assert first.suspects == {} and second.actions == []


def test_a_server_taking_its_instance_back_clears_the_suspicion():
    first = run(Snapshot.of(100, [ours("jha-x")]))
    claimed = run(Snapshot.of(200, [ours("jha-x")]), first.suspects, in_use={"jha-x"})
    assert claimed.suspects == {}
    again = run(Snapshot.of(300, [ours("jha-x")]), claimed.suspects)
    assert again.actions == []  # a fresh first sighting


def test_only_billing_states_are_acted_on_but_creating_counts_as_a_sighting():
    first = run(Snapshot.of(100, [ours("jha-x", state="Creating"), ours("jhb-y", state="Stopped")]))
    assert first.actions == []
    second = run(Snapshot.of(110, [ours("jha-x"), ours("jhb-y", state="Stopped")]), first.suspects)
    assert [a.name for a in second.actions] == ["jha-x"]  # Running now, orphaned since 100


def test_stop_action_delete_deletes_running_orphans_and_keep_only_reports():
    first = run(Snapshot.of(100, [ours("jha-x")]), stop_action="delete")
    assert [a.kind for a in run(Snapshot.of(110, [ours("jha-x")]), first.suspects, stop_action="delete").actions] \
        == ["delete"]
    kept = run(Snapshot.of(100, [ours("jha-x")]), stop_action="keep")
    assert kept.actions == [] and [i.name for i in kept.left_running] == ["jha-x"]
    # reported once, not at every pass
    assert run(Snapshot.of(110, [ours("jha-x")]), kept.suspects, stop_action="keep").left_running == []


def test_an_instance_gone_from_the_list_is_forgotten():
    first = run(Snapshot.of(100, [ours("jha-x")]))
    assert run(Snapshot.of(110, []), first.suspects).suspects == {}


def test_suspects_are_kept_across_a_restart_with_their_age(tmp_path):
    import time

    from aml_jupyterhub.reconciler import Reconciler, suspects_path

    path = suspects_path(str(tmp_path), ("sub", "rg", "WS"))
    assert path == suspects_path(str(tmp_path), ("sub", "rg", "ws"))  # one file per workspace, any case
    assert suspects_path("", ("sub", "rg", "ws")) is None

    def reconciler():
        return Reconciler("ws", None, hub_id="h", interval=600, stop_action="stop", in_use=set, act=None,
                          suspects_file=path)

    first = reconciler()
    assert first.load_suspects() == {}  # nothing saved yet
    first.save_suspects({"jhghost": time.monotonic() - 400})
    again = reconciler().load_suspects()  # as the next hub reads it
    assert set(again) == {"jhghost"} and 399 < time.monotonic() - again["jhghost"] < 402

    path.write_text("not json")
    assert reconciler().load_suspects() == {}  # a damaged file costs the count, nothing else
