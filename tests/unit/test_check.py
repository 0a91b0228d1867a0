"""aml-jupyterhub-check: the settings as the hub checks them, summarised in a line."""

import pytest

from aml_jupyterhub.check import check
from aml_jupyterhub.hubconfig import ConfigError
from tests.harness.repo import ROOT, example_env

PROFILES = str(ROOT / "hub" / "profiles.json")


def test_the_example_is_local_mode():
    summary = check({**example_env(), "AML_PROFILES_FILE": PROFILES})
    assert summary == "local mode, the emulator at https://emulator:8443, hub https://localhost"


def test_azure_names_the_workspace_and_credential():
    env = {**example_env(), "LOCAL_MODE": "false", "AML_CREDENTIAL": "managed-identity", "AML_STATIC_TOKEN": "",
           "AML_WORKSPACE": "mlw-research", "AML_RESOURCE_GROUP": "rg-research", "AZURE_CLOUD": "usgov",
           "HOST": "hub.example.org", "AML_PROFILES_FILE": PROFILES}
    assert check(env) == ("Azure (usgov cloud), workspace mlw-research in rg-research, credential managed-identity, "
                          "hub https://hub.example.org")


def test_a_typo_and_a_bad_menu_file_are_caught(tmp_path):
    with pytest.raises(ConfigError, match="Did you mean AML_WORKSPACE"):
        check({**example_env(), "AML_WORKSPAC": "x"})
    bad = tmp_path / "profiles.json"
    bad.write_text('[{"slug": "s"}]')
    with pytest.raises(ConfigError, match="needs a vm_size"):
        check({**example_env(), "AML_PROFILES_FILE": str(bad)})
