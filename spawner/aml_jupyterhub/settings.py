"""The hub's `.env` settings: one table, checked before anything starts.

Two kinds of setting live here. The deployment's own (HOST, AAD_*, HUB_*,
EMULATOR_*: read by this package, compose or Caddy) are written out in
:data:`SETTINGS`. Every ``AML_*`` setting is *derived* from the AMLSpawner
trait it sets (``config.AMLSettings``): its type, default, help, choices and
check come from the trait, so a new spawner setting is one trait. The ones
an admin usually needs are listed by hand (name, section, example); every
other scalar trait is reachable as ``AML_<TRAIT>`` (an "advanced" section of
``.env.example``); anything else goes into a ``jupyterhub_config.d`` file.

:func:`load_settings` refuses an unknown variable of ours, a bad value or a
missing one with one line naming the variable and what to put there.
:func:`env_example` writes ``.env.example`` (a test keeps it in step).
"""

from __future__ import annotations

import difflib
import re
import textwrap
from dataclasses import dataclass, field
from typing import Mapping

from traitlets import Bool, Enum, Float, Integer, List, TraitError, Unicode

from .config import AMLSettings
from .credentials import credential_problem

# Variables with these prefixes belong to us: an unknown one is a typo.
OUR_PREFIXES = ("AML_", "AAD_", "HUB_", "EMULATOR_")

# Read here and handed to the hub's objects; then taken out of the
# environment, so that no child process (the proxy, services) inherits them.
SECRET_VARIABLES = ("AAD_CLIENT_SECRET", "AZURE_CLIENT_SECRET", "AML_STATIC_TOKEN")


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
    kind: str = "str"  # str, bool, int, float, list
    required: str = ""  # "azure": required when not in local mode; "always"
    section: str = ""
    local: str | None = None  # its value in the local-mode .env.example (the emulator's, for the demo)
    trait: str = ""  # the AMLSpawner trait it sets (its type, default, help and check come from there)
    extra: dict = field(default_factory=dict, compare=False)


def _s(section, name, default, help, example="", **kw) -> Setting:
    return Setting(name=name, default=default, help=help, example=example, section=section, **kw)


# ---- settings derived from AMLSpawner's traits -----------------------------

_TRAITS = AMLSettings.class_own_traits(config=True)


def _kind(trait) -> tuple[str, tuple[str, ...]]:
    if isinstance(trait, Enum):
        return "str", tuple(trait.values)
    if isinstance(trait, Bool):
        return "bool", ()
    if isinstance(trait, Integer):
        return "int", ()
    if isinstance(trait, Float):
        return "float", ()
    if isinstance(trait, List) and isinstance(trait._trait, Unicode):
        return "list", ()
    if isinstance(trait, Unicode):
        return "str", ()
    raise TypeError(f"trait {trait.name} cannot be an .env setting")


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (list, tuple)):
        return ",".join(value)
    return str(value)


def _help_text(trait) -> str:
    return " ".join((trait.help or "").split())


def spawner_setting(section: str, name: str, trait: str, example: str = "", *, default: str | None = None,
                    **kw) -> Setting:
    """The setting ``name`` for AMLSpawner's trait ``trait``."""
    t = _TRAITS[trait]
    kind, choices = _kind(t)
    return Setting(name=name, default=_text(t.default()) if default is None else default, help=_help_text(t),
                   example=example, choices=choices, kind=kind, section=section, trait=trait, **kw)


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
       "Run against the local emulator of Azure ML and Azure AD (the EMULATOR_* settings say where it is) "
       "instead of Azure; auto: when AML_SUBSCRIPTION_ID is empty. The Azure AD and credential settings below "
       "then hold the emulator's test tenant, app and token, as this file gives them.", "false",
       choices=("auto", "true", "false"), local="true"),
    _s("Deployment", "COMPOSE_PROFILES", "",
       "Compose profiles to run (read by docker compose): 'local' adds the emulator.", "local", local="local"),
    _s("Deployment", "HUB_IMAGE", "", "Hub image to run instead of the published one (read by compose).",
       "ghcr.io/aml-jupyterhub/aml-jupyterhub:0.1.0"),
    _s("Deployment", "VERSION", "", "Version tag of the locally built images (read by compose).", "0.1.0"),
    spawner_setting("Deployment", "AZURE_CLOUD", "azure_cloud", "usgov"),
    # --- Azure AD login (in local mode: the emulator's test tenant and app, see its identity.json)
    _s("Azure AD login", "AAD_TENANT_ID", "", "Directory (tenant) id of your Azure AD.",
       "72f988bf-86f1-41af-91ab-2d7cd011db47", required="always", local="20b81ef8-7662-4779-a742-c17a5d42ca16"),
    _s("Azure AD login", "AAD_CLIENT_ID", "", "Application (client) id of the hub's app registration.",
       "0b9c2b4e-1f55-4a1a-9c6e-2f0c4a7f3d21", required="always", local="6f1b3c2a-8d4e-4a5b-9c7d-2e3f4a5b6c7d"),
    _s("Azure AD login", "AAD_CLIENT_SECRET", "", "A client secret of that app registration.",
       "(from Certificates & secrets)", required="always", local="local-emulator-secret-not-for-production"),
    _s("Azure AD login", "AAD_USERNAME_CLAIM", "upn",
       "The id_token claim that becomes the hub user name; must be unique (never the display name).",
       "oid", choices=("upn", "oid", "unique_name", "email")),
    _s("Azure AD login", "AAD_ALLOWED_GROUPS", "",
       "Comma-separated Azure AD group object ids whose members may log in.",
       "5e1dd9df-b8aa-4f0e-a9ea-7938609ffd83", kind="list", local="5e1dd9df-b8aa-4f0e-a9ea-7938609ffd83"),
    _s("Azure AD login", "AAD_ADMIN_GROUPS", "", "Comma-separated group object ids whose members are hub admins.",
       "210f7918-0891-4d4c-8cac-a85617d80301", kind="list", local="210f7918-0891-4d4c-8cac-a85617d80301"),
    _s("Azure AD login", "AAD_ALLOWED_USERS", "", "Comma-separated user names (per AAD_USERNAME_CLAIM) allowed in.",
       "alice@contoso.com,bob@contoso.com", kind="list"),
    _s("Azure AD login", "AAD_ADMIN_USERS", "", "Comma-separated user names who are hub admins.",
       "carol@contoso.com", kind="list"),
    _s("Azure AD login", "AAD_GROUP_NAMES", "",
       "Display names of the groups above, for the page a refused user sees: comma-separated id=name pairs. "
       "Empty: ids are shown.",
       "5e1dd9df-b8aa-4f0e-a9ea-7938609ffd83=Data Science", kind="list",
       local="5e1dd9df-b8aa-4f0e-a9ea-7938609ffd83=Data Science,210f7918-0891-4d4c-8cac-a85617d80301=Hub Admins"),
    _s("Azure AD login", "AAD_ADMIN_CONTACT", "",
       "Whom a refused user should ask for access (shown on their page). Empty: \"your hub's administrator\".",
       "research-it@example.org"),
    _s("Azure AD login", "AAD_ALLOW_ALL", "false",
       "Let every user of the tenant in (otherwise set allowed groups or users).", "true", kind="bool"),
    # --- Azure ML
    spawner_setting("Azure ML", "AML_SUBSCRIPTION_ID", "subscription_id", "00000000-0000-0000-0000-000000000000",
                    required="azure", local="00000000-0000-0000-0000-000000000000"),
    spawner_setting("Azure ML", "AML_RESOURCE_GROUP", "resource_group", "rg-research", required="azure",
                    local="aml-local"),
    spawner_setting("Azure ML", "AML_WORKSPACE", "workspace_name", "mlw-research", required="azure",
                    local="aml-local"),
    spawner_setting("Azure ML", "AML_CREDENTIAL", "credential_type", "managed-identity", local="static-token"),
    spawner_setting("Azure ML", "AML_STATIC_TOKEN", "static_token", "(the emulator's --arm-token)",
                    local="aml-emulator-local-token"),
    spawner_setting("Azure ML", "AML_CONNECT_MODE", "connect_mode", "redirect"),
    spawner_setting("Azure ML", "AML_STOP_ACTION", "stop_action", "delete"),
    spawner_setting("Azure ML", "AML_DELETE_FOREVER_ACTION", "delete_forever_action", "delete"),
    spawner_setting("Azure ML", "AML_RECONCILE_INTERVAL", "reconcile_interval", "120"),
    _s("Azure ML", "AML_PROFILES_FILE", "/etc/jupyterhub/profiles.json",
       "JSON file with the VM-size menu (see hub/profiles.json): AMLSpawner.profiles.",
       "/srv/jupyterhub/profiles.json"),
    _s("Azure ML", "AML_PROJECTS_FILE", "",
       "Optional JSON file listing workspaces users may pick from (a 'Select a project' menu): "
       "AMLSpawner.projects.", "/srv/jupyterhub/projects.json"),
    spawner_setting("Azure ML", "AML_SHOW_PRICES", "show_prices", "true"),
    spawner_setting("Azure ML", "AML_IDLE_SHUTDOWN_MINUTES", "idle_shutdown_minutes", "120"),
    spawner_setting("Azure ML", "AML_INSTANCE_PREFIX", "instance_name_prefix", "lab"),
    spawner_setting("Azure ML", "AML_HUB_ID", "hub_id", "research"),
    spawner_setting("Azure ML", "AML_SUBNET_ID", "subnet_id",
                    "/subscriptions/.../virtualNetworks/vnet/subnets/instances"),
    spawner_setting("Azure ML", "AML_ENABLE_PUBLIC_IP", "enable_public_ip", "false"),
    spawner_setting("Azure ML", "AML_SSH_ADDRESS", "ssh_address", "private"),
    spawner_setting("Azure ML", "AML_SETUP_SCRIPT", "setup_script", "Users/admin/setup.sh"),
    _s("Azure ML", "AML_START_TIMEOUT", "1200", "Seconds a server may take to start (creating a VM takes minutes).",
       "1800", kind="int"),
    _s("Azure ML", "AZURE_TENANT_ID", "",
       "With AML_CREDENTIAL=service-principal: the tenant of the service principal (read by azure-identity "
       "with AML_CREDENTIAL=default too).", "72f988bf-86f1-41af-91ab-2d7cd011db47"),
    _s("Azure ML", "AZURE_CLIENT_ID", "",
       "Client id of that service principal, or of a user-assigned managed identity.",
       "3f1e7c1a-0000-0000-0000-000000000000"),
    _s("Azure ML", "AZURE_CLIENT_SECRET", "", "Secret of that service principal.", "(secret)"),
    # --- hub
    _s("Hub", "HUB_IDLE_CULL_TIMEOUT", "3600",
       "Stop servers idle this many seconds (their instances stop and cost nothing). 0 turns culling off.",
       "7200", kind="int"),
    _s("Hub", "HUB_LOG_LEVEL", "INFO", "Hub log level.", "DEBUG", choices=("DEBUG", "INFO", "WARNING", "ERROR")),
    _s("Hub", "HUB_DATA_DIR", "/srv/jupyterhub", "Where the database, secrets and SSH keys live (a volume).",
       "/srv/jupyterhub"),
    _s("Hub", "HUB_CONFIG_DIR", "/etc/jupyterhub/jupyterhub_config.d",
       "Folder of extra JupyterHub config files (*.py, loaded in name order after these settings), for anything "
       "the settings do not cover; compose mounts hub/jupyterhub_config.d there.", "/srv/jupyterhub/config.d"),
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

# Traits the hub sets itself (from HUB_DATA_DIR, or objects): no setting of their own.
HUB_SET_TRAITS = {"secrets_dir", "ssh_key_file", "credential", "compute_client_factory", "profiles", "projects",
                  "tags", "emulator_token"}


def _advanced() -> list[Setting]:
    """AML_<TRAIT> for every other scalar trait of AMLSpawner."""
    taken = {s.trait for s in SETTINGS if s.trait} | HUB_SET_TRAITS
    return [spawner_setting("Spawner (advanced)", f"AML_{name.upper()}", name)
            for name in sorted(_TRAITS) if name not in taken]


SETTINGS += _advanced()
BY_NAME = {s.name: s for s in SETTINGS}
_TRAIT_NAMES = {s.trait: s.name for s in SETTINGS if s.trait}


def in_setting_words(text: str) -> str:
    """A trait's help or error with trait names replaced by their setting names."""
    return re.sub(r"\b[a-z][a-z0-9]*(?:_[a-z0-9]+)+\b", lambda m: _TRAIT_NAMES.get(m.group(0), m.group(0)), text)


def _gist(setting: Setting) -> str:
    """The first sentence of a setting's help, for an error message."""
    text = in_setting_words(setting.help)
    return text.split(". ")[0].rstrip(".")


def _parse(setting: Setting, raw: str):
    value = raw.strip()
    if setting.choices and value not in setting.choices:
        raise ConfigError(
            f"{setting.name}={_short(raw)} is not valid: use one of {', '.join(setting.choices)} ({_gist(setting)})"
        )
    if setting.kind == "bool":
        lowered = value.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off", ""):
            return False
        raise ConfigError(f"{setting.name}={_short(raw)} is not valid: use true or false ({_gist(setting)})")
    if setting.kind in ("int", "float"):
        if value == "":
            return None
        try:
            return int(value) if setting.kind == "int" else float(value)
        except ValueError:
            raise ConfigError(f"{setting.name}={_short(raw)} is not a number ({_gist(setting)})") from None
    if setting.kind == "list":
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


def _check_trait(setting: Setting, value) -> None:
    """The trait's own check (its validator), in the setting's words."""
    try:
        AMLSettings(**{setting.trait: value})
    except TraitError as e:
        raise ConfigError(f"{setting.name}={_short(value)} is not valid: {in_setting_words(str(e))}") from None


def trait_values(values: dict) -> dict:
    """trait name -> value for every AML_* setting that was given (empty ones keep the trait's default)."""
    return {s.trait: values[s.name] for s in SETTINGS if s.trait and values[s.name] not in (None, "", [])}


def load_settings(env: Mapping[str, str]) -> dict:
    """Every setting's value from ``env`` (defaults filled in); ConfigError
    for an unknown variable of ours, a bad value, or a missing required one."""
    for key in env:
        if key.startswith(OUR_PREFIXES) and key not in BY_NAME:
            close = difflib.get_close_matches(key, list(BY_NAME), n=1)
            hint = f" Did you mean {close[0]}?" if close else " See .env.example for the settings there are."
            raise ConfigError(f"{key[:80]} is not a setting of aml-jupyterhub.{hint}")
    values = {s.name: _parse(s, env.get(s.name, s.default) or s.default) for s in SETTINGS}
    for s in SETTINGS:
        if s.trait and values[s.name] not in (None, "", []):
            _check_trait(s, values[s.name])
    mode = values["LOCAL_MODE"]
    local = values["LOCAL_MODE"] = (not values["AML_SUBSCRIPTION_ID"]) if mode == "auto" else mode == "true"
    for s in SETTINGS:
        if (s.required == "always" or (s.required == "azure" and not local)) and not values[s.name]:
            where = (" (.env.example has the emulator's for local mode)" if local
                     else ", or set LOCAL_MODE=true to run against the emulator")
            raise ConfigError(f"{s.name} is missing: set it to the {s.help[0].lower()}{s.help[1:].rstrip('.')} "
                              f"(e.g. {s.example}){where}.")
    if not (values["AAD_ALLOW_ALL"] or values["AAD_ALLOWED_GROUPS"] or values["AAD_ALLOWED_USERS"]
            or values["AAD_ADMIN_GROUPS"] or values["AAD_ADMIN_USERS"]):
        raise ConfigError("AAD_ALLOWED_GROUPS is empty and so are AAD_ALLOWED_USERS and the admin lists: nobody "
                          "could log in. Set AAD_ALLOWED_GROUPS to group object ids (or AAD_ALLOW_ALL=true).")
    arm_endpoint = values["AML_ARM_ENDPOINT"] or (values["EMULATOR_URL"] if local else "")
    problem = credential_problem(values["AML_CREDENTIAL"], arm_endpoint=arm_endpoint,
                                 static_token=values["AML_STATIC_TOKEN"])
    if problem:
        raise ConfigError(f"AML_CREDENTIAL={values['AML_CREDENTIAL']}: {in_setting_words(problem)}"
                          + (" (LOCAL_MODE is false)" if not local else "") + ".")
    if local and values["AML_CREDENTIAL"] != "static-token":
        raise ConfigError(f"AML_CREDENTIAL={values['AML_CREDENTIAL']} cannot reach the local emulator: with "
                          "LOCAL_MODE=true use AML_CREDENTIAL=static-token and the emulator's AML_STATIC_TOKEN.")
    start_timeout = values["AML_START_TIMEOUT"]
    if start_timeout is not None and start_timeout <= 0:
        raise ConfigError("AML_START_TIMEOUT must be a positive number of seconds (creating a VM takes minutes; "
                          "the default is 1200).")
    for name in ("HTTPS_PORT", "HTTP_PORT", "EMULATOR_PORT"):
        if values[name] is not None and not 1 <= values[name] <= 65535:
            raise ConfigError(f"{name}={values[name]} is not a port: use 1-65535 ({BY_NAME[name].help})")
    cull = values["HUB_IDLE_CULL_TIMEOUT"]
    if cull is not None and cull < 0:
        raise ConfigError("HUB_IDLE_CULL_TIMEOUT must be 0 (off) or a number of seconds.")
    return values


def env_example() -> str:
    """The text of .env.example, generated from SETTINGS (see tests)."""
    lines = [
        "# aml-jupyterhub settings. Copy to .env (make up does) and edit.",
        "# Every variable is listed with its default (the value after '='),",
        "# what it means, and an example. As given here the hub runs in local",
        "# mode against the local emulator of Azure (its test tenant, app and",
        "# token): a fresh clone works as it is. For Azure set LOCAL_MODE=false,",
        "# COMPOSE_PROFILES empty, and your tenant, app, workspace and credential.",
        "",
    ]
    section = None
    for s in SETTINGS:
        if s.section != section:
            section = s.section
            lines += ["", f"# ---- {section}", ""]
            if section == "Spawner (advanced)":
                lines += ["# Every other AMLSpawner setting, as AML_<TRAIT>: uncomment one to change it. Anything",
                          "# else (tags, objects, templates) goes into a file in HUB_CONFIG_DIR.", ""]
        lines += textwrap.wrap(in_setting_words(s.help), 96, initial_indent="# ", subsequent_indent="# ")
        extra = []
        if s.choices:
            extra.append("one of " + ", ".join(s.choices))
        if s.required == "azure":
            extra.append("required unless LOCAL_MODE")
        elif s.required == "always":
            extra.append("required")
        if s.local is not None:
            extra.append(f"default {s.default!r} (the value here is local mode's)")
        if s.example:
            extra.append(f"example: {s.example}")
        lines.append("# " + "; ".join(extra) if extra else "#")
        assignment = f"{s.name}={s.default if s.local is None else s.local}"
        # advanced ones stay commented out: documented, at their defaults (which may hold a $ compose would expand)
        lines.append(("# " if s.section == "Spawner (advanced)" else "") + assignment)
    return "\n".join(lines) + "\n"
