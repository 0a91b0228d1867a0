"""The reconciler: one list of a workspace's instances per interval, shared
by every server of the hub, compared with the hub's servers.

As kubespawner's reflector, it is the one reader: ``poll()`` of every server
reads its snapshot instead of asking AML (N servers cost one ARM list per
interval, not N reads), and each pass compares AML with the hub. A Running
instance tagged with this hub whose server is not active is stopped (deleted
where the admin chose ``stop_action = "delete"``) once it has been seen so on
two passes at least half an interval apart, so an orphan is stopped within
two intervals of appearing and a server caught between two steps is never
mistaken for one. Instances of other hubs, and untagged ones, are never
touched. The suspects (and when each was first seen) are kept in a file, so
a hub restart does not start their count again: an orphan seen before the
restart is stopped at the first pass after it, which comes soon after start.

:func:`plan` is the decision, pure; :class:`Reconciler` does the reading and
hands actions to the fleet (which takes the instance's lock and checks again
that no server has claimed it meanwhile).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import tempfile
import time
from pathlib import Path
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Iterable

from . import ownership
from .metrics import RECONCILER_ACTIONS
from .compute import ComputeError, InstanceInfo

log = logging.getLogger("aml_jupyterhub.reconciler")

# States in which an instance bills for compute and AML accepts a stop.
BILLING_STATES = frozenset({"Running"})
# The first pass after the hub starts (or the interval, if shorter): the hub has
# loaded its servers by then, and an orphan it knew of before its restart should
# not run a whole interval more.
FIRST_PASS_AFTER = 30.0


def suspects_path(state_dir: str, workspace_key: tuple) -> Path | None:
    """Where a workspace's reconciler keeps its suspects across restarts (None: nowhere)."""
    if not state_dir:
        return None
    digest = hashlib.sha256("/".join(workspace_key).lower().encode()).hexdigest()[:16]
    return Path(state_dir) / f"suspects-{digest}.json"


@dataclass(frozen=True)
class Snapshot:
    """What one list said. ``taken_at`` is when the list was asked for
    (time.monotonic), so nothing made after that is expected in it."""

    taken_at: float
    instances: dict  # lower-case name -> InstanceInfo

    @classmethod
    def of(cls, taken_at: float, infos: Iterable[InstanceInfo]) -> "Snapshot":
        return cls(taken_at, {i.name.lower(): i for i in infos})

    def get(self, name: str) -> InstanceInfo | None:
        return self.instances.get(name.lower())


@dataclass(frozen=True)
class Action:
    kind: str  # "stop" or "delete"
    name: str
    owner: ownership.Owner
    why: str


@dataclass
class Plan:
    actions: list[Action] = field(default_factory=list)
    suspects: dict = field(default_factory=dict)  # lower-case name -> taken_at of the first pass that saw it orphaned
    left_running: list[InstanceInfo] = field(default_factory=list)  # orphans newly seen with stop_action "keep"


def plan(
    snapshot: Snapshot,
    *,
    hub_id: str,
    in_use: set[str],
    suspects: dict,
    min_age: float,
    stop_action: str,
) -> Plan:
    """What to do about ``snapshot``: ``in_use`` holds the lower-case names
    of instances an active server (or a stop under way) is using; ``suspects``
    is the previous plan's."""
    out = Plan()
    for key, info in snapshot.instances.items():
        if not ownership.is_this_hubs(info.tags, hub_id) or key in in_use:
            continue
        owner = ownership.owner_of(info.tags)
        if owner is None:
            continue
        first_seen = suspects.get(key, snapshot.taken_at)
        out.suspects[key] = first_seen
        if info.state not in BILLING_STATES:
            continue
        if stop_action == "keep":
            if key not in suspects:
                out.left_running.append(info)
            continue
        if snapshot.taken_at - first_seen < min_age:
            continue  # first sighting: a server may be between two steps
        kind = "delete" if stop_action == "delete" else "stop"
        since = max(0.0, snapshot.taken_at - first_seen)
        out.actions.append(Action(kind, info.name, owner,
                                  f"it is {info.state} and no server of the hub uses it (seen so for {since:.0f} s)"))
    return out


class Reconciler:
    """The snapshot and the reconciling loop of one workspace.

    :param list_instances: coroutine function returning the workspace's instances.
    :param in_use: the lower-case names of instances that must not be touched now.
    :param act: hands an :class:`Action` over (to the fleet).
    """

    def __init__(
        self,
        workspace: str,
        list_instances: Callable[[], Awaitable[list[InstanceInfo]]],
        *,
        hub_id: str,
        interval: float,
        stop_action: str,
        in_use: Callable[[], set[str]],
        act: Callable[[Action], None],
        suspects_file: str | os.PathLike | None = None,
    ):
        self.workspace = workspace
        self._list = list_instances
        self.hub_id = hub_id
        self.interval = interval
        self.stop_action = stop_action
        self._in_use = in_use
        self._act = act
        self._snapshot: Snapshot | None = None
        self._refreshing: asyncio.Future | None = None
        self._suspects: dict = {}
        self._task: asyncio.Task | None = None
        self._failing: str | None = None  # the message of the list failure last logged
        self._fresh_after = 0.0  # a list taken before this (monotonic) is too old, whatever max_age says
        self._suspects_file = Path(suspects_file) if suspects_file else None

    @property
    def latest(self) -> Snapshot | None:
        """The last list, however old (None before the first)."""
        return self._snapshot

    async def snapshot(self, max_age: float) -> Snapshot:
        """A snapshot at most ``max_age`` seconds old: the last one, or a new
        list that every caller waiting at the same time shares."""
        snap = self._snapshot
        if snap is not None and time.monotonic() - snap.taken_at < max_age and snap.taken_at >= self._fresh_after:
            return snap
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.ensure_future(self._refresh())
        return await asyncio.shield(self._refreshing)

    async def _refresh(self) -> Snapshot:
        taken_at = time.monotonic()
        snap = Snapshot.of(taken_at, await self._list())
        if self._snapshot is None or snap.taken_at >= self._snapshot.taken_at:
            self._snapshot = snap
        return snap

    def reconcile(self, snap: Snapshot) -> Plan:
        """One pass over ``snap``: hand over what must be done, remember suspects."""
        result = plan(snap, hub_id=self.hub_id, in_use=self._in_use(), suspects=self._suspects,
                      min_age=self.interval / 2, stop_action=self.stop_action)
        self._suspects = result.suspects
        for info in result.left_running:
            RECONCILER_ACTIONS.labels("left_running").inc()
            owner = ownership.owner_of(info.tags)
            log.warning("reconciler: compute instance %s of %s in workspace %s is %s with no server; left running "
                        "(stop_action=keep)", info.name, owner.describe() if owner else "?", self.workspace, info.state)
        for action in result.actions:
            self.act(action)
        return result

    def want_fresh(self) -> None:
        """The next snapshot() lists anew (the hub just changed an instance: the last list is out of date)."""
        self._fresh_after = time.monotonic()

    def act(self, action: Action) -> None:
        """Hand ``action`` over as a pass would (the fleet checks again that no server uses the instance)."""
        RECONCILER_ACTIONS.labels(action.kind).inc()
        self._act(action)

    # ---- the suspects across hub restarts (a file per workspace; wall-clock times in it) ----

    def load_suspects(self) -> dict:
        """The suspects a previous hub saved, first-seen times made monotonic (blocking: a thread)."""
        if self._suspects_file is None:
            return {}
        try:
            data = json.loads(self._suspects_file.read_text())
            now_wall, now = time.time(), time.monotonic()
            return {str(name): now - max(0.0, now_wall - float(wall)) for name, wall in data.items()}
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, TypeError, AttributeError) as e:
            log.warning("reconciler: ignoring %s (%s): orphans are counted from now", self._suspects_file, e)
            return {}

    def save_suspects(self, suspects: dict) -> None:
        """Blocking: run it in a thread. A failure costs only the count across a restart."""
        if self._suspects_file is None:
            return
        now_wall, now = time.time(), time.monotonic()
        data = {name: round(now_wall - (now - first_seen), 3) for name, first_seen in suspects.items()}
        try:
            self._suspects_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self._suspects_file.parent, prefix=".suspects.")
            with os.fdopen(fd, "w") as f:
                json.dump(data, f)
            os.replace(tmp, self._suspects_file)
        except OSError as e:
            log.warning("reconciler: could not save its suspects to %s: %s", self._suspects_file, e)

    async def _loop(self) -> None:
        # Passes keep a fixed cadence (a slow list does not push the next one back).
        next_pass = time.monotonic() + min(self.interval, FIRST_PASS_AFTER)
        self._suspects = {**await asyncio.to_thread(self.load_suspects), **self._suspects}
        while True:
            await asyncio.sleep(max(0.0, next_pass - time.monotonic()))
            next_pass = max(next_pass + self.interval, time.monotonic())
            try:
                self.reconcile(await self.snapshot(self.interval / 2))
                await asyncio.to_thread(self.save_suspects, dict(self._suspects))
            except ComputeError as e:
                self._list_failed(e)
            except Exception:
                log.exception("reconciler: pass over %s failed", self.workspace)
            else:
                if self._failing is not None:
                    log.info("reconciler: listing the compute instances of %s works again", self.workspace)
                    self._failing = None

    def _list_failed(self, e: ComputeError) -> None:
        """One warning per kind of failure, not one per pass: a refusal (403)
        lasts until an admin acts, and a line every interval would bury the rest."""
        if e.message == self._failing:
            log.debug("reconciler: still cannot list the compute instances of %s: %s", self.workspace, e.message)
            return
        self._failing = e.message
        log.warning("reconciler: could not list the compute instances of %s, so orphaned instances are not "
                    "stopped until it can (said once until this changes): %s", self.workspace, e.message)

    def start(self) -> None:
        if self.interval > 0 and (self._task is None or self._task.done()):
            self._task = asyncio.ensure_future(self._loop())
