"""The emulator's notion of "now", which tests can move forward.

Idle shutdown and start/stop schedules act after minutes or days of wall
time; a test cannot wait that long. Everything that decides *when* AML would
act (``automation``) reads :meth:`Clock.now` instead of ``time.time()``, and
``POST /_emulator/clock {"advance_seconds": N}`` moves it forward. The clock
only ever runs ahead of the wall clock by ``offset`` seconds, so it keeps
ticking in real time between advances.

Transition durations (how long a start or stop takes) are not on this clock:
they stay in real seconds, set by ``--transition``.
"""

from __future__ import annotations

import time


class Clock:
    def __init__(self, offset: float = 0.0, wall=time.time):
        self._wall = wall
        self.offset = float(offset)

    def now(self) -> float:
        """Epoch seconds, ``offset`` ahead of the wall clock."""
        return self._wall() + self.offset

    def advance(self, seconds: float) -> float:
        """Move now forward by ``seconds`` (>= 0: time never runs backwards); return the new now."""
        if seconds < 0:
            raise ValueError("the clock only moves forward: advance_seconds must be >= 0")
        self.offset += float(seconds)
        return self.now()
