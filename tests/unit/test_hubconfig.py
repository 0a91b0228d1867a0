"""The hub's settings: one .env, checked before anything starts."""

import os
import stat

import pytest
from traitlets.config import Config

from aml_jupyterhub.hubconfig import ConfigError, config_files, configure, ensure_secrets, env_example, load_settings
from tests.harness.repo import ROOT, example_env

AZURE = {
    "LOCAL_MODE": "false",
    "AAD_TENANT_ID": "t-id", "AAD_CLIENT_ID": "c-id", "AAD_CLIENT_SECRET": "c-secret",
    "AAD_ALLOWED_GROUPS": "g1, g2", "AML_SUBSCRIPTION_ID": "sub", "AML_RESOURCE_GROUP": "rg",
    "AML_WORKSPACE": "ws",
}


def test_env_example_is_generated_from_the_settings():
    assert (ROOT / ".env.example").read_text() == env_example(), "run: python -c 'from aml_jupyterhub.hubconfig " \
        "import env_example; open(\".env.example\",\"w\").write(env_example())'"


def test_env_example_as_it_is_is_local_mode():
    values = load_settings(example_env())
    assert values["LOCAL_MODE"] is True and values["HOST"] == "localhost"
    assert values["AML_CREDENTIAL"] == "static-token"


def test_env_example_holds_the_emulators_test_identity():
    """Local mode is wired through settings only: .env.example's Azure AD
    values are the emulator's app registration and groups (the hub's package
    knows none of them); no ARM token: the emulator makes its own on first
    start, into the file compose shares with the hub."""
    from aml_emulator.aad import IdentityConfig
    from aml_emulator.config import DEFAULT_ARM_TOKEN

    identity, env = IdentityConfig.load(None), example_env()
    app = identity.apps[0]
    assert (env["AAD_TENANT_ID"], env["AAD_CLIENT_ID"], env["AAD_CLIENT_SECRET"]) == (
        identity.tenant_id, app.client_id, app.client_secret)
    groups = {g.display_name: g.id for g in identity.groups}
    assert env["AAD_ALLOWED_GROUPS"] == groups["Data Science"] and env["AAD_ADMIN_GROUPS"] == groups["Hub Admins"]
    assert env["AAD_GROUP_NAMES"] == ",".join(f"{g.id}={g.display_name}" for g in identity.groups)
    assert env["AML_STATIC_TOKEN"] == ""
    compose = (ROOT / "compose.yaml").read_text()
    emulator_args = compose.split("AML_EMULATOR_ARGS: >-", 1)[1].split("volumes:", 1)[0]
    assert f"--arm-token-file {env['EMULATOR_ARM_TOKEN_FILE']} " in emulator_args
    assert "--arm-token " not in emulator_args and DEFAULT_ARM_TOKEN not in compose


def test_local_mode_without_the_emulators_settings_says_where_they_are():
    env = {k: v for k, v in example_env().items() if k != "AAD_CLIENT_SECRET"}
    with pytest.raises(ConfigError, match=r"AAD_CLIENT_SECRET is missing.*\.env\.example has the emulator's"):
        load_settings(env)


def test_a_static_token_never_goes_to_azure():
    with pytest.raises(ConfigError, match="AML_CREDENTIAL=static-token: a static token is for the local emulator"):
        load_settings({**AZURE, "AML_CREDENTIAL": "static-token", "AML_STATIC_TOKEN": "t"})


def test_local_mode_needs_the_static_token_credential():
    with pytest.raises(ConfigError, match="AML_CREDENTIAL=default cannot reach the local emulator"):
        load_settings({**example_env(), "AML_CREDENTIAL": "default"})


@pytest.mark.parametrize("name,login,issuer,arm", [
    ("public", "https://login.microsoftonline.com", "https://sts.windows.net/t-id/", "AzureCloud"),
    ("usgov", "https://login.microsoftonline.us", "https://sts.usgovcloudapi.net/t-id/", "AzureUSGovernment"),
    ("china", "https://login.chinacloudapi.cn", "https://sts.chinacloudapi.cn/t-id/", "AzureChinaCloud"),
])
def test_the_cloud_is_chosen_by_name(tmp_path, name, login, issuer, arm):
    from azure.identity import DefaultAzureCredential

    from aml_jupyterhub.clouds import cloud

    c = Config()
    configure(c, load_settings({**AZURE, "AZURE_CLOUD": name, "HUB_DATA_DIR": str(tmp_path),
                                "AML_PROFILES_FILE": str(ROOT / "hub" / "profiles.json")}), environ={})
    a = c.VerifiedAzureAdOAuthenticator
    assert a.authorize_url == f"{login}/t-id/oauth2/authorize" and a.token_url == f"{login}/t-id/oauth2/token"
    assert a.issuer == issuer and a.logout_redirect_url.startswith(f"{login}/t-id/oauth2/logout")
    assert c.AMLSpawner.azure_cloud == name and "arm_endpoint" not in c.AMLSpawner
    assert cloud(name).sdk_name == arm
    assert isinstance(c.AMLSpawner.credential, DefaultAzureCredential)


def test_every_scalar_spawner_trait_is_a_setting(tmp_path):
    """The escape hatch for the traits the main table does not list: AML_<TRAIT>."""
    from aml_jupyterhub.config import AMLSettings
    from aml_jupyterhub.settings import BY_NAME, HUB_SET_TRAITS

    traits = {s.trait for s in BY_NAME.values() if s.trait}
    assert set(AMLSettings.class_own_traits(config=True)) - traits == HUB_SET_TRAITS
    c = Config()
    configure(c, load_settings({**AZURE, "AML_SSH_USER": "ubuntu", "AML_CALL_TIMEOUT": "45.5",
                                "AML_SINGLEUSER_PYTHONS": "/opt/py/bin/python, python3",
                                "HUB_DATA_DIR": str(tmp_path),
                                "AML_PROFILES_FILE": str(ROOT / "hub" / "profiles.json")}), environ={})
    s = c.AMLSpawner
    assert (s.ssh_user, s.call_timeout, s.singleuser_pythons) == ("ubuntu", 45.5, ["/opt/py/bin/python", "python3"])


def test_a_bad_projects_file_stops_the_hub_not_the_first_form(tmp_path):
    projects = tmp_path / "projects.json"
    projects.write_text('[{"slug": "a", "display_name": "A"}]')
    with pytest.raises(ConfigError, match=r"AML_PROJECTS_FILE .*projects.json: projects: project 'a' is missing "
                                          "subscription_id"):
        configure(Config(), load_settings({**AZURE, "AML_PROJECTS_FILE": str(projects), "HUB_DATA_DIR": str(tmp_path),
                                           "AML_PROFILES_FILE": str(ROOT / "hub" / "profiles.json")}), environ={})


def test_config_files_run_in_name_order(tmp_path):
    for name in ("20-b.py", "10-a.py", "notes.txt"):
        (tmp_path / name).write_text("")
    assert [os.path.basename(f) for f in config_files(str(tmp_path))] == ["10-a.py", "20-b.py"]
    assert config_files(str(tmp_path / "missing")) == []


def test_unknown_setting_named_with_a_suggestion():
    with pytest.raises(ConfigError, match="AML_WORKSPAC is not a setting of aml-jupyterhub. Did you mean AML_WORKSPACE"):
        load_settings({"AML_WORKSPAC": "x"})


@pytest.mark.parametrize("missing", ["AAD_TENANT_ID", "AAD_CLIENT_SECRET", "AML_WORKSPACE"])
def test_missing_required_setting_named(missing):
    env = {k: v for k, v in AZURE.items() if k != missing}
    with pytest.raises(ConfigError, match=f"^{missing} is missing: set it to"):
        load_settings(env)


@pytest.mark.parametrize("env,text", [
    ({"AML_CONNECT_MODE": "tunnel"}, "AML_CONNECT_MODE='tunnel' is not valid: use one of proxy, direct, redirect"),
    ({"AAD_ALLOW_ALL": "maybe"}, "use true or false"),
    ({"HUB_IDLE_CULL_TIMEOUT": "soon"}, "HUB_IDLE_CULL_TIMEOUT='soon' is not a number"),
    ({"AML_CALL_TIMEOUT": "soon"}, "AML_CALL_TIMEOUT='soon' is not a number"),
    ({"AZURE_CLOUD": "mars"}, "AZURE_CLOUD='mars' is not valid: use one of public, usgov, china"),
    ({"AML_CREDENTIAL": "password"}, "use one of default, managed-identity, service-principal, static-token"),
    ({"AML_IDLE_SHUTDOWN_MINUTES": "5"}, "between 15 and 4320"),
    ({"AML_START_TIMEOUT": "0"}, "AML_START_TIMEOUT must be a positive number of seconds"),
    ({"AML_START_TIMEOUT": "-30"}, "AML_START_TIMEOUT must be a positive number of seconds"),
    ({"AML_INSTANCE_PREFIX": "Lab-1"}, "AML_INSTANCE_PREFIX='Lab-1' is not valid: AML_INSTANCE_PREFIX must be 1-8"),
    ({"AML_HUB_ID": "my hub"}, "AML_HUB_ID='my hub' is not valid"),
    ({"AML_RECONCILE_INTERVAL": "-1"}, "AML_RECONCILE_INTERVAL must be 0 (off)"),
    ({"AML_DELETE_FOREVER_ACTION": "purge"}, "use one of keep, delete"),
    ({"HUB_INSTANCES_PAGE_PORT": "0"}, "HUB_INSTANCES_PAGE_PORT=0 is not a port: use 1-65535"),
    ({"AML_CONNECT_MODE": "x" * 10000}, "characters)"),  # a huge value is cut, not echoed
    # HOST goes into Caddy's config and the hub's URL: a newline would add a Caddy directive
    ({"HOST": "hub.example.org\n\treverse_proxy evil:80"}, "reverse_proxy evil:80' is not valid: use the hub's"),
    ({"HOST": "my host"}, "HOST='my host' is not valid: use the hub's public DNS name alone"),
    ({"HOST": "https://evil/x"}, "HOST='https://evil/x' is not valid"),
    ({"HOST": "hub.example.org:8443"}, "no scheme (https://), port, path or spaces"),
    ({"HOST": "-bad.example.org"}, "HOST='-bad.example.org' is not valid"),
    ({"ACME_EMAIL": "admin@example.org\n}"}, "^ACME_EMAIL='admin@example.org.+' is not valid: use one plain e-mail"),
    ({"ACME_EMAIL": "not an address"}, "ACME_EMAIL='not an address' is not valid"),
])
def test_bad_values_named(env, text):
    with pytest.raises(ConfigError, match=text.replace("(", r"\(").replace(")", r"\)")):
        load_settings({**example_env(), **env})


@pytest.mark.parametrize("host", ["localhost", "hub.example.org", "hub-1.data.example.org."])
def test_good_hosts_and_addresses_pass(host):
    values = load_settings({**example_env(), "HOST": host, "ACME_EMAIL": "ops+hub@example.org"})
    assert (values["HOST"], values["ACME_EMAIL"]) == (host, "ops+hub@example.org")


@pytest.mark.parametrize("host", ["10.0.0.4"])
def test_an_ip_address_as_host_needs_users_on_the_hubs_origin(host):
    with pytest.raises(ConfigError, match=rf"HOST={host} is an IP address, which has no subdomains"):
        load_settings({**example_env(), "HOST": host})
    values = load_settings({**example_env(), "HOST": host, "HUB_USER_SUBDOMAINS": "false"})
    assert values["HOST"] == host and values["HUB_USER_SUBDOMAINS"] is False


def test_users_servers_get_hosts_of_their_own_by_default(tmp_path):
    values = load_settings({**example_env(), "HUB_DATA_DIR": str(tmp_path), "HOST": "hub.example.org",
                            "AML_PROFILES_FILE": str(ROOT / "hub" / "profiles.json")})
    c = Config()
    configure(c, values, environ={})
    assert c.JupyterHub.subdomain_host == "https://hub.example.org"
    assert c.JupyterHub.cookie_host_prefix_enabled is True
    assert c.JupyterHub.tornado_settings["headers"]["X-Frame-Options"] == "DENY"
    single = Config()
    configure(single, {**values, "HUB_USER_SUBDOMAINS": False}, environ={})
    assert "subdomain_host" not in single.JupyterHub and "cookie_host_prefix_enabled" not in single.JupyterHub


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
    assert c.AMLSpawner.operation_times_file == str(tmp_path / "operation-times.json")  # estimates outlive the hub
    assert c.AMLSpawner.delete_forever_action == "keep" and c.AMLSpawner.reconcile_interval == 300
    assert [h[0] for h in c.JupyterHub.extra_handlers] == ["/aml/open", "/api/aml/instances",
                                                             "/api/aml/instances/stop"]
    assert c.JupyterHub.tornado_settings["log_function"].__module__ == "aml_jupyterhub.accesslog"
    assert c.JupyterHub.cleanup_servers is False and c.JupyterHub.allow_named_servers is True
    assert c.JupyterHub.services[0]["name"] == "idle-culler"
    assert "--timeout=3600" in c.JupyterHub.services[0]["command"]
    # the secrets are in the data volume, not in the config's text
    from jupyterhub.crypto import CryptKeeper

    assert CryptKeeper.instance().keys == [bytes.fromhex((tmp_path / "secrets" / "crypt_key").read_text().strip())]


def test_configure_takes_the_secrets_out_of_the_environment(tmp_path):
    from azure.identity import ClientSecretCredential

    environ = {**AZURE, "AML_CREDENTIAL": "service-principal", "AZURE_TENANT_ID": "t", "AZURE_CLIENT_ID": "sp", "AZURE_CLIENT_SECRET": "sp-secret",
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
    with pytest.raises(ConfigError, match="needs AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET together"):
        configure(Config(), load_settings(environ), environ=environ)


def test_configure_makes_the_data_dir_and_database_private(tmp_path):
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    (data / "jupyterhub.sqlite").write_text("")
    os.chmod(data / "jupyterhub.sqlite", 0o644)
    configure(Config(), load_settings({**example_env(), "HUB_DATA_DIR": str(data), "HUB_IDLE_CULL_TIMEOUT": "0",
                                       "AML_PROFILES_FILE": str(ROOT / "hub" / "profiles.json")}), environ={})
    assert stat.S_IMODE(os.stat(data).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(data / "jupyterhub.sqlite").st_mode) == 0o600


def test_configure_local_points_at_the_emulator(tmp_path):
    c = Config()
    configure(c, load_settings({**example_env(), "HUB_DATA_DIR": str(tmp_path), "HUB_IDLE_CULL_TIMEOUT": "0",
                                "AML_PROFILES_FILE": str(ROOT / "hub" / "profiles.json")}), environ={})
    a = c.VerifiedAzureAdOAuthenticator
    assert a.authorize_url.startswith("https://localhost:8443/") and a.token_url.startswith("https://emulator:8443/")
    assert a.group_display_names["5e1dd9df-b8aa-4f0e-a9ea-7938609ffd83"] == "Data Science"
    assert c.AMLSpawner.arm_endpoint == "https://emulator:8443"
    assert c.AMLSpawner.credential_type == "static-token" and "static_token" not in c.AMLSpawner
    assert c.AMLSpawner.credential.path == "/srv/emulator-ca/arm-token"  # the emulator's, read when first used
    assert [s["name"] for s in c.JupyterHub.services] == ["aml-instances"]  # culling off; the admins' page
    assert c.JupyterHub.services[0]["url"] == "http://127.0.0.1:10102"  # the hub starts its own proxy here


def test_the_instances_page_listens_where_its_setting_says(tmp_path):
    c = Config()
    configure(c, load_settings({**example_env(), "HUB_DATA_DIR": str(tmp_path), "HUB_IDLE_CULL_TIMEOUT": "0",
                                "AML_PROFILES_FILE": str(ROOT / "hub" / "profiles.json"),
                                "HUB_INSTANCES_PAGE_PORT": "10112"}), environ={})
    assert c.JupyterHub.services[0]["url"] == "http://127.0.0.1:10112"


def test_the_hub_starts_a_proxy_that_defaults_to_the_hub_unless_another_is_configured():
    from aml_jupyterhub.hubconfig import apply_essentials
    from aml_jupyterhub.proxy import HubDefaultProxy, with_default_target

    c = Config()
    apply_essentials(c)
    assert c.JupyterHub.proxy_class is HubDefaultProxy
    mine = Config()
    mine.JupyterHub.proxy_class = "traefik"  # an admin's own proxy stays
    apply_essentials(mine)
    assert mine.JupyterHub.proxy_class == "traefik"

    hub = "http://127.0.0.1:8081"
    assert with_default_target(["configurable-http-proxy"], hub) == ["configurable-http-proxy", "--default-target", hub]
    for own in (["chp", "--default-target", "http://x:1"], ["chp", "--default-target=http://x:1"]):
        assert with_default_target(own, hub) == own  # an admin's own default target is kept


def test_with_the_proxy_container_the_hub_neither_starts_a_proxy_nor_keeps_tunnels(tmp_path):
    token_file = tmp_path / "proxy-secrets" / "token"
    c = Config()
    configure(c, load_settings({**example_env(), "HUB_DATA_DIR": str(tmp_path / "data"),
                                "AML_PROFILES_FILE": str(ROOT / "hub" / "profiles.json"),
                                "HUB_PROXY_API_URL": "http://proxy:8001", "AML_TUNNEL_SERVICE_URL": "http://tunnels:8002",
                                "HUB_PROXY_TOKEN_FILE": str(token_file)}), environ={})
    token = token_file.read_text().strip()
    p = c.ConfigurableHTTPProxy
    assert (p.should_start, p.api_url, p.auth_token) == (False, "http://proxy:8001", token)
    assert "pid_file" not in p
    assert (c.JupyterHub.hub_bind_url, c.JupyterHub.hub_connect_url) == ("http://0.0.0.0:8081", "http://hub:8081")
    assert c.JupyterHub.last_activity_interval == 60  # routes back within a minute of a proxy restart
    assert (c.AMLSpawner.tunnel_service_url, c.AMLSpawner.tunnel_service_token) == ("http://tunnels:8002", token)
    # the hub's own proxy token (for a proxy it starts) is another secret, not this one
    assert (tmp_path / "data" / "secrets" / "proxy_token").read_text().strip() != token


def test_without_the_proxy_container_the_hub_starts_its_own_proxy(tmp_path):
    c = Config()
    configure(c, load_settings({**example_env(), "HUB_DATA_DIR": str(tmp_path),
                                "AML_PROFILES_FILE": str(ROOT / "hub" / "profiles.json")}), environ={})
    assert "should_start" not in c.ConfigurableHTTPProxy and c.JupyterHub.hub_bind_url == "http://127.0.0.1:8081"
    assert c.ConfigurableHTTPProxy.pid_file == str(tmp_path / "proxy.pid")
    assert "tunnel_service_url" not in c.AMLSpawner or not c.AMLSpawner.tunnel_service_url


def test_compose_runs_the_proxy_container_and_points_the_hub_and_caddy_at_it():
    import yaml

    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    proxy, tunnels, hub = services["proxy"], services["tunnels"], services["hub"]
    for side in (proxy, tunnels):
        assert side["command"][0] == "aml-jupyterhub-proxy" and side["image"] == hub["image"]
        assert "proxy-secrets:/srv/proxy-secrets" in side["volumes"]
        assert not any(v.startswith("hub-data") for v in side["volumes"])  # the hub's secrets and keys stay the hub's
        assert hub["depends_on"][[k for k, v in services.items() if v is side][0]]["condition"] == "service_healthy"
    assert "proxy-secrets:/srv/proxy-secrets" in hub["volumes"]
    # the internet-facing proxy holds no tunnel (no instance key); the tunnels' keys live in a tmpfs
    assert "--no-tunnels" in proxy["command"] and "tmpfs" not in proxy
    assert tunnels["command"][1:3] == ["--chp", ""] and tunnels["tmpfs"][0].startswith("/run/aml-tunnels:mode=0700")
    assert hub["environment"]["HUB_PROXY_API_URL"].endswith("http://proxy:8001}")
    assert hub["environment"]["AML_TUNNEL_SERVICE_URL"].endswith("http://tunnels:8002}")
    assert "reverse_proxy proxy:8000" in (ROOT / "docker" / "Caddyfile").read_text()


def direct_config(tmp_path, **env) -> Config:
    c = Config()
    configure(c, load_settings({**example_env(), "HUB_DATA_DIR": str(tmp_path / "data"),
                                "AML_PROFILES_FILE": str(ROOT / "hub" / "profiles.json"),
                                "AML_CONNECT_MODE": "direct", **env}), environ={})
    return c


def test_direct_mode_turns_on_internal_tls_for_the_hub_the_proxy_and_the_culler(tmp_path):
    token_file = tmp_path / "proxy-secrets" / "token"
    c = direct_config(tmp_path, HUB_PROXY_API_URL="http://proxy:8001", HUB_PROXY_TOKEN_FILE=str(token_file),
                      HUB_VNET_IP="10.0.0.4")
    j = c.JupyterHub
    assert j.internal_ssl is True and j.internal_certs_location == str(tmp_path / "data" / "internal-ssl")
    assert j.trusted_alt_names == ["DNS:hub", "DNS:proxy", "IP:10.0.0.4"]
    assert (j.hub_bind_url, j.hub_connect_url) == ("https://0.0.0.0:8081", "https://hub:8081")
    assert c.ConfigurableHTTPProxy.api_url == "https://proxy:8001"
    assert c.HubDefaultProxy.tls_share_dir == str(tmp_path / "proxy-secrets" / "internal-ssl")
    assert c.AMLSpawner.connect_mode == "direct" and c.AMLSpawner.hub_connect_url == "https://10.0.0.4:8081"
    culler = j.services[0]["command"]
    assert "--ssl-enabled=True" in culler and f"--internal-certs-location={tmp_path / 'data' / 'internal-ssl'}" in culler


def test_direct_mode_in_local_mode_servers_call_the_hub_on_the_compose_network(tmp_path):
    c = direct_config(tmp_path)
    assert c.AMLSpawner.hub_connect_url == "https://hub:8081"
    assert "tls_share_dir" not in c.HubDefaultProxy  # the hub starts its own proxy and gives it the certificates


def test_direct_mode_on_azure_without_the_hubs_vnet_ip_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="HUB_VNET_IP"):
        c = Config()
        configure(c, load_settings({**AZURE, "HOST": "hub.example.org", "HUB_DATA_DIR": str(tmp_path),
                                    "AML_PROFILES_FILE": str(ROOT / "hub" / "profiles.json"),
                                    "AML_CONNECT_MODE": "direct"}), environ={})


def test_proxy_mode_with_the_proxy_container_withdraws_what_direct_mode_shared(tmp_path):
    token_file = tmp_path / "proxy-secrets" / "token"
    c = Config()
    configure(c, load_settings({**example_env(), "HUB_DATA_DIR": str(tmp_path / "data"),
                                "AML_PROFILES_FILE": str(ROOT / "hub" / "profiles.json"),
                                "HUB_PROXY_API_URL": "http://proxy:8001", "HUB_PROXY_TOKEN_FILE": str(token_file)}),
              environ={})
    assert c.HubDefaultProxy.tls_share_dir == str(tmp_path / "proxy-secrets" / "internal-ssl")
    assert "internal_ssl" not in c.JupyterHub and c.ConfigurableHTTPProxy.api_url == "http://proxy:8001"


def test_the_direct_compose_file_publishes_the_hubs_api_on_the_vnet_address_only():
    import yaml

    direct = yaml.safe_load((ROOT / "docker" / "compose.direct.yaml").read_text())
    assert direct["services"]["hub"]["ports"] == [
        "${HUB_VNET_IP:?direct mode needs HUB_VNET_IP, the hub VM's private IP in the instances' VNet}:8081:8081"]
    assert set(direct["services"]) == {"hub"}


def test_a_service_on_a_host_of_its_own_is_linked_with_the_hubs_port(tmp_path):
    from jupyterhub.services.service import Service

    values = load_settings({**example_env(), "HUB_DATA_DIR": str(tmp_path), "HTTPS_PORT": "8444",
                            "AML_PROFILES_FILE": str(ROOT / "hub" / "profiles.json")})
    configure(Config(), values, environ={})
    service = Service(name="aml-instances", domain="aml-instances--service.localhost",
                      host="https://aml-instances--service.localhost:8444", base_url="/")
    # JupyterHub's own link was //aml-instances--service.localhost/services/aml-instances/ (port 443)
    assert service.href == "https://aml-instances--service.localhost:8444/services/aml-instances/"
    assert Service(name="page", base_url="/").href == "/services/page/"


def test_under_compose_redirect_modes_endpoint_is_where_the_proxys_container_reaches_it(tmp_path):
    base = {**example_env(), "HUB_DATA_DIR": str(tmp_path), "AML_PROFILES_FILE": str(ROOT / "hub" / "profiles.json"),
            "HUB_PROXY_API_URL": "http://proxy:8001", "HUB_INTERNAL_URL": "http://hub:8081",
            "HUB_PROXY_TOKEN_FILE": str(tmp_path / "proxy-secrets" / "token")}
    c = Config()
    configure(c, load_settings(base), environ={})
    assert (c.AMLSpawner.redirect_bind_ip, c.AMLSpawner.redirect_port, c.AMLSpawner.redirect_connect_ip) == \
        ("0.0.0.0", 8083, "hub")  # not 127.0.0.1 in the hub's container, where the proxy answered 503
    mine = Config()
    configure(mine, load_settings({**base, "AML_REDIRECT_PORT": "9099"}), environ={})
    assert (mine.AMLSpawner.redirect_port, mine.AMLSpawner.redirect_connect_ip) == (9099, "hub")
