"""The emulator's secret flags (--arm-token-file, its owner, --control-secret-file),
the files it makes for them, and the config its JupyterLabs run with."""

from __future__ import annotations

import os
import stat

import pytest
from traitlets.config import Config

from aml_emulator.app import ensure_secrets
from aml_emulator.config import DEFAULT_ARM_TOKEN, load_config
from aml_emulator.runtime.base import Lab
from aml_emulator.runtime.lab import LAB_CONFIG, jupyterlab_args
from aml_emulator.secretfiles import SecretFileError, ensure_secret


def test_the_public_token_only_when_no_token_is_chosen(tmp_path):
    assert load_config(["--state-dir", str(tmp_path)]).arm_tokens == [DEFAULT_ARM_TOKEN]
    cfg = load_config(["--state-dir", str(tmp_path), "--arm-token-file", str(tmp_path / "t")])
    assert cfg.arm_tokens == [] and cfg.arm_token_file == tmp_path / "t"
    cfg = load_config(["--state-dir", str(tmp_path), "--arm-token-file", str(tmp_path / "t"), "--arm-token", "x"])
    assert cfg.arm_tokens == ["x"]
    assert load_config(["--state-dir", str(tmp_path), "--arm-token", "x"]).arm_tokens == ["x"]


def test_token_file_owner(tmp_path):
    base = ["--state-dir", str(tmp_path), "--arm-token-file", str(tmp_path / "t")]
    assert load_config([*base, "--arm-token-file-owner", "1000"]).arm_token_file_owner == (1000, 1000)
    assert load_config([*base, "--arm-token-file-owner", "1000:1001"]).arm_token_file_owner == (1000, 1001)
    for bad in ("jupyterhub", "1000:", "-1", "1:x"):
        with pytest.raises(SystemExit):
            load_config([*base, "--arm-token-file-owner", bad])
    with pytest.raises(SystemExit):
        load_config(["--state-dir", str(tmp_path), "--arm-token-file-owner", "1000"])  # no file to own


def test_control_secret_file_defaults_to_the_state_dir(tmp_path):
    assert load_config(["--state-dir", str(tmp_path)]).control_secret_path == tmp_path.resolve() / "control-secret"
    cfg = load_config(["--state-dir", str(tmp_path), "--control-secret-file", str(tmp_path / "elsewhere")])
    assert cfg.control_secret_path == tmp_path / "elsewhere"


def test_a_secret_is_made_once_private_and_kept(tmp_path):
    path = tmp_path / "dir" / "secret"
    made = ensure_secret(path, "--x")
    assert len(made) >= 40 and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ensure_secret(path, "--x") == made
    assert ensure_secret(tmp_path / "other", "--x") != made
    os.chmod(path, 0o644)  # loosened by hand: tightened again
    assert ensure_secret(path, "--x") == made and stat.S_IMODE(path.stat().st_mode) == 0o600
    path.write_text("")  # an empty file holds no secret: a new one
    assert ensure_secret(path, "--x") not in ("", made)
    assert not [p.name for p in path.parent.iterdir() if p.name != "secret"]  # no temporary file left


def test_a_secret_file_goes_to_its_owner(tmp_path):
    path = tmp_path / "secret"
    ensure_secret(path, "--x", owner=(os.getuid(), os.getgid()))
    assert (path.stat().st_uid, path.stat().st_gid) == (os.getuid(), os.getgid())


def test_a_secret_that_cannot_be_written_says_which_flag(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(SecretFileError, match=r"^--arm-token-file .*/file/token: cannot make or read it"):
        ensure_secret(blocker / "token", "--arm-token-file")


def test_ensure_secrets_accepts_the_file_token_besides_chosen_ones(tmp_path):
    cfg = load_config(["--state-dir", str(tmp_path), "--arm-token", "x", "--arm-token-file", str(tmp_path / "t")])
    tokens, secret = ensure_secrets(cfg)
    assert tokens == ["x", (tmp_path / "t").read_text().strip()]
    assert secret == (tmp_path / "control-secret").read_text().strip() and secret not in tokens


def test_the_lab_keeps_xsrf_and_origin_checks_though_every_request_has_the_token():
    from jupyter_server.auth.identity import IdentityProvider

    c = Config()
    exec(compile(LAB_CONFIG, "aml_lab_config.py", "exec"), {"c": c, "get_config": lambda: c})
    provider = c.ServerApp.identity_provider_class
    assert issubclass(provider, IdentityProvider)
    assert provider.is_token_authenticated(object.__new__(provider), handler=None) is False
    args = jupyterlab_args("0.0.0.0", 8890, "/instances/ci-a/", "/home/azureuser", "/opt/x/aml_lab_config.py")
    assert "--config=/opt/x/aml_lab_config.py" in args
    assert not [a for a in args if "token" in a.lower()]  # never on the command line: in JUPYTER_TOKEN


def test_a_lab_recorded_without_a_token_is_not_reused():
    assert Lab.recorded({"origin": "http://10.0.0.5:8890", "base_path": "/instances/a/"}) is None
    lab = Lab.recorded({"origin": "http://10.0.0.5:8890", "base_path": "/instances/a/", "token": "t"})
    assert lab == Lab("http://10.0.0.5:8890", "/instances/a/", "t") and lab.headers == {"Authorization": "token t"}
