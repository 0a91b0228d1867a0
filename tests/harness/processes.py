"""The processes the suite starts: which are a process's descendants, ending
them, and which still run (the session-end check in tests/conftest.py).

Every process the suite starts inherits ``RUN_VARIABLE`` from the pytest that
runs it (tests/conftest.py sets it before pytest-xdist starts its workers), so
what is left at the end is found by that mark in /proc/<pid>/environ, however
it was started and whoever its parent became."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

RUN_VARIABLE = "AML_JUPYTERHUB_TEST_RUN"


def children_by_parent() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # the command's name is in parentheses and may hold spaces: the fields after its last ")"
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        kids.setdefault(ppid, []).append(int(stat.parent.name))
    return kids


def descendants(pid: int) -> list[int]:
    """``pid``'s children, theirs, and so on (read now: a child that has lost its parent is no longer found)."""
    kids, found, todo = children_by_parent(), [], [pid]
    while todo:
        for kid in kids.get(todo.pop(), []):
            found.append(kid)
            todo.append(kid)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def end_processes(pids, grace: float = 10) -> None:
    """SIGTERM to each of ``pids`` still running, SIGKILL to those still there after ``grace`` seconds."""
    pids = [p for p in pids if alive(p)]
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5)):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait
        while (pids := [p for p in pids if alive(p)]) and time.monotonic() < deadline:
            time.sleep(0.1)
        if not pids:
            return


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return "?"


def started_by_run(run_id: str, ignore: set[int]) -> list[int]:
    """The live processes (of this user: others' environ cannot be read) marked with this run's id."""
    mark = f"{RUN_VARIABLE}={run_id}".encode()
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        pid = int(environ.parent.name)
        if pid in ignore:
            continue
        try:
            if mark in environ.read_bytes().split(b"\0") and alive(pid):
                found.append(pid)
        except OSError:
            continue
    return sorted(found)
