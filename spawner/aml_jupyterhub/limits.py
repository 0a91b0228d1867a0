"""Spend limits: what may run at once, and for how long (pure).

Which sizes a group may pick is the profiles' ``groups`` (``profiles``);
here are the limits on what runs: servers running per user, vCPUs running
per group, and a server's maximum runtime, after which it is stopped
whatever its activity. Each refusal says which limit, the numbers, and what
the user can do. No I/O and no clock: the spawner gathers what runs and
passes the time in.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass


@dataclass(frozen=True)
class Running:
    """A server of the hub that runs (or is admitted to start), as the limits count it."""

    user: str
    server: str
    groups: frozenset[str]
    vcpus: int | None  # None: its size's vCPUs are not known


def parse_group_limits(items) -> dict[str, int]:
    """``{"group": vcpus}`` from a mapping or from ``group=vcpus`` strings
    (the .env form); ValueError naming the bad entry."""
    pairs = items.items() if isinstance(items, dict) else (str(i).rpartition("=")[::2] for i in items)
    out: dict[str, int] = {}
    for group, raw in pairs:
        group = str(group).strip()
        if not group:
            raise ValueError(f"a group vCPU limit needs a group name before '=', not {raw!r}")
        try:
            vcpus = int(str(raw).strip())
        except ValueError:
            raise ValueError(f"the vCPU limit of group {group!r} must be a whole number, not {raw!r}") from None
        if vcpus < 0:
            raise ValueError(f"the vCPU limit of group {group!r} must be 0 or more, not {vcpus}")
        out[group] = vcpus
    return out


def _servers(names: list[str]) -> str:
    shown = ", ".join(f"'{n}'" if n else "the default one" for n in sorted(names)[:5])
    return shown + (f" and {len(names) - 5} more" if len(names) > 5 else "")


def user_servers_refusal(running_servers: list[str], limit: int) -> str | None:
    """Why one more server of this user may not start (``running_servers``:
    the names of the user's other servers that run or start), or None."""
    if not limit or len(running_servers) < limit:
        return None
    many = "server" if limit == 1 else "servers"
    return (f"You already have {len(running_servers)} {'server' if len(running_servers) == 1 else 'servers'} "
            f"running ({_servers(running_servers)}), and this hub allows {limit} {many} per user at a time. "
            "Stop one from your hub home page, then start this one.")


def group_vcpus_refusal(user_groups: set[str], size_label: str, vcpus: int | None, running: list[Running],
                        limits: dict[str, int], names: dict[str, str] | None = None) -> str | None:
    """Why a server of ``vcpus`` may not start for a member of ``user_groups``,
    or None. Every limited group of the user must have room: the vCPUs its
    members' servers use now plus the new one's. ``names``: display names of
    groups (Azure AD object ids otherwise say little)."""
    names = names or {}
    mine = sorted(g for g in user_groups if g in limits)
    if not mine:
        return None
    if vcpus is None:
        return (f"This hub limits the vCPUs your group {names.get(mine[0], mine[0])!r} runs, and the vCPUs of "
                f"{size_label} cannot be read from Azure now. Try again in a minute.")
    for group in mine:
        used = sum(r.vcpus or 0 for r in running if group in r.groups)
        if used + vcpus > limits[group]:
            label = names.get(group, group)
            return (f"Your group {label!r} may run {limits[group]} vCPUs at a time; its members' servers use "
                    f"{used} now and {size_label} needs {vcpus}. Pick a smaller size or stop one of your servers "
                    "(or wait for colleagues' to stop), or ask an admin to raise the group's limit.")
    return None


def runtime_hours(profile_hours: float | None, default_hours: float) -> float:
    """A server's maximum runtime in hours: its profile's when it has one
    (0 there: no limit for that size), else the hub's; 0 means none."""
    return float(default_hours or 0) if profile_hours is None else float(profile_hours)


def clock(epoch: float) -> str:
    """An instant as a user reads it on a hub page: time of day in UTC, the date when not today."""
    when = dt.datetime.fromtimestamp(epoch, dt.timezone.utc)
    return when.strftime("%H:%M UTC on %d %b" if when.date() != dt.datetime.now(dt.timezone.utc).date()
                         else "%H:%M UTC")


def in_words(seconds: float) -> str:
    minutes = max(0, round(seconds / 60))
    if minutes < 1:
        return "less than a minute"
    if minutes < 90:
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    return f"{minutes / 60:.1f} hours"


def runtime_rule(hours: float, profile_name: str) -> str:
    """The limit in words, as the spawn page and the warning give it."""
    return f"the {hours:g} h limit of {profile_name}" if profile_name else f"this hub's {hours:g} h limit"


def stop_warning(server: str, stop_at: float, now: float, rule: str) -> str:
    """The warning a user reads before their server is stopped for its runtime."""
    which = f"Your server '{server}'" if server else "Your server"
    return (f"{which} will be stopped in {in_words(stop_at - now)} (at {clock(stop_at)}): it reaches {rule}. "
            "Save your work; you can start it again afterwards.")


def stopped_notice(server: str, rule: str) -> str:
    which = f"Your server '{server}'" if server else "Your server"
    return f"{which} was stopped: it reached {rule}. Your files are kept; start it again when you need it."
