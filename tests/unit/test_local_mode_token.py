"""Local mode's ARM token: the emulator makes it on first start and nothing
publishes it; the hub reads it from EMULATOR_ARM_TOKEN_FILE at its first ARM
call. An .env made when .env.example still carried the public test token
keeps working (the emulator refuses that token now, so it means the file's)."""

from __future__ import annotations

import pytest
from azure.core.exceptions import ClientAuthenticationError
from traitlets.config import Config

from aml_jupyterhub.compute.errors import map_sdk_error
from aml_jupyterhub.hubconfig import TokenFileCredential, configure, load_settings
from aml_jupyterhub.settings import PUBLISHED_EMULATOR_TOKEN
from tests.harness.repo import ROOT, example_env

SCOPE = "https://management.azure.com/.default"


def local(tmp_path, **settings) -> Config:
    c = Config()
    configure(c, load_settings({**example_env(), "HUB_DATA_DIR": str(tmp_path / "data"), "HUB_IDLE_CULL_TIMEOUT": "0",
                                "AML_PROFILES_FILE": str(ROOT / "hub" / "profiles.json"), **settings}), environ={})
    return c


@pytest.mark.parametrize("static_token", ["", PUBLISHED_EMULATOR_TOKEN])
def test_the_hub_reads_the_emulators_token_from_its_file(tmp_path, static_token):
    token_file = tmp_path / "arm-token"
    c = local(tmp_path, AML_STATIC_TOKEN=static_token, EMULATOR_ARM_TOKEN_FILE=str(token_file))
    credential = c.AMLSpawner.credential
    token_file.write_text("made-by-the-emulator\n")  # after the hub's config is read: it reads the file when used
    assert credential.get_token(SCOPE).token == "made-by-the-emulator"
    assert credential.get_token_info(SCOPE).token == "made-by-the-emulator"


def test_a_token_of_ones_own_is_used_as_it_is(tmp_path):
    c = local(tmp_path, AML_STATIC_TOKEN="mine", EMULATOR_ARM_TOKEN_FILE=str(tmp_path / "arm-token"))
    assert c.AMLSpawner.static_token == "mine" and "credential" not in c.AMLSpawner


@pytest.mark.parametrize("content", [None, ""])
def test_a_missing_token_file_says_what_to_do(tmp_path, content):
    token_file = tmp_path / "arm-token"
    if content is not None:
        token_file.write_text(content)
    with pytest.raises(ClientAuthenticationError) as err:
        TokenFileCredential(str(token_file)).get_token(SCOPE)
    message = str(map_sdk_error(err.value, action="create", name="ci-x"))
    assert f"EMULATOR_ARM_TOKEN_FILE={token_file}" in message and "first start" in message, message
