"""A mistake in .env as a newcomer meets it: one line from ``make up``, and no restart loop.

In a copy of the repository under a project and network of its own (beside
the e2e stack and any demo), with a typo in ``.env``.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid

import pytest

from tests.e2e.demo import _run, copy_of_repo
from tests.e2e.stack import ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.docker]

TYPO_LINE = ("aml-jupyterhub: configuration error: AML_WORKSPAC is not a setting of aml-jupyterhub. "
             "Did you mean AML_WORKSPACE?")


@pytest.fixture
def broken_copy():
    project = f"amljh-typo-{uuid.uuid4().hex[:6]}"
    copy = copy_of_repo(ROOT, "aml-typo-")
    env_text = (ROOT / ".env.example").read_text().replace("STACK_NETWORK=aml-jupyterhub", f"STACK_NETWORK={project}")
    (copy / ".env").write_text(env_text + "AML_WORKSPAC=mlw-research\n")
    env = {**os.environ, "COMPOSE_PROJECT_NAME": project}
    env.pop("COMPOSE_PROFILES", None)
    env.pop("COMPOSE_FILE", None)
    yield copy, project, env
    _run(["docker", "compose", "--profile", "local", "down", "--volumes", "--remove-orphans"], cwd=copy, env=env,
         check=False, timeout=300)
    _run(["docker", "network", "rm", project], check=False)
    shutil.rmtree(copy, ignore_errors=True)


def _containers(project: str) -> list[str]:
    out = _run(["docker", "ps", "-a", "--filter", f"label=com.docker.compose.project={project}",
                "--filter", "label=com.docker.compose.oneoff=False", "--format", "{{.Names}}"])
    return out.stdout.split()


def test_make_up_says_the_mistake_and_starts_nothing(broken_copy):
    copy, project, env = broken_copy
    r = _run(["make", "up"], cwd=copy, env=env, check=False, timeout=1800)
    assert r.returncode != 0
    out = r.stdout + r.stderr
    assert TYPO_LINE in out, out[-3000:]
    assert "nothing was started; fix .env" in out
    assert "unhealthy" not in out and "Traceback" not in out
    assert _containers(project) == []


def test_a_hub_with_a_bad_env_waits_instead_of_restarting(broken_copy):
    """Started anyway (docker compose up, no make): it says why, stays up and unhealthy, and is not restarted."""
    copy, project, env = broken_copy
    _run(["docker", "compose", "build", "hub"], cwd=copy, env=env, timeout=1800)
    _run(["docker", "compose", "up", "-d", "--no-deps", "hub"], cwd=copy, env=env, timeout=300)
    (name,) = _containers(project)
    time.sleep(8)  # a restart loop would have restarted it several times by now
    state = json.loads(_run(["docker", "inspect", "--format", "{{json .State}}", name]).stdout)
    restarts = int(_run(["docker", "inspect", "--format", "{{.RestartCount}}", name]).stdout.strip())
    assert state["Status"] == "running" and restarts == 0, state
    assert state.get("Health", {}).get("Status") != "healthy"
    logs = _run(["docker", "logs", name]).stdout + _run(["docker", "logs", name]).stderr
    assert TYPO_LINE in logs and "not starting; fix .env" in logs
    # docker stop ends it at once (no grace period spent waiting)
    t0 = time.monotonic()
    _run(["docker", "stop", name], timeout=60)
    assert time.monotonic() - t0 < 8
