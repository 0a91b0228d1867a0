"""The hub's settings: one `.env` file, checked before anything starts.

``hub/jupyterhub_config.py`` reads the environment and hands it to
:func:`load_settings`, which knows every setting (its default, what it means,
an example), refuses unknown or missing ones with one line naming the variable
and what to put there, and returns plain values. :func:`configure` turns them
into JupyterHub configuration; :func:`ensure_secrets` makes the secrets on
first start. ``.env.example`` documents the same list, and a test keeps the
two in step.
"""

from __future__ import annotations

import difflib
import json
import os
import secrets
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

from . import naming, ownership

# Variables with these prefixes belong to us: an unknown one is a typo.
OUR_PREFIXES = ("AML_", "AAD_", "HUB_", "EMULATOR_")


# Read here and handed to the hub's objects; then taken out of the
# environment, so that no child process (the proxy, services) inherits them.
SECRET_VARIABLES = ("AAD_CLIENT_SECRET", "AZURE_CLIENT_SECRET")


class ConfigError(Exception):
    """A setting is wrong; the message names the variable and what to do."""


def _short(value, limit: int = 60) -> str:
    """``value`` for a message: repr'd and cut, so a huge value cannot flood a log."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"


@dataclass(frozen=True)
class Setting:
    name: str
    default: str
    help: str
    example: str = ""
    choices: tuple[str, ...] = ()
    kind: str = "str"  # str, bool, int, list, json
    required: str = ""  # "azure": required when not in local mode
    section: str = ""


def _s(section, name, default, help, example="", **kw) -> Setting:
    return Setting(name=name, default=default, help=help, example=example, section=section, **kw)


SETTINGS: list[Setting] = [
    # --- deployment (also read by compose and Caddy)
    _s("Deployment", "HOST", "localhost",
       "Public DNS name of the hub. Caddy gets a certificate for it (Let's Encrypt for a public name, its "
       "own CA for localhost) and the Azure AD callback is https://HOST/hub/oauth_callback.", "hub.example.org"),
    _s("Deployment", "HTTPS_PORT", "443",
       "Host port Caddy serves HTTPS on (read by compose; the hub puts it in its public URL and the Azure AD "
       "callback when it is not 443). Change it when 443 is taken, e.g. to run the demo beside another server.",
       "8444", kind="int"),
    _s("Deployment", "HTTP_PORT", "80",
       "Host port Caddy answers plain HTTP on, to redirect to HTTPS and for Let's Encrypt (read by compose).",
       "8080", kind="int"),
    _s("Deployment", "STACK_NETWORK", "aml-jupyterhub",
       "Name of the stack's Docker network (read by compose); in local mode the emulated instances join it. "
       "Two stacks on one Docker engine need two names.", "aml-jupyterhub-test"),
    _s("Deployment", "ACME_EMAIL", "", "E-mail for Let's Encrypt notices (optional; read by Caddy).",
       "admin@example.org"),
    _s("Deployment", "LOCAL_MODE", "auto",
       "Use the bundled emulator of Azure ML and Azure AD instead of Azure. auto: on when AML_SUBSCRIPTION_ID "
       "is empty.", "false", choices=("auto", "true", "false")),
    _s("Deployment", "COMPOSE_PROFILES", "",
       "Compose profiles to run (read by docker compose): 'local' adds the emulator.", "local"),
    _s("Deployment", "HUB_IMAGE", "", "Hub image to run instead of the published one (read by compose).",
       "ghcr.io/aml-jupyterhub/aml-jupyterhub:0.1.0"),
    _s("Deployment", "VERSION", "", "Version tag of the locally built images (read by compose).", "0.1.0"),
    # --- Azure AD login
    _s("Azure AD login", "AAD_TENANT_ID", "", "Directory (tenant) id of your Azure AD.",
       "72f988bf-86f1-41af-91ab-2d7cd011db47", required="azure"),
    _s("Azure AD login", "AAD_CLIENT_ID", "", "Application (client) id of the hub's app registration.",
       "0b9c2b4e-1f55-4a1a-9c6e-2f0c4a7f3d21", required="azure"),
    _s("Azure AD login", "AAD_CLIENT_SECRET", "", "A client secret of that app registration.",
       "(from Certificates & secrets)", required="azure"),
    _s("Azure AD login", "AAD_USERNAME_CLAIM", "upn",
       "The id_token claim that becomes the hub user name; must be unique (never the display name).",
       "oid", choices=("upn", "oid", "unique_name", "email")),
    _s("Azure AD login", "AAD_ALLOWED_GROUPS", "",
       "Comma-separated Azure AD group object ids whose members may log in.",
       "5e1dd9df-b8aa-4f0e-a9ea-7938609ffd83", kind="list"),
    _s("Azure AD login", "AAD_ADMIN_GROUPS", "", "Comma-separated group object ids whose members are hub admins.",
       "210f7918-0891-4d4c-8cac-a85617d80301", kind="list"),
    _s("Azure AD login", "AAD_ALLOWED_USERS", "", "Comma-separated user names (per AAD_USERNAME_CLAIM) allowed in.",
       "alice@contoso.com,bob@contoso.com", kind="list"),
    _s("Azure AD login", "AAD_ADMIN_USERS", "", "Comma-separated user names who are hub admins.",
       "carol@contoso.com", kind="list"),
    _s("Azure AD login", "AAD_GROUP_NAMES", "",
       "Display names of the groups above, for the page a refused user sees: comma-separated id=name pairs. "
       "Empty: ids are shown (local mode knows its groups' names).",
       "5e1dd9df-b8aa-4f0e-a9ea-7938609ffd83=Data Science", kind="list"),
    _s("Azure AD login", "AAD_ADMIN_CONTACT", "",
       "Whom a refused user should ask for access (shown on their page). Empty: \"your hub's administrator\".",
       "research-it@example.org"),
    _s("Azure AD login", "AAD_ALLOW_ALL", "false",
       "Let every user of the tenant in (otherwise set allowed groups or users).", "true", kind="bool"),
    # --- Azure ML
    _s("Azure ML", "AML_SUBSCRIPTION_ID", "", "Subscription id of the Azure ML workspace.",
       "00000000-0000-0000-0000-000000000000", required="azure"),
    _s("Azure ML", "AML_RESOURCE_GROUP", "", "Resource group of the workspace.", "rg-research", required="azure"),
    _s("Azure ML", "AML_WORKSPACE", "", "Name of the Azure ML workspace.", "mlw-research", required="azure"),
    _s("Azure ML", "AML_CONNECT_MODE", "proxy",
       "proxy: the hub runs Jupyter on the instance over SSH (all hub features). redirect: users are sent "
       "to the instance's own JupyterLab.", "redirect", choices=("proxy", "redirect")),
    _s("Azure ML", "AML_STOP_ACTION", "stop",
       "What stopping a server does to its instance: stop (keeps the disk, no compute cost), delete "
       "(removes instance and disk), keep (leaves it running). Also applied when a server ends on its own or "
       "fails to start, and to this hub's instances found running without a server.", "delete",
       choices=("stop", "delete", "keep")),
    _s("Azure ML", "AML_DELETE_FOREVER_ACTION", "keep",
       "What removing a server or a user from the hub does to the instance: keep (the instance and its disk "
       "stay for an admin to delete) or delete (instance, disk and SSH key are deleted).", "delete",
       choices=("keep", "delete")),
    _s("Azure ML", "AML_RECONCILE_INTERVAL", "300",
       "Seconds between two lists of the workspace's instances, shared by every server and compared with the "
       "hub's servers: a running instance of this hub without a server is stopped within two intervals. 0 "
       "turns it off.", "120", kind="int"),
    _s("Azure ML", "AML_PROFILES_FILE", "/etc/jupyterhub/profiles.json",
       "JSON file with the VM-size menu (see hub/profiles.json).", "/srv/jupyterhub/profiles.json"),
    _s("Azure ML", "AML_PROJECTS_FILE", "",
       "Optional JSON file listing workspaces users may pick from (a 'Select a project' menu).",
       "/srv/jupyterhub/projects.json"),
    _s("Azure ML", "AML_SHOW_PRICES", "false", "Show Azure's estimated hourly price next to each size.", "true",
       kind="bool"),
    _s("Azure ML", "AML_IDLE_SHUTDOWN_MINUTES", "",
       "AML's own idle shutdown (15-4320 minutes) as a backstop. Empty: off in proxy mode, 60 in redirect mode.",
       "120", kind="int"),
    _s("Azure ML", "AML_INSTANCE_PREFIX", "jh", "Prefix of instance names (1-8 lowercase letters/digits).", "lab"),
    _s("Azure ML", "AML_HUB_ID", "",
       "This hub's id: the jupyterhub-hub tag of its instances and the key of their names. Empty: an id made on "
       "first start and kept in HUB_DATA_DIR/secrets/hub-id. Set it only to keep the id of a hub whose data "
       "volume is replaced.", "research"),
    _s("Azure ML", "AML_SUBNET_ID", "", "Full ARM id of a VNet subnet for the instances (optional).",
       "/subscriptions/.../virtualNetworks/vnet/subnets/instances"),
    _s("Azure ML", "AML_ENABLE_PUBLIC_IP", "true", "Give instances a public IP (false needs AML_SUBNET_ID).",
       "false", kind="bool"),
    _s("Azure ML", "AML_SSH_ADDRESS", "public",
       "Which instance address the hub uses for SSH: public, or private when the hub is in the instances' VNet.",
       "private", choices=("public", "private")),
    _s("Azure ML", "AML_SETUP_SCRIPT", "", "Startup script on the workspace file share, run at each start.",
       "Users/admin/setup.sh"),
    _s("Azure ML", "AML_START_TIMEOUT", "1200", "Seconds a server may take to start (creating a VM takes minutes).",
       "1800", kind="int"),
    _s("Azure ML", "AZURE_TENANT_ID", "",
       "Credential for Azure ML calls (read by azure-identity): tenant of the service principal. Leave the three "
       "AZURE_* empty to use a managed identity.", "72f988bf-86f1-41af-91ab-2d7cd011db47"),
    _s("Azure ML", "AZURE_CLIENT_ID", "", "Client id of that service principal (or of a user-assigned identity).",
       "3f1e7c1a-0000-0000-0000-000000000000"),
    _s("Azure ML", "AZURE_CLIENT_SECRET", "", "Secret of that service principal.", "(secret)"),
    # --- hub
    _s("Hub", "HUB_IDLE_CULL_TIMEOUT", "3600",
       "Stop servers idle this many seconds (their instances stop and cost nothing). 0 turns culling off.",
       "7200", kind="int"),
    _s("Hub", "HUB_LOG_LEVEL", "INFO", "Hub log level.", "DEBUG", choices=("DEBUG", "INFO", "WARNING", "ERROR")),
    _s("Hub", "HUB_DATA_DIR", "/srv/jupyterhub", "Where the database, secrets and SSH keys live (a volume).",
       "/srv/jupyterhub"),
    # --- local mode
    _s("Local mode", "EMULATOR_URL", "https://emulator:8443", "The emulator as the hub reaches it.",
       "https://emulator:8443"),
    _s("Local mode", "EMULATOR_PUBLIC_URL", "https://localhost:8443",
       "The emulator as the browser reaches it (its Azure AD login page, instances' JupyterLab).",
       "https://localhost:8443"),
    _s("Local mode", "EMULATOR_PORT", "8443",
       "Host port (on 127.0.0.1) the emulator is published on, for the browser (read by compose); keep "
       "EMULATOR_PUBLIC_URL's port the same.", "8445", kind="int"),
    _s("Local mode", "EMULATOR_CA", "/srv/emulator-ca/ca.pem", "The emulator's CA certificate, to trust it.",
       "/srv/emulator-ca/ca.pem"),
]

BY_NAME = {s.name: s for s in SETTINGS}


def _parse(setting: Setting, raw: str):
    value = raw.strip()
    if setting.choices and value not in setting.choices:
        raise ConfigError(
            f"{setting.name}={_short(raw)} is not valid: use one of {', '.join(setting.choices)} ({setting.help})"
        )
    if setting.kind == "bool":
        lowered = value.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off", ""):
            return False
        raise ConfigError(f"{setting.name}={_short(raw)} is not valid: use true or false ({setting.help})")
    if setting.kind == "int":
        if value == "":
            return None
        try:
            return int(value)
        except ValueError:
            raise ConfigError(f"{setting.name}={_short(raw)} is not a whole number ({setting.help})") from None
    if setting.kind == "list":
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


def load_settings(env: Mapping[str, str]) -> dict:
    """Every setting's value from ``env`` (defaults filled in); ConfigError
    for an unknown variable of ours, a bad value, or a missing required one."""
    for key in env:
        if key.startswith(OUR_PREFIXES) and key not in BY_NAME:
            close = difflib.get_close_matches(key, list(BY_NAME), n=1)
            hint = f" Did you mean {close[0]}?" if close else " See .env.example for the settings there are."
            raise ConfigError(f"{key[:80]} is not a setting of aml-jupyterhub.{hint}")
    values = {s.name: _parse(s, env.get(s.name, s.default) or s.default) for s in SETTINGS}
    local = values["LOCAL_MODE"]
    values["LOCAL_MODE"] = (not values["AML_SUBSCRIPTION_ID"]) if local == "auto" else local == "true"
    if not values["LOCAL_MODE"]:
        for s in SETTINGS:
            if s.required == "azure" and not values[s.name]:
                raise ConfigError(f"{s.name} is missing: set it to the {s.help[0].lower()}{s.help[1:].rstrip('.')} "
                                  f"(e.g. {s.example}), or set LOCAL_MODE=true to run against the emulator.")
        if not (values["AAD_ALLOW_ALL"] or values["AAD_ALLOWED_GROUPS"] or values["AAD_ALLOWED_USERS"]
                or values["AAD_ADMIN_GROUPS"] or values["AAD_ADMIN_USERS"]):
            raise ConfigError("AAD_ALLOWED_GROUPS is empty and so are AAD_ALLOWED_USERS and the admin lists: nobody "
                              "could log in. Set AAD_ALLOWED_GROUPS to group object ids (or AAD_ALLOW_ALL=true).")
    start_timeout = values["AML_START_TIMEOUT"]
    if start_timeout is not None and start_timeout <= 0:
        raise ConfigError("AML_START_TIMEOUT must be a positive number of seconds (creating a VM takes minutes; "
                          "the default is 1200).")
    if values["AML_RECONCILE_INTERVAL"] is not None and values["AML_RECONCILE_INTERVAL"] < 0:
        raise ConfigError("AML_RECONCILE_INTERVAL must be 0 (off) or a number of seconds.")
    if not naming.valid_prefix(values["AML_INSTANCE_PREFIX"]):
        raise ConfigError(f"AML_INSTANCE_PREFIX={_short(values['AML_INSTANCE_PREFIX'])} is not valid: use 1-8 "
                          "lowercase letters or digits, starting with a letter (it begins every instance name).")
    if values["AML_HUB_ID"] and not ownership.valid_hub_id(values["AML_HUB_ID"]):
        raise ConfigError(f"AML_HUB_ID={_short(values['AML_HUB_ID'])} is not valid: use 1-64 letters, digits, '.', "
                          "'_' or '-' (or leave it empty for a generated id).")
    for name in ("HTTPS_PORT", "HTTP_PORT", "EMULATOR_PORT"):
        if values[name] is not None and not 1 <= values[name] <= 65535:
            raise ConfigError(f"{name}={values[name]} is not a port: use 1-65535 ({BY_NAME[name].help})")
    cull = values["HUB_IDLE_CULL_TIMEOUT"]
    if cull is not None and cull < 0:
        raise ConfigError("HUB_IDLE_CULL_TIMEOUT must be 0 (off) or a number of seconds.")
    idle = values["AML_IDLE_SHUTDOWN_MINUTES"]
    if idle not in (None, 0) and not 15 <= idle <= 4320:
        raise ConfigError("AML_IDLE_SHUTDOWN_MINUTES must be between 15 and 4320 (AML's limits), or empty for off.")
    return values


# ---- secrets ---------------------------------------------------------


def _secret_file(path: Path, make: Callable[[], str]) -> str:
    if path.exists():
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            os.chmod(path, 0o600)
        return path.read_text().strip()
    value = make()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value + "\n")
    return value


def ensure_secrets(data_dir: Path) -> dict:
    """The hub's secrets, made on first start in ``data_dir/secrets`` (0700/0600)."""
    directory = Path(data_dir) / "secrets"
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(directory, 0o700)
    return {
        "cookie_secret_file": str(directory / "cookie_secret"),
        "cookie_secret": _secret_file(directory / "cookie_secret", lambda: secrets.token_hex(32)),
        "crypt_key": _secret_file(directory / "crypt_key", lambda: secrets.token_hex(32)),
        "proxy_token": _secret_file(directory / "proxy_token", lambda: secrets.token_hex(32)),
    }


# ---- JupyterHub configuration -----------------------------------------


def _local_identity():
    from .emulator.aad import IdentityConfig

    return IdentityConfig.load(None)


def _read_json(path: str, what: str):
    try:
        return json.loads(Path(path).read_text())
    except OSError as e:
        raise ConfigError(f"cannot read {what} {path}: {e.strerror}") from None
    except json.JSONDecodeError as e:
        raise ConfigError(f"{what} {path} is not valid JSON: line {e.lineno}: {e.msg}") from None


def prepare_data_dir(path: Path) -> Path:
    """The data directory, 0700, with the database file 0600 (made so before
    JupyterHub opens it); ConfigError in one line if the hub cannot write there."""
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        if path.stat().st_mode & 0o077:
            os.chmod(path, 0o700)
        db = path / "jupyterhub.sqlite"
        os.close(os.open(db, os.O_WRONLY | os.O_CREAT, 0o600))
        if db.stat().st_mode & 0o077:
            os.chmod(db, 0o600)
    except OSError as e:
        raise ConfigError(
            f"HUB_DATA_DIR={path} cannot be used: {e.strerror or e} (the hub runs as uid {os.getuid()}). Mount a "
            "volume there that this user may write, or point HUB_DATA_DIR at one."
        ) from None
    return path


def azure_credential(env: Mapping[str, str]):
    """The service principal of AZURE_TENANT_ID/CLIENT_ID/CLIENT_SECRET when
    a secret is set (made now, so the secret can leave the environment), else
    None: the spawner then uses DefaultAzureCredential (managed or workload
    identity, az login), which needs no secret in the environment."""
    secret = env.get("AZURE_CLIENT_SECRET", "")
    if not secret:
        return None
    tenant, client = env.get("AZURE_TENANT_ID", ""), env.get("AZURE_CLIENT_ID", "")
    if not (tenant and client):
        raise ConfigError("AZURE_CLIENT_SECRET is set, so AZURE_TENANT_ID and AZURE_CLIENT_ID must be set too "
                          "(the service principal's tenant and application id).")
    from azure.identity import ClientSecretCredential

    return ClientSecretCredential(tenant, client, secret)


def scrub_secrets(environ) -> None:
    """Take the secrets out of this process's environment (children inherit it)."""
    for name in SECRET_VARIABLES:
        environ.pop(name, None)


def apply_essentials(c) -> None:
    """What any hub running AMLSpawner needs besides the spawner's settings
    (a hand-written jupyterhub_config.py calls this too):

    - redirect mode's page behind the hub's login (``handlers``);
    - an access log that hides OAuth codes and states also inside nested URLs;
    - the reconcilers, started once the hub has found its servers.
    """
    from .accesslog import log_request
    from .aml_spawner import start_reconcilers_with_hub
    from .handlers import extra_handlers

    c.JupyterHub.extra_handlers = [*c.JupyterHub.get("extra_handlers", []), *extra_handlers()]
    settings = c.JupyterHub.get("tornado_settings", {})
    c.JupyterHub.tornado_settings = {**settings, "log_function": log_request}
    start_reconcilers_with_hub()


def configure(c, values: dict, environ=None) -> None:
    """Apply the settings to a JupyterHub config object ``c``; the secrets
    are then taken out of ``environ`` (default: os.environ)."""
    from .auth import VerifiedAzureAdOAuthenticator

    environ = os.environ if environ is None else environ
    data = prepare_data_dir(Path(values["HUB_DATA_DIR"]))
    sec = ensure_secrets(data)
    host = values["HOST"]
    local = values["LOCAL_MODE"]
    port = values["HTTPS_PORT"] or 443
    public = f"https://{host}" if port == 443 else f"https://{host}:{port}"

    c.JupyterHub.bind_url = "http://0.0.0.0:8000"
    c.JupyterHub.hub_bind_url = "http://127.0.0.1:8081"
    c.JupyterHub.public_url = public
    c.JupyterHub.db_url = f"sqlite:///{data / 'jupyterhub.sqlite'}"
    c.JupyterHub.upgrade_db = True
    c.JupyterHub.cookie_secret_file = sec["cookie_secret_file"]
    # JupyterHub makes its CryptKeeper without the config (it reads keys from
    # JUPYTERHUB_CRYPT_KEY, which child processes would inherit): set the
    # process-wide instance's keys directly.
    from jupyterhub.crypto import CryptKeeper

    CryptKeeper.instance().keys = [bytes.fromhex(sec["crypt_key"])]
    c.ConfigurableHTTPProxy.auth_token = sec["proxy_token"]
    c.ConfigurableHTTPProxy.pid_file = str(data / "proxy.pid")
    c.JupyterHub.pid_file = str(data / "jupyterhub.pid")
    c.JupyterHub.cleanup_servers = False  # servers (and their instances) survive hub restarts
    c.JupyterHub.allow_named_servers = True
    c.JupyterHub.log_level = values["HUB_LOG_LEVEL"]

    # ---- login
    c.JupyterHub.authenticator_class = VerifiedAzureAdOAuthenticator
    a = c.VerifiedAzureAdOAuthenticator
    if local:
        identity = _local_identity()
        app = identity.apps[0]
        tenant = values["AAD_TENANT_ID"] or identity.tenant_id
        a.tenant_id = tenant
        a.client_id = values["AAD_CLIENT_ID"] or app.client_id
        a.client_secret = values["AAD_CLIENT_SECRET"] or app.client_secret
        # the browser and the hub reach the emulator at different names
        a.graph_url = values["EMULATOR_URL"]
        a.authorize_url = f"{values['EMULATOR_PUBLIC_URL']}/{tenant}/oauth2/authorize"
        a.token_url = f"{values['EMULATOR_URL']}/{tenant}/oauth2/token"
        a.http_request_kwargs = {"ca_certs": values["EMULATOR_CA"]}
        a.logout_redirect_url = (f"{values['EMULATOR_PUBLIC_URL']}/{tenant}/oauth2/logout"
                                 f"?post_logout_redirect_uri={public}/hub/login")
        groups = {g.display_name: g.id for g in identity.groups}
        a.group_display_names = {g.id: g.display_name for g in identity.groups}
        allowed_groups = values["AAD_ALLOWED_GROUPS"] or [groups["Data Science"]]
        admin_groups = values["AAD_ADMIN_GROUPS"] or [groups["Hub Admins"]]
    else:
        tenant = values["AAD_TENANT_ID"]
        a.tenant_id = tenant
        a.client_id = values["AAD_CLIENT_ID"]
        a.client_secret = values["AAD_CLIENT_SECRET"]
        a.logout_redirect_url = (f"https://login.microsoftonline.com/{tenant}/oauth2/logout"
                                 f"?post_logout_redirect_uri={public}/hub/login")
        allowed_groups = values["AAD_ALLOWED_GROUPS"]
        admin_groups = values["AAD_ADMIN_GROUPS"]
    a.oauth_callback_url = f"{public}/hub/oauth_callback"
    names = dict(item.partition("=")[::2] for item in values["AAD_GROUP_NAMES"])
    if names:
        a.group_display_names = {**(a.get("group_display_names") or {}), **names}
    a.admin_contact = values["AAD_ADMIN_CONTACT"]
    a.username_claim = values["AAD_USERNAME_CLAIM"]
    a.allow_all = values["AAD_ALLOW_ALL"]
    a.manage_groups = True
    a.allowed_groups = set(allowed_groups)
    a.admin_groups = set(admin_groups)
    a.allowed_users = {u.lower() for u in values["AAD_ALLOWED_USERS"]}
    a.admin_users = {u.lower() for u in values["AAD_ADMIN_USERS"]}
    a.enable_auth_state = True  # redirect mode needs the user's Azure AD object id

    # ---- the spawner
    c.JupyterHub.spawner_class = "aml"
    s = c.AMLSpawner
    if local:
        s.subscription_id = values["AML_SUBSCRIPTION_ID"] or "00000000-0000-0000-0000-000000000000"
        s.resource_group = values["AML_RESOURCE_GROUP"] or "aml-local"
        s.workspace_name = values["AML_WORKSPACE"] or "aml-local"
        s.arm_endpoint = values["EMULATOR_URL"]
        s.ca_bundle = values["EMULATOR_CA"]
    else:
        s.subscription_id = values["AML_SUBSCRIPTION_ID"]
        s.resource_group = values["AML_RESOURCE_GROUP"]
        s.workspace_name = values["AML_WORKSPACE"]
        credential = azure_credential(environ)
        if credential is not None:
            s.credential = credential
    s.connect_mode = values["AML_CONNECT_MODE"]
    s.stop_action = values["AML_STOP_ACTION"]
    s.delete_forever_action = values["AML_DELETE_FOREVER_ACTION"]
    if values["AML_RECONCILE_INTERVAL"] is not None:
        s.reconcile_interval = values["AML_RECONCILE_INTERVAL"]
    s.profiles = _read_json(values["AML_PROFILES_FILE"], "AML_PROFILES_FILE")
    if values["AML_PROJECTS_FILE"]:
        s.projects = _read_json(values["AML_PROJECTS_FILE"], "AML_PROJECTS_FILE")
    s.show_prices = values["AML_SHOW_PRICES"]
    s.idle_shutdown_minutes = values["AML_IDLE_SHUTDOWN_MINUTES"]
    s.instance_name_prefix = values["AML_INSTANCE_PREFIX"]
    if values["AML_HUB_ID"]:
        s.hub_id = values["AML_HUB_ID"]
    s.subnet_id = values["AML_SUBNET_ID"]
    s.enable_public_ip = values["AML_ENABLE_PUBLIC_IP"]
    s.ssh_address = values["AML_SSH_ADDRESS"]
    s.setup_script = values["AML_SETUP_SCRIPT"]
    s.start_timeout = values["AML_START_TIMEOUT"] or 1200
    s.secrets_dir = str(data / "secrets")
    s.ssh_key_file = str(data / "ssh" / "id_ed25519")  # version 0.1's shared key, for its instances
    apply_essentials(c)

    # ---- idle culler: idle servers stop, so their instances stop
    cull = values["HUB_IDLE_CULL_TIMEOUT"]
    if cull:
        every = max(60, min(600, cull // 6))
        c.JupyterHub.services = [{
            "name": "idle-culler",
            "command": [sys.executable, "-m", "jupyterhub_idle_culler", f"--timeout={cull}", f"--cull-every={every}"],
        }]
        c.JupyterHub.load_roles = [{
            "name": "idle-culler",
            "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
            "services": ["idle-culler"],
        }]
    scrub_secrets(environ)


def fail(message: str) -> None:
    """Stop the hub with one line on stderr."""
    print(f"aml-jupyterhub: configuration error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(2)


def env_example() -> str:
    """The text of .env.example, generated from SETTINGS (see tests)."""
    lines = [
        "# aml-jupyterhub settings. Copy to .env (make up does) and edit.",
        "# Every variable is listed with its default (the value after '='),",
        "# what it means, and an example. With no Azure settings the hub runs in",
        "# local mode against the bundled emulator: a fresh clone works as it is.",
        "",
    ]
    local_defaults = {"COMPOSE_PROFILES": "local", "LOCAL_MODE": "true"}
    section = None
    for s in SETTINGS:
        if s.section != section:
            section = s.section
            lines += ["", f"# ---- {section}", ""]
        lines += textwrap.wrap(s.help, 96, initial_indent="# ", subsequent_indent="# ")
        extra = []
        if s.choices:
            extra.append("one of " + ", ".join(s.choices))
        if s.required:
            extra.append("required unless LOCAL_MODE")
        if s.example:
            extra.append(f"example: {s.example}")
        lines.append("# " + "; ".join(extra) if extra else "#")
        lines.append(f"{s.name}={local_defaults.get(s.name, s.default)}")
    return "\n".join(lines) + "\n"
