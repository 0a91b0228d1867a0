"""The hub's API behind the admin's instances page (``instances_page``).

    GET  /hub/api/aml/instances          every instance of this hub, as fleet_view's rows
    POST /hub/api/aml/instances/stop     {"workspace": [sub, rg, ws], "name": ...}: stop it

Only a token with the custom scope ``custom:aml-instances:read`` (and
``:stop`` to stop) gets through: the hub grants them to the page's service
alone, which lets in only users allowed to access it (admins). The rows come
from the reconcilers' lists (a list older than its interval is read again,
shared with every poll), so the page costs at most one ARM list per
workspace per interval. A stop of an instance a server uses stops that
server (the hub then stops the instance, as for any stop); a stop of an
orphan hands it to the fleet, which stops it unless a server took it.
"""

from __future__ import annotations

import json
import time

from jupyterhub.apihandlers import APIHandler
from tornado import web

from . import fleet as fleet_module
from . import ownership
from .compute import ComputeError
from .fleet_view import ServerUse, rows
from .reconciler import Action

LIST_AGE = 10  # seconds: how old a list the page may show
READ_SCOPE = "custom:aml-instances:read"
STOP_SCOPE = "custom:aml-instances:stop"
CUSTOM_SCOPES = {
    READ_SCOPE: {"description": "List this hub's Azure ML compute instances, their owners and costs."},
    STOP_SCOPE: {"description": "Stop this hub's Azure ML compute instances (and the servers on them)."},
}


def _status(spawner) -> str:
    if spawner.ready:
        return "running"
    pending = spawner.pending
    return {"spawn": "starting", "stop": "stopping", "check": "running"}.get(pending, "stopped")


class _Base(APIHandler):
    def _need(self, scope: str) -> None:
        if scope not in self.expanded_scopes:
            raise web.HTTPError(403, f"This needs the scope {scope}, which only the instances page's service has.")

    def _servers(self) -> dict[tuple, tuple]:
        """(workspace key, lower-case instance name) -> (User, spawner) of every AML server the hub has loaded."""
        from .aml_spawner import AMLSpawner

        out = {}
        for user in list(self.users.values()):
            for sp in list(user.spawners.values()):
                if isinstance(sp, AMLSpawner) and sp.instance_key:
                    out[sp.instance_key] = (user, sp)
        return out


class InstancesHandler(_Base):
    async def get(self):
        self._need(READ_SCOPE)
        fleet = fleet_module.shared()
        servers = self._servers()
        prices = fleet.prices()
        out, problems = [], []
        for ws_key, rec in fleet.reconcilers_by_workspace():
            try:
                # at most LIST_AGE old: an admin acting on the page reads what is; one list shared by all viewers
                snap = await rec.snapshot(min(max(rec.interval, 1), LIST_AGE))
            except ComputeError as e:
                problems.append(f"{rec.workspace}: {e.message}")
                continue
            uses = {name: ServerUse(user.name, sp.name or "", _status(sp))
                    for (ws, name), (user, sp) in servers.items() if ws == ws_key}
            settling = {name for (ws, name) in fleet.settling_keys() if ws == ws_key}
            busy = {name for (ws, name) in fleet.busy_keys() if ws == ws_key}
            out += [r.to_json() for r in rows(ws_key, snap.instances.values(), rec.hub_id, uses, prices, settling,
                                              time.time(), busy)]
        self.finish({"instances": out, "problems": problems,
                     "reconciler": bool(fleet.reconcilers()), "listed_at": time.time()})


class StopInstanceHandler(_Base):
    async def post(self):
        self._need(STOP_SCOPE)
        try:
            body = json.loads(self.request.body or b"{}")
            ws_key = tuple(str(k).lower() for k in body["workspace"])
            name = str(body["name"]).lower()
            assert len(ws_key) == 3
        except (ValueError, KeyError, TypeError, AssertionError):
            raise web.HTTPError(400, 'Send {"workspace": [subscription, resource group, workspace], "name": ...}.')
        acting = self.request.headers.get("X-AML-Acting-User", "?")[:100]
        used = self._servers().get((ws_key, name))
        if used is not None and used[1].active:
            user, sp = used
            self.log.info("instances page: %s stops %s's server %r (compute instance %s)", acting, user.name,
                          sp.name, name)
            if not sp._stop_pending:
                await self.stop_single_user(user, sp.name)
            rec = dict(fleet_module.shared().reconcilers_by_workspace()).get(ws_key)
            if rec is not None:
                rec.want_fresh()  # the page shows what the stop did, not the list from before it
            self.finish({"stopped": "server", "user": user.name, "server": sp.name or ""})
            return
        rec = dict(fleet_module.shared().reconcilers_by_workspace()).get(ws_key)
        snap = rec.latest if rec is not None else None
        info = snap.get(name) if snap is not None else None
        owner = ownership.owner_of(info.tags) if info is not None else None
        if info is None or owner is None or owner.hub != rec.hub_id:
            raise web.HTTPError(404, f"No compute instance {name} of this hub in that workspace.")
        self.log.warning("instances page: %s stops compute instance %s of %s, which no server uses", acting,
                         info.name, owner.describe())
        rec.act(Action("stop", info.name, owner, f"stopped from the instances page by {acting}"))
        rec.want_fresh()
        self.finish({"stopped": "instance", "name": info.name})


def api_handlers() -> list:
    return [(r"/api/aml/instances", InstancesHandler), (r"/api/aml/instances/stop", StopInstanceHandler)]
