"""Emulator settings: command-line flags, an optional JSON config file, and
``AML_EMULATOR_ARGS`` (the same flags, for gunicorn and containers)."""

from __future__ import annotations

import argparse
import json
import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from .control import CONTROL_SECRET_HEADER
from .models import DEFAULT_TRANSITIONS, TIMING_PROFILES, TRANSITION_KINDS, Workspace
from .secretfiles import parse_owner

DEFAULT_WORKSPACE = Workspace(
    subscription_id="00000000-0000-0000-0000-000000000000",
    resource_group="aml-local",
    name="aml-local",
    location="westeurope",
)
# Test-only bearer token the emulator accepts for ARM calls when given neither
# --arm-token nor --arm-token-file; it grants nothing anywhere else. It is
# public (it is written here), so an emulator that instances can reach (local
# mode's) is given --arm-token-file instead and refuses it.
DEFAULT_ARM_TOKEN = "aml-emulator-local-token"
# Where the control API's secret is kept unless --control-secret-file says otherwise.
CONTROL_SECRET_NAME = "control-secret"


@dataclass
class EmulatorConfig:
    state_dir: Path
    host: str = "127.0.0.1"
    port: int = 8443
    runtime: str = "process"
    hostnames: list[str] = field(default_factory=list)
    public_url: str | None = None
    workspaces: list[Workspace] = field(default_factory=lambda: [DEFAULT_WORKSPACE])
    transitions: dict = field(default_factory=lambda: dict(DEFAULT_TRANSITIONS))
    poll_interval: float | None = None  # Retry-After on long operations; None: none, as Azure ML
    timing: str = "fast"
    time_scale: float = 1.0
    page_size: int = 50
    arm_tokens: list[str] = field(default_factory=lambda: [DEFAULT_ARM_TOKEN])
    arm_token_file: Path | None = None  # a token made there on first start is accepted too
    arm_token_file_owner: tuple[int, int] | None = None  # (uid, gid) the file is given to
    control_secret_file: Path | None = None  # None: STATE_DIR/control-secret (control_secret_path)
    identity_file: Path | None = None
    docker_image: str = "aml-jupyterhub-instance:local"
    docker_network: str | None = None
    docker_slots: int = 8
    docker_internet: str = "open"  # "none": instances get no route out (see runtime.docker)
    faults: list[dict] = field(default_factory=list)
    ca_export: Path | None = None
    redirect_uris: list[str] = field(default_factory=list)
    roles: dict | None = None  # Azure RBAC: {"assignments": [...], "definitions": [...]}; None: roles.py's default
    record_responses: Path | None = None

    @property
    def control_secret_path(self) -> Path:
        return self.control_secret_file or self.state_dir / CONTROL_SECRET_NAME


def parse_workspace(text: str) -> Workspace:
    parts = text.split("/")
    if len(parts) != 4 or not all(parts):
        raise argparse.ArgumentTypeError(
            f"workspace {text!r} must be SUBSCRIPTION/RESOURCE_GROUP/WORKSPACE/LOCATION"
        )
    return Workspace(*parts)


def _transition(text: str) -> tuple[str, float]:
    kind, _, seconds = text.partition("=")
    if kind not in TRANSITION_KINDS and kind != "all":
        raise argparse.ArgumentTypeError(f"transition {kind!r} must be one of {', '.join(TRANSITION_KINDS)} or all")
    try:
        value = float(seconds)
    except ValueError:
        raise argparse.ArgumentTypeError(f"transition seconds {seconds!r} is not a number") from None
    if value < 0:
        raise argparse.ArgumentTypeError("transition seconds must be >= 0")
    return kind, value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m aml_emulator",
        description="Local emulator of the Azure Machine Learning control plane (compute instances) and of Azure AD.",
    )
    p.add_argument("--port", type=int, default=None, help="HTTPS port (default 8443)")
    p.add_argument("--host", default=None, help="address to bind (default 127.0.0.1)")
    p.add_argument("--state-dir", type=Path, default=None, help="where state, certificates and instance disks live (required)")
    p.add_argument("--runtime", choices=("process", "docker"), default=None, help="what a compute instance is (default process)")
    p.add_argument("--hostname", action="append", default=None, help="extra host name for the server certificate (repeatable)")
    p.add_argument("--public-url", default=None, help="base URL browsers use to reach the emulator (for application endpoints)")
    p.add_argument("--workspace", action="append", type=parse_workspace, default=None,
                   help="serve SUB/RG/WORKSPACE/LOCATION (repeatable; default the local aml-local workspace)")
    p.add_argument("--transition", action="append", type=_transition, default=None, metavar="KIND=SECONDS",
                   help=f"seconds a transition takes; KIND is one of {', '.join(TRANSITION_KINDS)} or all")
    p.add_argument("--poll-interval", type=float, default=None,
                   help="Retry-After sent on long operations, seconds (default: none, as Azure ML sends none; "
                        "clients then wait their own polling interval)")
    p.add_argument("--timing", choices=tuple(TIMING_PROFILES), default=None,
                   help="how long transitions take: fast (seconds, the default, for tests and the demo) or azure "
                        "(real Azure ML durations: create 4 min, start 2 min, stop 1 min...)")
    p.add_argument("--time-scale", type=float, default=None, metavar="FACTOR",
                   help="multiply the profile's durations, e.g. 0.05 with --timing azure for a bench on real "
                        "timings in a twentieth of the time (default 1); --transition values are not scaled")
    p.add_argument("--page-size", type=int, default=None, help="computes per list page (default 50)")
    p.add_argument("--arm-token", action="append", default=None,
                   help="static bearer token to accept (repeatable); with neither this nor --arm-token-file: "
                        f"{DEFAULT_ARM_TOKEN}, which anyone can read here, so only for an emulator nothing "
                        "else reaches (tests on 127.0.0.1)")
    p.add_argument("--arm-token-file", type=Path, default=None, metavar="PATH",
                   help="accept the bearer token kept in PATH, made at random (mode 0600) on first start and "
                        "kept across restarts: the hub reads it there, e.g. from a volume both mount")
    p.add_argument("--arm-token-file-owner", default=None, metavar="UID[:GID]",
                   help="give --arm-token-file to this user (numbers), e.g. the hub's 1000:1000, so that it "
                        "can read the file while nobody else can (default: the emulator's own user)")
    p.add_argument("--control-secret-file", type=Path, default=None, metavar="PATH",
                   help="the control API's secret (/_emulator/...: every path but /_emulator/health), made at "
                        "random (mode 0600) on first start; a client not on the emulator's own loopback "
                        f"address sends it in the {CONTROL_SECRET_HEADER} header (default "
                        f"STATE_DIR/{CONTROL_SECRET_NAME})")
    p.add_argument("--identity-file", type=Path, default=None, help="Azure AD test users, groups and app registrations (JSON)")
    p.add_argument("--docker-image", default=None, help="compute-instance image for the docker runtime")
    p.add_argument("--docker-network", default=None, help="Docker network the instance containers join")
    p.add_argument("--docker-slots", type=int, default=None,
                   help="with --docker-network: network slots made at start, whose network the instances share, so "
                        "an instance's start or stop adds or removes no network interface on the Docker host "
                        "(browsers there abort requests on such changes); more are made when all are taken; "
                        "0: every instance has its own (default 8)")
    p.add_argument("--docker-internet", choices=("open", "none"), default=None,
                   help="outbound internet of the instance containers: open (default; a public-IP instance) or "
                        "none (a managed VNet allowing only approved outbound, with no rule for PyPI or conda: "
                        "pip install fails on the instance). With none the instances' network must be a Docker "
                        "internal network: --docker-network's (made so when missing; the emulator refuses to start if it "
                        "exists and is not internal), or "
                        "without --docker-network one it makes itself, aml-emulator-offline, on which the "
                        "instances publish no ports and are reported at their address on it, SSH port 50000 "
                        "(reachable from the Docker host)")
    p.add_argument("--fault", action="append", type=json.loads, default=None, metavar="JSON",
                   help='fault to inject at start, e.g. \'{"kind":"throttle","count":3}\' (repeatable)')
    p.add_argument("--ca-export", type=Path, default=None,
                   help="also write the CA certificate (only it) to this path, e.g. a volume clients mount")
    p.add_argument("--redirect-uri", action="append", default=None, metavar="URL",
                   help="also accept this redirect URI for the first app registration (the local hub's), as an "
                        "admin adds one in Entra ID, e.g. https://localhost:8444/hub/oauth_callback (repeatable)")
    p.add_argument("--roles", default=None, metavar="JSON_OR_FILE",
                   help='Azure RBAC role assignments ARM enforces, as JSON or a JSON file: {"assignments": '
                        '[{"principal": "hub", "role": "AzureML Compute Operator", "scope": "/subscriptions/.../'
                        'workspaces/W"}], "definitions": [{"name": "My role", "actions": [...], "not_actions": '
                        '[...]}]}. A principal is an object id, app id, upn, "hub" (the static token and the first '
                        'app registration\'s app-only tokens) or "static-token"; no scope means every workspace. '
                        'Roles: AzureML Compute Operator, AzureML Data Scientist, Reader, Contributor, Owner, or '
                        'custom ones. Default: the hub holds AzureML Compute Operator and Reader on every workspace '
                        'and Reader on their subscriptions; nobody else holds any. Changeable at run time with PUT '
                        '/_emulator/roles')
    p.add_argument("--record-responses", type=Path, default=None, metavar="FILE",
                   help="append every ARM response (method, path, status, headers, body) to FILE as JSON lines, "
                        "for tests that check them against Azure's definitions (default: off)")
    p.add_argument("--config", type=Path, default=None, help="JSON file with any of these settings (flags win)")
    return p


def load_config(argv: list[str] | None = None) -> EmulatorConfig:
    if argv is None:
        argv = shlex.split(os.environ.get("AML_EMULATOR_ARGS", ""))
    parser = build_parser()
    args = parser.parse_args(argv)
    file_settings: dict = {}
    if args.config:
        try:
            file_settings = json.loads(args.config.read_text())
        except (OSError, json.JSONDecodeError) as e:
            parser.error(f"cannot read --config {args.config}: {e}")
        unknown = set(file_settings) - set(EmulatorConfig.__dataclass_fields__)
        if unknown:
            parser.error(f"unknown settings in {args.config}: {', '.join(sorted(unknown))}")

    def pick(name, flag_value, default=None):
        if flag_value is not None:
            return flag_value
        return file_settings.get(name, default)

    state_dir = pick("state_dir", args.state_dir)
    if not state_dir:
        parser.error("--state-dir is required (where state, certificates and instance disks are kept)")
    cfg = EmulatorConfig(state_dir=Path(state_dir).resolve())
    cfg.host = pick("host", args.host, cfg.host)
    cfg.port = int(pick("port", args.port, cfg.port))
    cfg.runtime = pick("runtime", args.runtime, cfg.runtime)
    if cfg.runtime not in ("process", "docker"):
        parser.error(f"runtime must be process or docker, not {cfg.runtime!r}")
    cfg.hostnames = list(pick("hostnames", args.hostname, []))
    cfg.public_url = pick("public_url", args.public_url)
    ws = args.workspace or [parse_workspace(w) if isinstance(w, str) else Workspace(**w) for w in file_settings.get("workspaces", [])]
    if ws:
        cfg.workspaces = ws
    cfg.timing = pick("timing", args.timing, cfg.timing)
    if cfg.timing not in TIMING_PROFILES:
        parser.error(f"--timing must be one of {', '.join(TIMING_PROFILES)}, not {cfg.timing!r}")
    cfg.time_scale = float(pick("time_scale", args.time_scale, cfg.time_scale))
    if cfg.time_scale <= 0:
        parser.error("--time-scale must be > 0")
    transitions = {k: v * cfg.time_scale for k, v in TIMING_PROFILES[cfg.timing].items()}
    file_tr = file_settings.get("transitions", {})
    for kind, value in [*file_tr.items(), *(args.transition or [])]:
        if kind == "all":
            transitions = {k: float(value) for k in transitions}
        else:
            transitions[kind] = float(value)
    cfg.transitions = transitions
    poll_interval = pick("poll_interval", args.poll_interval, cfg.poll_interval)
    cfg.poll_interval = None if poll_interval is None else float(poll_interval)
    cfg.page_size = int(pick("page_size", args.page_size, cfg.page_size))
    token_file = pick("arm_token_file", args.arm_token_file)
    cfg.arm_token_file = Path(token_file) if token_file else None
    # the public default only where no token was chosen at all
    cfg.arm_tokens = list(pick("arm_tokens", args.arm_token, [] if cfg.arm_token_file else cfg.arm_tokens))
    owner = pick("arm_token_file_owner", args.arm_token_file_owner)
    if owner is not None:
        if cfg.arm_token_file is None:
            parser.error("--arm-token-file-owner needs --arm-token-file")
        try:
            cfg.arm_token_file_owner = parse_owner(str(owner))
        except ValueError as e:
            parser.error(f"--arm-token-file-owner: {e}")
    secret_file = pick("control_secret_file", args.control_secret_file)
    cfg.control_secret_file = Path(secret_file) if secret_file else None
    identity = pick("identity_file", args.identity_file)
    cfg.identity_file = Path(identity) if identity else None
    cfg.docker_image = pick("docker_image", args.docker_image, cfg.docker_image)
    cfg.docker_network = pick("docker_network", args.docker_network)
    cfg.docker_slots = int(pick("docker_slots", args.docker_slots, cfg.docker_slots))
    if cfg.docker_slots < 0:
        parser.error("--docker-slots must be 0 or more")
    cfg.docker_internet = pick("docker_internet", args.docker_internet, cfg.docker_internet)
    if cfg.docker_internet not in ("open", "none"):
        parser.error(f"--docker-internet must be open or none, not {cfg.docker_internet!r}")
    cfg.faults = list(pick("faults", args.fault, []))
    ca_export = pick("ca_export", args.ca_export)
    cfg.ca_export = Path(ca_export) if ca_export else None
    cfg.redirect_uris = list(pick("redirect_uris", args.redirect_uri, []))
    record = pick("record_responses", args.record_responses)
    cfg.record_responses = Path(record) if record else None
    for uri in cfg.redirect_uris:
        parts = urlsplit(uri) if isinstance(uri, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
            parser.error(f"--redirect-uri {uri!r} must be an absolute http(s) URL")
    roles = pick("roles", args.roles)
    if roles is not None:
        from .roles import load_settings, parse_settings

        try:
            cfg.roles = load_settings(roles)
            parse_settings(cfg.roles, cfg.workspaces)
        except (OSError, ValueError) as e:  # json.JSONDecodeError is a ValueError
            parser.error(f"--roles: {e}")
    if cfg.page_size < 1:
        parser.error("--page-size must be at least 1")
    if cfg.poll_interval is not None and cfg.poll_interval <= 0:
        parser.error("--poll-interval must be > 0 (0 would make the SDK wait 30 s between polls)")
    return cfg
