"""A 403 AuthorizationFailed from ARM becomes advice for the admin: the action
refused, the built-in role that grants it, the workspace to assign it on."""

from __future__ import annotations

import pytest

from aml_jupyterhub.compute.permissions import advice, assignment_scope, parse_refusal, role_for

WS = ("/subscriptions/s1/resourceGroups/rg1/providers/Microsoft.MachineLearningServices/workspaces/ws1")


def refusal(action: str, scope: str, client: str = "0dae", oid: str = "0dae") -> str:
    # ARM's wording (real refusals quoted in public issue threads)
    return (f"The client '{client}' with object id '{oid}' does not have authorization to perform action "
            f"'{action}' over scope '{scope}' or the scope is invalid. If access was recently granted, please "
            "refresh your credentials.")


def test_the_quoted_parts_are_read():
    r = parse_refusal(refusal("Microsoft.MachineLearningServices/workspaces/computes/write", WS + "/computes/ci-a",
                              client="hub@x", oid="1234"))
    assert (r.client, r.oid, r.action, r.scope) == (
        "hub@x", "1234", "Microsoft.MachineLearningServices/workspaces/computes/write", WS + "/computes/ci-a")
    assert parse_refusal("Forbidden.") is None and advice("Forbidden.") is None


@pytest.mark.parametrize("action, role", [
    ("Microsoft.MachineLearningServices/workspaces/computes/write", "AzureML Compute Operator"),
    ("Microsoft.MachineLearningServices/workspaces/computes/start/action", "AzureML Compute Operator"),
    ("Microsoft.MachineLearningServices/workspaces/computes/read", "AzureML Compute Operator"),
    ("Microsoft.MachineLearningServices/workspaces/read", "Reader"),
    ("Microsoft.MachineLearningServices/locations/vmsizes/read", "Reader"),
    ("Microsoft.MachineLearningServices/workspaces/write", "Contributor"),
])
def test_the_least_built_in_role_that_grants_the_action(action, role):
    assert role_for(action) == role


def test_roles_go_on_the_workspace_or_the_subscription():
    assert assignment_scope(WS + "/computes/ci-a") == (WS, "workspace ws1 (resource group rg1)")
    assert assignment_scope("/subscriptions/s1") == ("/subscriptions/s1", "subscription s1")


def test_advice_names_action_role_workspace_and_the_command():
    text = advice(refusal("Microsoft.MachineLearningServices/workspaces/computes/start/action", WS + "/computes/ci-a"))
    assert "refused the hub's identity (object id 0dae) the action " \
           "Microsoft.MachineLearningServices/workspaces/computes/start/action on " + WS + "/computes/ci-a" in text
    assert "assign the built-in role AzureML Compute Operator, which grants it," in text
    assert "on workspace ws1 (resource group rg1)" in text
    assert f'--role "AzureML Compute Operator" --scope {WS} ' in text
