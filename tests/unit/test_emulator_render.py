"""How ``render`` spells a compute instance, for instances kept in an older
emulator's store: the same answer as for a new one (createdBy without a user
name, no systemData), whatever the stored record still holds."""

from aml_emulator.models import Instance, Workspace
from aml_emulator.render import compute_instance

WS = Workspace("00000000-0000-0000-0000-000000000000", "rg", "ws", "westeurope")


def stored(**kw) -> Instance:
    # as an older store reads back: createdBy with a user name and no object id, none of the newer fields
    base = dict(workspace=WS.key, location="westeurope", name="ci-old", vm_size="Standard_DS1_v2",
                created_on="2025-01-01T10:00:00+00:00", state="Running", provisioning_state="Succeeded",
                created_by={"userName": "emulator-static-token", "userOrgId": "t", "userId": None},
                connectivity={"public_ip": "127.0.0.1", "private_ip": "10.0.0.4", "ssh_port": 50000})
    return Instance(**{**base, **kw})


def test_an_older_stored_instance_renders_as_a_new_one():
    body = compute_instance(stored(), WS, "https://emu")
    assert "systemData" not in body
    pp = body["properties"]["properties"]
    assert pp["createdBy"] == {"userOrgId": "t", "userId": None}
    assert pp["enableOSPatching"] is False and pp["customServices"] == []
    assert body["properties"]["disableLocalAuth"] is False
    assert pp["versions"] == {"runtime": "3.0.02853.0001"}


def test_an_instance_without_a_creator_has_null_created_by():
    assert compute_instance(stored(created_by=None), WS, "https://emu")["properties"]["properties"]["createdBy"] is None
