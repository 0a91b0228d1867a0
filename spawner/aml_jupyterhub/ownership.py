"""Whose a compute instance is: its tags, never its name.

Every instance the hub makes carries three tags: ``jupyterhub-hub`` (the hub's
id), ``jupyterhub-user`` (the exact JupyterHub user name) and
``jupyterhub-server`` (the server's name, ``default`` for the default server).
A server uses an instance only when the three say it is that server's; an
instance of another hub, of another user or without our tags is never
started, stopped, deleted or connected to on a user's behalf.

Pure functions and plain data; the spawner and the reconciler do the I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

TAG_HUB = "jupyterhub-hub"
TAG_USER = "jupyterhub-user"
TAG_SERVER = "jupyterhub-server"
OWNER_TAGS = (TAG_HUB, TAG_USER, TAG_SERVER)
DEFAULT_SERVER_TAG = "default"

# Azure tag values allow more, but a hub id is also an HMAC key and a log
# field: keep it plain.
HUB_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def valid_hub_id(hub_id: str) -> bool:
    return bool(HUB_ID_PATTERN.fullmatch(hub_id or ""))


@dataclass(frozen=True)
class Owner:
    """The server an instance belongs to."""

    hub: str
    user: str
    server: str  # "" for the default server

    @property
    def server_tag(self) -> str:
        return self.server or DEFAULT_SERVER_TAG

    def tags(self) -> dict[str, str]:
        return {TAG_HUB: self.hub, TAG_USER: self.user, TAG_SERVER: self.server_tag}

    def describe(self) -> str:
        return f"{self.user}/{self.server}" if self.server else f"{self.user} (default server)"

    def to_state(self) -> dict:
        return {"hub": self.hub, "user": self.user, "server": self.server}

    @classmethod
    def from_state(cls, data) -> "Owner | None":
        if not isinstance(data, dict) or not data.get("hub") or not data.get("user"):
            return None
        return cls(str(data["hub"]), str(data["user"]), str(data.get("server") or ""))


MINE = "mine"
LEGACY = "legacy"  # made by version 0.1: no hub tag, user and server tags match
FOREIGN = "foreign"


def verdict(tags: dict | None, owner: Owner, *, allow_legacy: bool = False) -> str:
    """MINE when all three tags are ``owner``'s; LEGACY when ``allow_legacy``
    and the instance has no hub tag but the user and server tags are exactly
    ``owner``'s (version 0.1 tagged those, from the exact names); FOREIGN
    otherwise."""
    tags = tags or {}
    if tags.get(TAG_USER) != owner.user or tags.get(TAG_SERVER) != owner.server_tag:
        return FOREIGN
    hub = tags.get(TAG_HUB)
    if hub == owner.hub:
        return MINE
    if hub is None and allow_legacy:
        return LEGACY
    return FOREIGN


def is_this_hubs(tags: dict | None, hub_id: str) -> bool:
    return bool(tags) and tags.get(TAG_HUB) == hub_id


def owner_of(tags: dict | None) -> Owner | None:
    """The owner an instance's tags name, if it has all three."""
    tags = tags or {}
    if not all(tags.get(t) for t in OWNER_TAGS):
        return None
    server = tags[TAG_SERVER]
    return Owner(tags[TAG_HUB], tags[TAG_USER], "" if server == DEFAULT_SERVER_TAG else server)


def refusal(name: str, owner: Owner) -> str:
    """What a user reads when the instance their server maps to is not theirs.

    It says whose it is *not* (never whose it is) and what an admin can do."""
    return (
        f"A compute instance named {name} already exists in the workspace, but it is not the instance of "
        f"{owner.describe()} on this hub (its jupyterhub-hub/-user/-server tags do not say so), so it was not "
        "used and nothing was changed. Ask an admin: they can delete or rename that instance in Azure ML studio, "
        "or give this hub another AML_INSTANCE_PREFIX."
    )
