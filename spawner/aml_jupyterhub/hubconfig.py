"""The hub's JupyterHub configuration, from the checked `.env` settings.

``hub/jupyterhub_config.py`` reads the environment and hands it to
:func:`settings.load_settings` (the schema: every setting, its default and
check); :func:`configure` turns the values into JupyterHub configuration,
:func:`ensure_secrets` makes the secrets on first start, and
:func:`load_config_dir` runs an admin's extra config files.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import sys
import time
from pathlib import Path
from typing import Callable, Mapping

from .clouds import cloud
from .settings import (SECRET_VARIABLES, ConfigError, emulator_token_file, env_example, hub_db_url, load_settings,
                       trait_values)

__all__ = ["ConfigError", "config_files", "configure", "database_url", "ensure_secrets", "env_example", "fail",
           "load_settings", "menu_file"]


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


def _read_json(path: str, what: str):
    try:
        return json.loads(Path(path).read_text())
    except OSError as e:
        raise ConfigError(f"cannot read {what} {path}: {e.strerror}") from None
    except json.JSONDecodeError as e:
        raise ConfigError(f"{what} {path} is not valid JSON: line {e.lineno}: {e.msg}") from None


def menu_file(values: dict, setting: str, trait: str):
    """The JSON of a menu file, checked as the trait checks it (now, not at the first form)."""
    from traitlets import TraitError

    from .config import AMLSettings

    content = _read_json(values[setting], setting)
    try:
        AMLSettings(**{trait: content})
    except TraitError as e:
        raise ConfigError(f"{setting} {values[setting]}: {e}") from None
    return content


def config_files(directory: str) -> list[str]:
    """The extra config files of HUB_CONFIG_DIR, in name order (none if it does not exist)."""
    folder = Path(directory)
    return [str(f) for f in sorted(folder.glob("*.py"))] if folder.is_dir() else []


def prepare_data_dir(path: Path, sqlite: bool = True) -> Path:
    """The data directory, 0700, with the database file 0600 (made so before
    JupyterHub opens it) unless the database is elsewhere (``sqlite`` false:
    HUB_DB_URL); ConfigError in one line if the hub cannot write there."""
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        if path.stat().st_mode & 0o077:
            os.chmod(path, 0o700)
        if sqlite:
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


def database_url(values: dict) -> str:
    """JupyterHub's db_url: HUB_DB_URL with HUB_DB_PASSWORD in it (quoted as
    a URL needs), or SQLite in HUB_DATA_DIR when HUB_DB_URL is empty. It
    holds the password: log ``render_as_string(hide_password=True)`` of
    ``settings.hub_db_url`` instead (JupyterHub redacts it in its own lines)."""
    url = hub_db_url(values)
    if url is None:
        return f"sqlite:///{Path(values['HUB_DATA_DIR']) / 'jupyterhub.sqlite'}"
    return url.render_as_string(hide_password=False)


class TokenFileCredential:
    """Local mode's ARM credential: the token the emulator made on its first
    start, read from its file at the first ARM call, not before (the settings
    check and tests configure a hub where no emulator has started)."""

    def __init__(self, path: str):
        self.path = path
        self._static = None

    def _credential(self):
        if self._static is None:
            from azure.core.exceptions import ClientAuthenticationError

            from .compute.sdk import StaticTokenCredential

            try:
                token, problem = Path(self.path).read_text().strip(), "it is empty"
            except OSError as e:
                token, problem = "", e.strerror or str(e)
            if not token:
                raise ClientAuthenticationError(
                    f"cannot read the emulator's ARM token from EMULATOR_ARM_TOKEN_FILE={self.path} ({problem}): "
                    "the emulator makes it on its first start (COMPOSE_PROFILES=local), in the volume the hub "
                    "mounts at /srv/emulator-ca; or set AML_STATIC_TOKEN to a token the emulator accepts")
            self._static = StaticTokenCredential(token)
        return self._static

    def get_token(self, *scopes, **kwargs):
        return self._credential().get_token(*scopes, **kwargs)

    def get_token_info(self, *scopes, options=None):
        return self._credential().get_token_info(*scopes, options=options)

    def close(self) -> None:
        pass


def azure_credential(values: dict, env: Mapping[str, str]):
    """The credential object of AML_CREDENTIAL, made now (so the secrets can
    leave the environment); for static-token, local mode's token file, or
    None (the spawner's static_token trait). A service principal needs all
    three AZURE_*."""
    from .credentials import make_credential

    kind = values["AML_CREDENTIAL"]
    if kind == "static-token":
        token_file = emulator_token_file(values)
        return TokenFileCredential(token_file) if token_file else None
    tenant, client, secret = (env.get(f"AZURE_{k}", "") for k in ("TENANT_ID", "CLIENT_ID", "CLIENT_SECRET"))
    if (kind == "service-principal" or secret) and not (tenant and client and secret):
        raise ConfigError("AML_CREDENTIAL=service-principal (or AZURE_CLIENT_SECRET) needs AZURE_TENANT_ID, "
                          "AZURE_CLIENT_ID and AZURE_CLIENT_SECRET together (the service principal's tenant, "
                          "application id and secret).")
    # DefaultAzureCredential reads the AZURE_* variables when it is made: before they are scrubbed
    return make_credential(kind, cloud(values["AZURE_CLOUD"]), tenant_id=tenant, client_id=client,
                           client_secret=secret)


def let_children_stop_at_sigint() -> None:
    """JupyterHub stops its managed services (the idle culler, the instances
    page) with SIGINT and waits 10 s before it sends SIGTERM. A hub started
    with SIGINT ignored (a script's background job, nohup) hands that on to
    every child: each service then holds the hub's shutdown for 10 s, and a
    hub killed meanwhile leaves them running on their ports. A handler here
    is reset to the default at exec, so the children stop at SIGINT again."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def scrub_secrets(environ) -> None:
    """Take the secrets out of this process's environment (children inherit it)."""
    for name in SECRET_VARIABLES:
        environ.pop(name, None)


def proxy_token(values: dict) -> str:
    """The token shared with the proxy's container (made here if the proxy has not yet)."""
    from .proxy_service import shared_token

    path = Path(values["HUB_PROXY_TOKEN_FILE"])
    try:
        return shared_token(path)
    except OSError as e:
        raise ConfigError(f"HUB_PROXY_TOKEN_FILE={path} cannot be read or made: {e.strerror or e}. Mount the "
                          "proxy-secrets volume there (compose.yaml does), shared with the proxy's container.") from None


def configure_proxy(c, values: dict, sec: dict) -> None:
    """The proxy: the proxy's own container when HUB_PROXY_API_URL is set
    (JupyterHub's external proxy: the hub neither starts nor stops it, so its
    routes and connections outlive a hub restart), else one the hub starts."""
    api = values["HUB_PROXY_API_URL"]
    if not api:
        c.ConfigurableHTTPProxy.auth_token = sec["proxy_token"]
        c.ConfigurableHTTPProxy.pid_file = str(Path(values["HUB_DATA_DIR"]) / "proxy.pid")
        return
    c.ConfigurableHTTPProxy.should_start = False
    c.ConfigurableHTTPProxy.api_url = api
    c.ConfigurableHTTPProxy.auth_token = proxy_token(values)
    # where the hub shares the proxy's internal TLS certificates (direct mode), and
    # withdraws them when it starts without: the proxy's container follows
    c.HubDefaultProxy.tls_share_dir = str(Path(values["HUB_PROXY_TOKEN_FILE"]).parent / "internal-ssl")
    # the proxy (and the tunnels' way back) reach the hub from another container
    c.JupyterHub.hub_bind_url = "http://0.0.0.0:8081"
    c.JupyterHub.hub_connect_url = values["HUB_INTERNAL_URL"] or "http://hub:8081"

    # JupyterHub compares the proxy's routes with its servers at every activity
    # update: after a restart of the proxy's container (routes are in its
    # memory) they are back within this many seconds, not the default 300
    c.JupyterHub.last_activity_interval = 60


REDIRECT_PORT = 8083  # redirect mode's endpoint in the hub's container (8081: the hub, 8082: tls_names)


def place_redirect_endpoint_for_the_proxy(s, values: dict, hub_connect_url: str) -> None:
    """Redirect mode's endpoint where the proxy's container reaches it: on the
    hub container's network, at a port that stays across hub restarts (where
    AML_REDIRECT_* do not say otherwise)."""
    from urllib.parse import urlparse

    from .settings import BY_NAME

    for name, trait, value in (("AML_REDIRECT_BIND_IP", "redirect_bind_ip", "0.0.0.0"),
                               ("AML_REDIRECT_PORT", "redirect_port", REDIRECT_PORT),
                               ("AML_REDIRECT_CONNECT_IP", "redirect_connect_ip", urlparse(hub_connect_url).hostname)):
        if str(values[name] if values[name] is not None else "") == BY_NAME[name].default:
            setattr(s, trait, value)


def https(url: str) -> str:
    return "https://" + url[len("http://"):] if url.startswith("http://") else url


def configure_internal_tls(c, values: dict, data: Path) -> None:
    """Direct mode: JupyterHub's internal TLS. The hub makes the CAs and
    certificates (in its data volume); the hub's API, the proxy's API and
    every server then speak TLS and take only clients with one of them.
    Servers call the hub's API at HUB_VNET_IP (their VNet), in local mode at
    hub:8081 (the emulator's instances share the compose network)."""
    vnet = values["HUB_VNET_IP"]
    if not vnet and not values["LOCAL_MODE"]:
        raise ConfigError("AML_CONNECT_MODE=direct needs HUB_VNET_IP: the hub VM's private IP in the instances' "
                          "VNet, where servers reach the hub's API (and COMPOSE_FILE=compose.yaml:"
                          "docker/compose.direct.yaml, which publishes port 8081 there).")
    c.JupyterHub.internal_ssl = True
    c.JupyterHub.internal_certs_location = str(data / "internal-ssl")
    # the names the hub and the proxy are reached at, in the certificates the hub makes for them
    c.JupyterHub.trusted_alt_names = ["DNS:hub", "DNS:proxy", *([f"IP:{vnet}"] if vnet else [])]
    c.AMLSpawner.hub_connect_url = f"https://{vnet}:8081" if vnet else "https://hub:8081"
    if values["HUB_PROXY_API_URL"]:
        c.JupyterHub.hub_bind_url = "https://0.0.0.0:8081"
        c.JupyterHub.hub_connect_url = https(values["HUB_INTERNAL_URL"] or "http://hub:8081")
        c.ConfigurableHTTPProxy.api_url = https(values["HUB_PROXY_API_URL"])


def configure_user_subdomains(c, public: str, tls_names: bool) -> None:
    """Each user's servers (and each service) on a host of its own under the
    hub's: a user controls all their server serves (sudo on the instance, any
    server extension), and on the hub's origin its scripts could act as any
    visitor. Cookies get the __Host- prefix, so a user's host cannot set one
    the hub's (or another user's) host would take. ``tls_names``: Caddy in
    front (compose) asks the hub which hosts to get certificates for."""
    c.JupyterHub.subdomain_host = public
    c.JupyterHub.cookie_host_prefix_enabled = True
    link_services_with_their_port()
    if tls_names:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return  # not inside a starting hub (e.g. jupyterhub --generate-config)
        from .tls_names import start_listener

        start_listener()


def link_services_with_their_port() -> None:
    """JupyterHub links a service on a host of its own (subdomain_host) as
    ``//<service host>/services/<name>/``, without the port: with HTTPS_PORT
    other than 443 the Services menu then leads nowhere. Its ``host`` (scheme,
    name and port) is right; the link uses it. Idempotent."""
    from jupyterhub.services.service import Service

    if getattr(Service, "aml_links_with_port", False):
        return

    def href(self):
        return f"{self.host}{self.prefix}" if self.domain and self.host else self.prefix

    Service.href = property(href, doc=Service.href.__doc__)
    Service.aml_links_with_port = True


def apply_essentials(c) -> None:
    """What any hub running AMLSpawner needs besides the spawner's settings
    (a hand-written jupyterhub_config.py calls this too):

    - redirect mode's page behind the hub's login (``handlers``);
    - an access log that hides OAuth codes and states also inside nested URLs;
    - the reconcilers, started once the hub has found its servers;
    - a proxy that sends requests to the hub until their routes are back
      (``proxy``), unless another proxy class is configured;
    - the hub pages' announcements: the runtime limit's warnings beside any an
      admin set (call ``keep_runtime_notices`` again after config that sets
      ``template_vars``, as hub/jupyterhub_config.py does after its drop-in files).
    """
    from .accesslog import log_request
    from .aml_spawner import start_reconcilers_with_hub
    from .handlers import extra_handlers
    from .proxy import HubDefaultProxy

    if "proxy_class" not in c.JupyterHub:
        c.JupyterHub.proxy_class = HubDefaultProxy

    c.JupyterHub.extra_handlers = [*c.JupyterHub.get("extra_handlers", []), *extra_handlers()]
    settings = c.JupyterHub.get("tornado_settings", {})
    # JupyterHub's pages send CSP frame-ancestors 'none'; X-Frame-Options says it to browsers without CSP
    headers = {"X-Frame-Options": "DENY", **settings.get("headers", {})}
    c.JupyterHub.tornado_settings = {**settings, "log_function": log_request, "headers": headers}
    keep_runtime_notices(c)
    start_reconcilers_with_hub()


def keep_runtime_notices(c) -> None:
    """The spawner's notices on the hub pages (a server the runtime limit stops
    soon, why the hub stopped one), beside whatever announcements ``c`` sets:
    an admin's "maintenance on Friday" must not hide "your server stops in 10
    minutes". Idempotent."""
    from .aml_spawner import announcement_for
    from .announcements import with_notices

    c.JupyterHub.template_vars = with_notices(c.JupyterHub.get("template_vars", {}), announcement_for)


def add_instances_page(c, url: str) -> None:
    """The admin's instances page (``instances_page``), a service the hub
    starts at ``url`` (where the proxy reaches it), in the Services menu of
    those who may access it (admins); its token alone has the custom scopes
    of the hub's instances API."""
    from .instances_api import CUSTOM_SCOPES, READ_SCOPE, STOP_SCOPE
    from .instances_page import HUB_PID_VARIABLE, SERVICE_NAME

    c.JupyterHub.custom_scopes = {**c.JupyterHub.get("custom_scopes", {}), **CUSTOM_SCOPES}
    c.JupyterHub.services = [*c.JupyterHub.get("services", []), {
        "name": SERVICE_NAME, "display": True, "oauth_no_confirm": True, "url": url,
        "command": [sys.executable, "-m", "aml_jupyterhub.instances_page"],
        # the hub runs this file: the page stops when this process is gone (its parent, once started)
        "environment": {HUB_PID_VARIABLE: str(os.getpid())},
    }]
    c.JupyterHub.load_roles = [*c.JupyterHub.get("load_roles", []), {
        "name": SERVICE_NAME, "scopes": [READ_SCOPE, STOP_SCOPE], "services": [SERVICE_NAME],
    }]


def port_in_use(host: str, port: int) -> bool:
    """Another socket listens on host:port (a bind as the page's would, with
    SO_REUSEADDR, fails with EADDRINUSE); any other problem is the page's to say."""
    import errno
    import socket

    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((host, port))
    except OSError as e:
        return e.errno == errno.EADDRINUSE
    return False


def leave_out_the_instances_page_if_its_port_is_taken(c, wait: float = 5.0, in_use=port_in_use,
                                                      sleep=time.sleep) -> None:
    """JupyterHub exits when a managed service does not answer within 30 s,
    so a page whose port another program holds would take the hub down with
    it: the hub runs without the page and says why. An instances page left by
    a killed hub lets go within seconds (it stops when its hub is gone), so
    the port gets ``wait`` seconds first."""
    from urllib.parse import urlparse

    from .instances_page import SERVICE_NAME

    page = next((s for s in c.JupyterHub.get("services", []) if s.get("name") == SERVICE_NAME), None)
    if not page:
        return
    url = urlparse(page["url"])
    for _ in range(max(1, int(wait / 0.5))):
        if not in_use(url.hostname, url.port):
            return
        sleep(0.5)
    c.JupyterHub.services = [s for s in c.JupyterHub.services if s is not page]
    c.JupyterHub.load_roles = [r for r in c.JupyterHub.get("load_roles", []) if r.get("name") != SERVICE_NAME]
    print(f"aml-jupyterhub: the instances page is off: another program holds port {url.port} on {url.hostname} "
          "(a second hub on this machine?). Free it, or set HUB_INSTANCES_PAGE_PORT to a free port, and restart the "
          "hub.", file=sys.stderr, flush=True)


def configure(c, values: dict, environ=None) -> None:
    """Apply the settings to a JupyterHub config object ``c``; the secrets
    are then taken out of ``environ`` (default: os.environ)."""
    from .auth import VerifiedAzureAdOAuthenticator, configure_admin_access

    environ = os.environ if environ is None else environ
    data = prepare_data_dir(Path(values["HUB_DATA_DIR"]), sqlite=not values["HUB_DB_URL"])
    sec = ensure_secrets(data)
    host = values["HOST"]
    local = values["LOCAL_MODE"]
    port = values["HTTPS_PORT"] or 443
    public = f"https://{host}" if port == 443 else f"https://{host}:{port}"

    c.JupyterHub.bind_url = "http://0.0.0.0:8000"
    c.JupyterHub.hub_bind_url = "http://127.0.0.1:8081"
    c.JupyterHub.public_url = public
    if values["HUB_USER_SUBDOMAINS"]:
        configure_user_subdomains(c, public, tls_names=bool(values["HUB_PROXY_API_URL"]))
    else:
        print("aml-jupyterhub: HUB_USER_SUBDOMAINS=false: every user's server shares the hub's origin, so a page "
              "any user's server serves can act as whoever opens it (admins included). Only for users who all "
              "trust each other.", file=sys.stderr, flush=True)
    c.JupyterHub.db_url = database_url(values)  # SQLite in the data dir, or HUB_DB_URL (PostgreSQL)
    c.JupyterHub.upgrade_db = True
    c.JupyterHub.cookie_secret_file = sec["cookie_secret_file"]
    # JupyterHub makes its CryptKeeper without the config (it reads keys from
    # JUPYTERHUB_CRYPT_KEY, which child processes would inherit): set the
    # process-wide instance's keys directly.
    from jupyterhub.crypto import CryptKeeper

    CryptKeeper.instance().keys = [bytes.fromhex(sec["crypt_key"])]
    configure_proxy(c, values, sec)
    direct = values["AML_CONNECT_MODE"] == "direct"
    if direct:
        configure_internal_tls(c, values, data)
    c.JupyterHub.pid_file = str(data / "jupyterhub.pid")
    c.JupyterHub.cleanup_servers = False  # servers (and their instances) survive hub restarts
    c.JupyterHub.allow_named_servers = True
    c.JupyterHub.log_level = values["HUB_LOG_LEVEL"]

    # ---- login: the cloud's Azure AD, or the emulator's (the browser and the hub reach it at different names)
    c.JupyterHub.authenticator_class = VerifiedAzureAdOAuthenticator
    a = c.VerifiedAzureAdOAuthenticator
    tenant = values["AAD_TENANT_ID"]
    a.tenant_id = tenant
    a.client_id = values["AAD_CLIENT_ID"]
    a.client_secret = values["AAD_CLIENT_SECRET"]
    if local:
        login, browser_login = values["EMULATOR_URL"], values["EMULATOR_PUBLIC_URL"]
        a.http_request_kwargs = {"ca_certs": values["EMULATOR_CA"]}
    else:
        az = cloud(values["AZURE_CLOUD"])
        login = browser_login = az.login
        a.issuer = az.issuer(tenant)
    a.graph_url = login  # oauthenticator's name for the login authority
    a.authorize_url = f"{browser_login}/{tenant}/oauth2/authorize"
    a.token_url = f"{login}/{tenant}/oauth2/token"
    a.logout_redirect_url = f"{browser_login}/{tenant}/oauth2/logout?post_logout_redirect_uri={public}/hub/login"
    a.oauth_callback_url = f"{public}/hub/oauth_callback"
    a.group_display_names = dict(item.partition("=")[::2] for item in values["AAD_GROUP_NAMES"])
    a.admin_contact = values["AAD_ADMIN_CONTACT"]
    a.username_claim = values["AAD_USERNAME_CLAIM"]
    a.allow_all = values["AAD_ALLOW_ALL"]
    a.manage_groups = True
    a.allowed_groups = set(values["AAD_ALLOWED_GROUPS"])
    a.admin_groups = set(values["AAD_ADMIN_GROUPS"])
    a.allowed_users = {u.lower() for u in values["AAD_ALLOWED_USERS"]}
    a.admin_users = {u.lower() for u in values["AAD_ADMIN_USERS"]}
    a.enable_auth_state = True  # redirect mode needs the user's Azure AD object id
    configure_admin_access(c, values["HUB_ADMIN_READS_AUTH_STATE"])

    # ---- the spawner: every AML_* setting given is its trait
    c.JupyterHub.spawner_class = "aml"
    s = c.AMLSpawner
    for trait, value in trait_values(values).items():
        setattr(s, trait, value)
    if local:
        if not values["AML_ARM_ENDPOINT"]:
            s.arm_endpoint = values["EMULATOR_URL"]
        if not values["AML_CA_BUNDLE"]:
            s.ca_bundle = values["EMULATOR_CA"]
    credential = azure_credential(values, environ)
    if credential is not None:
        s.credential = credential
    s.profiles = menu_file(values, "AML_PROFILES_FILE", "profiles")
    if values["AML_PROJECTS_FILE"]:
        s.projects = menu_file(values, "AML_PROJECTS_FILE", "projects")
    s.group_vcpu_limits = values["AML_GROUP_VCPU_LIMITS"]
    if not values["AML_PRICE_TABLE_FILE"] and (data / "prices.json").exists():
        s.price_table_file = str(data / "prices.json")  # aml-jupyterhub-prices' output
    s.start_timeout = values["AML_START_TIMEOUT"] or 1200
    s.secrets_dir = str(data / "secrets")
    s.operation_times_file = str(data / "operation-times.json")
    s.reconciler_state_dir = str(data / "reconciler")
    if not values["AML_WHEEL_CACHE_DIR"]:
        s.wheel_cache_dir = str(data / "wheelhouse")  # JupyterHub's wheels the hub fetched for instances
    s.ssh_key_file = str(data / "ssh" / "id_ed25519")  # version 0.1's shared key, for its instances
    if values["AML_TUNNEL_SERVICE_URL"]:
        s.tunnel_service_token = proxy_token(values)
    if values["HUB_PROXY_API_URL"]:
        place_redirect_endpoint_for_the_proxy(s, values, c.JupyterHub.hub_connect_url)
    apply_essentials(c)

    # ---- idle culler: idle servers stop, so their instances stop
    cull = values["HUB_IDLE_CULL_TIMEOUT"]
    if cull:
        from .idle_culler import HUB_PID_VARIABLE as CULLER_HUB_PID_VARIABLE

        every = max(60, min(600, cull // 6))
        c.JupyterHub.services = [*c.JupyterHub.get("services", []), {
            "name": "idle-culler",
            "command": [sys.executable, "-m", "aml_jupyterhub.idle_culler", f"--timeout={cull}", f"--cull-every={every}",
                        # with internal TLS the hub's API wants a client certificate (the culler runs in the hub)
                        *(["--ssl-enabled=True", f"--internal-certs-location={data / 'internal-ssl'}"] if direct else [])],
            # the hub runs this file: the culler stops when this process is gone (a killed hub cannot stop it)
            "environment": {CULLER_HUB_PID_VARIABLE: str(os.getpid())},
        }]
        c.JupyterHub.load_roles = [*c.JupyterHub.get("load_roles", []), {
            "name": "idle-culler",
            "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
            "services": ["idle-culler"],
        }]
    if values["HUB_INSTANCES_PAGE"]:
        from urllib.parse import urlparse

        # where the proxy reaches the page: where it reaches the hub's tunnels (a pod's IP on AKS), else
        # the hub's own host (compose: "hub"), or beside the hub
        host = values["AML_TUNNEL_CONNECT_IP"] or urlparse(
            c.JupyterHub.get("hub_connect_url", "") or "http://127.0.0.1").hostname
        add_instances_page(c, f"http://{host}:{values['HUB_INSTANCES_PAGE_PORT']}")
    scrub_secrets(environ)


def fail(message: str, environ=None) -> None:
    """Stop the hub with one line on stderr.

    With HUB_ON_CONFIG_ERROR=wait (.env.example's value) the process then
    waits, saying it again every minute, instead of exiting: a container
    restarted on exit would start, fail and restart in a loop behind a 502.
    It stays unhealthy and ends on docker stop (SIGTERM's default action).
    """
    environ = os.environ if environ is None else environ
    line = f"aml-jupyterhub: configuration error: {message}"
    print(line, file=sys.stderr, flush=True)
    if environ.get("HUB_ON_CONFIG_ERROR") == "wait":
        print("aml-jupyterhub: not starting; fix .env, then `docker compose up -d hub` (or `make up`)",
              file=sys.stderr, flush=True)
        while True:
            time.sleep(60)
            print(line, file=sys.stderr, flush=True)
    raise SystemExit(2)
