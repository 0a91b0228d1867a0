"""Pure builders: what the spawner asks AML for and what it runs on the instance.

No I/O here: each function turns settings and facts into a value (the
instance spec, the server's environment and command line), so each is a
unit test away from being checked.
"""

from __future__ import annotations

import re
from urllib.parse import urlparse

from .compute import InstanceSpec


def idle_minutes(configured: int | None, mode: str) -> int | None:
    """AML's idle shutdown for a new instance. AML does not see a server
    started over SSH as activity, so by default it is off in proxy mode and
    an hour in redirect mode (where the hub's culler sees nothing)."""
    if configured is None:
        configured = 60 if mode == "redirect" else 0
    return configured or None


def instance_spec(*, name: str, vm_size: str, tags: dict, owner_tags: dict, mode: str, idle: int | None,
                  subnet_id: str, enable_public_ip: bool, setup_script: str, setup_script_args: str,
                  user_name: str, server_name: str, access: dict, stop_cron: str = "",
                  stop_time_zone: str = "UTC") -> InstanceSpec:
    """The compute instance to create for a server. ``access`` is the
    connector's part: the SSH public key (proxy) or the assigned user (redirect).
    The ownership tags come last, so an admin's tags can never overwrite them."""
    return InstanceSpec(
        name=name,
        vm_size=vm_size,
        tags={**tags, **owner_tags},
        idle_minutes=idle_minutes(idle, mode),
        subnet_id=subnet_id or None,
        enable_public_ip=enable_public_ip,
        setup_script=setup_script or None,
        setup_script_args=setup_script_args or None,
        description=f"JupyterHub server of {user_name}" + (f" ({server_name})" if server_name else ""),
        stop_cron=stop_cron or None,
        stop_time_zone=stop_time_zone or "UTC",
        **access,
    )


_CRON_FIELD = re.compile(r"^(\*|\d+(-\d+)?)(/\d+)?(,(\*|\d+(-\d+)?)(/\d+)?)*$")
_CRON_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 6))


def cron_problem(expression: str) -> str:
    """What is wrong with a 5-field cron expression as AML takes it
    (minute hour day-of-month month day-of-week, Sunday 0), or ""."""
    fields = expression.split()
    if len(fields) != 5:
        return "a cron expression has 5 fields: minute hour day-of-month month day-of-week, e.g. '0 22 * * *'"
    for text, (low, high), what in zip(fields, _CRON_RANGES, ("minute", "hour", "day of month", "month",
                                                               "day of week")):
        if not _CRON_FIELD.match(text):
            return f"the {what} field {text!r} is not numbers, ranges, steps or '*'"
        numbers = [int(n) for n in re.findall(r"(?<![/\d])\d+", text)]
        if any(not low <= n <= high for n in numbers):
            return f"the {what} field {text!r} must stay within {low}-{high}"
    return ""


def hub_api_address(api_url: str) -> tuple[str, int]:
    """Where the hub's API listens, as the hub itself reaches it (the hub end of the reverse tunnel)."""
    parsed = urlparse(api_url)
    host = parsed.hostname or "127.0.0.1"
    if host in ("0.0.0.0", "", "::"):
        host = "127.0.0.1"
    return host, parsed.port or 80


def server_env(env: dict, *, hub_api_url: str, tunnel_port: int | None) -> dict:
    """The server's environment on the instance. With a reverse tunnel
    (``tunnel_port``) the hub's API URLs point at the instance's end of it,
    since the instance cannot reach the hub's own address. None values dropped."""
    env = dict(env)
    if tunnel_port:
        hub = urlparse(hub_api_url)
        old = env["JUPYTERHUB_API_URL"]
        # https when the hub runs with internal TLS: its certificate names 127.0.0.1 too
        new = f"{hub.scheme or 'http'}://127.0.0.1:{tunnel_port}{hub.path}"
        for key in ("JUPYTERHUB_API_URL", "JUPYTERHUB_ACTIVITY_URL"):
            if env.get(key, "").startswith(old):
                env[key] = new + env[key][len(old):]
    return {k: v for k, v in env.items() if v is not None}


def server_argv(cmd: list[str], args: list[str], python: str) -> list[str]:
    """The command that starts the server: the found Python's singleuser module
    for JupyterHub's default command (the instance's PATH may not have it)."""
    base = [python, "-m", "jupyterhub.singleuser"] if list(cmd) == ["jupyterhub-singleuser"] else list(cmd)
    return base + list(args)
