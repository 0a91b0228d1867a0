"""The hub's settings: one .env, checked before anything starts."""

import os
import stat
import subprocess
import sys

import pytest
from traitlets.config import Config

from aml_jupyterhub.hubconfig import ConfigError, configure, ensure_secrets, env_example, load_settings
from tests.conftest import ROOT

AZURE = {
    "LOCAL_MODE": "false",
    "AAD_TENANT_ID": "t-id", "AAD_CLIENT_ID": "c-id", "AAD_CLIENT_SECRET": "c-secret",
    "AAD_ALLOWED_GROUPS": "g1, g2", "AML_SUBSCRIPTION_ID": "sub", "AML_RESOURCE_GROUP": "rg",
    "AML_WORKSPACE": "ws",
}


def test_env_example_is_generated_from_the_settings():
    assert (ROOT / ".env.example").read_text() == env_example(), "run: python -c 'from aml_jupyterhub.hubconfig " \
        "import env_example; open(\".env.example\",\"w\").write(env_example())'"


def test_empty_environment_is_local_mode():
    values = load_settings({})
    assert values["LOCAL_MODE"] is True and values["HOST"] == "localhost"


def test_unknown_setting_named_with_a_suggestion():
    with pytest.raises(ConfigError, match="AML_WORKSPAC is not a setting of aml-jupyterhub. Did you mean AML_WORKSPACE"):
        load_settings({"AML_WORKSPAC": "x"})


@pytest.mark.parametrize("missing", ["AAD_TENANT_ID", "AAD_CLIENT_SECRET", "AML_WORKSPACE"])
def test_missing_required_setting_named(missing):
    env = {k: v for k, v in AZURE.items() if k != missing}
    with pytest.raises(ConfigError, match=f"^{missing} is missing: set it to"):
        load_settings(env)


@pytest.mark.parametrize("env,text", [
    ({"AML_CONNECT_MODE": "tunnel"}, "AML_CONNECT_MODE='tunnel' is not valid: use one of proxy, redirect"),
    ({"AAD_ALLOW_ALL": "maybe"}, "use true or false"),
    ({"HUB_IDLE_CULL_TIMEOUT": "soon"}, "not a whole number"),
    ({"AML_IDLE_SHUTDOWN_MINUTES": "5"}, "between 15 and 4320"),
    ({"AML_START_TIMEOUT": "0"}, "AML_START_TIMEOUT must be a positive number of seconds"),
    ({"AML_START_TIMEOUT": "-30"}, "AML_START_TIMEOUT must be a positive number of seconds"),
    ({"AML_INSTANCE_PREFIX": "Lab-1"}, "AML_INSTANCE_PREFIX='Lab-1' is not valid: use 1-8 lowercase"),
    ({"AML_HUB_ID": "my hub"}, "AML_HUB_ID='my hub' is not valid"),
    ({"AML_RECONCILE_INTERVAL": "-1"}, "AML_RECONCILE_INTERVAL must be 0 (off)"),
    ({"AML_DELETE_FOREVER_ACTION": "purge"}, "use one of keep, delete"),
    ({"AML_CONNECT_MODE": "x" * 10000}, "characters)"),  # a huge value is cut, not echoed
])
def test_bad_values_named(env, text):
    with pytest.raises(ConfigError, match=text.replace("(", r"\(").replace(")", r"\)")):
        load_settings(env)


def test_a_huge_value_is_not_echoed_whole():
    with pytest.raises(ConfigError) as e:
        load_settings({"AML_CONNECT_MODE": "x" * 100_000})
    assert len(str(e.value)) < 400


def test_nobody_could_log_in_is_refused():
    env = {k: v for k, v in AZURE.items() if k != "AAD_ALLOWED_GROUPS"}
    with pytest.raises(ConfigError, match="nobody could log in"):
        load_settings(env)


def test_secrets_made_once_with_tight_permissions(tmp_path):
    first = ensure_secrets(tmp_path)
    again = ensure_secrets(tmp_path)
    assert first == again
    assert stat.S_IMODE(os.stat(tmp_path / "secrets").st_mode) == 0o700
    for name in ("cookie_secret", "crypt_key", "proxy_token"):
        assert stat.S_IMODE(os.stat(tmp_path / "secrets" / name).st_mode) == 0o600
    assert len(bytes.fromhex(first["crypt_key"])) == 32


def test_configure_azure(tmp_path):
    c = Config()
    configure(c, load_settings({**AZURE, "HOST": "hub.example.org", "HUB_DATA_DIR": str(tmp_path),
                                "AML_PROFILES_FILE": str(ROOT / "hub" / "profiles.json")}))
    a = c.VerifiedAzureAdOAuthenticator
    assert a.oauth_callback_url == "https://hub.example.org/hub/oauth_callback"
    assert a.allowed_groups == {"g1", "g2"} and a.manage_groups is True and a.enable_auth_state is True
    assert a.username_claim == "upn"
    assert c.AMLSpawner.workspace_name == "ws" and c.AMLSpawner.ssh_key_file.startswith(str(tmp_path))
    assert c.AMLSpawner.secrets_dir == str(tmp_path / "secrets")
    assert c.AMLSpawner.delete_forever_action == "keep" and c.AMLSpawner.reconcile_interval == 300
    assert [h[0] for h in c.JupyterHub.extra_handlers] == ["/aml/open"]
    assert c.JupyterHub.tornado_settings["log_function"].__module__ == "aml_jupyterhub.accesslog"
    assert c.JupyterHub.cleanup_servers is False and c.JupyterHub.allow_named_servers is True
    assert c.JupyterHub.services[0]["name"] == "idle-culler"
    assert "--timeout=3600" in c.JupyterHub.services[0]["command"]
    # the secrets are in the data volume, not in the config's text
    from jupyterhub.crypto import CryptKeeper

    assert CryptKeeper.instance().keys == [bytes.fromhex((tmp_path / "secrets" / "crypt_key").read_text().strip())]


def test_configure_takes_the_secrets_out_of_the_environment(tmp_path):
    from azure.identity import ClientSecretCredential

    environ = {**AZURE, "AZURE_TENANT_ID": "t", "AZURE_CLIENT_ID": "sp", "AZURE_CLIENT_SECRET": "sp-secret",
               "HUB_DATA_DIR": str(tmp_path), "AML_PROFILES_FILE": str(ROOT / "hub" / "profiles.json")}
    c = Config()
    configure(c, load_settings(environ), environ=environ)
    assert "AZURE_CLIENT_SECRET" not in environ and "AAD_CLIENT_SECRET" not in environ
    assert environ["AZURE_CLIENT_ID"] == "sp"  # not a secret: managed identities read it
    assert isinstance(c.AMLSpawner.credential, ClientSecretCredential)
    assert c.VerifiedAzureAdOAuthenticator.client_secret == "c-secret"


def test_a_service_principal_secret_needs_its_tenant_and_id(tmp_path):
    environ = {**AZURE, "AZURE_CLIENT_SECRET": "sp-secret", "HUB_DATA_DIR": str(tmp_path),
               "AML_PROFILES_FILE": str(ROOT / "hub" / "profiles.json")}
    with pytest.raises(ConfigError, match="AZURE_TENANT_ID and AZURE_CLIENT_ID must be set too"):
        configure(Config(), load_settings(environ), environ=environ)


def test_configure_makes_the_data_dir_and_database_private(tmp_path):
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    (data / "jupyterhub.sqlite").write_text("")
    os.chmod(data / "jupyterhub.sqlite", 0o644)
    configure(Config(), load_settings({"HUB_DATA_DIR": str(data), "HUB_IDLE_CULL_TIMEOUT": "0",
                                       "AML_PROFILES_FILE": str(ROOT / "hub" / "profiles.json")}), environ={})
    assert stat.S_IMODE(os.stat(data).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(data / "jupyterhub.sqlite").st_mode) == 0o600


def test_configure_local_points_at_the_emulator(tmp_path):
    c = Config()
    configure(c, load_settings({"HUB_DATA_DIR": str(tmp_path), "HUB_IDLE_CULL_TIMEOUT": "0",
                                "AML_PROFILES_FILE": str(ROOT / "hub" / "profiles.json")}))
    a = c.VerifiedAzureAdOAuthenticator
    assert a.authorize_url.startswith("https://localhost:8443/") and a.token_url.startswith("https://emulator:8443/")
    assert c.AMLSpawner.arm_endpoint == "https://emulator:8443"
    assert "services" not in c.JupyterHub  # culling off


def test_hub_stops_with_one_line(tmp_path):
    """The real config file, run as JupyterHub would load it, on a typo."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AML_", "AAD_", "HUB_"))}
    env.update({"AML_WORKSPAC": "x", "HUB_DATA_DIR": str(tmp_path)})
    r = subprocess.run([sys.executable, "-m", "jupyterhub", "-f", str(ROOT / "hub" / "jupyterhub_config.py")],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode != 0
    lines = [line for line in r.stderr.splitlines() if "aml-jupyterhub" in line]
    assert lines == ["aml-jupyterhub: configuration error: AML_WORKSPAC is not a setting of aml-jupyterhub. "
                     "Did you mean AML_WORKSPACE?"], r.stderr[-2000:]
    assert "Traceback" not in r.stderr
