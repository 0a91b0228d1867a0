"""When AML would call a compute instance idle (pure).

AML's agent on the instance counts as activity what happens on AML's *own*
Jupyter server (the one behind the instance's Jupyter / JupyterLab
applications): a kernel that is executing, or kernel or terminal traffic.
A kernel or terminal that is merely open and quiet is idle, and so is an
instance nobody opened JupyterLab on. SSH sessions, and servers somebody
started over SSH (the hub's ``jupyterhub-singleuser`` on its own port), are
not seen (aml-instance-runtime.md §5). AML measures this with a lag: we
sample the server every few seconds and credit activity to the moment of
the sample.

A sample is what that server's REST API says: ``GET api/kernels`` (each with
``execution_state`` and ``last_activity``) and ``GET api/terminals`` (each
with ``last_activity``); None when no such server runs. The bookkeeping per
instance is a small dict persisted with it:

- ``active_at``: the (emulator-clock) time activity was last seen, or the
  instance started;
- ``mark``: the newest kernel/terminal ``last_activity`` seen, so a change
  between two samples counts as activity;
- ``since``: which start of the instance ``active_at`` belongs to.
"""

from __future__ import annotations


def activity_mark(sample: dict | None) -> str | None:
    """The newest ``last_activity`` of any kernel or terminal (ISO strings in
    UTC from one server sort as times do), None if there is none."""
    if not sample:
        return None
    stamps = [k.get("last_activity") for k in sample.get("kernels") or []]
    stamps += [t.get("last_activity") for t in sample.get("terminals") or []]
    stamps = [s for s in stamps if isinstance(s, str)]
    return max(stamps) if stamps else None


def busy(sample: dict | None) -> bool:
    """A kernel is executing (or still starting): work in progress, never idle."""
    return any((k.get("execution_state") or "") in ("busy", "starting") for k in (sample or {}).get("kernels") or [])


def observe(book: dict, sample: dict | None, now: float, since: str) -> dict:
    """The bookkeeping after one sample at ``now``.

    ``since`` names the instance's current start (its last start operation):
    a new one restarts the idle clock, as booting a machine does.
    """
    book = dict(book or {})
    if book.get("since") != since or "active_at" not in book:
        book.update(since=since, active_at=now, mark=activity_mark(sample))
        return book
    mark = activity_mark(sample)
    if busy(sample) or (mark is not None and mark != book.get("mark")):
        book["active_at"] = now
    book["mark"] = mark
    return book


def idle_seconds(book: dict, now: float) -> float:
    return max(0.0, now - float((book or {}).get("active_at", now)))


def due_for_shutdown(idle_minutes: int | None, book: dict, now: float) -> bool:
    return bool(idle_minutes) and idle_seconds(book, now) >= idle_minutes * 60


def shutdown_at(idle_minutes: int | None, book: dict) -> float | None:
    """When the instance would be stopped if nothing happens meanwhile."""
    if not idle_minutes or "active_at" not in (book or {}):
        return None
    return float(book["active_at"]) + idle_minutes * 60


def after_setting_change(book: dict, new_minutes: int, now: float) -> dict:
    """updateIdleShutdownSetting: a value below the time already idle resets
    the idle clock (as documented), so the instance is not stopped at once."""
    book = dict(book or {})
    if "active_at" in book and idle_seconds(book, now) >= new_minutes * 60:
        book["active_at"] = now
    return book
