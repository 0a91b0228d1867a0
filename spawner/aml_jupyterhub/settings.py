"""The hub's `.env` settings: one table, checked before anything starts.

The table is ``settings.json``, in ``.env.example``'s order. Two kinds of
setting live there. The deployment's own (HOST, AAD_*, HUB_*, EMULATOR_*:
read by this package, compose or Caddy) are written out (default, help,
example). Every ``AML_*`` setting is *derived* from the AMLSpawner trait it
sets (``config.AMLSettings``): its type, default, help, choices and check come
from the trait, so a new spawner setting is one trait. The ones an admin
usually needs are listed by name (with a section and an example); every other
scalar trait is reachable as ``AML_<TRAIT>`` (an "advanced" section of
``.env.example``); anything else goes into a ``jupyterhub_config.d`` file.

:func:`load_settings` refuses an unknown variable of ours, a bad value or a
missing one with one line naming the variable and what to put there.
:func:`env_example` writes ``.env.example`` (a test keeps it in step).
"""

from __future__ import annotations

import difflib
import json
import re
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, MutableMapping

from traitlets import Bool, Enum, Float, Integer, List, TraitError, Unicode

from .config import AMLSettings
from .credentials import credential_problem
from .limits import parse_group_limits

# Variables with these prefixes belong to us: an unknown one is a typo.
OUR_PREFIXES = ("AML_", "AAD_", "HUB_", "EMULATOR_")

# Read here and handed to the hub's objects; then taken out of the
# environment, so that no child process (the proxy, services) inherits them.
SECRET_VARIABLES = ("AAD_CLIENT_SECRET", "AZURE_CLIENT_SECRET", "AML_STATIC_TOKEN", "HUB_DB_PASSWORD")
# aml-jupyterhub-launch (launch.py, the image's entrypoint) hands them over on
# an inherited pipe instead, whose descriptor this names: not a setting, so
# outside OUR_PREFIXES.
SECRETS_FD_VARIABLE = "AMLJUPYTERHUB_SECRETS_FD"


# .env.example's local-mode AML_STATIC_TOKEN until the emulator made a token
# of its own: public, so the emulator refuses it now. An .env copied then
# still holds it, meaning "the emulator's token": the token file's.
PUBLISHED_EMULATOR_TOKEN = "aml-emulator-local-token"


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
    choices: tuple[str, ...] = ()
    example: str = ""
    kind: str = "str"  # str, bool, int, float, list
    required: str = ""  # "azure": required when not in local mode; "always"
    section: str = ""
    local: str | None = None  # its value in the local-mode .env.example (the emulator's, for the demo)
    trait: str = ""  # the AMLSpawner trait it sets (its type, default, help and check come from there)
    extra: dict = field(default_factory=dict, compare=False)


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


def _from_table(entry: dict) -> Setting:
    entry = dict(entry)
    if "trait" in entry:
        return spawner_setting(entry.pop("section"), entry.pop("name"), entry.pop("trait"), **entry)
    entry["choices"] = tuple(entry.get("choices", ()))
    return Setting(**entry)


# The table, in .env.example's order: settings.json. A deployment setting is
# written out there (default, help, example); a spawner setting names its
# trait only, and the rest comes from the trait.
SETTINGS: list[Setting] = [_from_table(e) for e in json.loads((Path(__file__).parent / "settings.json").read_text())]

# Traits the hub sets itself (from HUB_DATA_DIR, or objects), and mappings a
# config file in HUB_CONFIG_DIR sets: no setting of their own.
HUB_SET_TRAITS = {"secrets_dir", "ssh_key_file", "credential", "compute_client_factory", "profiles", "projects",
                  "tags", "emulator_token", "operation_times_file", "reconciler_state_dir", "typical_operation_seconds",
                  "tunnel_service_token", "group_vcpu_limits"}


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


# HUB_DB_URL's drivers: the image has psycopg2 (the package's [postgres] extra) and sqlite
DB_DRIVERS = ("postgresql", "postgresql+psycopg2", "sqlite")
_DB_WHAT = ("postgresql://user@server:5432/database?sslmode=require (the password in HUB_DB_PASSWORD), "
            "sqlite:////path/to/jupyterhub.sqlite, or nothing for SQLite in HUB_DATA_DIR")


def hub_db_url(values: dict):
    """HUB_DB_URL as a SQLAlchemy URL with HUB_DB_PASSWORD as its password
    and psycopg2 as its driver, or None when it is empty (SQLite in
    HUB_DATA_DIR). ConfigError, which never shows a password, for any other
    kind of URL."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    raw, password = values["HUB_DB_URL"], values["HUB_DB_PASSWORD"]
    if not raw:
        if password:
            raise ConfigError("HUB_DB_PASSWORD is set but HUB_DB_URL is empty: set HUB_DB_URL to the PostgreSQL "
                              "database (postgresql://user@server:5432/database?sslmode=require), or remove "
                              "HUB_DB_PASSWORD.")
        return None
    try:
        url = make_url(raw)
    except (ArgumentError, ValueError):
        # not echoed: it may hold a password
        raise ConfigError(f"HUB_DB_URL is not a database URL: use {_DB_WHAT}.") from None
    shown = url.render_as_string(hide_password=True)
    if url.drivername not in DB_DRIVERS:
        hint = " (SQLAlchemy spells it postgresql://)" if url.drivername.startswith("postgres") else ""
        raise ConfigError(f"HUB_DB_URL={_short(shown)} is not supported{hint}: use {_DB_WHAT}.")
    if url.get_backend_name() == "sqlite":
        if url.database in (None, "", ":memory:"):
            raise ConfigError(f"HUB_DB_URL={shown} is a database in memory, lost at every restart: use {_DB_WHAT}.")
        if password:
            raise ConfigError("HUB_DB_PASSWORD is for a PostgreSQL HUB_DB_URL: SQLite has none; remove it.")
        return url
    if not url.database:
        raise ConfigError(f"HUB_DB_URL={_short(shown)} names no database: add it after the server, as in "
                          f"{_DB_WHAT.split(' (')[0]}.")
    # the driver the package ships (its [postgres] extra): SQLAlchemy 2.1's default for postgresql:// is psycopg 3
    url = url.set(drivername="postgresql+psycopg2")
    if password:
        if not url.username:
            # a URL renders a password only after a user name
            raise ConfigError(f"HUB_DB_URL={_short(shown)} names no user for HUB_DB_PASSWORD: put it before the "
                              "server, as in postgresql://user@server:5432/database?sslmode=require.")
        if url.password is not None:
            raise ConfigError(f"HUB_DB_URL={_short(shown)} has a password and HUB_DB_PASSWORD is set too: keep "
                              "one (HUB_DB_PASSWORD, so .env's URL carries none).")
        url = url.set(password=password)
    return url


_DNS_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`|~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$")


def host_problem(host: str) -> str:
    """Why ``host`` is not a DNS name Caddy can serve and Azure AD can call back ("" if it is one).
    Caddy reads HOST into its config, and the hub into its public URL: anything but a plain
    name (a scheme, a path, a space, a newline) would change what they mean."""
    if not host:
        return "it is empty; use the hub's public DNS name, e.g. hub.example.org (localhost for the demo)"
    labels = host[:-1].split(".") if host.endswith(".") else host.split(".")
    if len(host) > 253 or not all(_DNS_LABEL.match(label) for label in labels):
        return ("use the hub's public DNS name alone, e.g. hub.example.org: letters, digits, hyphens and dots, "
                "no scheme (https://), port, path or spaces")
    return ""


def _is_ip_address(host: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def email_problem(email: str) -> str:
    """Why ``email`` is not an address Caddy can give Let's Encrypt ("" if it is one, or empty)."""
    if email and (len(email) > 254 or not _EMAIL.match(email)):
        return "use one plain e-mail address, e.g. admin@example.org (or leave it empty)"
    return ""


def take_launcher_secrets(environ: MutableMapping[str, str]) -> None:
    """Put into ``environ`` the secrets aml-jupyterhub-launch handed over, on the
    pipe SECRETS_FD_VARIABLE names. Read once: the variable leaves ``environ``
    and the descriptor is closed, so nothing started later inherits or reopens
    them. Without the launcher (no such variable) ``environ`` stays as it is."""
    fd = environ.pop(SECRETS_FD_VARIABLE, None)
    if fd is None:
        return
    try:
        with open(int(fd), "rb") as pipe:
            secrets = json.loads(pipe.read())
    except (ValueError, OSError):  # not a number, no such descriptor, or read already (empty)
        raise ConfigError(f"{SECRETS_FD_VARIABLE}={_short(fd, 20)} names no secrets of aml-jupyterhub-launch (an "
                          "earlier command of this container read them): run each command in a container of its "
                          "own (docker compose run --rm hub <command>), and never set this variable.") from None
    environ.update({name: value for name, value in secrets.items() if name in SECRET_VARIABLES})


def emulator_token_file(values: dict) -> str:
    """In local mode, where AML_STATIC_TOKEN names no token of its own: the
    file the emulator keeps its ARM token in (EMULATOR_ARM_TOKEN_FILE); ""
    otherwise."""
    if not values["LOCAL_MODE"] or values["AML_STATIC_TOKEN"] not in ("", PUBLISHED_EMULATOR_TOKEN):
        return ""
    return values["EMULATOR_ARM_TOKEN_FILE"]


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
                                 static_token=emulator_token_file(values) or values["AML_STATIC_TOKEN"])
    if problem:
        raise ConfigError(f"AML_CREDENTIAL={values['AML_CREDENTIAL']}: {in_setting_words(problem)}"
                          + (" (LOCAL_MODE is false)" if not local else "") + ".")
    if local and values["AML_CREDENTIAL"] != "static-token":
        raise ConfigError(f"AML_CREDENTIAL={values['AML_CREDENTIAL']} cannot reach the local emulator: with "
                          "LOCAL_MODE=true use AML_CREDENTIAL=static-token (the emulator's token, which the hub "
                          "reads from EMULATOR_ARM_TOKEN_FILE).")
    start_timeout = values["AML_START_TIMEOUT"]
    if start_timeout is not None and start_timeout <= 0:
        raise ConfigError("AML_START_TIMEOUT must be a positive number of seconds (creating a VM takes minutes; "
                          "the default is 1200).")
    for name in ("HTTPS_PORT", "HTTP_PORT", "EMULATOR_PORT", "HUB_INSTANCES_PAGE_PORT"):
        if values[name] is not None and not 1 <= values[name] <= 65535:
            raise ConfigError(f"{name}={values[name]} is not a port: use 1-65535 ({BY_NAME[name].help})")
    for name, problem in (("HOST", host_problem(values["HOST"])),
                          ("ACME_EMAIL", email_problem(values["ACME_EMAIL"]))):
        if problem:
            raise ConfigError(f"{name}={_short(values[name])} is not valid: {problem}")
    if values["HUB_USER_SUBDOMAINS"] and _is_ip_address(values["HOST"]):
        raise ConfigError(f"HOST={values['HOST']} is an IP address, which has no subdomains for users' servers "
                          "(HUB_USER_SUBDOMAINS=true): use a DNS name with a wildcard record (*.HOST) pointing here.")
    try:
        values["AML_GROUP_VCPU_LIMITS"] = parse_group_limits(values["AML_GROUP_VCPU_LIMITS"])
    except ValueError as e:
        raise ConfigError(f"AML_GROUP_VCPU_LIMITS is not valid: {e} (use group=vcpus pairs, comma-separated)") from None
    cull = values["HUB_IDLE_CULL_TIMEOUT"]
    if cull is not None and cull < 0:
        raise ConfigError("HUB_IDLE_CULL_TIMEOUT must be 0 (off) or a number of seconds.")
    hub_db_url(values)
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
