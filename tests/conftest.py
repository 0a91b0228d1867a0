"""Fixtures every layer may use (the helpers behind them are in tests/harness).

``emulator`` is a real emulator process, session-scoped (starting it costs
about a second); ``emu`` is the same emulator, reset after each test so tests
cannot see each other's instances, faults or quotas.

``arm_responses_match_the_spec`` (autouse) checks every ARM response any
harness emulator sent against Azure's published definitions
(tests.harness.arm_contract) when each test ends, and fails the test naming
the request and what is wrong: the suite trusts the emulator to answer as
AML does, so an answer AML would not give is a failure wherever it appears.
"""

from __future__ import annotations

import signal

import pytest

from tests.harness import arm_contract
from tests.harness.emulator import FAST, EmulatorProcess
from tests.harness.net import resolve_localhost_subdomains

resolve_localhost_subdomains()  # users' servers on <user>.localhost, as a browser reaches them

# make test run as a background job or under nohup starts with SIGINT ignored, and every hub,
# service and server the tests start would inherit that: JupyterHub then waits 10 s for each
# managed service it stops (the product's hub config mends this for itself, and a test checks it)
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def runs_on_the_docker_worker(nodeid: str) -> bool:
    """Whether ``make test``'s workers (pytest-xdist) give this test to the one that runs every test
    needing Docker: the end-to-end tests (tests/e2e/) and the modules named for Docker."""
    path = nodeid.split("::", 1)[0]
    return path.startswith("tests/e2e/") or "docker" in path.rsplit("/", 1)[-1]


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """Every test that needs Docker on one worker, in file order; every other test to whichever
    worker is free. The end-to-end tests share one compose stack and its images (a second worker
    would build and start its own, and the newcomer's demo stack's fixed names would clash), and the
    docker-runtime tests check that they leave the host's networks as they were, which a compose
    stack starting beside them would change. (By path, not by marker: the controller that
    schedules sees test ids only; pytest_collection_modifyitems below checks the two agree.)"""
    from xdist.scheduler import LoadScopeScheduling

    class DockerTestsOnOneWorker(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return "docker" if runs_on_the_docker_worker(nodeid) else nodeid

    return DockerTestsOnOneWorker(config, log)


def pytest_collection_modifyitems(config, items):
    strays = [item.nodeid for item in items if "docker" in item.keywords and not runs_on_the_docker_worker(item.nodeid)]
    if strays:
        raise pytest.UsageError(
            "tests marked docker must live in tests/e2e/ or in a module whose name says docker, so that make "
            "test runs them on its one Docker worker: " + ", ".join(strays[:5]))


@pytest.fixture(autouse=True)
def arm_responses_match_the_spec():
    yield
    # everything sent since the previous test's check, this test's fixtures' teardown included
    # (this fixture is set up first, so torn down last)
    problems = [p for emu in EmulatorProcess.every() for p in arm_contract.problems_in(emu.new_responses())]
    if problems:
        pytest.fail(
            f"{len(problems)} ARM response(s) of the emulator do not match AML's published definitions "
            "(tests/contract/aml_rest_spec; check in tests/harness/arm_contract.py):\n" + "\n".join(problems[:20]),
            pytrace=False,
        )


@pytest.fixture(scope="session")
def emulator(tmp_path_factory):
    emu = EmulatorProcess(tmp_path_factory.mktemp("emulator"), FAST).start()
    yield emu
    try:
        emu.reset()
    finally:
        emu.stop()


@pytest.fixture
def emu(emulator):
    emulator.reset()
    emulator.set_transitions(all=0.3)
    yield emulator
    emulator.reset()
    emulator.set_transitions(all=0.3)
