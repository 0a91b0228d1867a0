"""The unit layer's guard: while ``no_io()`` is on, opening a socket or
starting a process raises ``NotInUnitTests``.

Sockets: every ``socket.socket`` made from scratch is refused; one that wraps
a file descriptor that already exists is let through (asyncio's event loop
wraps its self-pipe from ``socketpair`` so, and it makes no connection).
Processes: ``subprocess.Popen`` (which ``subprocess.run`` and asyncio's
subprocess transports use), ``os.fork``, ``os.forkpty``, ``os.posix_spawn``,
``os.posix_spawnp`` and ``os.system``. Threads stay allowed.

Not an OSError on purpose: code that retries or falls back on OSError must
not quietly swallow it.

One process runs before the guard, when this module is imported: Python's
``platform`` asks ``uname -p`` once and caches it; libraries read it when
they are first imported (azure-identity puts it in its user agent), which may
be inside a test.
"""

from __future__ import annotations

import contextlib
import os
import platform
import socket
import subprocess

import pytest


platform.platform()  # see above: cached for the process from here on


class NotInUnitTests(RuntimeError):
    pass


def _refuse(what: str):
    raise NotInUnitTests(
        f"{what} in a unit test: unit tests open no socket and start no process. Fake the boundary, "
        "or move the test to tests/integration (or tests/contract for the emulator's and SDKs' contracts)."
    )


_socket_init = socket.socket.__init__
_popen_init = subprocess.Popen.__init__


def _guarded_socket_init(self, family=-1, type=-1, proto=-1, fileno=None):
    if fileno is None:
        _refuse("A socket")
    _socket_init(self, family, type, proto, fileno)


def _guarded_popen_init(self, args, *rest, **kwargs):
    _refuse(f"A process ({args!r})")


def _refuser(what: str):
    def refuse(*args, **kwargs):
        _refuse(what)

    return refuse


@contextlib.contextmanager
def no_io():
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket.socket, "__init__", _guarded_socket_init)
        mp.setattr(subprocess.Popen, "__init__", _guarded_popen_init)
        for name in ("fork", "forkpty", "posix_spawn", "posix_spawnp", "system"):
            if hasattr(os, name):
                mp.setattr(os, name, _refuser(f"os.{name}"))
        yield
