"""docker/z2jh-values.yaml: the zero-to-jupyterhub chart running the hub image
on AKS. No cluster here: these check that what it gives the hub are the
product's settings, complete for Azure mode and accepted by its checks, and
that they configure the hub for the chart's proxy, Services and volume."""

import re

import pytest
import yaml
from traitlets.config import Config

from aml_jupyterhub.hubconfig import configure, load_settings
from aml_jupyterhub.settings import BY_NAME, OUR_PREFIXES, SECRET_VARIABLES
from tests.harness.repo import ROOT

VALUES_FILE = ROOT / "docker" / "z2jh-values.yaml"
POD_IP = "10.244.1.17"
# the chart mounts its Secret here, one file per key (templates/hub/deployment.yaml, secret.yaml)
CHART_SECRET_DIR = "/usr/local/etc/jupyterhub/secret/"


@pytest.fixture(scope="module")
def values() -> dict:
    return yaml.safe_load(VALUES_FILE.read_text())


def settings_of(values: dict) -> dict[str, str]:
    """hub.extraEnv as the pod gets it: a Secret's value or the pod's IP where the chart takes them from there."""
    env = {}
    for name, value in values["hub"]["extraEnv"].items():
        if isinstance(value, dict):
            source = value["valueFrom"]
            if "secretKeyRef" in source:
                env[name] = f"from-k8s-secret-{source['secretKeyRef']['key']}"
            else:
                assert source["fieldRef"]["fieldPath"] == "status.podIP", (name, source)
                env[name] = POD_IP
        else:
            assert isinstance(value, str), (name, value)  # the chart refuses anything else
            env[name] = value
    return env


def test_every_variable_is_a_setting_of_the_product(values):
    names = list(values["hub"]["extraEnv"])
    ours = [n for n in names if n.startswith(OUR_PREFIXES)]
    assert ours and not [n for n in ours if n not in BY_NAME], [n for n in ours if n not in BY_NAME]
    assert not [n for n in names if n not in BY_NAME]


def test_the_settings_azure_mode_needs_are_there_and_pass_the_products_checks(values):
    env = settings_of(values)
    required = [s.name for s in BY_NAME.values() if s.required in ("always", "azure")]
    assert {"AAD_TENANT_ID", "AAD_CLIENT_SECRET", "AML_SUBSCRIPTION_ID", "AML_WORKSPACE"} <= set(required)
    assert not [n for n in required if not env.get(n)]
    checked = load_settings(env)
    assert checked["LOCAL_MODE"] is False and checked["AML_CREDENTIAL"] == "default"
    assert checked["AAD_ALLOWED_GROUPS"]


def test_secrets_come_from_a_kubernetes_secret_never_from_the_file(values):
    env = values["hub"]["extraEnv"]
    for name in SECRET_VARIABLES:
        if name in env:
            assert env[name]["valueFrom"]["secretKeyRef"]["name"] == "aml-jupyterhub", name
    # workload identity: no service principal secret at all
    assert "AZURE_CLIENT_SECRET" not in env and "AML_STATIC_TOKEN" not in env
    assert values["hub"]["labels"]["azure.workload.identity/use"] == "true"
    assert values["hub"]["serviceAccount"]["annotations"]["azure.workload.identity/client-id"]


def test_the_hub_runs_the_images_own_configuration(values):
    assert values["hub"]["args"] == ["jupyterhub", "-f", "/etc/jupyterhub/jupyterhub_config.py"]
    assert "COPY hub /etc/jupyterhub" in (ROOT / "docker" / "hub.Dockerfile").read_text()
    assert (ROOT / "hub" / "jupyterhub_config.py").exists()
    image = values["hub"]["image"]
    assert f"{image['name']}:{image['tag']}" == BY_NAME["HUB_IMAGE"].example
    # the chart's default dummy login is taken out of the values
    assert values["hub"]["config"]["JupyterHub"]["authenticator_class"] is None


def test_it_configures_the_hub_for_the_charts_proxy_services_and_volume(values, tmp_path):
    env = settings_of(values)
    assert env["HUB_PROXY_TOKEN_FILE"] == CHART_SECRET_DIR + "hub.config.ConfigurableHTTPProxy.auth_token"
    # the chart mounts the hub's PVC at /srv/jupyterhub (hub.db.type sqlite-pvc); the data dir is a folder on it
    assert values["hub"]["db"]["type"] == "sqlite-pvc"
    assert env["HUB_DATA_DIR"].startswith("/srv/jupyterhub/")
    assert env["HOST"] in values["proxy"]["https"]["hosts"]

    c = Config()
    token = tmp_path / "token"
    token.write_text("chart-token\n")
    configure(c, load_settings({**env, "HUB_DATA_DIR": str(tmp_path / "data"), "HUB_PROXY_TOKEN_FILE": str(token),
                                "AML_PROFILES_FILE": str(ROOT / "hub" / "profiles.json")}), environ={})
    assert c.ConfigurableHTTPProxy.should_start is False
    assert c.ConfigurableHTTPProxy.api_url == "http://proxy-api:8001"  # the chart's Service of the proxy's API
    assert c.ConfigurableHTTPProxy.auth_token == "chart-token"
    # the chart's probes and its proxy's default target are the hub Service's port 8081
    assert c.JupyterHub.hub_bind_url == "http://0.0.0.0:8081" and c.JupyterHub.hub_connect_url == "http://hub:8081"
    assert c.JupyterHub.spawner_class == "aml"
    # the tunnels listen on the pod's address, where the proxy pod routes to them
    assert c.AMLSpawner.tunnel_bind_ip == "0.0.0.0" and c.AMLSpawner.tunnel_connect_ip == POD_IP
    assert c.AMLSpawner.secrets_dir == str(tmp_path / "data" / "secrets")
    assert c.JupyterHub.db_url.startswith("sqlite:///")
    assert [s["name"] for s in c.JupyterHub.services] == ["idle-culler", "aml-instances"]
    # the admins' page is where the proxy pod reaches the tunnels: the hub pod's own address
    assert c.JupyterHub.services[1]["url"] == f"http://{POD_IP}:10102"


def test_the_postgresql_example_in_its_comments_is_accepted(values):
    url = re.search(r"#\s+HUB_DB_URL: (\S+)", VALUES_FILE.read_text()).group(1)
    checked = load_settings({**settings_of(values), "HUB_DB_URL": url, "HUB_DB_PASSWORD": "pw"})
    assert checked["HUB_DB_URL"] == url


def test_what_the_chart_would_add_for_kubespawner_is_off(values):
    assert values["scheduling"]["userScheduler"]["enabled"] is False
    assert values["prePuller"]["hook"]["enabled"] is False and values["prePuller"]["continuous"]["enabled"] is False
    # the product's culler runs, with HUB_IDLE_CULL_TIMEOUT; the chart's would need its own configuration
    assert values["cull"]["enabled"] is False and settings_of(values)["HUB_IDLE_CULL_TIMEOUT"]
