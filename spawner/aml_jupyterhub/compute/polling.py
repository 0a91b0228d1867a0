"""When to read a long operation's status again, and making the SDK's poller do it.

Azure ML sends no ``Retry-After`` on compute operations, so azure-core's poller
waits its fixed polling interval between status reads: a short one spends the
subscription's ARM read budget (shared by every server of the hub) on a create
that takes minutes, a long one notices late that the instance runs. The
schedule here reads often at the start (requests AML refuses at once fail
fast), rarely while the operation cannot be near its end, and often again from
a little before the expected end (this hub's own history, or the documented
figure), backing off slowly when it runs late.
"""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass(frozen=True)
class PollSchedule:
    expected: float  # seconds the operation is expected to take
    near: float = 2.0  # seconds between reads at the start and around the expected end (at most this late)
    far: float = 20.0  # at most this long between reads while the end cannot be near
    early: float = 8.0  # seconds of frequent reads at the start
    window: float = 0.8  # frequent reads from this fraction of ``expected`` ...
    until: float = 1.25  # ... up to this multiple of it, then a slow back-off

    def delay(self, elapsed: float) -> float:
        """Seconds to wait before the next read, ``elapsed`` seconds into the operation."""
        expected = max(self.expected, 0.0)
        start, end = self.window * expected, self.until * expected
        if elapsed < self.early or start <= elapsed <= end:
            return self.near
        if elapsed < start:
            # half the way to the window each time: few reads, and never a sleep past its start
            return min(self.far, max(self.near, (start - elapsed) / 2))
        # late: a little longer each time, so a stuck operation costs few reads
        return min(self.far, self.near + (elapsed - end) / 10)

    def reads(self, duration: float) -> int:
        """Status reads this schedule makes for an operation that takes ``duration`` seconds."""
        elapsed, count = 0.0, 1  # the poller reads once at once
        while elapsed < duration:
            elapsed += self.delay(elapsed)
            count += 1
        return count


def follow(poller, schedule: PollSchedule, started: float, clock=time.monotonic) -> bool:
    """Make azure-core's ``poller`` wait as ``schedule`` says between status
    reads, unless the service asks for a delay (``Retry-After``: honoured).

    azure-ai-ml builds its pollers itself (``polling=True``), so the delay is
    set on the poller's polling method, whose ``_extract_delay`` azure-core
    asks before every sleep. False if the method is not one we know (the
    poller then keeps its fixed interval)."""
    method = poller.polling_method()
    if not callable(getattr(method, "_extract_delay", None)) or not hasattr(method, "_pipeline_response"):
        return False
    try:
        from azure.core.polling.base_polling import get_retry_after
    except ImportError:  # pragma: no cover - an azure-core without it
        return False

    def extract_delay() -> float:
        asked = get_retry_after(method._pipeline_response)
        return asked if asked else schedule.delay(clock() - started)

    method._extract_delay = extract_delay
    return True
