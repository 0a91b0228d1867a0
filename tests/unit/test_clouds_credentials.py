"""The cloud and the credential are chosen by name, and a test token never reaches Azure."""

import logging
from types import SimpleNamespace

import pytest
from jupyterhub.spawner import SpawnException

from aml_jupyterhub.clients import credential_for
from aml_jupyterhub.clouds import CLOUDS, cloud
from aml_jupyterhub.compute.sdk import StaticTokenCredential, make_ml_client
from aml_jupyterhub.credentials import credential_problem, make_credential


@pytest.mark.parametrize("name", sorted(CLOUDS))
def test_the_sdk_reaches_the_arm_of_the_cloud_we_name(name):
    """Our table against azure-ai-ml's own: the client of a cloud talks to that cloud's ARM."""
    ml = make_ml_client(StaticTokenCredential("x"), "sub", "rg", "ws", cloud_name=cloud(name).sdk_name)
    assert ml._base_url == cloud(name).arm


def test_another_endpoint_is_used_only_when_given():
    ml = make_ml_client(StaticTokenCredential("x"), "sub", "rg", "ws", cloud_name="AzureUSGovernment",
                        arm_endpoint="https://127.0.0.1:9/")
    assert ml._base_url == "https://127.0.0.1:9"


def test_an_unknown_cloud_is_refused():
    with pytest.raises(ValueError, match="use one of public, usgov, china"):
        cloud("mars")


def settings(**kw):
    base = dict(credential=None, credential_type="default", static_token="", emulator_token="", arm_endpoint="",
                azure_cloud="public")
    return SimpleNamespace(**{**base, **kw})


def test_a_static_token_without_an_emulator_endpoint_is_refused():
    assert "for the local emulator only" in credential_problem("static-token", arm_endpoint="", static_token="t")
    with pytest.raises(SpawnException) as e:
        credential_for(settings(credential_type="static-token", static_token="t"), logging.getLogger("t"))
    assert "misconfigured" in e.value.jupyterhub_message and "An admin must fix it" in e.value.jupyterhub_message


def test_a_static_token_needs_its_token():
    assert "needs the token" in credential_problem("static-token", arm_endpoint="https://emu", static_token="")


def test_the_static_token_goes_to_the_emulator():
    cred = credential_for(settings(credential_type="static-token", static_token="t1", arm_endpoint="https://emu"),
                          logging.getLogger("t"))
    assert cred.get_token("https://management.azure.com/.default").token == "t1"


def test_the_old_emulator_token_still_works_with_a_warning(caplog):
    cred = credential_for(settings(emulator_token="old", arm_endpoint="https://emu"), logging.getLogger("t"))
    assert cred.get_token("scope").token == "old"
    assert "emulator_token is deprecated" in caplog.text


def test_a_credential_object_wins():
    obj = object()
    assert credential_for(settings(credential=obj, credential_type="static-token"), logging.getLogger("t")) is obj


@pytest.mark.parametrize("kind,cls", [
    ("default", "DefaultAzureCredential"), ("managed-identity", "ManagedIdentityCredential"),
    ("service-principal", "ClientSecretCredential"),
])
def test_each_kind_is_its_azure_identity_credential(kind, cls):
    cred = make_credential(kind, cloud("usgov"), tenant_id="t", client_id="c", client_secret="s")
    assert type(cred).__name__ == cls


def test_a_service_principal_logs_in_at_its_clouds_authority():
    cred = make_credential("service-principal", cloud("china"), tenant_id="t", client_id="c", client_secret="s")
    assert cred._authority == "https://login.chinacloudapi.cn"
