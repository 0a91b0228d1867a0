"""Compute-instance names: deterministic, valid, and not aimable.

AML's rules: 3-24 characters, letters, digits and hyphens, a letter first, and
every hyphen followed later by a letter; unique across the whole region. The
name is ``<prefix><readable user part>-<server part>-<12-letter hash>``, cut
to fit.

The hash is an HMAC of the workspace, the exact user name and the server name,
keyed by the hub's id: two users whose names sanitise alike (``a.b`` and ``a_b``), guests
(``erin_contoso.com#ext#@tenant``) or two hubs in one region never collide,
the same user and server always give the same name (which is what lets a
restarted hub find an instance it was still creating), a server moved to
another workspace of the region gets a name of its own there, and finding a server
name that maps onto somebody else's instance takes about 26**12 (2**56)
tries. The name is only where to look: whose an instance is, its tags say
(see ``ownership``).
"""

from __future__ import annotations

import hashlib
import hmac
import re

MAX_LEN = 24
HASH_LEN = 12
LEGACY_HASH_LEN = 6
_NOT_ALNUM = re.compile(r"[^a-z0-9]+")


def _letters(digest: bytes, length: int) -> str:
    # letters only: a hash that ends the name must not look like "-123"
    return "".join(chr(ord("a") + b % 26) for b in digest[:length])


def _readable(text: str) -> str:
    text = text.lower()
    text = text.split("#ext#")[0]  # guest: erin_contoso.com#EXT#@tenant -> erin_contoso.com
    text = text.split("@")[0]
    return _NOT_ALNUM.sub("", text)


def valid_prefix(prefix: str) -> bool:
    return bool(re.fullmatch(r"[a-z][a-z0-9]{0,7}", prefix or ""))


def _check_prefix(prefix: str) -> None:
    if not valid_prefix(prefix):
        raise ValueError(
            f"instance name prefix {prefix!r} must be 1-8 lowercase letters or digits, starting with a letter"
        )


def _compose(prefix: str, username: str, server_name: str, digest: str) -> str:
    room = MAX_LEN - len(prefix) - 1 - len(digest)  # prefix + parts + "-" + hash
    user = _readable(username) or "user"
    server = _readable(server_name)
    if server:
        server_room = min(len(server), max(3, room // 3))
        user_room = max(1, room - server_room - 1)
        middle = f"{user[:user_room]}-{server[:server_room]}"
    else:
        middle = user[:room]
    return f"{prefix}{middle}-{digest}"[:MAX_LEN]


def workspace_text(workspace_key) -> str:
    """``subscription/resource group/workspace``, as names are keyed by it."""
    return "/".join(workspace_key).lower()


def instance_name(username: str, server_name: str = "", *, hub_id: str, workspace: str, prefix: str = "jh") -> str:
    """The compute-instance name for ``username``'s server ``server_name``
    (empty for the default server) on the hub ``hub_id`` in ``workspace``
    (see :func:`workspace_text`)."""
    _check_prefix(prefix)
    if not hub_id:
        raise ValueError("the hub id must not be empty: it keys the instance names")
    message = f"{workspace.lower()}\0{username}\0{server_name}".encode()
    mac = hmac.new(hub_id.encode(), message, hashlib.sha256).digest()
    return _compose(prefix, username, server_name, _letters(mac, HASH_LEN))


def legacy_instance_name(username: str, server_name: str = "", *, hub_id: str = "", prefix: str = "jh") -> str:
    """The name version 0.1 gave (a 6-letter plain hash), to find the
    instances it made. Never used for a new instance: it can be aimed at."""
    _check_prefix(prefix)
    digest = hashlib.sha256(f"{hub_id}\0{username}\0{server_name}".encode()).digest()
    return _compose(prefix, username, server_name, _letters(digest, LEGACY_HASH_LEN))
