"""Role assignments at run time: who may do what where, and the control API
that changes them (``GET``/``PUT /_emulator/roles``).

An assignment names a principal, a role (built-in or custom) and a scope (an
ARM id: a workspace, a resource group, a subscription, or ``/``). Principals
are named by object id, app (client) id, a user's upn, ``static-token``
(whoever sends one of ``--arm-token``'s tokens) or ``hub``: the hub's
identity, i.e. the static token and the app-only tokens of the first app
registration (the hub's own).

Without settings the hub gets what hub/setup-azure.sh gives it in Azure,
AzureML Compute Operator and Reader on every workspace served, plus Reader
on their subscriptions so that VM sizes and usages, which ARM authorizes at
subscription scope, answer as before. Nobody else holds a role. ``POST
/_emulator/reset`` restores the assignments the emulator started with.
Assignments live in memory; a restart starts from the settings again.
"""

from __future__ import annotations

import json
import uuid
from aiohttp import web

from . import rbac
from .errors import ArmError

HUB = "hub"
STATIC_TOKEN = "static-token"
# The object id ARM's refusals name for a static-token caller (any stable GUID).
STATIC_TOKEN_OID = str(uuid.uuid5(uuid.NAMESPACE_URL, "aml-emulator:static-arm-token"))


def workspace_ids(workspaces) -> list[str]:
    return [f"/subscriptions/{w.subscription_id}/resourceGroups/{w.resource_group}/providers/"
            f"{rbac.PROVIDER}/workspaces/{w.name}" for w in workspaces]


def default_assignments(workspaces) -> list[rbac.Assignment]:
    out = []
    for ws_id in workspace_ids(workspaces):
        out += [rbac.Assignment(HUB, "AzureML Compute Operator", ws_id), rbac.Assignment(HUB, "Reader", ws_id)]
    for sub in dict.fromkeys(w.subscription_id for w in workspaces):
        out.append(rbac.Assignment(HUB, "Reader", f"/subscriptions/{sub}"))
    return out


def parse_settings(raw, workspaces, custom=()) -> tuple[list[rbac.Assignment] | None, list[rbac.RoleDefinition]]:
    """``{"assignments": [...], "definitions": [...]}`` -> (assignments or None
    when not given, custom roles); raises ValueError saying what is wrong.

    An assignment is ``{"principal", "role", "scope"}``; without ``scope`` it
    is made on every workspace served. ``custom`` are custom roles defined
    before, which assignments may name too.
    """
    if not isinstance(raw, dict):
        raise ValueError('roles must be an object {"assignments": [...], "definitions": [...]}')
    unknown = set(raw) - {"assignments", "definitions"}
    if unknown:
        raise ValueError(f"unknown roles settings: {', '.join(sorted(unknown))}")
    definitions = [rbac.RoleDefinition.from_json(d) for d in raw.get("definitions", [])]
    clash = [d.name for d in definitions if d.name.lower() in rbac.BUILTIN_ROLES]
    if clash:
        raise ValueError(f"custom role names must differ from the built-in roles: {', '.join(clash)}")
    known = {**rbac.BUILTIN_ROLES, **{d.name.lower(): d for d in (*custom, *definitions)}}
    if "assignments" not in raw:
        return None, definitions
    items = raw["assignments"]
    if not isinstance(items, list):
        raise ValueError("'assignments' must be a list")
    out = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("principal"), str) or not item["principal"].strip():
            raise ValueError(f"an assignment needs a 'principal' (object id, app id, upn, hub or static-token): {item!r}")
        role = item.get("role")
        if not isinstance(role, str) or role.lower() not in known:
            names = ", ".join(sorted(r.name for r in known.values()))
            raise ValueError(f"unknown role {role!r}; known roles: {names} (or define one under 'definitions')")
        scope = item.get("scope")
        if scope is None:
            scopes = workspace_ids(workspaces)
        elif isinstance(scope, str) and scope.startswith("/"):
            scopes = [scope]
        else:
            raise ValueError(f"scope {scope!r} must be an ARM id starting with '/' (e.g. a workspace's id), or left out")
        out += [rbac.Assignment(item["principal"].strip(), known[role.lower()].name, s) for s in scopes]
    return out, definitions


class Roles:
    """The assignments and custom roles in force, and the check ARM makes."""

    def __init__(self, workspaces, settings: dict | None = None, hub_client_id: str | None = None):
        self.workspaces = list(workspaces)
        self.hub_client_id = hub_client_id
        assignments, definitions = parse_settings(settings or {}, self.workspaces)
        self._initial = (assignments if assignments is not None else default_assignments(self.workspaces),
                         definitions)
        self.reset()

    def reset(self) -> None:
        self.assignments, definitions = list(self._initial[0]), list(self._initial[1])
        self.definitions = {d.name.lower(): d for d in definitions}

    def roles(self) -> dict:
        return {**rbac.BUILTIN_ROLES, **self.definitions}

    def principal_static(self) -> rbac.Principal:
        return rbac.Principal(STATIC_TOKEN_OID, STATIC_TOKEN_OID, frozenset({STATIC_TOKEN, HUB, STATIC_TOKEN_OID}))

    def principal_from_claims(self, claims: dict) -> rbac.Principal:
        oid = str(claims.get("oid") or claims.get("sub") or "")
        upn = claims.get("upn")
        ids = {oid, *(x for x in (upn, claims.get("appid")) if x)}
        if claims.get("idtyp") == "app" and self.hub_client_id and claims.get("appid") == self.hub_client_id:
            ids.add(HUB)
        if claims.get("idtyp") != "app":
            ids.discard(claims.get("appid"))  # a user signed in through an app is the user, not the app
        return rbac.Principal(oid, upn or oid, frozenset(ids))

    def check(self, method: str, path: str, principal: rbac.Principal) -> ArmError | None:
        """ARM's refusal of the request, or None when it may go on."""
        need = rbac.requirement(method, path)
        if need is None or not need.checked:
            return None
        if rbac.authorized(self.assignments, self.roles(), principal, need.action, need.scope):
            return None
        # 403 without Retry-After: retrying cannot help until an admin acts
        return ArmError(403, "AuthorizationFailed", rbac.refusal_message(principal, need.action, need.scope))

    def permissions(self, principal: rbac.Principal, scope: str) -> list[dict]:
        """ARM's ``Microsoft.Authorization/permissions`` answer: one entry per
        role assigned to ``principal`` at ``scope`` or above it."""
        ids = {i.lower() for i in principal.ids}
        roles = self.roles()
        out = []
        for a in self.assignments:
            role = roles.get(a.role.lower())
            if role is not None and a.principal.lower() in ids and rbac.scope_covers(a.scope, scope):
                out.append({"actions": list(role.actions), "notActions": list(role.not_actions),
                            "dataActions": [], "notDataActions": []})
        return out

    def to_json(self) -> dict:
        return {
            "assignments": [a.to_json() for a in self.assignments],
            "definitions": [d.to_json() for d in self.definitions.values()],
            "builtin_roles": [r.to_json() for r in rbac.BUILTIN_ROLES.values()],
            "principals": {HUB: "the static ARM token and the hub app's own (app-only) tokens"
                                + (f" (client id {self.hub_client_id})" if self.hub_client_id else ""),
                           STATIC_TOKEN: f"callers with a static ARM token (object id {STATIC_TOKEN_OID})"},
        }

    def replace(self, raw) -> None:
        """Replace the assignments and/or the custom roles (what ``raw`` names; the rest is kept)."""
        kept = () if isinstance(raw, dict) and "definitions" in raw else tuple(self.definitions.values())
        assignments, definitions = parse_settings(raw, self.workspaces, kept)
        if "definitions" in raw:
            self.definitions = {d.name.lower(): d for d in definitions}
        if assignments is not None:
            self.assignments = assignments


class RolesApi:
    """``GET /_emulator/roles``: what is in force; ``PUT``: replace it
    (``{"assignments": [...]}`` and/or ``{"definitions": [...]}``)."""

    def __init__(self, roles: Roles):
        self.roles = roles

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/_emulator/roles", self.get)
        app.router.add_put("/_emulator/roles", self.put)
        # ARM's "what may the caller do here" (Permissions - List For Resource / Resource Group)
        app.router.add_get("/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Authorization/permissions",
                           self.permissions)
        app.router.add_get("/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.MachineLearningServices/"
                           "workspaces/{ws}/providers/Microsoft.Authorization/permissions", self.permissions)

    async def permissions(self, request):
        m = request.match_info
        scope = f"/subscriptions/{m['sub']}/resourceGroups/{m['rg']}"
        if "ws" in m:
            known = any(w.subscription_id.lower() == m["sub"].lower() and w.resource_group.lower() == m["rg"].lower()
                        and w.name.lower() == m["ws"].lower() for w in self.roles.workspaces)
            if not known:
                return web.json_response({"error": {"code": "ResourceNotFound", "message": (
                    f"The Resource 'Microsoft.MachineLearningServices/workspaces/{m['ws']}' under resource group "
                    f"'{m['rg']}' was not found.")}}, status=404)
            scope += f"/providers/Microsoft.MachineLearningServices/workspaces/{m['ws']}"
        return web.json_response({"value": self.roles.permissions(request["principal"], scope)})

    async def get(self, request):
        return web.json_response(self.roles.to_json())

    async def put(self, request):
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return web.json_response({"error": "body must be JSON"}, status=400)
        try:
            self.roles.replace(body)
        except ValueError as e:
            return web.json_response({"error": str(e)}, status=400)
        return web.json_response(self.roles.to_json())


def load_settings(source) -> dict:
    """``--roles``: a JSON object, or the path of a file holding one."""
    if isinstance(source, dict):
        return source
    text = str(source).strip()
    if not text.startswith("{"):
        with open(text, encoding="utf-8") as f:
            text = f.read()
    return json.loads(text)

