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

import os
import re
import secrets
import signal
import subprocess
import time

import pytest

from tests.harness import arm_contract
from tests.harness.emulator import FAST, EmulatorProcess
from tests.harness.net import resolve_localhost_subdomains
from tests.harness.processes import RUN_VARIABLE, command_line, started_by_run

# this run's mark, inherited by every process the suite starts: set at import, in the controller before
# pytest-xdist starts its workers (they inherit it, and keep it here), so the session-end check finds them
os.environ.setdefault(RUN_VARIABLE, secrets.token_hex(8))

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


# ---- session end: nothing the run started is left -----------------------------------------------------------

DOCKER_OBJECTS = {"container": ["docker", "ps", "-aq", "--no-trunc"], "volume": ["docker", "volume", "ls", "-q"],
                  "network": ["docker", "network", "ls", "-q", "--no-trunc"]}


def docker_objects() -> dict[str, set[str]] | None:
    """The engine's containers, volumes and networks by id; None without a Docker engine."""
    found = {}
    for kind, command in DOCKER_OBJECTS.items():
        try:
            r = subprocess.run(command, capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            return None
        if r.returncode:
            return None
        found[kind] = set(r.stdout.split())
    return found


def docker_object_name(kind: str, ident: str) -> str:
    fmt = {"container": "{{.Name}} ({{.Config.Image}})", "volume": "{{.Name}}", "network": "{{.Name}}"}[kind]
    r = subprocess.run(["docker", kind, "inspect", "--format", fmt, ident], capture_output=True, text=True, timeout=60)
    return r.stdout.strip().lstrip("/") if r.returncode == 0 else ident[:12]


def is_controller(config) -> bool:
    return not hasattr(config, "workerinput")  # an xdist worker's config has workerinput


DOCKER_AT_START = pytest.StashKey[dict]()
DOCKER_TESTS_RUN: set[str] = set()
LEFT_BEHIND_GRACE_SECONDS = 10  # a killed hub's services notice it within seconds, and end


def pytest_sessionstart(session):
    if is_controller(session.config):
        session.config.stash[DOCKER_AT_START] = docker_objects()


def pytest_runtest_logreport(report):
    # the controller hears of every test (xdist's workers report to it): a run with no test of Docker's
    # made nothing on the engine, and what appears there meanwhile is another program's
    if report.when == "setup" and runs_on_the_docker_worker(report.nodeid):
        DOCKER_TESTS_RUN.add(report.nodeid)


@pytest.hookimpl(hookwrapper=True)
def pytest_sessionfinish(session):
    # after every other sessionfinish: the session's fixtures torn down, xdist's workers ended
    yield
    if not is_controller(session.config):
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    problems = []
    deadline = time.monotonic() + LEFT_BEHIND_GRACE_SECONDS
    while (left := started_by_run(os.environ[RUN_VARIABLE], {os.getpid()})) and time.monotonic() < deadline:
        time.sleep(0.5)
    if left:
        problems.append(f"{len(left)} process(es) the run started are still running (end each where the test "
                        f"starts it, whatever happens to the test):")
        problems += [f"  pid {pid}: {command_line(pid)[:300]}" for pid in left]
    before, after = session.config.stash.get(DOCKER_AT_START, None), None
    if DOCKER_TESTS_RUN and before is not None and (after := docker_objects()) is not None:
        for kind in DOCKER_OBJECTS:
            new = sorted(after[kind] - before[kind])
            anonymous = [v for v in new if kind == "volume" and re.fullmatch(r"[0-9a-f]{64}", v)]
            if anonymous and reporter:
                # Three pairs of empty anonymous volumes outlive a full run, made when compose stacks start;
                # their maker is not found yet (issue 25): said, not failed, until it is.
                reporter.write_line(f"note: {len(anonymous)} anonymous Docker volume(s) made during the run are "
                                    f"still there: {', '.join(v[:12] for v in anonymous)}", yellow=True)
            new = [i for i in new if i not in anonymous]
            if new:
                problems.append(f"{len(new)} Docker {kind}(s) made during the run are still there (remove them "
                                f"where the test makes them): " + ", ".join(docker_object_name(kind, i) for i in new))
    if problems:
        if reporter:
            reporter.write_sep("=", "the run left things behind", red=True)
            for line in problems:
                reporter.write_line(line)
        if session.exitstatus == 0:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
