"""The unit layer: no process, no socket, no hub, no emulator process.

Each unit test's setup (its fixtures, of any scope, that start there) and its
call run under ``tests.harness.isolation.no_io``: a socket or a process
raises NotInUnitTests. Teardown is left open: the session's fixtures of the
other layers (an emulator process to reset and stop) may be torn down after
the last unit test of a run.
"""

from __future__ import annotations

import asyncssh  # noqa: F401  (at import it asks ldconfig where libcrypto is: a process, so before any test)
import pytest

from tests.harness.isolation import no_io


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item):
    with no_io():
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    with no_io():
        return (yield)
