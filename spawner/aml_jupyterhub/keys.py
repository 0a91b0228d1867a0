"""The hub's own small files: its id, and one SSH key pair per instance.

Both live in the spawner's secrets directory (``AMLSpawner.secrets_dir``: a volume,
0700). A key opens one instance only: it is made just before the instance is
created (so a hub that dies mid-create still holds the key of what AML goes on
making), kept 0600, and removed when the instance is deleted. Keys never go
into the spawner's state (admins can read state over the REST API) or logs.

    <data_dir>/hub-id
    <data_dir>/instance-keys/<workspace digest>/<instance name>       private key, 0600
    <data_dir>/instance-keys/<workspace digest>/<instance name>.pub
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import secrets
from pathlib import Path

import asyncssh

log = logging.getLogger("aml_jupyterhub.keys")

_SAFE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9-]{1,23}")


def private_dir(path: Path) -> Path:
    """``path`` as a directory only its owner may enter."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    if path.stat().st_mode & 0o077:
        os.chmod(path, 0o700)
    return path


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to a new file that is 0600 from its first byte."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def load_or_create_hub_id(data_dir: str | os.PathLike) -> str:
    """The id made on this hub's first start (``hub-id`` in the data directory)."""
    path = Path(data_dir) / "hub-id"
    if path.exists():
        value = path.read_text().strip()
        if value:
            return value
    private_dir(path.parent)
    value = "h" + secrets.token_hex(8)
    write_private(path, (value + "\n").encode())
    os.chmod(path, 0o644)  # not a secret: it is on every instance's tags
    log.info("this hub's id is %s (kept in %s)", value, path)
    return value


def workspace_digest(workspace_key: tuple[str, str, str]) -> str:
    return hashlib.sha256("/".join(workspace_key).lower().encode()).hexdigest()[:16]


class KeyStore:
    """One SSH key pair per instance, under ``directory``."""

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)

    def path(self, workspace_key: tuple[str, str, str], name: str) -> Path:
        if not _SAFE_NAME.fullmatch(name or ""):
            raise ValueError(f"not an instance name: {name!r}")
        return self.directory / workspace_digest(workspace_key) / name

    def load(self, workspace_key, name: str) -> asyncssh.SSHKey | None:
        path = self.path(workspace_key, name)
        if not path.exists():
            return None
        if path.stat().st_mode & 0o077:
            os.chmod(path, 0o600)
            log.warning("tightened the permissions of %s to 600", path)
        return asyncssh.read_private_key(str(path))

    def create(self, workspace_key, name: str) -> asyncssh.SSHKey:
        """A new key pair for instance ``name`` (replacing any old one: a new
        instance never inherits the key of one deleted before it)."""
        path = self.path(workspace_key, name)
        private_dir(self.directory)
        private_dir(path.parent)
        key = asyncssh.generate_private_key("ssh-ed25519", comment=f"aml-jupyterhub {name}")
        write_private(path, key.export_private_key())
        path.with_name(name + ".pub").write_bytes(key.export_public_key())
        log.info("made the SSH key of instance %s", name)
        return key

    def remove(self, workspace_key, name: str) -> None:
        path = self.path(workspace_key, name)
        for p in (path, path.with_name(name + ".pub")):
            p.unlink(missing_ok=True)

