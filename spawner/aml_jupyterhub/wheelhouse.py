"""The wheels the hub carries to instances, so a first spawn needs no internet there.

A compute instance in a managed VNet that allows only approved outbound has
no PyPI; the hub does (or its image does). So the hub holds, per JupyterHub
version, the wheels of ``jupyterhub==<version>`` and every dependency for each
*target* (a Python minor version, a machine, a C library floor), and sends
exactly one target's set to an instance, which installs them with no index.

Layout of a wheelhouse directory::

    jupyterhub-<version>/*.whl           one copy of each file, shared by targets
    jupyterhub-<version>/targets.json    per target, the file names pip chose for it

A target's list is what ``pip download`` chose for it, so a set is always one
consistent resolution (a newer dependency fetched for another Python never
leaks into it). The hub image ships a wheelhouse for CPython 3.10-3.13 on
x86_64 (every Azure ML VM size is x86_64); the hub adds what it lacks to its
cache in the data volume, from its package index, when allowed.

Run as ``python -m aml_jupyterhub.wheelhouse --dest DIR --python 3.10 ...``
(the hub image's build does) to fill a wheelhouse ahead of time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from packaging import tags as wheel_tags
from packaging.utils import InvalidWheelFilename, parse_wheel_filename

TARGETS = "targets.json"
# Wheels are fetched for manylinux 2.17 (manylinux2014): they run on any glibc
# of the last decade (Ubuntu 20.04 has 2.31), and pip on the instance checks
# the rest.
LIBC_FLOOR = "2.17"


class WheelsMissing(Exception):
    """The hub has no wheels for an instance and cannot get them; says what to do."""


@dataclass(frozen=True)
class Target:
    python: str  # "3.11"
    machine: str  # "x86_64"
    libc: str = LIBC_FLOOR  # the glibc the wheels need at most (for a set), or the instance has

    @classmethod
    def of(cls, python_version: str, machine: str, libc: str = "") -> "Target":
        major, minor = python_version.split(".")[:2]
        return cls(f"{major}.{minor}", machine or "x86_64", libc or LIBC_FLOOR)

    @property
    def label(self) -> str:
        return f"Python {self.python} on {self.machine}"

    def to_json(self) -> dict:
        return {"python": self.python, "machine": self.machine, "libc": self.libc}


def _libc(text: str) -> tuple[int, int]:
    try:
        major, minor = text.split(".")[:2]
        return int(major), int(minor)
    except ValueError:
        return 2, 17


def covers(have: Target, instance: Target) -> bool:
    """Whether a set made for ``have`` runs on ``instance``."""
    return (have.python, have.machine) == (instance.python, instance.machine) and \
        _libc(have.libc) <= _libc(instance.libc)


def platforms(machine: str, libc: str) -> list[str]:
    """Linux platform tags a machine with that glibc accepts, newest first."""
    major, minor = _libc(libc)
    out = [f"manylinux_{major}_{m}_{machine}" for m in range(minor, 4, -1)]
    legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
    out += [f"{name}_{machine}" for m, name in legacy.items() if m <= minor]
    return out + [f"linux_{machine}"]


def accepted_tags(target: Target) -> set:
    version = tuple(int(x) for x in target.python.split("."))
    plats = platforms(target.machine, target.libc)
    cp = f"cp{version[0]}{version[1]}"
    found = set(wheel_tags.cpython_tags(version, abis=[cp], platforms=plats))
    found |= set(wheel_tags.compatible_tags(version, interpreter=cp, platforms=plats))
    return found


def fits(filename: str, target: Target) -> bool:
    try:
        _, _, _, file_tags = parse_wheel_filename(filename)
    except InvalidWheelFilename:
        return False
    return bool(set(file_tags) & accepted_tags(target))


# ---- a wheelhouse directory -------------------------------------------------------


def version_dir(root: Path | str, version: str) -> Path:
    return Path(root) / f"jupyterhub-{version}"


def read_targets(vdir: Path) -> list[tuple[Target, list[str]]]:
    try:
        data = json.loads((vdir / TARGETS).read_text())
    except (OSError, ValueError):
        return []
    out = []
    for item in data if isinstance(data, list) else []:
        try:
            target = Target(str(item["python"]), str(item["machine"]), str(item.get("libc") or LIBC_FLOOR))
            out.append((target, [str(f) for f in item["files"]]))
        except (KeyError, TypeError):
            continue
    return out


def find_set(roots: list[Path | str], version: str, instance: Target) -> list[Path] | None:
    """The wheel files of a complete set for ``instance`` in the first root that has one."""
    for root in roots:
        vdir = version_dir(root, version)
        for target, files in read_targets(vdir):
            paths = [vdir / f for f in files]
            if covers(target, instance) and paths and all(p.is_file() for p in paths):
                return paths
    return None


def pip_download_command(python: str, dest: str, version: str, target: Target) -> list[str]:
    v = target.python.replace(".", "")
    cmd = [python, "-m", "pip", "download", "--dest", dest, "--only-binary=:all:", "--no-input",
           "--disable-pip-version-check", "--quiet", "--python-version", target.python, "--implementation", "cp",
           "--abi", f"cp{v}", "--abi", "abi3", "--abi", "none"]
    for plat in platforms(target.machine, target.libc):
        cmd += ["--platform", plat]
    return cmd + ["--platform", "any", f"jupyterhub=={version}"]


def download_set(root: Path | str, version: str, target: Target, python: str = sys.executable,
                 timeout: float = 600) -> list[Path]:
    """Fetch one target's set into ``root`` with pip (blocking: run it in a thread).

    Several hubs may share a cache (tests do): the files land under a lock, and a
    set another process finished meanwhile is taken as it is."""
    vdir = version_dir(root, version)
    vdir.mkdir(parents=True, exist_ok=True)
    with open(vdir / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        found = find_set([root], version, target)
        if found:
            return found
        with tempfile.TemporaryDirectory(dir=vdir, prefix=".download-") as tmp:
            cmd = pip_download_command(python, tmp, version, target)
            try:
                result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
            except subprocess.TimeoutExpired:
                raise WheelsMissing(f"fetching JupyterHub {version}'s wheels for {target.label} took over "
                                    f"{timeout:.0f} s") from None
            except OSError as e:
                raise WheelsMissing(f"could not run pip to fetch JupyterHub {version}'s wheels: {e}") from None
            if result.returncode != 0:
                detail = (result.stderr or result.stdout).strip().splitlines()[-3:]
                raise WheelsMissing(f"pip could not fetch JupyterHub {version}'s wheels for {target.label}: "
                                    + " ".join(detail))
            files = sorted(p.name for p in Path(tmp).glob("*.whl"))
            for name in files:
                if not (vdir / name).exists():
                    os.replace(Path(tmp) / name, vdir / name)
        entries = [e for e in _raw_targets(vdir) if Target(**{k: e[k] for k in ("python", "machine", "libc")}) != target]
        entries.append({**target.to_json(), "files": files})
        _write_json(vdir / TARGETS, entries)
        return [vdir / f for f in files]


def _raw_targets(vdir: Path) -> list[dict]:
    return [{**t.to_json(), "files": files} for t, files in read_targets(vdir)]


def _write_json(path: Path, data) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=1)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


async def wheels_for(version: str, instance: Target, shipped: list[str], cache: str, *, download: bool,
                     python: str = sys.executable) -> tuple[list[Path], bool]:
    """The wheel files to send to an instance, and whether they had to be fetched now.

    :param shipped: read-only wheelhouses (the image's), searched first.
    :param cache: the hub's own wheelhouse (data volume), searched next and
        filled from the package index when ``download`` allows.
    """
    roots = [Path(d) for d in shipped if d] + ([Path(cache)] if cache else [])
    found = await asyncio.to_thread(find_set, roots, version, instance)
    if found:
        return found, False
    where = ", ".join(str(r) for r in roots) or "nowhere (no wheelhouse is set)"
    if not download or not cache:
        raise WheelsMissing(
            f"the hub has no wheels of JupyterHub {version} for {instance.label} (looked in {where}), and may "
            "not fetch them (wheel_download is off or wheel_cache_dir is empty). Fill a wheelhouse with "
            "`python -m aml_jupyterhub.wheelhouse --dest DIR --python " + instance.python + "` on a machine "
            "with PyPI and list it in wheelhouse_dirs, or point singleuser_pythons at an env whose Python "
            "the image's wheelhouse covers (3.10-3.13).")
    # fetched for the manylinux floor, not the instance's own glibc: one set serves every instance
    target = Target(instance.python, instance.machine, LIBC_FLOOR if _libc(instance.libc) >= _libc(LIBC_FLOOR)
                    else instance.libc)
    return await asyncio.to_thread(download_set, cache, version, target, python), True


def total_bytes(paths: list[Path]) -> int:
    total = 0
    for p in paths:
        with contextlib.suppress(OSError):
            total += p.stat().st_size
    return total


def main(argv: list[str] | None = None) -> int:
    import jupyterhub

    p = argparse.ArgumentParser(prog="python -m aml_jupyterhub.wheelhouse",
                                description="Fill a wheelhouse with JupyterHub's wheels for compute instances.")
    p.add_argument("--dest", required=True, type=Path, help="the wheelhouse directory")
    p.add_argument("--python", nargs="+", required=True, help="Python minor versions, e.g. 3.10 3.11")
    p.add_argument("--machine", default="x86_64", help="machine (default x86_64: every Azure ML VM size)")
    p.add_argument("--version", default=jupyterhub.__version__, help="JupyterHub version (default: this one's)")
    args = p.parse_args(argv)
    for py in args.python:
        target = Target.of(py, args.machine)
        try:
            files = download_set(args.dest, args.version, target)
        except WheelsMissing as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        print(f"JupyterHub {args.version} for {target.label}: {len(files)} wheels, "
              f"{total_bytes(files) / 1e6:.1f} MB")
    with contextlib.suppress(OSError):
        (version_dir(args.dest, args.version) / ".lock").unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
