"""The instances page's rows (owners, orphans, stops, costs) and its HTML (escaped)."""

import datetime as dt

import pytest

from aml_jupyterhub.compute.models import InstanceInfo
from aml_jupyterhub.fleet_view import ServerUse, operation_time, rows
from aml_jupyterhub.instances_page import render
from aml_jupyterhub.ownership import Owner

WS = ("sub", "rg", "ws")
T0 = dt.datetime(2026, 12, 3, 8, 0, tzinfo=dt.timezone.utc).timestamp()


def info(name, state, owner, size="Standard_DS2_v2", op="Start", when="2026-12-03T08:00:00Z"):
    return InstanceInfo(name=name, id=None, state=state, provisioning_state=None, vm_size=size, location=None,
                        ssh_user=None, ssh_port=None, public_ip=None, private_ip=None, applications={},
                        assigned_user_oid=None, last_operation={"operation_name": op, "operation_time": when},
                        error=None, tags=owner.tags() if owner else {})


def test_rows_mark_orphans_stops_and_costs():
    hub = "hub1"
    instances = [
        info("a", "Running", Owner(hub, "ann", "")),
        info("b", "Running", Owner(hub, "bob", "gpu")),
        info("c", "Running", Owner(hub, "cat", "")),
        info("d", "Stopped", Owner(hub, "dan", "")),
        info("e", "Running", Owner("hub2", "eve", "")),
        info("f", "Running", None),
    ]
    servers = {"a": ServerUse("ann", "", "running"), "b": ServerUse("bob", "gpu", "stopped")}
    got = {r.name: r for r in rows(WS, instances, hub, servers, {"standard_ds2_v2": 0.5}, {"c"}, T0 + 2 * 3600)}
    assert set(got) == {"a", "b", "c", "d"}  # another hub's and untagged ones are not this page's
    assert (got["a"].server_status, got["a"].orphan, got["a"].stopping) == ("running", False, False)
    assert got["a"].running_since == T0 and got["a"].cost_so_far == pytest.approx(1.0)  # 2 h at $0.50
    assert got["b"].orphan and got["b"].server_status == "none" and got["b"].server == "gpu"
    assert got["c"].stopping and not got["c"].orphan  # the hub is already settling it
    assert got["d"].price_per_hour is None and got["d"].cost_so_far is None and got["d"].running_since is None


def test_operation_time_formats():
    assert operation_time({"operationTime": "2026-12-03T08:00:00Z"}) == T0
    assert operation_time({"operation_time": dt.datetime(2026, 12, 3, 8, 0)}) == T0  # naive: UTC
    assert operation_time({"operation_time": "not a time"}) is None and operation_time({}) is None


def test_the_page_escapes_what_users_and_azure_named():
    row = {"workspace": "ws", "subscription_id": "s", "resource_group": "r", "name": "jhx", "user": "o'brien<b>",
           "server": "<script>x</script>", "vm_size": "Standard_DS2_v2", "state": "Running",
           "server_status": "running", "orphan": False, "stopping": False, "running_since": T0,
           "price_per_hour": 0.5, "cost_so_far": 1.0}
    html = render({"instances": [row]}, xsrf_form_html="<input name=_xsrf>", user="root", hub_prefix="/hub/",
                  message="<i>done</i>", now=T0 + 3600)
    assert "<script>x</script>" not in html and "&lt;script&gt;" in html
    assert "<i>done</i>" not in html and "<b>" not in html
    # the confirm() text is JSON in a single-quoted attribute: a quote in a name cannot end it
    confirm = html.split("onsubmit='", 1)[1].split("'>", 1)[0]
    assert "o\\u0027brien" in confirm and "'" not in confirm
    assert "$0.50" in html and "$1.00" in html and "1 h 00 min" in html
