"""Azure RBAC as ARM applies it to the requests the emulator serves: pure.

- :data:`BUILTIN_ROLES`: the built-in roles a hub's identity meets, with the
  action lists of their published definitions (Azure's built-in roles
  reference, "AI + machine learning" and "General");
- :func:`requirement`: which RBAC action an ARM request needs, over which
  scope (the resource it names);
- :func:`allows`: whether a role definition grants an action;
- :func:`authorized`: whether assignments (principal, role, scope) let a
  principal perform an action over a scope;
- :func:`refusal_message`: ARM's ``AuthorizationFailed`` text.

Action patterns match as ARM matches them: case-insensitively, ``*`` standing
for any run of characters. One assumption [unverified]: a ``/*/`` in a
pattern also matches a single ``/``, so AzureML Data Scientist's NotActions
``.../computes/*/write`` and ``.../computes/*/delete`` cover
``computes/write`` and ``computes/delete`` themselves, as the role's
description says ("except for creating or deleting compute resources").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

PROVIDER = "Microsoft.MachineLearningServices"
WORKSPACE_READ = f"{PROVIDER}/workspaces/read"
COMPUTES = f"{PROVIDER}/workspaces/computes"


@dataclass(frozen=True)
class RoleDefinition:
    name: str
    actions: tuple[str, ...]
    not_actions: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, raw) -> "RoleDefinition":
        """A custom role: {"name": ..., "actions": [...], "not_actions": [...]} (``notActions`` too)."""
        if not isinstance(raw, dict):
            raise ValueError("a role definition must be an object with name and actions")
        name = raw.get("name") or raw.get("roleName")
        actions = raw.get("actions")
        not_actions = raw.get("not_actions", raw.get("notActions", []))
        if not isinstance(name, str) or not name.strip():
            raise ValueError("a role definition needs a non-empty 'name'")
        for what, value in (("actions", actions), ("not_actions", not_actions)):
            if not isinstance(value, list) or not all(isinstance(a, str) and a for a in value):
                raise ValueError(f"role {name!r}: '{what}' must be a list of action strings")
        return cls(name, tuple(actions), tuple(not_actions))

    def to_json(self) -> dict:
        return {"name": self.name, "actions": list(self.actions), "not_actions": list(self.not_actions)}


BUILTIN_ROLES = {
    r.name.lower(): r
    for r in (
        # e503ece1-11d0-4e8e-8e2c-7a6c3bf38815
        RoleDefinition("AzureML Compute Operator",
                       (f"{COMPUTES}/*", f"{PROVIDER}/workspaces/notebooks/vm/*")),
        # f6c7c914-8db3-469d-8ca1-694a8f32e121
        RoleDefinition(
            "AzureML Data Scientist",
            (f"{PROVIDER}/workspaces/*/read", f"{PROVIDER}/workspaces/*/action",
             f"{PROVIDER}/workspaces/*/delete", f"{PROVIDER}/workspaces/*/write"),
            (f"{PROVIDER}/workspaces/delete", f"{PROVIDER}/workspaces/write",
             f"{COMPUTES}/*/write", f"{COMPUTES}/*/delete", f"{COMPUTES}/listKeys/action",
             f"{PROVIDER}/workspaces/listKeys/action", f"{PROVIDER}/workspaces/hubs/write",
             f"{PROVIDER}/workspaces/hubs/delete", f"{PROVIDER}/workspaces/featurestores/write",
             f"{PROVIDER}/workspaces/featurestores/delete"),
        ),
        # acdd72a7-3385-48ef-bd42-f606fba81ae7
        RoleDefinition("Reader", ("*/read",)),
        # b24988ac-6180-42a0-ab88-20f7382dd24c (NotActions: the role-assignment and
        # governance actions; none of them is an AML action)
        RoleDefinition(
            "Contributor",
            ("*",),
            ("Microsoft.Authorization/*/Delete", "Microsoft.Authorization/*/Write",
             "Microsoft.Authorization/elevateAccess/Action", "Microsoft.Blueprint/blueprintAssignments/write",
             "Microsoft.Blueprint/blueprintAssignments/delete", "Microsoft.Compute/galleries/share/action",
             "Microsoft.Purview/consents/write", "Microsoft.Purview/consents/delete"),
        ),
        # 8e3af657-a8ff-443c-a75c-2fe8c4bcb635
        RoleDefinition("Owner", ("*",)),
    )
}


@lru_cache(maxsize=512)
def _pattern(text: str) -> re.Pattern:
    parts = [re.escape(p) for p in text.split("*")]
    body = ".*".join(parts)
    body = body.replace("/.*/", "(?:/.*/|/)")  # see the module docstring
    return re.compile(body + r"\Z", re.I)


def action_matches(pattern: str, action: str) -> bool:
    return bool(_pattern(pattern).match(action))


def allows(role: RoleDefinition, action: str) -> bool:
    return (any(action_matches(p, action) for p in role.actions)
            and not any(action_matches(p, action) for p in role.not_actions))


def scope_covers(assigned: str, scope: str) -> bool:
    """An assignment at ``assigned`` applies to ``scope`` and everything under it."""
    a = assigned.rstrip("/").lower()
    s = scope.rstrip("/").lower()
    return a == "" or s == a or s.startswith(a + "/")


# ---- requests -> actions ---------------------------------------------------

_SUB = r"/subscriptions/(?P<sub>[^/]+)"
_WS = _SUB + r"/resourceGroups/[^/]+/providers/" + PROVIDER + r"/workspaces/[^/]+"
_LOC = _SUB + r"/providers/" + PROVIDER + r"/locations/[^/]+"


@dataclass(frozen=True)
class Requirement:
    action: str
    scope: str
    # False for what ARM lets through on the strength of an earlier, authorized
    # request (the status of an operation the caller was allowed to start)
    checked: bool = True


def requirement(method: str, path: str) -> Requirement | None:
    """The action an ARM request needs and the scope ARM names; None for a
    request the emulator does not route (it answers 404 for those)."""
    path = path.rstrip("/")
    method = method.upper()
    m = re.match(_WS + r"(?P<rest>/.*)?\Z", path, re.I)
    if m:
        ws_end = m.end() - len(m.group("rest") or "")
        ws_id, rest = path[:ws_end], (m.group("rest") or "")
        segments = [s for s in rest.split("/") if s]
        if not segments:
            return Requirement(WORKSPACE_READ, ws_id) if method == "GET" else Requirement(
                f"{PROVIDER}/workspaces/{'delete' if method == 'DELETE' else 'write'}", ws_id)
        if segments[0].lower() != "computes":
            return None
        if len(segments) == 1:  # the list: ARM names the workspace
            return Requirement(f"{COMPUTES}/read", ws_id)
        compute_id = f"{ws_id}/{segments[0]}/{segments[1]}"
        if len(segments) == 2:
            verb = {"GET": "read", "PUT": "write", "PATCH": "write", "DELETE": "delete"}.get(method, "read")
            return Requirement(f"{COMPUTES}/{verb}", compute_id)
        if len(segments) == 3:
            # POST .../computes/{name}/{action}: the action's own name, as RBAC spells it
            return Requirement(f"{COMPUTES}/{_action_name(segments[2])}/action", compute_id)
        return None
    m = re.match(_LOC + r"/(?P<kind>[^/]+)(?:/[^/]+)?\Z", path, re.I)
    if m:
        sub_scope = path[: m.end("sub")]
        kind = m.group("kind").lower()
        if kind == "vmsizes":
            return Requirement(f"{PROVIDER}/locations/vmsizes/read", sub_scope)
        if kind == "usages":
            return Requirement(f"{PROVIDER}/locations/usages/read", sub_scope)
        if kind == "computeoperationsstatus":
            # Hubs whose identity holds roles on the workspace only (as
            # hub/setup-azure.sh assigns them) create and start instances, so
            # ARM must let them poll these subscription-level URLs.
            return Requirement(f"{PROVIDER}/locations/computeoperationsstatus/read", sub_scope, checked=False)
    return None


_ACTION_NAMES = {
    "listnodes": "listNodes",
    "listkeys": "listKeys",
    "enablesso": "enableSso",
    "updateidleshutdownsetting": "updateIdleShutdownSetting",
    "updateschedules": "updateSchedules",
    "updatedatamounts": "updateDataMounts",
    "applicationaccess": "applicationaccess",
}


def _action_name(segment: str) -> str:
    return _ACTION_NAMES.get(segment.lower(), segment.lower())


# ---- assignments -----------------------------------------------------------


@dataclass(frozen=True)
class Principal:
    """Who made an ARM request: ``oid`` its object id, ``client`` the name ARM
    shows (a user's upn, else the object id), ``ids`` every id an assignment
    may name it by (object id, app id, "static-token")."""

    oid: str
    client: str
    ids: frozenset


@dataclass(frozen=True)
class Assignment:
    principal: str
    role: str
    scope: str

    def to_json(self) -> dict:
        return {"principal": self.principal, "role": self.role, "scope": self.scope}


def authorized(assignments, roles: dict, principal: Principal, action: str, scope: str) -> bool:
    ids = {i.lower() for i in principal.ids}
    for a in assignments:
        if a.principal.lower() not in ids or not scope_covers(a.scope, scope):
            continue
        role = roles.get(a.role.lower())
        if role is not None and allows(role, action):
            return True
    return False


def refusal_message(principal: Principal, action: str, scope: str) -> str:
    return (f"The client '{principal.client}' with object id '{principal.oid}' does not have authorization to "
            f"perform action '{action}' over scope '{scope}' or the scope is invalid. If access was recently "
            "granted, please refresh your credentials.")
