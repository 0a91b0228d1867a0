"""What AML does to an instance on its own: idle shutdown and start/stop schedules.

Every few (real) seconds, and whenever a test moves the emulator's clock
(``POST /_emulator/clock``), :class:`Automation` looks at each instance:

- **Idle shutdown.** A Running instance with ``idleTimeBeforeShutdown`` has
  its own Jupyter server sampled (``runtime.running_lab`` + the
  ``jupyter_activity`` probe; what counts is ``idle``'s business). Once it
  has been idle that long it is stopped as AML stops it: a Stop operation
  with ``operationTrigger: IdleShutdown``.
- **Schedules.** Each Enabled ``computeStartStop`` schedule that fell due
  since the last look starts a Stopped instance or stops a Running one
  (``operationTrigger: Schedule``); one that finds the instance already so,
  or busy with another operation, does nothing, as AML's does.

Times are the emulator clock's (``clock``), so moving it forward makes what
would happen in those minutes happen now. The bookkeeping lives in
``Instance.automation`` and is persisted with the instance.
"""

from __future__ import annotations

import asyncio
import json
import logging

from . import idle, schedules
from .errors import ArmError
from .runtime.probes import jupyter_activity

log = logging.getLogger("aml_emulator")

DEFAULT_INTERVAL = 5.0  # real seconds between looks: AML's own detection lags too
MAX_STEPS = 10_000  # events one clock advance may run (a per-minute schedule over a week is 10080)


class Automation:
    def __init__(self, backend, interval: float = DEFAULT_INTERVAL):
        self.backend = backend
        self.clock = backend.clock
        self.interval = interval
        self._lock = asyncio.Lock()
        self._task: asyncio.Task | None = None

    # ---- lifecycle ---------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="automation")

    async def close(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                async with self._lock:
                    before = self._idle_books()
                    await self._tick()
                    if self._idle_books() != before:  # activity seen: keep it across an emulator restart
                        self.backend.save()
            except asyncio.CancelledError:
                raise
            except Exception:  # one bad look must not end idle shutdown for good
                log.exception("automation: a look at the instances failed")

    # ---- moving the clock ----------------------------------------------

    async def advance(self, seconds: float) -> list[dict]:
        """Move the clock ``seconds`` forward, stopping at each moment something
        falls due on the way (in order, each transition it starts run to its
        end first, so a Stop at 18:00 and a Start at 08:00 both happen); return
        what was done."""
        if seconds < 0:
            raise ValueError("advance_seconds must be >= 0: the clock only moves forward")
        async with self._lock:
            # activity seen so far belongs to the time before the jump; each
            # transition started on the way runs (in real seconds) to its end
            # before later events look at the instance
            done = await self._tick(settle=True)
            target = self.clock.now() + seconds
            for _ in range(MAX_STEPS):
                nxt = self._next_event()
                if nxt is None or nxt > target:
                    break
                self.clock.advance(max(0.0, nxt - self.clock.now()))
                done += await self._tick(settle=True)
            else:
                log.warning("clock advance: stopped stepping after %d events", MAX_STEPS)
            self.clock.advance(max(0.0, target - self.clock.now()))
            done += await self._tick(settle=True)
            self.backend.save()
            return done

    def _idle_books(self) -> str:
        return json.dumps({i.name: i.automation.get("idle") for i in self.backend.instances.values()}, sort_keys=True)

    def _next_event(self) -> float | None:
        """The next moment after now when something may fall due. An idle
        deadline already past (the instance was busy then) is left to the looks."""
        now = self.clock.now()
        times = []
        for inst in self.backend.instances.values():
            book = inst.automation
            parsed = self._schedules(inst)
            if parsed and "schedules_at" in book:
                t = schedules.next_event(parsed, book["schedules_at"])
                if t is not None:
                    times.append(t)
            if inst.state == "Running":
                t = idle.shutdown_at(inst.idle_minutes, book.get("idle") or {})
                if t is not None and t > now:
                    times.append(t)
        return min(times) if times else None

    # ---- one look ------------------------------------------------------

    async def _tick(self, settle: bool = False) -> list[dict]:
        """Look at every instance once; ``settle``: after starting a transition,
        wait for it to end (a clock advance, where minutes pass in no time)."""
        done = []
        for inst in list(self.backend.instances.values()):
            try:
                done += await self._look(inst, settle)
            except ArmError as e:  # e.g. no quota left to start: AML's schedule fails the same way
                log.warning("automation: %s: %s", inst.name, e.message)
        return done

    def _schedules(self, inst) -> list[schedules.Schedule]:
        try:
            return schedules.parse_all(inst.schedules)
        except ValueError:  # stored before validation existed: not carried out
            return []

    async def _look(self, inst, settle: bool) -> list[dict]:
        now = self.clock.now()
        book = inst.automation
        done = []
        ws = self.backend.workspaces.get(inst.workspace)
        if ws is None:
            return done

        # schedules: what fell due since the last look (or since they were set)
        key = json.dumps(inst.schedules, sort_keys=True)
        if book.get("schedules_key") != key:
            book.update(schedules_key=key, schedules_at=now)
        for _when, sched in schedules.due(self._schedules(inst), book["schedules_at"], now):
            action = sched.action.lower()
            if inst.busy or inst.state != {"start": "Stopped", "stop": "Running"}[action]:
                log.info("schedule: %s of %s skipped: it is %s", action, inst.name, inst.state)
                continue
            log.info("schedule: %s %s", action, inst.name)
            await self.backend.action(ws, inst.name, action, "Schedule")
            done.append({"name": inst.name, "action": sched.action, "trigger": "Schedule"})
            if settle:
                await self.backend.wait_idle()
        book["schedules_at"] = now

        # idle shutdown: only while Running with an idle time
        if inst.state != "Running" or inst.busy or not inst.idle_minutes:
            return done
        since = f"{(inst.last_operation or {}).get('operationName')}@{(inst.last_operation or {}).get('operationTime')}"
        sample = None
        lab = await self.backend.runtime.running_lab(inst.runtime_view())
        if lab:
            sample = await jupyter_activity(lab)
        book["idle"] = idle.observe(book.get("idle") or {}, sample, now, since)
        if idle.due_for_shutdown(inst.idle_minutes, book["idle"], now):
            log.info("idle shutdown: %s idle for %.0f s", inst.name, idle.idle_seconds(book["idle"], now))
            await self.backend.action(ws, inst.name, "stop", "IdleShutdown")
            done.append({"name": inst.name, "action": "Stop", "trigger": "IdleShutdown"})
            if settle:
                await self.backend.wait_idle()
        return done
