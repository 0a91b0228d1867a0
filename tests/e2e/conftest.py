"""The compose stack the end-to-end tests share, and its logs when one fails.

One stack per session: built (the layer cache makes an unchanged build quick),
started with fresh volumes under a project name, ports and network of its
own, beside a newcomer's demo stack (``demo``), and removed at the end with its
volumes and the instance containers the emulator made. When a
test fails, the last lines of every service's log are attached to its report
(and written to tests/artifacts/e2e-compose-logs.txt).
"""

from __future__ import annotations

import os
import shutil

import pytest

from tests.e2e.demo import Demo
from tests.harness import arm_contract
from tests.e2e.stack import ARTIFACTS, ROOT, ComposeStack, Timer, no_docker_reason, upn

USERS = [*(upn(n) for n in ("alice", "bob", "carol", "dave")), "erin@contoso.example"]


def pytest_collection_modifyitems(config, items):
    e2e = [item for item in items if "e2e" in item.keywords]
    reason = no_docker_reason() if e2e else None
    if reason is None:
        return
    # the only reason to skip: anything else wrong with the stack is a failure
    skip = pytest.mark.skip(reason=f"end-to-end tests need a Docker engine: {reason}")
    for item in e2e:
        item.add_marker(skip)


@pytest.fixture(scope="session")
def timer():
    t = Timer()
    yield t
    print("\n[e2e] phases:\n" + t.summary(), flush=True)


@pytest.fixture(scope="session")
def demo(timer):
    """A newcomer's demo stack (make up) on the same engine, unless one is there already."""
    d = Demo(ROOT)
    if os.environ.get("AML_E2E_NO_DEMO") != "1":
        with timer.phase("a demo stack beside it (make up in a copy of the repository)"):
            d.start()
    yield d
    left = d.remove()  # if the last test did not
    if left:
        print(f"[e2e] make clean-local left: {left}", flush=True)


@pytest.fixture(scope="session")
def stack(tmp_path_factory, timer, demo):
    shutil.rmtree(ARTIFACTS / "e2e", ignore_errors=True)  # this run's screenshots only
    (ARTIFACTS / "e2e-compose-logs.txt").unlink(missing_ok=True)
    s = ComposeStack(tmp_path_factory.mktemp("e2e-stack"))
    s.write_files()
    print(f"\n[e2e] compose project {s.project}, hub id {s.hub_id}", flush=True)
    try:
        with timer.phase("build images (compose build)"):
            s.build()
        with timer.phase("docker compose up -d --wait"):
            s.up()
        s.fetch_certs()
        print(f"[e2e] HTTPS through Caddy answered {s.wait_https():.1f} s after up --wait returned", flush=True)
    except Exception:
        # a service that never got healthy: its log says why
        print(_dump_logs(s, "stack setup"), flush=True)
        _teardown(s, timer)
        raise
    yield s
    _teardown(s, timer)


def _teardown(s: ComposeStack, timer: Timer) -> None:
    with timer.phase("teardown (instances, compose down -v)"):
        removed = s.remove_instances(USERS)
        r = s.down(volumes=True)
        if r.returncode != 0:
            print(f"[e2e] compose down -v failed:\n{r.stderr[-3000:]}", flush=True)
        # an instance the emulator made after the reset (or while it was gone)
        removed += s.remove_instances(USERS)
        s.remove_network()
        if removed:
            print(f"[e2e] removed instance containers: {', '.join(removed)}", flush=True)


def _dump_logs(s: ComposeStack, when: str) -> str:
    text = s.logs(200)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with open(ARTIFACTS / "e2e-compose-logs.txt", "a") as f:
        f.write(f"\n######## {when}\n{text}")
    return text


@pytest.fixture(autouse=True)
def stack_arm_responses_match_the_spec(request):
    """As tests/conftest.py does for the harness's emulators: every ARM answer the stack's emulator
    gave during the test (the hub's SDK calls included) is checked against AML's definitions."""
    yield
    if "stack" not in request.fixturenames:
        return
    problems = arm_contract.problems_in(request.getfixturevalue("stack").new_arm_responses())
    if problems:
        pytest.fail(f"{len(problems)} ARM response(s) of the stack's emulator do not match AML's published "
                    "definitions (tests/harness/arm_contract.py):\n" + "\n".join(problems[:20]), pytrace=False)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed and report.when in ("call", "setup"):
        s = item.funcargs.get("stack") if hasattr(item, "funcargs") else None
        if isinstance(s, ComposeStack):
            report.sections.append(("docker compose logs --tail=200", _dump_logs(s, item.nodeid)))
