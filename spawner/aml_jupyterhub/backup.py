"""aml-jupyterhub-backup (``make backup``, ``make restore FILE=...``): the hub's
data in one archive, and back.

``create`` writes one ``tar.gz`` into the backup folder (``/backups``, which
compose's ``backup`` service binds to ``BACKUP_DIR``, ``./backups``):

    manifest.json            format, time, hub id, what is inside (no secret)
    hub-data/...             the hub-data volume: secrets/ (cookie secret,
                             crypt key, hub id, instance SSH keys), ssh/,
                             internal-ssl/, prices.json, ...; its SQLite
                             database as a consistent snapshot (sqlite3's
                             online backup API: the hub may keep running)
    caddy-data/...           Caddy's certificates, CA and ACME account

Left out: the live database file (its snapshot is in), SQLite's journal,
pid files and caches (see :func:`excluded`). A PostgreSQL database
(``HUB_DB_URL``) is not in the archive: back it up with ``pg_dump``. The
archive holds the hub's secrets: it is written 0600 into a 0700 folder, and
nothing here prints a secret.

``restore FILE`` checks the archive (its manifest, every member's name and
type, the counts) before it writes anything, refuses while the hub answers
or when the volumes already hold a hub's data (unless ``--force``), unpacks
beside the data and then swaps it in, and gives hub-data's files to the
hub's user (``jupyterhub``), directories 0700 and secrets 0600, as the hub
makes them, and caddy-data's to root, folders 0700 and files 0600, as Caddy
makes them: never the archive's owners or modes. Every failure a user can
hit is one line saying what to do.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import os
import pwd
import secrets
import shutil
import socket
import sqlite3
import stat
import sys
import tarfile
import tempfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from urllib.parse import quote, urlsplit

PROG = "aml-jupyterhub-backup"
FORMAT = 1
MANIFEST = "manifest.json"
HUB, CADDY = "hub-data", "caddy-data"
DB_NAME = "jupyterhub.sqlite"
HUB_USER = "jupyterhub"  # the image's user, that the hub runs as
HUB_UID = 1000  # its uid, when there is no such user here (run outside the image)

# in the backup service (compose.yaml): the volumes, where the hub and Caddy mount them, and the folder
DEFAULT_HUB_DIR = "/srv/jupyterhub"
DEFAULT_CADDY_DIR = "/srv/caddy-data"
DEFAULT_OUT = "/backups"

# never in the archive: runtime files and caches (the database's snapshot replaces the live file)
_SKIP_NAMES = {
    HUB: {f"{DB_NAME}-journal", f"{DB_NAME}-wal", f"{DB_NAME}-shm", "jupyterhub.pid", "proxy.pid"},
    CADDY: set(),
}
_SKIP_DIRS = {
    HUB: {"__pycache__", ".cache", "wheelhouse"},  # the wheelhouse: wheels the hub fetches again when needed
    CADDY: {"locks"},  # Caddy's lock files: of the running Caddy only
}
_RESTORE_STAGING = ".aml-restore-"  # the folder a restore unpacks into, beside the data
INSTANCE_KEYS = PurePosixPath("secrets/instance-keys")  # one key pair per instance (keys.KeyStore)
_PUBLIC = ("hub-id", ".pub")  # files the hub makes readable for all (its id is on every instance's tags)
WHAT = {HUB: "secrets and SSH keys (the hub-data volume)", CADDY: "Caddy's certificates (the caddy-data volume)"}


class BackupError(Exception):
    """A failure a user can hit: one line, with what to do."""


# ---- pure parts -------------------------------------------------------------------


def excluded(section: str, rel: PurePosixPath) -> bool:
    """Whether ``rel`` (a path in the ``section``'s volume) stays out of the archive."""
    parts = rel.parts
    if not parts:
        return False
    if parts[-1] in _SKIP_NAMES[section]:
        return True
    if parts[-1].startswith(_RESTORE_STAGING):
        return True  # what a restore that was cut short left
    return any(p in _SKIP_DIRS[section] for p in parts)


def member_list(root: Path, section: str, skip: set[PurePosixPath] = frozenset()) -> list[tuple[PurePosixPath, Path]]:
    """The directories and regular files of ``root`` that go into the archive,
    as (path inside the volume, path here), parents before children, in name
    order; ``skip`` too stays out (the live database, whose snapshot goes in).
    Symbolic links, sockets and the like are left out (the hub makes none)."""
    found: list[tuple[PurePosixPath, Path]] = []

    def walk(directory: Path, rel: PurePosixPath) -> None:
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError as e:
            raise BackupError(f"cannot read {directory}: {e.strerror or e}") from None
        for entry in entries:
            child = rel / entry.name
            if excluded(section, child) or child in skip:
                continue
            if entry.is_dir(follow_symlinks=False):
                found.append((child, Path(entry.path)))
                walk(Path(entry.path), child)
            elif entry.is_file(follow_symlinks=False):
                found.append((child, Path(entry.path)))

    walk(root, PurePosixPath())
    return found


def archive_name(now: dt.datetime) -> str:
    return f"aml-jupyterhub-{now.astimezone(dt.timezone.utc):%Y%m%d-%H%M%S}.tar.gz"


@dataclass
class Database:
    """Where the hub's database is: ``kind`` sqlite (``path``, ``rel`` inside
    the volume), postgresql, or elsewhere (another SQLite file or database)."""

    kind: str
    path: Path | None = None
    rel: PurePosixPath | None = None

    def note(self) -> str:
        if self.kind == "sqlite":
            return f"a snapshot of {self.rel}"
        if self.kind == "postgresql":
            return "not in the archive: the hub's database is on PostgreSQL (HUB_DB_URL); back it up with pg_dump"
        return "not in the archive: HUB_DB_URL names a database outside the hub-data volume; back it up on its own"


def database_location(environ, hub_dir: Path) -> Database:
    """The hub's database, from HUB_DB_URL and HUB_DATA_DIR as the hub reads
    them (never printed: the URL may hold a password)."""
    url = (environ.get("HUB_DB_URL") or "").strip()
    data_dir = Path(environ.get("HUB_DATA_DIR") or DEFAULT_HUB_DIR)
    if url.startswith(("postgresql:", "postgresql+", "postgres:")):
        return Database("postgresql")
    if url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///"):].split("?", 1)[0])
        path = path if path.is_absolute() else Path(DEFAULT_HUB_DIR) / path  # the hub's working directory
    elif url:
        return Database("elsewhere")
    else:
        path = data_dir / DB_NAME
    # the path as the hub sees it; the volume may be mounted elsewhere here
    for mount in (Path(DEFAULT_HUB_DIR), hub_dir):
        try:
            rel = PurePosixPath(path.relative_to(mount).as_posix())
        except ValueError:
            continue
        return Database("sqlite", hub_dir / rel, rel)
    return Database("elsewhere")


def make_manifest(*, created: dt.datetime, hub_id: str | None, database: Database, users: int | None,
                  counts: dict[str, int], version: str) -> dict:
    """What the archive holds, for ``restore`` to check and say (no secret in it)."""
    return {
        "format": FORMAT,
        "created": created.astimezone(dt.timezone.utc).isoformat(timespec="seconds"),
        "aml_jupyterhub_version": version,
        "hub_id": hub_id,
        "database": {
            "kind": database.kind,
            **({"file": f"{HUB}/{database.rel}", "users": users} if database.kind == "sqlite" else {}),
            "note": database.note(),
        },
        "contents": {
            HUB: {"files": counts.get(HUB, 0), "what": WHAT[HUB]},
            CADDY: {"files": counts.get(CADDY, 0), "what": WHAT[CADDY]},
        },
    }


def check_manifest(data) -> dict:
    """The manifest, or BackupError saying why this is not an archive to restore."""
    if not isinstance(data, dict) or "format" not in data:
        raise BackupError("its manifest.json is not an aml-jupyterhub backup's: restore an archive make backup wrote")
    if not isinstance(data["format"], int) or data["format"] > FORMAT:
        raise BackupError(f"it is of format {data['format']!r}, newer than this version reads ({FORMAT}): "
                          "restore it with the aml-jupyterhub version that made it "
                          f"({data.get('aml_jupyterhub_version', 'unknown')}) or a newer one")
    if data["format"] < 1:
        raise BackupError(f"its format {data['format']!r} is unknown: restore an archive make backup wrote")
    try:
        contents, db = data["contents"], data["database"]
        for section in (HUB, CADDY):
            if not isinstance(contents[section]["files"], int):
                raise TypeError
        if db["kind"] not in ("sqlite", "postgresql", "elsewhere"):
            raise TypeError
        if db["kind"] == "sqlite" and not str(db["file"]).startswith(f"{HUB}/"):
            raise TypeError
        str(data["created"])
    except (KeyError, TypeError, AttributeError):
        raise BackupError("its manifest.json is incomplete: the archive is damaged, or not one make backup "
                          "wrote; restore another") from None
    return data


def check_member(member: tarfile.TarInfo) -> tuple[str, PurePosixPath]:
    """(section, path inside its volume) of an archive member, or BackupError
    for anything restore does not write: a path that leaves its volume, a
    link, a device, a member outside the two sections."""
    name = member.name
    path = PurePosixPath(name)
    if name.startswith("/") or not path.parts or any(p in ("..", "") for p in path.parts) or "\\" in name:
        raise BackupError(f"its member {name!r} points outside the volumes: this is not an archive make backup "
                          "wrote; restore another")
    section, rel = path.parts[0], PurePosixPath(*path.parts[1:]) if len(path.parts) > 1 else PurePosixPath()
    if section not in (HUB, CADDY):
        raise BackupError(f"its member {name!r} is neither hub-data nor caddy-data: this is not an archive "
                          "make backup wrote; restore another")
    if not (member.isreg() or member.isdir()) or (not rel.parts and not member.isdir()):
        raise BackupError(f"its member {name!r} is not a plain file or folder: this is not an archive make "
                          "backup wrote; restore another")
    return section, rel


def hub_mode(rel: PurePosixPath, is_dir: bool) -> int:
    """A restored hub-data entry's mode, as the hub makes them: folders 0700,
    files 0600, its id and public keys 0644."""
    if is_dir:
        return 0o700
    return 0o644 if rel.name == "hub-id" or rel.name.endswith(".pub") else 0o600


CADDY_OWNER = (0, 0)  # Caddy's image runs as root and makes its data root's


def caddy_mode(rel: PurePosixPath, is_dir: bool) -> int:
    """A restored caddy-data entry's mode, as Caddy makes them: folders 0700,
    files 0600, the volume itself 0755 (the image's /data)."""
    if is_dir:
        return 0o755 if not rel.parts else 0o700
    return 0o600


def restored_owner_and_mode(section: str, rel: PurePosixPath, is_dir: bool,
                            hub_owner: tuple[int, int] | None) -> tuple[tuple[int, int] | None, int]:
    """(uid, gid) and mode a restored entry gets: never the archive's, which
    anyone could have written (a root-owned setuid file in Caddy's volume).
    No owner (None): left as the restore makes it."""
    if section == HUB:
        return hub_owner, hub_mode(rel, is_dir)
    return CADDY_OWNER, caddy_mode(rel, is_dir)


def existing_data(hub_dir: Path, database: Database) -> list[str]:
    """What of a hub's data ``hub_dir`` already holds (a restore would replace it)."""
    found = []
    if database.kind == "sqlite" and database.path and database.path.is_file() and database.path.stat().st_size:
        found.append(f"the database {database.rel}")
    secrets_dir = hub_dir / "secrets"
    if secrets_dir.is_dir() and any(secrets_dir.iterdir()):
        found.append("secrets/")
    return found


def hub_answers(url: str, timeout: float = 2.0) -> bool:
    """Whether something accepts connections at the hub's internal URL (hub:8081 in compose)."""
    parts = urlsplit(url)
    if not parts.hostname:
        return False
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((parts.hostname, port), timeout=timeout).close()
    except OSError:  # no such name (the hub's container is not running), refused, unreachable
        return False
    return True


def human_size(n: int) -> str:
    for unit in ("bytes", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)


def say(line: str) -> None:
    print(f"{PROG}: {line}", flush=True)


# ---- create -------------------------------------------------------------------------


def read_hub_id(hub_dir: Path, environ) -> str | None:
    try:
        value = (hub_dir / "secrets" / "hub-id").read_text().strip()
    except OSError:
        value = ""
    return value or (environ.get("AML_HUB_ID") or "").strip() or None


def snapshot(db: Path, dest: Path) -> int | None:
    """A consistent copy of the SQLite database ``db`` (sqlite3's online
    backup API: while the hub writes, too), checked; its number of users."""
    try:
        src = sqlite3.connect(f"file:{quote(str(db))}?mode=ro", uri=True, timeout=30)
        try:
            out = sqlite3.connect(dest)
            try:
                src.backup(out)
                ok = out.execute("PRAGMA integrity_check").fetchone()[0]
                if ok != "ok":
                    raise BackupError(f"the hub's database {db} is damaged ({ok}): nothing written; restore an "
                                      "earlier backup, or see the hub's log")
                try:
                    return out.execute("SELECT count(*) FROM users").fetchone()[0]
                except sqlite3.DatabaseError:
                    return None
            finally:
                out.close()
        finally:
            src.close()
    except sqlite3.DatabaseError as e:
        raise BackupError(f"cannot read the hub's database {db}: {e}; nothing written") from None


def _private_folder(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True, mode=0o700)
        if out.stat().st_mode & 0o077:
            os.chmod(out, 0o700)
    except OSError as e:
        raise BackupError(f"cannot use {out} for the archive: {e.strerror or e}; mount a folder you may write "
                          "there (make backup binds BACKUP_DIR, ./backups)") from None


def _tarinfo(arcname: str, path: Path, st: os.stat_result | None = None) -> tarfile.TarInfo:
    st = st or path.lstat()
    info = tarfile.TarInfo(arcname)
    info.mode = stat.S_IMODE(st.st_mode)
    info.uid, info.gid = st.st_uid, st.st_gid
    info.mtime = int(st.st_mtime)
    if stat.S_ISDIR(st.st_mode):
        info.type = tarfile.DIRTYPE
    else:
        info.size = st.st_size
    return info


def _add_file(tar: tarfile.TarFile, info: tarfile.TarInfo, path: Path, keep_stat: bool = False) -> None:
    """``path`` as ``info``, its size (and, unless ``keep_stat``, owner and mode) from the file
    opened: the hub replaces its small files whole (a rename), so what is read is one version."""
    try:
        with open(path, "rb") as f:
            if not keep_stat:
                info = _tarinfo(info.name, path, st=os.fstat(f.fileno()))
            info.size = os.fstat(f.fileno()).st_size
            tar.addfile(info, f)
    except FileNotFoundError:
        raise BackupError(f"{path} went away while it was read (the hub removed it): nothing written; "
                          "run make backup again") from None
    except OSError as e:
        raise BackupError(f"cannot read {path}: {e.strerror or e}; nothing written") from None


def create(hub_dir: Path, caddy_dir: Path, out: Path, environ, now: dt.datetime | None = None,
           shown_dir: str | None = None) -> Path:
    now = now or dt.datetime.now(dt.timezone.utc)
    if not hub_dir.is_dir():
        raise BackupError(f"no hub data at {hub_dir}: mount the hub-data volume there (make backup does)")
    database = database_location(environ, hub_dir)
    if database.kind == "sqlite" and not (database.path.is_file() and database.path.stat().st_size):
        raise BackupError(f"no hub database in the hub-data volume ({database.rel}): nothing to back up; "
                          "start the hub once (make up), then run make backup")
    _private_folder(out)
    hub_members = member_list(hub_dir, HUB, skip={database.rel} if database.kind == "sqlite" else set())
    caddy_members = member_list(caddy_dir, CADDY) if caddy_dir.is_dir() else []
    name = archive_name(now)
    final = out / name
    if final.exists():
        raise BackupError(f"{final} exists already: wait a second and run make backup again")
    partial = out / f".{name}.partial"
    with tempfile.TemporaryDirectory(prefix="aml-backup-") as tmp:  # 0700
        users = None
        if database.kind == "sqlite":
            snap = Path(tmp) / DB_NAME
            users = snapshot(database.path, snap)
        files = {HUB: sum(1 for _, p in hub_members if not p.is_dir()) + (database.kind == "sqlite"),
                 CADDY: sum(1 for _, p in caddy_members if not p.is_dir())}
        manifest = make_manifest(created=now, hub_id=read_hub_id(hub_dir, environ), database=database,
                                 users=users, counts=files, version=_version())
        try:
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as e:
            raise BackupError(f"cannot write in {out}: {e.strerror or e}") from None
        try:
            with os.fdopen(fd, "wb") as raw:
                with tarfile.open(fileobj=raw, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
                    body = (json.dumps(manifest, indent=2) + "\n").encode()
                    info = tarfile.TarInfo(MANIFEST)
                    info.size, info.mode, info.mtime = len(body), 0o600, int(now.timestamp())
                    tar.addfile(info, io.BytesIO(body))
                    for section, root, members in ((HUB, hub_dir, hub_members), (CADDY, caddy_dir, caddy_members)):
                        if not root.is_dir():
                            continue
                        tar.addfile(_tarinfo(section, root))
                        for rel, path in members:
                            try:
                                info = _tarinfo(f"{section}/{rel}", path)
                            except FileNotFoundError:
                                raise BackupError(f"{path} went away while it was read (the hub removed it): "
                                                  "nothing written; run make backup again") from None
                            if info.isdir():
                                tar.addfile(info)
                            else:
                                _add_file(tar, info, path)
                        if section == HUB and database.kind == "sqlite":
                            # the snapshot, with the live file's owner, mode and time
                            _add_file(tar, _tarinfo(f"{HUB}/{database.rel}", snap, st=database.path.stat()), snap,
                                      keep_stat=True)
                raw.flush()
                os.fsync(raw.fileno())
            os.replace(partial, final)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
    # the folder's owner (the host user who made it) may read the archive; nobody else
    st = out.stat()
    if os.geteuid() == 0 and (st.st_uid, st.st_gid) != (0, 0):
        os.chown(final, st.st_uid, st.st_gid)
    shown = f"{shown_dir.rstrip('/')}/{name}" if shown_dir else str(final)
    if database.kind == "sqlite":
        say(f"the hub's database: {database.note()} ({_users(users)})")
    else:
        say(f"the hub's database: {database.note()}")
    say(f"{WHAT[HUB]}: {files[HUB] - (database.kind == 'sqlite')} files")
    say(f"{WHAT[CADDY]}: {files[CADDY]} files" if caddy_members else
        f"{WHAT[CADDY]}: none (Caddy has not started yet)")
    say(f"hub id {manifest['hub_id'] or '(none recorded: no secrets/hub-id, no AML_HUB_ID)'}")
    print(f"wrote {shown} ({human_size(final.stat().st_size)}, 0600): it holds the hub's secrets, keep it private",
          flush=True)
    return final


def _users(n: int | None) -> str:
    return "users unknown" if n is None else f"{n} user{'s' if n != 1 else ''}"


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("aml-jupyterhub")
    except Exception:  # noqa: BLE001 - only said in the manifest
        return "unknown"


# ---- restore ------------------------------------------------------------------------


@dataclass
class Archive:
    manifest: dict
    counts: dict[str, int] = field(default_factory=dict)
    sections: set[str] = field(default_factory=set)


def _open(path: Path, label: str) -> tarfile.TarFile:
    if not path.is_file():
        raise BackupError(f"{label}: no such file; name an archive make backup wrote (in BACKUP_DIR, ./backups)")
    try:
        return tarfile.open(path, mode="r:gz")
    except (tarfile.TarError, OSError, EOFError) as e:
        raise BackupError(f"{label} is not an aml-jupyterhub backup (not a readable tar.gz: {e}); "
                          "restore an archive make backup wrote") from None


def read_archive(path: Path, shown: str | None = None) -> Archive:
    """The archive checked from end to end (gzip's checksum included), before anything is written;
    ``shown``: its name in messages (as the user gave it, not as mounted here)."""
    label = shown or str(path)
    try:
        with _open(path, label) as tar:
            first = tar.next()
            if first is None or first.name != MANIFEST or not first.isreg():
                raise BackupError(f"{label} has no manifest.json first: it is not an aml-jupyterhub backup; "
                                  "restore an archive make backup wrote")
            try:
                manifest = check_manifest(json.load(tar.extractfile(first)))
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise BackupError(f"{label}: its manifest.json is not JSON: the archive is damaged; restore another") \
                    from None
            archive = Archive(manifest, {HUB: 0, CADDY: 0})
            while (member := tar.next()) is not None:  # in order: one pass through the gzip stream
                section, rel = check_member(member)
                archive.sections.add(section)
                if member.isreg():
                    archive.counts[section] += 1
                    f = tar.extractfile(member)
                    while f.read(1 << 20):  # read through: a damaged archive fails here, not halfway through a restore
                        pass
    except BackupError as e:
        message = str(e)
        raise BackupError(message if message.startswith(label) else f"{label}: {message}") from None
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise BackupError(f"{label} is damaged ({e}): restore another archive") from None
    for section in (HUB, CADDY):
        expected = manifest["contents"][section]["files"]
        if archive.counts[section] != expected:
            raise BackupError(f"{label} holds {archive.counts[section]} files of {section}, its manifest says "
                              f"{expected}: the archive is damaged; restore another")
    if HUB not in archive.sections:
        raise BackupError(f"{label} holds no hub data: restore an archive make backup wrote")
    return archive


def hub_owner() -> tuple[int, int] | None:
    """(uid, gid) of the hub's user, or None when there is no such user here."""
    try:
        entry = pwd.getpwnam(HUB_USER)
    except KeyError:
        return None
    return entry.pw_uid, entry.pw_gid


def _clear(directory: Path, keep: Path) -> None:
    for entry in directory.iterdir():
        if entry == keep:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def _swap_in(staging: Path, target: Path) -> None:
    """What ``staging`` holds in place of what ``target`` held (staging is inside target)."""
    _clear(target, keep=staging)
    for entry in staging.iterdir():
        os.rename(entry, target / entry.name)
    staging.rmdir()


def keys_made_since(target: Path, staging: Path) -> list[PurePosixPath]:
    """The instance keys in ``target`` (the volume) that the archive (unpacked in
    ``staging``) lacks: instances made after the backup. Their private keys exist
    nowhere else, and AML cannot take a new key on an existing instance."""
    root = target.joinpath(*INSTANCE_KEYS.parts)
    if not root.is_dir():
        return []
    found = []
    for path in sorted(root.rglob("*")):
        rel = PurePosixPath(path.relative_to(target).as_posix())
        if path.is_file() and not path.is_symlink() and not staging.joinpath(*rel.parts).exists():
            found.append(rel)
    return found


def unpack(path: Path, targets: dict[str, Path], owner: tuple[int, int] | None,
           kept: list[PurePosixPath] | None = None) -> dict[str, int]:
    """Every member into a staging folder of its volume, then swapped in. Every entry, the
    folders made for members the archive lists without their parents too, gets its owner and
    mode from :func:`restored_owner_and_mode` (hub-data's the hub's ``owner``, Caddy's root's),
    never the archive's. Instance keys the volume has and the archive lacks are kept (and
    listed in ``kept``)."""
    staging = {s: t / f"{_RESTORE_STAGING}{secrets.token_hex(4)}" for s, t in targets.items()}
    root_info: dict[str, tarfile.TarInfo] = {}
    written = {s: 0 for s in targets}
    can_chown = os.geteuid() == 0
    try:
        for s in staging.values():
            s.mkdir(mode=0o700)
        with tarfile.open(path, mode="r:gz") as tar:
            for member in tar:
                if member.name == MANIFEST:
                    continue
                section, rel = check_member(member)
                if section not in targets:
                    continue
                if not rel.parts:
                    root_info[section] = member
                    continue
                dest = staging[section].joinpath(*rel.parts)
                _parents(staging[section], rel, section, owner, can_chown)
                if member.isdir():
                    dest.mkdir(mode=0o700, exist_ok=True)
                else:
                    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                    with os.fdopen(fd, "wb") as f:
                        shutil.copyfileobj(tar.extractfile(member), f)
                    written[section] += 1
                _own(dest, section, rel, member.isdir(), owner, can_chown, member.mtime)
        if HUB in targets:
            for rel in keys_made_since(targets[HUB], staging[HUB]):
                dest = staging[HUB].joinpath(*rel.parts)
                _parents(staging[HUB], rel, HUB, owner, can_chown)
                os.rename(targets[HUB].joinpath(*rel.parts), dest)
                _own(dest, HUB, rel, False, owner, can_chown)
                if kept is not None:
                    kept.append(rel)
        for section, target in targets.items():
            _swap_in(staging[section], target)
            mtime = root_info[section].mtime if section in root_info else None
            _own(target, section, PurePosixPath(), True, owner, can_chown, mtime)
    except BaseException:
        for s in staging.values():
            shutil.rmtree(s, ignore_errors=True)
        raise
    return written


def _parents(root: Path, rel: PurePosixPath, section: str, owner: tuple[int, int] | None,
             can_chown: bool) -> None:
    """The folders above ``rel`` under ``root`` that do not exist yet, each made with
    its section's owner and mode (an archive may list a file without its folders)."""
    for parent in reversed(rel.parents[:-1]):
        folder = root.joinpath(*parent.parts)
        if not folder.exists():
            folder.mkdir(mode=0o700)
            _own(folder, section, parent, True, owner, can_chown)


def _own(dest: Path, section: str, rel: PurePosixPath, is_dir: bool, owner: tuple[int, int] | None,
         can_chown: bool, mtime: float | None = None) -> None:
    uid_gid, mode = restored_owner_and_mode(section, rel, is_dir, owner)
    if can_chown and uid_gid is not None:
        os.chown(dest, *uid_gid, follow_symlinks=False)
    os.chmod(dest, mode)
    if mtime is not None:
        os.utime(dest, (mtime, mtime), follow_symlinks=False)


def restore(path: Path, hub_dir: Path, caddy_dir: Path, environ, *, force: bool = False, check_only: bool = False,
            hub_url: str = "", answers=hub_answers, shown: str | None = None) -> dict[str, int]:
    archive = read_archive(path, shown)
    m = archive.manifest
    made = f"hub {m.get('hub_id') or '(id not recorded)'}, made {m['created']} by aml-jupyterhub " \
           f"{m.get('aml_jupyterhub_version', 'unknown')}"
    for directory, what in ((hub_dir, "hub-data"), (caddy_dir, "caddy-data")):
        if not directory.is_dir():
            raise BackupError(f"no {what} volume at {directory}: mount it there (make restore does)")
    database = database_location(environ, hub_dir)
    there = existing_data(hub_dir, database)
    if there and not force:
        raise BackupError(f"the hub-data volume already holds a hub's data ({' and '.join(there)}); a restore replaces "
                          "it: to do so, add FORCE=1 (make restore FILE=... FORCE=1; the command's --force)")
    if check_only:
        say(f"{path.name}: a backup of {made}: checked ({archive.counts[HUB]} files of hub data, "
            f"{archive.counts[CADDY]} of Caddy's)")
        return dict(archive.counts)
    if hub_url and answers(hub_url):
        raise BackupError(f"the hub is running ({urlsplit(hub_url).netloc} answers): stop it first "
                          "(docker compose stop hub caddy; make restore does), then restore")
    owner = hub_owner() or (HUB_UID, HUB_UID)
    targets = {HUB: hub_dir, **({CADDY: caddy_dir} if CADDY in archive.sections else {})}
    try:
        kept: list[PurePosixPath] = []
        written = unpack(path, targets, owner, kept)
    except OSError as e:
        raise BackupError(f"cannot write the restored files: {e.strerror or e} ({e.filename}); nothing of the "
                          "archive was put in place of the volumes' data (run it as root: make restore does)") from None
    db = m["database"]
    say(f"restored {path.name}: {made}")
    if db["kind"] == "sqlite":
        say(f"the hub's database: {db['file'][len(HUB) + 1:]} ({_users(db.get('users'))}), owner {HUB_USER}, 0600")
    else:
        say(f"the hub's database: {db['note']}; restore it (pg_restore or psql) before the hub starts")
    n_db = db["kind"] == "sqlite"
    say(f"{WHAT[HUB]}: {written[HUB] - n_db} files, owner {HUB_USER}, folders 0700, secrets 0600")
    if CADDY in written:
        say(f"{WHAT[CADDY]}: {written[CADDY]} files")
    if there:
        say(f"replaced what the hub-data volume held: {' and '.join(there)}")
    private = [k for k in kept if not k.name.endswith(".pub")]
    if private:
        names = ", ".join(k.name for k in private[:10]) + (f" and {len(private) - 10} more" if len(private) > 10 else "")
        say(f"kept the SSH keys of {len(private)} instance(s) made after this backup ({names}): the archive has "
            "none for them, and their servers need them")
    return written


# ---- command line -------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="The hub's data (database, secrets, SSH keys) and Caddy's "
                                "certificates in one archive, and back (make backup, make restore FILE=...).")
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("create", help="write one archive into the backup folder")
    c.add_argument("--out", default=DEFAULT_OUT, help=f"folder for the archive (default {DEFAULT_OUT})")
    r = sub.add_parser("restore", help="put an archive back into the volumes (the hub stopped)")
    r.add_argument("file", help="the archive (a .tar.gz that create wrote)")
    r.add_argument("--force", action="store_true", help="replace the data the volumes already hold")
    r.add_argument("--check", action="store_true", help="check the archive and the volumes; write nothing")
    r.add_argument("--shown-as", default=None, help="the archive's name in messages (make restore: FILE)")
    r.add_argument("--hub-url", default=os.environ.get("HUB_INTERNAL_URL", "http://hub:8081"),
                   help="refuse while the hub answers here (default HUB_INTERNAL_URL, http://hub:8081; '' not to ask)")
    for q in (c, r):
        q.add_argument("--hub-dir", default=DEFAULT_HUB_DIR, help=f"the hub-data volume (default {DEFAULT_HUB_DIR})")
        q.add_argument("--caddy-dir", default=DEFAULT_CADDY_DIR,
                       help=f"the caddy-data volume (default {DEFAULT_CADDY_DIR})")
    return p


def main(argv=None, environ=None) -> int:
    environ = os.environ if environ is None else environ
    args = parser().parse_args(argv)
    try:
        if args.command == "create":
            create(Path(args.hub_dir), Path(args.caddy_dir), Path(args.out), environ,
                   shown_dir=environ.get("BACKUP_HOST_DIR") or None)
        else:
            restore(Path(args.file), Path(args.hub_dir), Path(args.caddy_dir), environ, force=args.force,
                    check_only=args.check, hub_url=args.hub_url,
                    shown=args.shown_as)
    except BackupError as e:
        print(f"{PROG}: {e}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; run the same command again", file=sys.stderr, flush=True)
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
