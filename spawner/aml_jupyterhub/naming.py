"""Compute-instance names: deterministic, valid, and distinct per user and server.

AML's rules: 3-24 characters, letters, digits and hyphens, a letter first, and
every hyphen followed later by a letter; unique across the whole region. The
name is ``<prefix><readable user part>-<server part>-<6-letter hash>``, cut to
fit. The hash covers the hub's name, the exact user name and server name, so
two users whose names sanitise alike (``a.b`` and ``a_b``), guests
(``erin_contoso.com#ext#@tenant``), or two hubs in one region never collide,
and the same user and server always give the same name (which is what lets a
restarted hub find an instance it was still creating).
"""

from __future__ import annotations

import hashlib
import re

MAX_LEN = 24
HASH_LEN = 6
_NOT_ALNUM = re.compile(r"[^a-z0-9]+")


def _letters_hash(text: str, length: int = HASH_LEN) -> str:
    digest = hashlib.sha256(text.encode()).digest()
    # letters only: a hash that ends the name must not look like "-123"
    return "".join(chr(ord("a") + b % 26) for b in digest[:length])


def _readable(text: str) -> str:
    text = text.lower()
    text = text.split("#ext#")[0]  # guest: erin_contoso.com#EXT#@tenant -> erin_contoso.com
    text = text.split("@")[0]
    return _NOT_ALNUM.sub("", text)


def valid_prefix(prefix: str) -> bool:
    return bool(re.fullmatch(r"[a-z][a-z0-9]{0,7}", prefix or ""))


def instance_name(username: str, server_name: str = "", *, prefix: str = "jh", hub_id: str = "") -> str:
    """The compute-instance name for ``username``'s server ``server_name``
    (empty for the default server)."""
    if not valid_prefix(prefix):
        raise ValueError(
            f"instance name prefix {prefix!r} must be 1-8 lowercase letters or digits, starting with a letter"
        )
    digest = _letters_hash(f"{hub_id}\0{username}\0{server_name}")
    room = MAX_LEN - len(prefix) - 1 - HASH_LEN  # prefix + parts + "-" + hash
    user = _readable(username) or "user"
    server = _readable(server_name)
    if server:
        server_room = min(len(server), max(3, room // 3))
        user_room = max(1, room - server_room - 1)
        middle = f"{user[:user_room]}-{server[:server_room]}"
    else:
        middle = user[:room]
    name = f"{prefix}{middle}-{digest}"
    return name[:MAX_LEN]
