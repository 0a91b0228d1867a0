"""Spawn progress: real phases, real AML states, monotonic percentages.

start() reports what is happening (the phase, AML's own instance state and
operation status, the elapsed time, an estimate of the time left); progress()
streams it. Azure ML reports no percentage while an operation runs, so
percentages come from the elapsed time against the time the operation is
expected to take (this hub's own median, or the typical figure: the message
says which), capped below the phase's end, and never go backwards.
"""

from __future__ import annotations

import asyncio
import math
import time

from .timings import TYPICAL_SECONDS

# phase -> (start %, end %, typical seconds on Azure); the AML operations'
# figures are timings' (one source for the estimate and the poll schedule)
PHASES = {
    "prepare": (0, 5, 2),
    "create": (5, 70, TYPICAL_SECONDS["create"]),
    "start": (5, 70, TYPICAL_SECONDS["start"]),
    "wait": (5, 70, TYPICAL_SECONDS["start"]),
    "delete": (5, 70, TYPICAL_SECONDS["delete"]),
    "stop": (5, 30, TYPICAL_SECONDS["stop"]),
    "resize": (30, 50, TYPICAL_SECONDS["resize"]),
    "connect": (70, 78, 10),
    "install": (78, 88, 90),
    "launch": (88, 99, 20),
}


def fmt_elapsed(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    return f"{seconds // 60}m {seconds % 60:02d}s"


def time_left(elapsed: float, expected: float, basis: int) -> str:
    """", about 3 min left (usually 4m 00s on this hub)"-style text: shrinks as time goes, never grows."""
    usual = fmt_elapsed(expected)
    source = (f"the median of this hub's last {basis}" if basis > 1 else "this hub's last one" if basis == 1
              else "typical on Azure")
    left = expected - elapsed
    if left > 60:
        when = f"about {math.ceil(left / 60)} min left"
    elif left > 0:
        when = "less than a minute left"
    else:
        when = "taking longer than usual"
    return f", {when} (usually {usual}: {source})"


def fraction_done(elapsed: float, expected: float) -> float:
    """How far along an operation expected to take ``expected`` seconds is (below 1 until it ends)."""
    if expected <= 0:
        return 0.95
    return min(0.95, elapsed / expected)


class ProgressLog:
    def __init__(self):
        self.events: list[dict] = []
        self.percent = 0
        self.finished = False
        self.started = time.monotonic()
        self._changed = asyncio.Event()
        self._phases: list[tuple[str, float]] = []  # (phase, when it began), in order

    def emit(self, phase: str, message: str, *, fraction: float | None = None, elapsed: float | None = None) -> dict:
        low, high, typical = PHASES.get(phase, (self.percent, self.percent, 1))
        if not self._phases or self._phases[-1][0] != phase:
            self._phases.append((phase, time.monotonic()))
        if fraction is None:
            fraction = 0.0 if elapsed is None else min(0.9, elapsed / typical)
        pct = int(low + (high - low) * max(0.0, min(1.0, fraction)))
        self.percent = max(self.percent, pct, low)
        event = {"progress": self.percent, "message": message}
        self.events.append(event)
        self._changed.set()
        return event

    def phase_durations(self, now: float | None = None) -> list[tuple[str, float]]:
        """How long each phase took, in order (a phase entered twice counts twice); the last until ``now``."""
        now = time.monotonic() if now is None else now
        ends = [t for _, t in self._phases[1:]] + [now]
        return [(phase, end - began) for (phase, began), end in zip(self._phases, ends)]

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
