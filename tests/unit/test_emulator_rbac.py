"""The emulator's Azure RBAC: which action each ARM request needs, what the
built-in roles grant, and ARM's refusal."""

from __future__ import annotations

import pytest

from aml_emulator import rbac
from aml_emulator.config import load_config
from aml_emulator.models import Workspace
from aml_emulator.roles import HUB, STATIC_TOKEN_OID, Roles, parse_settings

SUB = "00000000-0000-0000-0000-000000000000"
WS = f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/ws"
LOC = f"/subscriptions/{SUB}/providers/Microsoft.MachineLearningServices/locations/westeurope"
C = "Microsoft.MachineLearningServices/workspaces/computes"
WORKSPACES = [Workspace(SUB, "rg", "ws", "westeurope")]


@pytest.mark.parametrize("method, path, action, scope", [
    ("GET", WS, "Microsoft.MachineLearningServices/workspaces/read", WS),
    ("GET", WS + "/computes", f"{C}/read", WS),
    ("GET", WS + "/computes/ci-a", f"{C}/read", WS + "/computes/ci-a"),
    ("PUT", WS + "/computes/ci-a", f"{C}/write", WS + "/computes/ci-a"),
    ("DELETE", WS + "/computes/ci-a/", f"{C}/delete", WS + "/computes/ci-a"),
    ("POST", WS + "/computes/ci-a/start", f"{C}/start/action", WS + "/computes/ci-a"),
    ("POST", WS + "/computes/ci-a/stop", f"{C}/stop/action", WS + "/computes/ci-a"),
    ("POST", WS + "/computes/ci-a/restart", f"{C}/restart/action", WS + "/computes/ci-a"),
    ("POST", WS + "/computes/ci-a/resize", f"{C}/resize/action", WS + "/computes/ci-a"),
    ("POST", WS + "/computes/ci-a/listNodes", f"{C}/listNodes/action", WS + "/computes/ci-a"),
    ("POST", WS + "/computes/ci-a/listkeys", f"{C}/listKeys/action", WS + "/computes/ci-a"),
    ("POST", WS + "/computes/ci-a/updateIdleShutdownSetting", f"{C}/updateIdleShutdownSetting/action",
     WS + "/computes/ci-a"),
    ("GET", LOC + "/vmSizes", "Microsoft.MachineLearningServices/locations/vmsizes/read", f"/subscriptions/{SUB}"),
    ("GET", LOC + "/usages", "Microsoft.MachineLearningServices/locations/usages/read", f"/subscriptions/{SUB}"),
])
def test_each_request_needs_its_action_over_the_resource_it_names(method, path, action, scope):
    need = rbac.requirement(method, path)
    assert (need.action, need.scope, need.checked) == (action, scope, True)


def test_operation_polls_are_not_checked_and_unrouted_paths_need_nothing():
    poll = rbac.requirement("GET", LOC + "/computeOperationsStatus/abc")
    assert poll.action == "Microsoft.MachineLearningServices/locations/computeoperationsstatus/read"
    assert not poll.checked
    assert rbac.requirement("GET", WS + "/datastores") is None
    assert rbac.requirement("GET", f"/subscriptions/{SUB}/resourceGroups") is None


def test_scope_keeps_the_case_the_request_used():
    path = WS.replace("resourceGroups", "resourcegroups") + "/computes/CI-A/Start"
    need = rbac.requirement("POST", path)
    assert need.scope == WS.replace("resourceGroups", "resourcegroups") + "/computes/CI-A"
    assert need.action == f"{C}/start/action"


ROLE = rbac.BUILTIN_ROLES


@pytest.mark.parametrize("role, action, granted", [
    ("azureml compute operator", f"{C}/write", True),
    ("azureml compute operator", f"{C}/start/action", True),
    ("azureml compute operator", f"{C}/read", True),
    ("azureml compute operator", "Microsoft.MachineLearningServices/workspaces/read", False),
    ("azureml compute operator", "Microsoft.MachineLearningServices/locations/vmsizes/read", False),
    ("reader", "Microsoft.MachineLearningServices/workspaces/read", True),
    ("reader", f"{C}/read", True),
    ("reader", f"{C}/write", False),
    ("reader", f"{C}/start/action", False),
    ("azureml data scientist", f"{C}/read", True),
    ("azureml data scientist", f"{C}/start/action", True),
    ("azureml data scientist", f"{C}/stop/action", True),
    ("azureml data scientist", f"{C}/write", False),
    ("azureml data scientist", f"{C}/delete", False),
    ("azureml data scientist", f"{C}/listKeys/action", False),
    ("azureml data scientist", "Microsoft.MachineLearningServices/workspaces/read", True),
    ("azureml data scientist", "Microsoft.MachineLearningServices/workspaces/write", False),
    ("contributor", f"{C}/write", True),
    ("contributor", "Microsoft.Authorization/roleAssignments/write", False),
    ("owner", "Microsoft.Authorization/roleAssignments/write", True),
])
def test_built_in_roles_grant_what_their_definitions_say(role, action, granted):
    assert rbac.allows(ROLE[role], action) is granted


def test_patterns_match_case_insensitively_and_stars_span_segments():
    assert rbac.action_matches("*/read", "microsoft.machinelearningservices/workspaces/computes/READ")
    assert rbac.action_matches("Microsoft.MachineLearningServices/workspaces/*/read",
                               "Microsoft.MachineLearningServices/workspaces/read")
    assert not rbac.action_matches(f"{C}/*", "Microsoft.MachineLearningServices/workspaces/read")
    assert not rbac.action_matches("*/read", f"{C}/write")


def test_an_assignment_covers_its_scope_and_what_is_under_it():
    assert rbac.scope_covers(WS, WS + "/computes/ci-a")
    assert rbac.scope_covers(f"/subscriptions/{SUB}", WS)
    assert rbac.scope_covers("/", WS)
    assert rbac.scope_covers(WS.upper(), WS)
    assert not rbac.scope_covers(WS + "2", WS + "/computes/x")  # aml-local is no prefix of aml-local-2
    assert not rbac.scope_covers(WS, f"/subscriptions/{SUB}")


def test_refusal_is_arms_authorization_failed_without_retry_after():
    roles = Roles(WORKSPACES, {"assignments": [{"principal": HUB, "role": "Reader"}]})
    err = roles.check("POST", WS + "/computes/ci-a/start", roles.principal_static())
    assert (err.status, err.code, err.retry_after) == (403, "AuthorizationFailed", None)
    assert err.message == (
        f"The client '{STATIC_TOKEN_OID}' with object id '{STATIC_TOKEN_OID}' does not have authorization to "
        f"perform action '{C}/start/action' over scope '{WS}/computes/ci-a' or the scope is invalid. If access "
        "was recently granted, please refresh your credentials.")
    assert roles.check("GET", WS + "/computes/ci-a", roles.principal_static()) is None


def test_default_the_hub_manages_computes_and_reads_and_nobody_else_does_anything():
    roles = Roles(WORKSPACES, None, hub_client_id="hub-app")
    hub = roles.principal_static()
    for method, path in [("GET", WS), ("PUT", WS + "/computes/a"), ("POST", WS + "/computes/a/start"),
                         ("DELETE", WS + "/computes/a"), ("GET", LOC + "/vmSizes"), ("GET", LOC + "/usages")]:
        assert roles.check(method, path, hub) is None, (method, path)
    assert roles.check("PUT", WS, hub).code == "AuthorizationFailed"  # not the workspace itself
    other_ws = WS.replace("/ws", "/other")
    assert roles.check("PUT", other_ws + "/computes/a", hub) is not None
    app = roles.principal_from_claims({"oid": "sp-oid", "appid": "hub-app", "idtyp": "app"})
    assert roles.check("PUT", WS + "/computes/a", app) is None
    user = roles.principal_from_claims({"oid": "u-oid", "upn": "ann@x", "appid": "hub-app", "idtyp": "user"})
    err = roles.check("GET", WS + "/computes/a", user)
    assert err is not None and "The client 'ann@x' with object id 'u-oid'" in err.message


def test_custom_roles_and_assignments_by_object_id():
    roles = Roles(WORKSPACES, {
        "definitions": [{"name": "No start", "actions": [f"{C}/read", f"{C}/write"]}],
        "assignments": [{"principal": "u-oid", "role": "no start", "scope": WS}],
    })
    user = roles.principal_from_claims({"oid": "u-oid", "upn": "ann@x", "idtyp": "user"})
    assert roles.check("PUT", WS + "/computes/a", user) is None
    assert roles.check("POST", WS + "/computes/a/start", user).status == 403
    # replacing the assignments keeps the custom role; reset brings back the start's
    roles.replace({"assignments": [{"principal": "ann@x", "role": "No start"}, {"principal": "ann@x", "role": "Owner"}]})
    assert roles.check("POST", WS + "/computes/a/start", user) is None
    roles.reset()
    assert roles.check("POST", WS + "/computes/a/start", user).status == 403


@pytest.mark.parametrize("raw, says", [
    ([], "must be an object"),
    ({"assignments": [{"principal": "hub", "role": "Superuser"}]}, "unknown role 'Superuser'"),
    ({"assignments": [{"role": "Reader"}]}, "needs a 'principal'"),
    ({"assignments": [{"principal": "hub", "role": "Reader", "scope": "ws"}]}, "must be an ARM id"),
    ({"definitions": [{"name": "Reader", "actions": ["*"]}]}, "differ from the built-in roles"),
    ({"definitions": [{"name": "x", "actions": "*/read"}]}, "must be a list"),
    ({"grants": []}, "unknown roles settings: grants"),
])
def test_bad_settings_say_what_is_wrong(raw, says):
    with pytest.raises(ValueError, match=says):
        parse_settings(raw, WORKSPACES)


def test_roles_flag_and_config_file(tmp_path):
    cfg = load_config(["--state-dir", str(tmp_path), "--roles",
                       '{"assignments": [{"principal": "hub", "role": "Reader"}]}'])
    assert cfg.roles == {"assignments": [{"principal": "hub", "role": "Reader"}]}
    f = tmp_path / "roles.json"
    f.write_text('{"assignments": []}')
    assert load_config(["--state-dir", str(tmp_path), "--roles", str(f)]).roles == {"assignments": []}
    conf = tmp_path / "conf.json"
    conf.write_text('{"roles": {"assignments": []}}')
    assert load_config(["--state-dir", str(tmp_path), "--config", str(conf)]).roles == {"assignments": []}
    assert load_config(["--state-dir", str(tmp_path)]).roles is None
    with pytest.raises(SystemExit):
        load_config(["--state-dir", str(tmp_path), "--roles", '{"assignments": [{"principal": "hub", "role": "x"}]}'])
