"""What bootstrap.prepare writes into the hub's install on the instance: JupyterLab's defaults (lab_news).

The instance's side of prepare is a Python script run over SSH by the install's
Python; here it runs in this process with sys.prefix set to a venv laid out as
the install makes it (the Docker integration test runs it on an instance)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import shlex
import sys
from types import SimpleNamespace

import pytest

from aml_jupyterhub import bootstrap


class InProcess:
    """Runs prepare's ``python -c script args`` command here, with ``prefix`` as the venv."""

    def __init__(self, prefix):
        self.prefix = prefix

    async def run(self, command: str, timeout: float):
        _python, flag, script, *args = shlex.split(command)
        assert flag == "-c"
        out = io.StringIO()
        with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(out):
            mp.setattr(sys, "prefix", str(self.prefix))
            mp.setattr(sys, "argv", ["-c", *args])
            exec(compile(script, "<prepare>", "exec"), {"__name__": "__main__"})
        return SimpleNamespace(stdout=out.getvalue(), stderr="")


@pytest.fixture
def install(tmp_path, monkeypatch):
    """A venv over an env whose JupyterLab has its own settings directory (linked into the venv by prepare)."""
    env, venv, home = tmp_path / "env", tmp_path / "venv", tmp_path / "home"
    (env / "share" / "jupyter" / "lab" / "settings").mkdir(parents=True)
    venv.mkdir()
    home.mkdir()
    (venv / ".base-prefix").write_text(f"{env}\n")
    monkeypatch.setenv("HOME", str(home))
    return SimpleNamespace(env=env, venv=venv)


def _written(venv) -> dict:
    return json.loads((venv / "etc" / "jupyter" / "labconfig" / "default_setting_overrides.json").read_text())


def test_news_off_by_default_for_everyone(install):
    asyncio.run(bootstrap.prepare(InProcess(install.venv), "/x/bin/python"))
    assert _written(install.venv) == {"@jupyterlab/apputils-extension:notification":
                                      {"fetchNews": "false", "checkForUpdates": False}}
    # the venv's lab dir is a link to the env's: nothing is written there (AML's own Jupyter reads it)
    assert (install.venv / "share" / "jupyter" / "lab").is_symlink()
    assert list((install.env / "share" / "jupyter" / "lab" / "settings").iterdir()) == []


def test_news_on_is_decided_once_and_the_next_start_rewrites_it(install):
    asyncio.run(bootstrap.prepare(InProcess(install.venv), "/x/bin/python", lab_news=True))
    assert _written(install.venv)["@jupyterlab/apputils-extension:notification"] == {"fetchNews": "true",
                                                                                      "checkForUpdates": True}
    asyncio.run(bootstrap.prepare(InProcess(install.venv), "/x/bin/python", lab_news=False))
    assert _written(install.venv)["@jupyterlab/apputils-extension:notification"]["fetchNews"] == "false"


def test_jupyterlab_server_reads_them_as_defaults(install, monkeypatch):
    from jupyterlab_server.settings_utils import _get_overrides

    asyncio.run(bootstrap.prepare(InProcess(install.venv), "/x/bin/python"))
    # on the instance the venv is sys.prefix, whose etc/jupyter is on Jupyter's config path
    monkeypatch.setenv("JUPYTER_CONFIG_PATH", str(install.venv / "etc" / "jupyter"))
    overrides, error = _get_overrides(str(install.env / "share" / "jupyter" / "lab" / "settings"))
    assert not error
    assert overrides["@jupyterlab/apputils-extension:notification"]["fetchNews"] == "false"
