"""The pure builders: the instance spec, the server's environment and command."""

import pytest
from traitlets import TraitError

from aml_jupyterhub.config import AMLSettings  # at the top: it imports asyncssh, which runs ldconfig

from aml_jupyterhub.builders import cron_problem, hub_api_address, idle_minutes, instance_spec, server_argv, server_env

OWNER_TAGS = {"jupyterhub-hub": "h1", "jupyterhub-user": "alice", "jupyterhub-server": ""}


def spec(**kw):
    args = dict(name="jhabc", vm_size="Standard_DS3_v2", tags={}, owner_tags=OWNER_TAGS, mode="proxy", idle=None,
                subnet_id="", enable_public_ip=True, setup_script="", setup_script_args="", user_name="alice",
                server_name="", access={"ssh_public_key": "ssh-ed25519 AAAA hub"})
    return instance_spec(**{**args, **kw})


@pytest.mark.parametrize("configured,mode,expected", [
    (None, "proxy", None), (None, "redirect", 60), (0, "redirect", None), (120, "proxy", 120),
])
def test_idle_shutdown_defaults_per_mode(configured, mode, expected):
    assert idle_minutes(configured, mode) == expected


def test_an_admins_tags_cannot_overwrite_the_ownership_tags():
    s = spec(tags={"jupyterhub-user": "mallory", "cost-center": "42"})
    assert s.tags["jupyterhub-user"] == "alice" and s.tags["cost-center"] == "42"


def test_empty_settings_become_absent_and_access_is_the_connectors():
    s = spec(server_name="gpu")
    assert (s.subnet_id, s.setup_script, s.setup_script_args) == (None, None, None)
    assert s.ssh_public_key == "ssh-ed25519 AAAA hub" and s.assigned_user is None
    assert s.description == "JupyterHub server of alice (gpu)"
    r = spec(mode="redirect", access={"assigned_user": ("oid", "tid")}, subnet_id="/sub/net")
    assert r.assigned_user == ("oid", "tid") and r.ssh_public_key is None
    assert r.idle_minutes == 60 and r.subnet_id == "/sub/net"


@pytest.mark.parametrize("url,expected", [
    ("http://0.0.0.0:8081/hub/api", ("127.0.0.1", 8081)),
    ("http://hub.internal:9000/hub/api", ("hub.internal", 9000)),
    ("http://[::]:8081/hub/api", ("127.0.0.1", 8081)),
    ("http://10.1.2.3/hub/api", ("10.1.2.3", 80)),
])
def test_hub_api_address(url, expected):
    assert hub_api_address(url) == expected


def test_with_internal_tls_the_tunnelled_api_url_stays_https():
    env = {"JUPYTERHUB_API_URL": "https://hub:8081/hub/api", "JUPYTERHUB_ACTIVITY_URL": "https://hub:8081/hub/api/x"}
    out = server_env(env, hub_api_url="https://hub:8081/hub/api", tunnel_port=41000)
    assert out["JUPYTERHUB_API_URL"] == "https://127.0.0.1:41000/hub/api"
    assert out["JUPYTERHUB_ACTIVITY_URL"] == "https://127.0.0.1:41000/hub/api/x"


def test_server_env_points_the_api_at_the_tunnel():
    env = {"JUPYTERHUB_API_URL": "http://10.0.0.1:8081/hub/api",
           "JUPYTERHUB_ACTIVITY_URL": "http://10.0.0.1:8081/hub/api/users/alice/activity",
           "JUPYTERHUB_API_TOKEN": "t", "UNSET": None}
    out = server_env(env, hub_api_url="http://10.0.0.1:8081/hub/api", tunnel_port=41000)
    assert out["JUPYTERHUB_API_URL"] == "http://127.0.0.1:41000/hub/api"
    assert out["JUPYTERHUB_ACTIVITY_URL"] == "http://127.0.0.1:41000/hub/api/users/alice/activity"
    assert out["JUPYTERHUB_API_TOKEN"] == "t" and "UNSET" not in out
    assert env["JUPYTERHUB_API_URL"] == "http://10.0.0.1:8081/hub/api"  # the input is not changed
    direct = server_env(env, hub_api_url="http://10.0.0.1:8081/hub/api", tunnel_port=None)
    assert direct["JUPYTERHUB_API_URL"] == env["JUPYTERHUB_API_URL"]


def test_server_argv():
    assert server_argv(["jupyterhub-singleuser"], ["--debug"], "/env/bin/python") == [
        "/env/bin/python", "-m", "jupyterhub.singleuser", "--debug"]
    assert server_argv(["jupyter", "lab"], [], "/env/bin/python") == ["jupyter", "lab"]


def test_stop_schedule_becomes_amls_own_stop_schedule():
    entity = spec(stop_cron="0 22 * * 1-5", stop_time_zone="W. Europe Standard Time").to_entity()
    (item,) = entity.schedules.compute_start_stop
    assert item.action.lower() == "stop" and item.trigger.expression == "0 22 * * 1-5"
    assert item.trigger.time_zone == "W. Europe Standard Time"
    assert spec().to_entity().schedules is None  # none unless configured


@pytest.mark.parametrize("expression,words", [
    ("0 22 * * *", ""), ("*/15 8-18 * * 1-5", ""), ("0 0 1,15 * *", ""),
    ("0 22 * *", "has 5 fields"), ("0 24 * * *", "hour field '24' must stay within 0-23"),
    ("0 22 * * 7", "day of week field '7'"), ("noon 12 * * *", "minute field 'noon' is not numbers"),
])
def test_cron_expressions_checked_as_aml_takes_them(expression, words):
    problem = cron_problem(expression)
    assert (words in problem) if words else problem == "", problem


def test_bad_stop_schedule_refused_with_the_setting_named():
    with pytest.raises(TraitError, match="stop_schedule '0 22': a cron expression has 5 fields"):
        AMLSettings(stop_schedule="0 22")
