"""aml-jupyterhub-backup's pure parts, and a round trip in tmp_path: the
manifest, what goes into the archive, where the database is, the refusals."""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import sqlite3
import stat
import tarfile
from pathlib import Path, PurePosixPath

import pytest

from aml_jupyterhub import backup
from aml_jupyterhub.backup import (
    CADDY, HUB, BackupError, Database, archive_name, check_manifest, check_member, database_location, excluded,
    existing_data, hub_mode, main, make_manifest, member_list, read_archive,
)

NOW = dt.datetime(2025, 3, 4, 5, 6, 7, tzinfo=dt.timezone.utc)
SECRET = "c0ffee" * 10


def a_hub(root: Path, users=("alice", "carol")) -> Path:
    """A hub-data volume as the hub leaves it: database, secrets, keys, runtime files, a cache."""
    hub = root / "hub"
    (hub / "secrets" / "instance-keys" / "abcd").mkdir(parents=True, mode=0o700)
    (hub / "secrets" / "cookie_secret").write_text(SECRET + "\n")
    (hub / "secrets" / "crypt_key").write_text("ab" * 32 + "\n")
    (hub / "secrets" / "hub-id").write_text("h0123456789abcdef\n")
    (hub / "secrets" / "instance-keys" / "abcd" / "jh-x").write_text("PRIVATE KEY\n")
    (hub / "secrets" / "instance-keys" / "abcd" / "jh-x.pub").write_text("ssh-ed25519 AAAA\n")
    (hub / "ssh").mkdir(mode=0o700)
    (hub / "ssh" / "id_ed25519").write_text("OLD KEY\n")
    (hub / "jupyterhub.pid").write_text("7\n")
    (hub / "jupyterhub.sqlite-journal").write_bytes(b"")
    (hub / ".cache" / "x").mkdir(parents=True)
    (hub / ".cache" / "x" / "blob").write_text("cache")
    db = sqlite3.connect(hub / "jupyterhub.sqlite")
    db.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
    db.executemany("INSERT INTO users (name) VALUES (?)", [(u,) for u in users])
    db.commit()
    db.close()
    return hub


def a_caddy(root: Path) -> Path:
    caddy = root / "caddy"
    (caddy / "caddy" / "pki" / "authorities" / "local").mkdir(parents=True)
    (caddy / "caddy" / "pki" / "authorities" / "local" / "root.crt").write_text("ROOT CA\n")
    (caddy / "caddy" / "pki" / "authorities" / "local" / "root.key").write_text("ROOT KEY\n")
    (caddy / "caddy" / "locks").mkdir()
    (caddy / "caddy" / "locks" / "issue.lock").write_text("lock")
    return caddy


def names(tar_path: Path) -> list[str]:
    with tarfile.open(tar_path) as tar:
        return tar.getnames()


# ---- pure parts ------------------------------------------------------------------


def test_what_stays_out_of_the_archive():
    assert excluded(HUB, PurePosixPath("jupyterhub.pid")) and excluded(HUB, PurePosixPath("proxy.pid"))
    assert excluded(HUB, PurePosixPath("jupyterhub.sqlite-journal"))
    assert excluded(HUB, PurePosixPath("jupyterhub.sqlite-wal"))
    assert excluded(HUB, PurePosixPath(".cache/pip/x")) and excluded(HUB, PurePosixPath("a/__pycache__/b.pyc"))
    assert excluded(HUB, PurePosixPath(".aml-restore-1234abcd"))
    assert excluded(CADDY, PurePosixPath("caddy/locks/issue.lock"))
    for kept in ("secrets/cookie_secret", "secrets/hub-id", "secrets/instance-keys/d/jh-x", "ssh/id_ed25519",
                 "internal-ssl/hub-ca/hub-ca.key", "prices.json", "operation-times.json", "jupyterhub.sqlite"):
        assert not excluded(HUB, PurePosixPath(kept)), kept
    assert not excluded(CADDY, PurePosixPath("caddy/pki/authorities/local/root.key"))


def test_member_list_parents_first_without_the_live_database_links_or_caches(tmp_path):
    hub = a_hub(tmp_path)
    (hub / "link").symlink_to(hub / "secrets" / "cookie_secret")
    found = [str(rel) for rel, _ in member_list(hub, HUB, skip={PurePosixPath("jupyterhub.sqlite")})]
    assert found == ["secrets", "secrets/cookie_secret", "secrets/crypt_key", "secrets/hub-id",
                     "secrets/instance-keys", "secrets/instance-keys/abcd", "secrets/instance-keys/abcd/jh-x",
                     "secrets/instance-keys/abcd/jh-x.pub", "ssh", "ssh/id_ed25519"]
    assert "jupyterhub.sqlite" in [str(rel) for rel, _ in member_list(hub, HUB)]


def test_database_location_from_the_settings(tmp_path):
    vol = tmp_path / "vol"
    db = database_location({}, vol)
    assert (db.kind, db.path, str(db.rel)) == ("sqlite", vol / "jupyterhub.sqlite", "jupyterhub.sqlite")
    db = database_location({"HUB_DATA_DIR": "/srv/jupyterhub/data"}, vol)
    assert db.path == vol / "data" / "jupyterhub.sqlite"
    db = database_location({"HUB_DB_URL": "sqlite:////srv/jupyterhub/other.sqlite"}, vol)
    assert db.kind == "sqlite" and str(db.rel) == "other.sqlite"
    db = database_location({"HUB_DB_URL": "sqlite:///rel.sqlite"}, vol)  # the hub's working directory
    assert str(db.rel) == "rel.sqlite"
    assert database_location({"HUB_DB_URL": "sqlite:////var/lib/hub.sqlite"}, vol).kind == "elsewhere"
    for url in ("postgresql://u:pw@db:5432/hub", "postgresql+psycopg2://u@db/hub?sslmode=require"):
        db = database_location({"HUB_DB_URL": url}, vol)
        assert db.kind == "postgresql" and "pg_dump" in db.note() and "pw" not in db.note()


def test_manifest_says_what_is_inside_and_is_checked():
    sqlite = Database("sqlite", Path("/x"), PurePosixPath("jupyterhub.sqlite"))
    m = make_manifest(created=NOW, hub_id="h1", database=sqlite,
                      users=5, counts={HUB: 9, CADDY: 4}, version="0.1.0")
    assert m["format"] == 1 and m["created"] == "2025-03-04T05:06:07+00:00" and m["hub_id"] == "h1"
    assert m["database"] == {"kind": "sqlite", "file": "hub-data/jupyterhub.sqlite", "users": 5,
                             "note": "a snapshot of jupyterhub.sqlite"}
    assert m["contents"][HUB]["files"] == 9 and m["contents"][CADDY]["files"] == 4
    assert check_manifest(json.loads(json.dumps(m))) == m
    pg = make_manifest(created=NOW, hub_id=None, database=Database("postgresql"), users=None, counts={HUB: 3},
                       version="0.1.0")
    assert "file" not in pg["database"] and "pg_dump" in pg["database"]["note"]
    assert check_manifest(pg)["contents"][CADDY]["files"] == 0

    with pytest.raises(BackupError, match="newer than this version reads.*0.9"):
        check_manifest({**m, "format": 2, "aml_jupyterhub_version": "0.9"})
    with pytest.raises(BackupError, match="not an aml-jupyterhub backup"):
        check_manifest(["format"])
    with pytest.raises(BackupError, match="incomplete"):
        check_manifest({k: v for k, v in m.items() if k != "contents"})
    with pytest.raises(BackupError, match="incomplete"):
        check_manifest({**m, "database": {"kind": "sqlite", "file": "../etc/passwd"}})


def test_archive_members_restore_would_refuse():
    def member(name, kind=tarfile.REGTYPE):
        info = tarfile.TarInfo(name)
        info.type = kind
        return info

    assert check_member(member("hub-data/secrets/cookie_secret")) == (HUB, PurePosixPath("secrets/cookie_secret"))
    assert check_member(member("caddy-data", tarfile.DIRTYPE)) == (CADDY, PurePosixPath())
    for bad, why in (("/etc/passwd", "outside"), ("hub-data/../../etc/passwd", "outside"), ("other/x", "neither"),
                     ("hub-data", "not a plain file")):
        with pytest.raises(BackupError, match=why):
            check_member(member(bad))
    for kind in (tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.CHRTYPE, tarfile.FIFOTYPE):
        with pytest.raises(BackupError, match="not a plain file"):
            check_member(member("hub-data/x", kind))


def test_modes_as_the_hub_makes_them_and_the_archive_name():
    assert hub_mode(PurePosixPath("secrets"), True) == 0o700
    assert hub_mode(PurePosixPath("secrets/cookie_secret"), False) == 0o600
    assert hub_mode(PurePosixPath("jupyterhub.sqlite"), False) == 0o600
    assert hub_mode(PurePosixPath("secrets/hub-id"), False) == 0o644
    assert hub_mode(PurePosixPath("secrets/instance-keys/d/jh-x.pub"), False) == 0o644
    assert archive_name(NOW) == "aml-jupyterhub-20250304-050607.tar.gz"


def test_existing_data_is_what_a_restore_would_replace(tmp_path):
    vol = tmp_path / "vol"
    vol.mkdir()
    db = database_location({}, vol)
    assert existing_data(vol, db) == []
    (vol / "jupyterhub.sqlite").touch()  # made empty by the hub's prepare_data_dir before JupyterHub opens it
    assert existing_data(vol, db) == []
    (vol / "jupyterhub.sqlite").write_bytes(b"SQLite format 3\0")
    (vol / "secrets").mkdir()
    (vol / "secrets" / "cookie_secret").write_text("x")
    assert existing_data(vol, db) == ["the database jupyterhub.sqlite", "secrets/"]


# ---- create and restore, in tmp_path ----------------------------------------------


def test_create_writes_one_private_archive_and_prints_no_secret(tmp_path, capsys):
    hub, caddy = a_hub(tmp_path), a_caddy(tmp_path)
    out = tmp_path / "backups"
    path = backup.create(hub, caddy, out, {}, now=NOW, shown_dir="backups")
    assert path == out / "aml-jupyterhub-20250304-050607.tar.gz"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(out.stat().st_mode) == 0o700
    assert [p.name for p in out.iterdir()] == [path.name]  # no partial file left
    said = capsys.readouterr().out
    assert SECRET not in said and "PRIVATE KEY" not in said
    assert "wrote backups/aml-jupyterhub-20250304-050607.tar.gz" in said and "2 users" in said

    members = names(path)
    assert members[0] == "manifest.json"
    assert "hub-data/jupyterhub.sqlite" in members and "hub-data/secrets/cookie_secret" in members
    assert "caddy-data/caddy/pki/authorities/local/root.key" in members
    assert not [m for m in members if m.endswith((".pid", "-journal")) or ".cache" in m or "locks" in m], members
    archive = read_archive(path)
    assert archive.manifest["hub_id"] == "h0123456789abcdef"
    assert archive.manifest["database"]["users"] == 2
    assert archive.counts == {HUB: 7, CADDY: 2}
    with tarfile.open(path) as tar:  # the snapshot is a database, with what the live one held
        (tmp_path / "snap.sqlite").write_bytes(tar.extractfile("hub-data/jupyterhub.sqlite").read())
    assert sqlite3.connect(tmp_path / "snap.sqlite").execute("SELECT name FROM users").fetchall() == [
        ("alice",), ("carol",)]


def test_create_refusals(tmp_path):
    with pytest.raises(BackupError, match="mount the hub-data volume"):
        backup.create(tmp_path / "none", tmp_path / "caddy", tmp_path / "out", {})
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "jupyterhub.sqlite").touch()
    with pytest.raises(BackupError, match="nothing to back up; start the hub once"):
        backup.create(empty, tmp_path / "caddy", tmp_path / "out", {})
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "jupyterhub.sqlite").write_bytes(b"not a database at all" * 100)
    with pytest.raises(BackupError, match="cannot read the hub's database"):
        backup.create(bad, tmp_path / "caddy", tmp_path / "out", {})
    assert not list((tmp_path / "out").iterdir())


def test_postgresql_hub_backs_up_the_volume_and_says_pg_dump(tmp_path, capsys):
    hub = tmp_path / "hub"
    (hub / "secrets").mkdir(parents=True)
    (hub / "secrets" / "cookie_secret").write_text(SECRET)
    path = backup.create(hub, tmp_path / "no-caddy", tmp_path / "out", {"HUB_DB_URL": "postgresql://u:pw@db/hub"},
                         now=NOW)
    said = capsys.readouterr().out
    assert "pg_dump" in said and "pw" not in said.replace("pg_dump", "")
    assert read_archive(path).manifest["database"]["kind"] == "postgresql"


def test_round_trip_restores_files_modes_and_says_what(tmp_path, capsys):
    hub, caddy = a_hub(tmp_path / "before"), a_caddy(tmp_path / "before")
    path = backup.create(hub, caddy, tmp_path / "out", {}, now=NOW)
    new_hub, new_caddy = tmp_path / "after" / "hub", tmp_path / "after" / "caddy"
    new_hub.mkdir(parents=True, mode=0o750)
    new_caddy.mkdir()
    backup.restore(path, new_hub, new_caddy, {}, check_only=True)
    assert not list(new_hub.iterdir())  # --check writes nothing
    capsys.readouterr()
    written = backup.restore(path, new_hub, new_caddy, {})
    said = capsys.readouterr().out
    assert written == {HUB: 7, CADDY: 2}
    assert "the hub's database: jupyterhub.sqlite (2 users)" in said and SECRET not in said
    assert (new_hub / "secrets" / "cookie_secret").read_text() == SECRET + "\n"
    assert (new_caddy / "caddy" / "pki" / "authorities" / "local" / "root.key").read_text() == "ROOT KEY\n"
    assert sqlite3.connect(new_hub / "jupyterhub.sqlite").execute("SELECT count(*) FROM users").fetchone() == (2,)
    mode = lambda p: stat.S_IMODE(p.stat().st_mode)  # noqa: E731
    assert mode(new_hub) == 0o700 and mode(new_hub / "secrets") == 0o700
    assert mode(new_hub / "secrets" / "cookie_secret") == 0o600 and mode(new_hub / "jupyterhub.sqlite") == 0o600
    assert mode(new_hub / "secrets" / "hub-id") == 0o644
    assert not [p for p in new_hub.iterdir() if p.name.startswith(".aml-restore-")]

    # once the volume holds a hub's data, only --force replaces it (and drops what the archive has not)
    held = r"already holds a hub's data \(the database jupyterhub.sqlite and secrets/\).*FORCE=1"
    with pytest.raises(BackupError, match=held):
        backup.restore(path, new_hub, new_caddy, {})
    (new_hub / "secrets" / "made-later").write_text("x")
    backup.restore(path, new_hub, new_caddy, {}, force=True)
    assert not (new_hub / "secrets" / "made-later").exists()
    assert "replaced what the hub-data volume held" in capsys.readouterr().out


def test_a_forced_restore_keeps_the_keys_of_instances_made_after_the_backup(tmp_path, capsys):
    """Their private keys exist nowhere else and AML takes no new key on an existing instance:
    dropping them would leave those servers unable to start."""
    hub, caddy = a_hub(tmp_path / "before"), a_caddy(tmp_path / "before")
    path = backup.create(hub, caddy, tmp_path / "out", {}, now=NOW)
    later = hub / "secrets" / "instance-keys" / "ef01"
    later.mkdir(mode=0o700)
    (later / "jh-made-later").write_text("LATER PRIVATE KEY\n")
    (later / "jh-made-later.pub").write_text("ssh-ed25519 BBBB\n")
    (hub / "secrets" / "instance-keys" / "abcd" / "jh-x").write_text("CHANGED\n")  # in the archive: the archive's
    (hub / "secrets" / "made-later").write_text("x")  # anything else the archive lacks goes, as before
    capsys.readouterr()
    backup.restore(path, hub, caddy, {}, force=True)
    said = capsys.readouterr().out
    assert (later / "jh-made-later").read_text() == "LATER PRIVATE KEY\n"
    assert (later / "jh-made-later.pub").read_text() == "ssh-ed25519 BBBB\n"
    assert stat.S_IMODE((later / "jh-made-later").stat().st_mode) == 0o600
    assert stat.S_IMODE(later.stat().st_mode) == 0o700
    assert (hub / "secrets" / "instance-keys" / "abcd" / "jh-x").read_text() == "PRIVATE KEY\n"
    assert not (hub / "secrets" / "made-later").exists()
    assert "kept the SSH keys of 1 instance(s) made after this backup (jh-made-later)" in said, said
    assert not [p for p in hub.iterdir() if p.name.startswith(".aml-restore-")]


def test_restore_refuses_while_the_hub_answers(tmp_path):
    path = backup.create(a_hub(tmp_path), tmp_path / "none", tmp_path / "out", {}, now=NOW)
    target = tmp_path / "target"
    target.mkdir()
    asked = []
    with pytest.raises(BackupError, match=r"the hub is running \(hub:8081 answers\): stop it first"):
        backup.restore(path, target, target, {}, hub_url="http://hub:8081", answers=lambda u: asked.append(u) or True)
    assert asked == ["http://hub:8081"] and not list(target.iterdir())


def _tar(path: Path, members: list[tuple[str, bytes]]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, body in members:
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    return path


def test_restore_refuses_what_is_not_a_backup_in_one_line(tmp_path):
    target = tmp_path / "target"
    target.mkdir()
    good = make_manifest(created=NOW, hub_id="h1", database=Database("postgresql"), users=None,
                         counts={HUB: 1}, version="0.1.0")
    cases = {
        "missing.tar.gz": ("no such file", None),
        "plain.tar.gz": ("not a readable tar.gz", b"just text"),
        "nomanifest.tar.gz": ("no manifest.json first", [("hub-data/x", b"1")]),
        "badjson.tar.gz": ("not JSON", [("manifest.json", b"{")]),
        "escape.tar.gz": ("outside the volumes", [("manifest.json", json.dumps(good).encode()), ("../x", b"1")]),
        "count.tar.gz": ("holds 2 files of hub-data, its manifest says 1",
                         [("manifest.json", json.dumps(good).encode()), ("hub-data/a", b"1"), ("hub-data/b", b"2")]),
    }
    for name, (why, content) in cases.items():
        path = tmp_path / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        elif content is not None:
            _tar(path, content)
        with pytest.raises(BackupError, match=why) as e:
            backup.restore(path, target, target, {})
        assert "\n" not in str(e.value) and str(e.value).startswith(str(path)), e.value
    assert not list(target.iterdir())
    # a damaged one: cut short
    whole = backup.create(a_hub(tmp_path), tmp_path / "none", tmp_path / "out", {}, now=NOW)
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(BackupError, match="damaged"):
        backup.restore(cut, target, target, {})


def test_main_prints_one_line_and_exits_1(tmp_path, capsys):
    assert main(["restore", str(tmp_path / "nope.tar.gz"), "--hub-dir", str(tmp_path), "--hub-url", ""]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("aml-jupyterhub-backup: ") and "Traceback" not in err
    assert main(["create", "--hub-dir", str(tmp_path / "none"), "--out", str(tmp_path / "o")], environ={}) == 1
    assert "mount the hub-data volume" in capsys.readouterr().err


# ---- owners and modes: the restore's own, never the archive's ---------------------

HUB_OWNER = (4343, 4344)  # the hub's user in these tests: neither root nor whoever runs them


@pytest.fixture
def owner_of(monkeypatch):
    """Where a restored entry's owner is read: its own as root; as anyone else (CI's
    runner), what the restore's os.chown calls asked for, as if it ran as root."""
    monkeypatch.setattr(backup, "hub_owner", lambda: HUB_OWNER)
    if os.geteuid() == 0:
        return lambda p: (p.lstat().st_uid, p.lstat().st_gid)
    asked: dict[Path, tuple[int, int]] = {}

    def chown(path, uid, gid, *, follow_symlinks=True):
        # staged, then renamed into the volume: recorded under the path it ends up at
        asked[Path(*[p for p in Path(path).parts if not p.startswith(".aml-restore-")])] = (uid, gid)

    monkeypatch.setattr(backup.os, "geteuid", lambda: 0)
    monkeypatch.setattr(backup.os, "chown", chown)
    return lambda p: asked.get(p, "never chowned: the restoring user's")


def _crafted(path: Path, members: list[tuple[str, str, int, int]]) -> Path:
    """An archive whose members (name, "file"/"dir", mode, uid) carry whatever
    owners and modes its maker chose, with a manifest that passes the checks."""
    files = {s: sum(1 for n, kind, _, _ in members if kind == "file" and n.startswith(s + "/")) for s in (HUB, CADDY)}
    manifest = make_manifest(created=NOW, hub_id="h1", database=Database("postgresql"), users=None, counts=files,
                             version="0.1.0")
    with tarfile.open(path, "w:gz") as tar:
        body = json.dumps(manifest).encode()
        info = tarfile.TarInfo("manifest.json")
        info.size = len(body)
        tar.addfile(info, io.BytesIO(body))
        for name, kind, mode, uid in members:
            info = tarfile.TarInfo(name)
            info.mode, info.uid, info.gid, info.mtime = mode, uid, uid, NOW.timestamp()
            if kind == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                body = b"#!/bin/sh\nid\n"
                info.size = len(body)
                tar.addfile(info, io.BytesIO(body))
    return path


def _entries(root: Path) -> list[Path]:
    return [root, *sorted(root.rglob("*"))]


def test_restore_gives_caddys_volume_roots_owner_and_caddys_modes_not_the_archives(tmp_path, owner_of):
    """A crafted archive plants a root-owned setuid program, a file of uid 4242 and a
    world-writable folder in Caddy's volume: all come out root's, 0600 and 0700."""
    path = _crafted(tmp_path / "crafted.tar.gz", [
        ("hub-data", "dir", 0o777, 4242),
        ("hub-data/secrets", "dir", 0o1777, 4242),
        ("hub-data/secrets/cookie_secret", "file", 0o6755, 0),
        ("caddy-data", "dir", 0o777, 4242),
        ("caddy-data/caddy", "dir", 0o3777, 4242),
        ("caddy-data/caddy/rootshell", "file", 0o4755, 0),
        ("caddy-data/caddy/theirs", "file", 0o666, 4242),
        ("caddy-data/caddy/pki/authorities/local/root.key", "file", 0o644, 4242),  # its folders unlisted
    ])
    hub, caddy = tmp_path / "hub", tmp_path / "caddy"
    hub.mkdir()
    caddy.mkdir()
    backup.restore(path, hub, caddy, {})
    mode = lambda p: stat.S_IMODE(p.lstat().st_mode)  # noqa: E731
    found = {str(p.relative_to(caddy)): (owner_of(p), oct(mode(p))) for p in _entries(caddy)}
    root_dir, root_file = ((0, 0), "0o700"), ((0, 0), "0o600")
    assert found == {
        ".": ((0, 0), "0o755"),  # as the image's /data
        "caddy": root_dir, "caddy/rootshell": root_file, "caddy/theirs": root_file,
        "caddy/pki": root_dir, "caddy/pki/authorities": root_dir, "caddy/pki/authorities/local": root_dir,
        "caddy/pki/authorities/local/root.key": root_file,
    }
    found = {str(p.relative_to(hub)): (owner_of(p), oct(mode(p))) for p in _entries(hub)}
    assert found == {".": (HUB_OWNER, "0o700"), "secrets": (HUB_OWNER, "0o700"),
                     "secrets/cookie_secret": (HUB_OWNER, "0o600")}
    assert (caddy / "caddy" / "rootshell").read_bytes() == b"#!/bin/sh\nid\n"


def test_restore_gives_folders_the_archive_does_not_list_the_hubs_owner(tmp_path, owner_of):
    """An archive listing hub-data's files without their folders (nor the volume itself):
    each folder made on the way is the hub's, 0700, as the hub makes them, never root's."""
    path = _crafted(tmp_path / "files-only.tar.gz", [
        ("hub-data/secrets/cookie_secret", "file", 0o600, 0),
        ("hub-data/secrets/instance-keys/ab12/jh-y", "file", 0o600, 0),
        ("hub-data/secrets/instance-keys/ab12/jh-y.pub", "file", 0o644, 0),
        ("hub-data/internal-ssl/hub-ca/hub-ca.key", "file", 0o600, 0),
    ])
    hub, caddy = tmp_path / "hub", tmp_path / "caddy"
    hub.mkdir(mode=0o755)
    caddy.mkdir()
    backup.restore(path, hub, caddy, {})
    mode = lambda p: stat.S_IMODE(p.lstat().st_mode)  # noqa: E731
    found = {str(p.relative_to(hub)): (owner_of(p), oct(mode(p))) for p in _entries(hub)}
    assert found == {
        ".": (HUB_OWNER, "0o700"),
        "secrets": (HUB_OWNER, "0o700"), "secrets/cookie_secret": (HUB_OWNER, "0o600"),
        "secrets/instance-keys": (HUB_OWNER, "0o700"), "secrets/instance-keys/ab12": (HUB_OWNER, "0o700"),
        "secrets/instance-keys/ab12/jh-y": (HUB_OWNER, "0o600"),
        "secrets/instance-keys/ab12/jh-y.pub": (HUB_OWNER, "0o644"),
        "internal-ssl": (HUB_OWNER, "0o700"), "internal-ssl/hub-ca": (HUB_OWNER, "0o700"),
        "internal-ssl/hub-ca/hub-ca.key": (HUB_OWNER, "0o600"),
    }
    assert not list(caddy.iterdir())  # an archive without Caddy's data leaves its volume alone
