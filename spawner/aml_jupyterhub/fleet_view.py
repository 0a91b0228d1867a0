"""What the admin's instances page shows: every instance of this hub, with
its owner, its server, what it costs (pure).

The hub's API handler (``instances_api``) gathers the facts (the
reconcilers' lists, the hub's servers, the priced size lists) and this
module turns them into rows: which server uses an instance, whether it runs
without one (an orphan), whether a stop is under way, since when it runs
and what it cost so far.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass

from . import ownership


@dataclass(frozen=True)
class ServerUse:
    """A server of the hub and the instance it uses."""

    user: str
    server: str
    status: str  # running, starting, stopping, stopped


@dataclass(frozen=True)
class Row:
    workspace: str
    subscription_id: str
    resource_group: str
    name: str
    user: str
    server: str
    vm_size: str
    state: str
    server_status: str  # the hub's server on it: running, starting, stopping, or none
    orphan: bool  # Running with no server of the hub using it
    stopping: bool  # a stop is under way (AML's Stopping, or the hub still settling it)
    running_since: float | None  # epoch seconds, while Running
    price_per_hour: float | None
    cost_so_far: float | None

    def to_json(self) -> dict:
        return asdict(self)


def operation_time(last_operation: dict) -> float | None:
    """When AML's last operation on an instance began (``lastOperation.operationTime``), as epoch seconds."""
    raw = last_operation.get("operation_time") or last_operation.get("operationTime")
    if not raw:
        return None
    if isinstance(raw, dt.datetime):
        when = raw
    else:
        try:
            when = dt.datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
        except ValueError:
            return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return when.timestamp()


def rows(workspace_key: tuple[str, str, str], instances, hub_id: str, servers: dict[str, ServerUse],
         prices: dict[str, float], settling: set[str], now: float, busy: set[str] = frozenset()) -> list[Row]:
    """The rows of one workspace: ``instances`` its InstanceInfo list, ``servers``
    lower-case instance name -> the server using it, ``prices`` lower-case size
    -> per hour, ``settling`` lower-case names of instances the hub is bringing
    to rest, ``busy`` those an operation of the hub holds now (a server's stop
    stopping its instance: not an orphan, though its server is gone)."""
    sub, rg, ws = workspace_key
    out = []
    for info in instances:
        owner = ownership.owner_of(info.tags)
        if owner is None or owner.hub != hub_id:
            continue  # another hub's, or nobody's: not this page's
        key = info.name.lower()
        use = servers.get(key)
        active = use is not None and use.status != "stopped"
        running = info.state == "Running"
        since = None
        if running:
            op = info.last_operation or {}
            name = (op.get("operation_name") or op.get("operationName") or "").lower()
            since = operation_time(op) if name in ("create", "start", "restart", "resize") else None
        price = prices.get((info.vm_size or "").lower())
        cost = round(price * max(0.0, now - since) / 3600, 4) if (price is not None and since) else None
        out.append(Row(
            workspace=ws, subscription_id=sub, resource_group=rg, name=info.name,
            user=use.user if use else owner.user, server=use.server if use else owner.server,
            vm_size=info.vm_size or "", state=info.state or "Unknown",
            server_status=use.status if active else "none",
            orphan=running and not active and key not in settling and key not in busy,
            stopping=info.state == "Stopping" or key in settling or (key in busy and not active),
            running_since=since, price_per_hour=price if running else None, cost_so_far=cost,
        ))
    return sorted(out, key=lambda r: (r.user, r.server, r.name))
