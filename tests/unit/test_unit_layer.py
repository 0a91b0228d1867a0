"""The unit layer's guard holds (tests/unit/conftest.py): what would start a
process or open a socket raises, what unit tests need still works."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys

import pytest
import requests
from aiohttp import web

from tests.harness.isolation import NotInUnitTests


def test_no_socket():
    with pytest.raises(NotInUnitTests, match="A socket in a unit test"):
        socket.socket()
    with pytest.raises(NotInUnitTests):
        socket.create_connection(("127.0.0.1", 9))


def test_no_http_client_reaches_the_network():
    with pytest.raises(NotInUnitTests):
        requests.get("http://127.0.0.1:9/", timeout=1)


def test_no_server():
    async def serve():
        runner = web.AppRunner(web.Application())
        await runner.setup()
        try:
            await web.TCPSite(runner, "127.0.0.1", 0).start()
        finally:
            await runner.cleanup()

    with pytest.raises(NotInUnitTests):
        asyncio.run(serve())


def test_no_process():
    with pytest.raises(NotInUnitTests, match="A process"):
        subprocess.run([sys.executable, "-c", "pass"])
    with pytest.raises(NotInUnitTests):
        os.system("true")
    with pytest.raises(NotInUnitTests):
        os.fork()


def test_no_asyncio_subprocess():
    async def spawn():
        await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")

    with pytest.raises(NotInUnitTests):
        asyncio.run(spawn())


def test_event_loops_and_threads_still_work():
    async def in_a_thread():
        return await asyncio.to_thread(lambda: 6 * 7)

    assert asyncio.run(in_a_thread()) == 42
    a, b = socket.socketpair()  # wraps descriptors that exist: asyncio's self-pipe
    with a, b:
        a.sendall(b"x")
        assert b.recv(1) == b"x"


@pytest.fixture(scope="module")
def guarded_at_setup() -> bool:
    """Whether a socket was refused while this module-wide fixture was set up."""
    try:
        socket.socket().close()
    except NotInUnitTests:
        return True
    return False


def test_fixtures_of_any_scope_are_set_up_under_the_guard(guarded_at_setup):
    assert guarded_at_setup


def test_test_modules_have_names_of_their_own():
    """pytest imports test modules by their base name (tests/ has no packages per layer): two
    tests/*/test_x.py stop the whole run at collection, which only a full `make test` shows."""
    from collections import Counter

    from tests.harness.repo import ROOT

    names = Counter(p.name for p in (ROOT / "tests").rglob("test_*.py"))
    assert [n for n, count in names.items() if count > 1] == []
