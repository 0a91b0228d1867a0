"""Secrets the emulator makes for itself: its ARM token (``--arm-token-file``)
and its control API's secret (``--control-secret-file``).

Each is made at random on first start into a file of mode 0600 and read back
on later starts, so whoever may read the file (the hub, through a volume; the
host, through ``docker compose exec``) holds it and nobody else does: no
value of it is published anywhere.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path


class SecretFileError(Exception):
    """A secret file cannot be made or read; the message says which and what to do."""


def parse_owner(text: str) -> tuple[int, int]:
    """``UID`` or ``UID:GID`` (numbers; the group defaults to the uid)."""
    uid, colon, gid = text.partition(":")
    if not (uid.isdigit() and (gid.isdigit() or not colon)):
        raise ValueError(f"owner {text!r} must be UID or UID:GID, in numbers, e.g. 1000:1000")
    return int(uid), int(gid or uid)


def ensure_secret(path: Path, flag: str, owner: tuple[int, int] | None = None) -> str:
    """The secret kept in ``path``, made on first use. ``flag`` names the
    setting in messages; ``owner`` (uid, gid) is whom the file is given to,
    e.g. the hub's user, which reads it through a shared volume."""
    path = Path(path)
    try:
        secret = path.read_text().strip() if path.exists() else ""
        if not secret:
            # never half a secret on disk: written whole to a private file, then renamed into place
            path.parent.mkdir(parents=True, exist_ok=True)
            secret = secrets.token_urlsafe(32)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secret + "\n")
            os.replace(tmp, path)
        os.chmod(path, 0o600)
        if owner is not None and (path.stat().st_uid, path.stat().st_gid) != owner:
            os.chown(path, *owner)
    except OSError as e:
        raise SecretFileError(f"{flag} {path}: cannot make or read it ({e.strerror or e}): give a path in a "
                              "directory the emulator may write") from None
    return secret
