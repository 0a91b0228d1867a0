"""Spawn progress: real phases, real AML states, monotonic percentages.

start() reports what is happening (the phase, AML's own instance state and
operation status, the elapsed time); progress() streams it. Percentages come
from AML's ``percentComplete`` when the service sends one, otherwise from the
elapsed time against the phase's typical duration (capped below the phase's
end, and said to be typical in the message), and never go backwards.
"""

from __future__ import annotations

import asyncio
import time

# phase -> (start %, end %, typical seconds on Azure)
PHASES = {
    "prepare": (0, 5, 2),
    "create": (5, 70, 300),
    "start": (5, 70, 120),
    "wait": (5, 70, 120),
    "delete": (5, 70, 60),
    "stop": (5, 30, 60),
    "resize": (30, 50, 120),
    "connect": (70, 78, 10),
    "install": (78, 88, 90),
    "launch": (88, 99, 20),
}


def fmt_elapsed(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    return f"{seconds // 60}m {seconds % 60:02d}s"


class ProgressLog:
    def __init__(self):
        self.events: list[dict] = []
        self.percent = 0
        self.finished = False
        self.started = time.monotonic()
        self._changed = asyncio.Event()

    def emit(self, phase: str, message: str, *, fraction: float | None = None, elapsed: float | None = None) -> dict:
        low, high, typical = PHASES.get(phase, (self.percent, self.percent, 1))
        if fraction is None:
            fraction = 0.0 if elapsed is None else min(0.9, elapsed / typical)
        pct = int(low + (high - low) * max(0.0, min(1.0, fraction)))
        self.percent = max(self.percent, pct, low)
        event = {"progress": self.percent, "message": message}
        self.events.append(event)
        self._changed.set()
        return event

    def finish(self) -> None:
        self.finished = True
        self._changed.set()

    async def stream(self):
        i = 0
        while True:
            while i < len(self.events):
                yield self.events[i]
                i += 1
            if self.finished:
                return
            self._changed.clear()
            if i < len(self.events):
                continue
            try:
                await asyncio.wait_for(self._changed.wait(), 1.0)
            except asyncio.TimeoutError:
                pass
