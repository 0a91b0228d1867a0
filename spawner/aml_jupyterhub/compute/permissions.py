"""What to tell an admin when ARM refuses the hub's identity (403
``AuthorizationFailed``): which action was refused, over which scope, and
which built-in role grants it. Pure.

ARM's message reads "The client '<name>' with object id '<oid>' does not have
authorization to perform action '<action>' over scope '<scope>' or the scope
is invalid. ..."; we read the quoted parts and otherwise fall back to the
message as it is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_REFUSAL = re.compile(
    r"client '(?P<client>[^']*)' with object id '(?P<oid>[^']*)' does not have authorization to perform action "
    r"'(?P<action>[^']+)' over scope '(?P<scope>[^']+)'",
    re.I,
)
_WORKSPACE = re.compile(
    r"^(?P<id>/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/"
    r"Microsoft\.MachineLearningServices/workspaces/(?P<ws>[^/]+))",
    re.I,
)
_SUBSCRIPTION = re.compile(r"^(?P<id>/subscriptions/[^/]+)", re.I)


@dataclass(frozen=True)
class Refusal:
    client: str
    oid: str
    action: str
    scope: str


def parse_refusal(message: str) -> Refusal | None:
    m = _REFUSAL.search(message or "")
    return Refusal(m["client"], m["oid"], m["action"], m["scope"]) if m else None


def role_for(action: str) -> str:
    """The least built-in role that grants ``action`` to the hub."""
    a = action.lower()
    if a.startswith("microsoft.machinelearningservices/workspaces/computes/"):
        return "AzureML Compute Operator"  # Microsoft.MachineLearningServices/workspaces/computes/*
    if a.endswith("/read"):
        return "Reader"  # */read
    return "Contributor"


def assignment_scope(scope: str) -> tuple[str, str]:
    """(the ARM id to assign the role on, how to name it to a person): the
    workspace a compute belongs to, else the subscription."""
    m = _WORKSPACE.match(scope)
    if m:
        return m["id"], f"workspace {m['ws']} (resource group {m['rg']})"
    m = _SUBSCRIPTION.match(scope)
    if m:
        return m["id"], f"subscription {m['id'].rsplit('/', 1)[1]}"
    return scope, scope


def advice(message: str) -> str | None:
    """The admin's to-do for a refusal ARM explained, None when it did not."""
    r = parse_refusal(message)
    if r is None:
        return None
    role = role_for(r.action)
    scope_id, scope_name = assignment_scope(r.scope)
    return (
        f"Azure refused the hub's identity (object id {r.oid}) the action {r.action} on {r.scope}. "
        f"Ask an admin to assign the built-in role {role}, which grants it, to the hub's identity on {scope_name}, "
        f"e.g. az role assignment create --assignee-object-id {r.oid} --assignee-principal-type ServicePrincipal "
        f"--role \"{role}\" --scope {scope_id} (hub/setup-azure.sh assigns the roles the hub needs); "
        "a new assignment can take a few minutes to apply, then try again."
    )
