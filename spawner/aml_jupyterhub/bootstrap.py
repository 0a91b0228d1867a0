"""JupyterHub on the instance, brought by the hub, over SSH: probe, push, install, prepare.

A real compute instance has no JupyterHub, and may have no internet (a
managed VNet that allows only approved outbound). So the hub brings it:

- :func:`probe` (one SSH command) reports every Python the hub may use (the
  configured ``singleuser_pythons``; globs expand on the instance), what each
  holds, the hub's own finished install if there is one, the instance's
  machine and C library (which wheels fit), and two free ports;
- ``interpreters.choose`` picks one;
- :func:`install` sends the wheels (SFTP, resumable) and installs exactly the
  hub's JupyterHub with no package index, into a venv of its own,
  ``~/.aml-jupyterhub/jupyterhub-<version>/``, over the chosen AML env: the
  venv sees the env's packages (its Jupyter server and JupyterLab) through a
  ``.pth`` file, which works whether the env is a conda prefix or a venv. One
  install at a time per instance (``flock``); a ``.complete`` marker written
  last, so a half-done install (stop, hub restart, SSH drop) is never used:
  the next start removes and redoes it. Each install appends to
  ``~/.aml-jupyterhub/install.log``;
- :func:`prepare` (every start, cheap) lets the server see what AML's own
  Jupyter sees: the env's JupyterLab assets and server-extension config, the
  kernels AML registered for its envs (each runs in its own env), the
  workspace file share as the file browser's first folder; and JupyterLab's
  defaults the admin decides for everyone (no news prompt: ``lab_news``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from . import remote
from .interpreters import Candidate
from .ssh import Connection, SSHError

log = logging.getLogger("aml_jupyterhub.bootstrap")

BASE = remote.BASE_DIR  # everything of the hub's on the instance, in the user's space
# AML's envs first (the SDK v2 env is AML's default kernel's), then every other
# env, then whatever python3 is (on AML: Ubuntu's, usually too old). The 0.1
# install's venv stays in the list so servers it set up keep working.
DEFAULT_PYTHONS = [
    "/anaconda/envs/azureml_py310_sdkv2/bin/python",
    "/anaconda/envs/*/bin/python",
    "$HOME/.aml-jupyterhub/venv/bin/python",
    "python3",
]
LOCK_WAIT = 600  # seconds another start's install may hold the lock


def install_dir(version: str) -> str:
    return f"{BASE}/jupyterhub-{version}"


def is_hub_install(python: str, version: str) -> bool:
    """Whether ``python`` is the hub's own install of ``version`` (as the probe reports it)."""
    return python.rstrip("/").endswith(f"/.aml-jupyterhub/jupyterhub-{version}/bin/python")


# Runs under any Python 3 (the instance's oldest included): what one candidate holds.
_DESCRIBE = r"""
import json, platform, sys
out = {"path": sys.argv[1], "version": platform.python_version()}
for name in ("jupyterhub", "jupyter_server"):
    try:
        out[name] = __import__(name).__version__
    except Exception:
        out[name] = None
print(json.dumps(out))
"""

_PROBE = r"""
want=%(version)s
describe=%(describe)s
seen=" "
report() {
  py=$1
  case "$seen" in *" $py "*) return;; esac
  seen="$seen$py "
  "$py" -c "$describe" "$py" 2>/dev/null || printf '{"path": "%%s", "version": ""}\n' "$py"
}
echo "machine $(uname -m)"
echo "libc $(getconf GNU_LIBC_VERSION 2>/dev/null | awk '{print $2}')"
for py in %(pythons)s; do
  case "$py" in
    /*) [ -x "$py" ] || continue ;;
    *) py=$(command -v "$py" 2>/dev/null) || continue ;;
  esac
  echo "candidate $(report "$py")"
done
dest=%(dest)s
if [ -f "$dest/.complete" ] && v=$("$dest/bin/python" -c 'import jupyterhub, platform; print(jupyterhub.__version__, platform.python_version())' 2>/dev/null) \
   && [ "${v%% *}" = "$want" ]; then
  echo "installed $dest/bin/python ${v#* }"
fi
for py in "$dest/bin/python" /usr/bin/python3 python3 $(ls /anaconda/envs/*/bin/python 2>/dev/null); do
  ports=$("$py" -c 'import socket; a, b = socket.socket(), socket.socket(); a.bind(("127.0.0.1", 0)); b.bind(("127.0.0.1", 0)); print(a.getsockname()[1], b.getsockname()[1])' 2>/dev/null) && break
done
echo "ports ${ports:-}"
"""


@dataclass(frozen=True)
class Report:
    """What :func:`probe` found on the instance."""

    candidates: list[Candidate] = field(default_factory=list)
    installed: str | None = None  # the hub's finished install of this version: its python
    installed_version: str = ""  # that python's version
    machine: str = ""  # "x86_64"
    libc: str = ""  # glibc version, "2.31"
    port: int = 0
    api_port: int = 0


def parse_report(text: str) -> Report:
    candidates = []
    installed, installed_version, machine, libc, ports = None, "", "", "", []
    for line in text.splitlines():
        word, _, rest = line.strip().partition(" ")
        if word == "candidate":
            try:
                item = json.loads(rest)
            except ValueError:
                continue
            candidates.append(Candidate.from_report(item))
        elif word == "installed" and rest:
            installed, _, installed_version = rest.partition(" ")
        elif word == "machine":
            machine = rest.strip()
        elif word == "libc":
            libc = rest.strip()
        elif word == "ports":
            ports = [int(p) for p in rest.split() if p.isdigit()]
    port, api_port = (ports + [0, 0])[:2]
    return Report(candidates, installed, installed_version.strip(), machine, libc, port, api_port)


def _patterns(pythons: list[str]) -> str:
    """Shell words for the probe's loop: $HOME expands, globs expand, nothing else does."""
    out = []
    for p in pythons:
        if p.startswith("$HOME/"):
            p = p[len("$HOME/"):]
            prefix = '"$HOME"/'
        else:
            prefix = ""
        # quote everything but the glob characters, so /anaconda/envs/*/bin/python still expands
        parts = []
        for chunk in _split_glob(p):
            parts.append(chunk if chunk in ("*", "?") else shlex.quote(chunk))
        out.append(prefix + "".join(parts))
    return " ".join(out)


def _split_glob(text: str) -> list[str]:
    chunks, current = [], ""
    for ch in text:
        if ch in "*?":
            if current:
                chunks.append(current)
            chunks.append(ch)
            current = ""
        else:
            current += ch
    if current:
        chunks.append(current)
    return chunks


async def probe(conn: Connection, version: str, pythons: list[str]) -> Report:
    script = _PROBE % {"version": shlex.quote(version), "describe": shlex.quote(_DESCRIBE),
                       "pythons": _patterns(pythons), "dest": _home_path(install_dir(version))}
    result = await conn.run(script, timeout=60)
    report = parse_report(result.stdout or "")
    if not report.port:
        raise SSHError(f"could not read the instance's Python setup: {result.stdout!r} {result.stderr!r}")
    return report


def _home_path(path: str) -> str:
    """A shell word for a path under $HOME (expanded on the instance)."""
    if path.startswith("$HOME/"):
        return '"$HOME"/' + shlex.quote(path[len("$HOME/"):])
    return shlex.quote(path)


# ---- install --------------------------------------------------------------------

_INSTALL = r"""
set -u
base="$HOME/.aml-jupyterhub"
version=%(version)s
py=%(python)s
dest="$base/jupyterhub-$version"
wheels="$base/wheels/jupyterhub-$version"
log="$base/install.log"
mkdir -p "$base"
chmod 700 "$base"
say() { printf '%%s %%s\n' "$(date -u +%%Y-%%m-%%dT%%H:%%M:%%SZ)" "$*" >> "$log"; }
fail() { say "FAILED: $*"; echo "$*" >&2; tail -n 12 "$log" | sed 's/^/  | /' >&2; exit 1; }
exec 9>>"$base/install.lock"
if ! flock -w %(lock_wait)d 9; then
  echo "another start's install of JupyterHub $version is still running on this instance" >&2; exit 75
fi
if [ -f "$dest/.complete" ] && "$dest/bin/python" -c 'import sys, jupyterhub; sys.exit(jupyterhub.__version__ != sys.argv[1])' "$version" 2>/dev/null; then
  say "JupyterHub $version already installed at $dest (another start finished it)"
  echo "python $dest/bin/python"; exit 0
fi
if [ -e "$dest" ]; then say "removing an unfinished install at $dest"; rm -rf "$dest"; fi
say "installing JupyterHub $version into $dest over $py, from $(ls "$wheels" | wc -l) wheels sent by the hub (no package index)"
started=$(date +%%s)
"$py" -m venv --without-pip "$dest" >>"$log" 2>&1 || fail "could not make a venv with $py"
# the env's packages (its Jupyter server, JupyterLab, pip) after the venv's own: a .pth
# works whether the env is a conda prefix or itself a venv (--system-site-packages
# would see the base interpreter's packages instead)
site=$("$dest/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])') || fail "the new venv does not run"
"$py" -c 'import site, sys; print("\n".join(p for p in site.getsitepackages() if p))' > "$site/aml-env.pth" \
  || fail "could not read $py's site-packages"
"$py" -c 'import sys; print(sys.prefix)' > "$dest/.base-prefix"
if ! "$dest/bin/python" -m pip --version >/dev/null 2>&1; then
  "$dest/bin/python" -m ensurepip --default-pip >>"$log" 2>&1 || fail "no pip in $py, and ensurepip failed"
fi
"$dest/bin/python" -m pip install --no-index --find-links "$wheels" --disable-pip-version-check \
  --no-warn-script-location --no-input %(requirements)s >>"$log" 2>&1 \
  || fail "pip could not install JupyterHub $version from the wheels the hub sent"
"$dest/bin/python" -c 'import jupyterhub.singleuser' >>"$log" 2>&1 \
  || fail "JupyterHub $version was installed but its single-user server does not import"
printf '{"version": "%%s", "base": "%%s"}\n' "$version" "$py" > "$dest/.complete"
say "installed JupyterHub $version in $(( $(date +%%s) - started )) s"
rm -rf "$wheels"
echo "python $dest/bin/python"
"""


@dataclass(frozen=True)
class Installed:
    python: str
    sent_bytes: int  # wheels sent this time (0: all were there already)


async def send_wheels(conn: Connection, version: str, wheels: list[Path]) -> int:
    """The wheels into ``~/.aml-jupyterhub/wheels/jupyterhub-<version>/`` over SFTP;
    those already there with the same size are skipped (a push cut by an SSH drop
    goes on where it stopped). Returns the bytes sent."""
    remote_dir = f".aml-jupyterhub/wheels/jupyterhub-{version}"
    await conn.run(f"mkdir -p {shlex.quote(remote_dir)} && chmod 700 .aml-jupyterhub", timeout=30)
    return await conn.put_files(wheels, remote_dir)


async def install(conn: Connection, version: str, python: str, wheels: list[Path], timeout: float,
                  requirements: list[str] | None = None) -> Installed:
    """Install exactly JupyterHub ``version`` over ``python`` from ``wheels``; the
    Python of the install. Raises SSHError with the install log's last lines."""
    sent = await send_wheels(conn, version, wheels)
    reqs = requirements or [f"jupyterhub=={version}"]
    script = _INSTALL % {"version": shlex.quote(version), "python": shlex.quote(python),
                         "lock_wait": LOCK_WAIT, "requirements": " ".join(shlex.quote(r) for r in reqs)}
    try:
        result = await conn.run(script, timeout=timeout)
    except SSHError as e:
        raise SSHError(f"installing JupyterHub {version} on the instance did not finish ({e}). Nothing half-done "
                       "is used: start again, and the next start redoes the install.") from None
    for line in (result.stdout or "").splitlines():
        if line.startswith("python "):
            return Installed(line[len("python "):].strip(), sent)
    raise SSHError(f"the install said nothing of where it put JupyterHub: {result.stdout!r}")


async def install_with_command(conn: Connection, command_template: str, version: str, timeout: float) -> None:
    """An admin's own install command (singleuser_install_command) instead of the hub's wheels."""
    try:
        await conn.run(command_template.format(version=version), timeout=timeout)
    except SSHError as e:
        raise SSHError(f"installing JupyterHub {version} with the hub's install command (singleuser_install_command) "
                       f"failed: {e}. Without that setting the hub brings JupyterHub itself, and the instance "
                       "needs no internet.") from None


# ---- before every start: what the server sees ------------------------------------

# Run by the install's own Python: sys.prefix is the venv.
_PREPARE = r"""
import glob, json, os, sys
prefix = sys.prefix
home = os.path.expanduser("~")
try:
    base = open(os.path.join(prefix, ".base-prefix")).read().strip()
except OSError:
    base = ""
share = os.path.join(prefix, "share", "jupyter")
os.makedirs(share, exist_ok=True)

def link(target, path):
    if os.path.islink(path):
        if os.readlink(path) == target:
            return
        os.unlink(path)
    elif os.path.exists(path):
        return  # never replace a real file
    os.symlink(target, path)

# JupyterLab's assets and prebuilt extensions are the env's (JupyterLab looks in sys.prefix)
for sub in ("lab", "labextensions"):
    src = os.path.join(base, "share", "jupyter", sub)
    if base and os.path.isdir(src):
        link(src, os.path.join(share, sub))
# the env's server-extension switches (JupyterLab's among them)
confd = os.path.join(prefix, "etc", "jupyter", "jupyter_server_config.d")
os.makedirs(confd, exist_ok=True)
for src in glob.glob(os.path.join(base, "etc", "jupyter", "jupyter_server_config.d", "*.json")) if base else []:
    link(src, os.path.join(confd, os.path.basename(src)))

# AML's kernels: each registered kernelspec of its envs, linked as it is (it runs
# its own env's python by absolute path); an env-local spec that says only
# "python" would run the server's Python, so it gets a spec of its own instead
kernels = os.path.join(share, "kernels")
os.makedirs(kernels, exist_ok=True)
for name in os.listdir(kernels):
    path = os.path.join(kernels, name)
    if os.path.islink(path) and not os.path.exists(path):
        os.unlink(path)
found, envs_with_spec = [], set()
specs = sorted(glob.glob("/anaconda/envs/*/share/jupyter/kernels/*/kernel.json")) + \
    sorted(glob.glob("/anaconda/share/jupyter/kernels/*/kernel.json"))
relative = []
for spec in specs:
    d = os.path.dirname(spec)
    try:
        with open(spec) as f:
            argv = json.load(f).get("argv") or []
    except (OSError, ValueError):
        continue
    if not argv:
        continue
    if os.path.isabs(argv[0]):
        name = os.path.basename(d)
        if name in found:
            continue
        link(d, os.path.join(kernels, name))
        found.append(name)
        envs_with_spec.add(os.path.dirname(os.path.dirname(argv[0])))
    else:
        relative.append(d)
for d in relative:
    env = d.split("/share/jupyter/kernels/")[0]
    python = os.path.join(env, "bin", "python")
    if env in envs_with_spec or not os.path.exists(python):
        continue
    name = "aml-" + os.path.basename(env).lower()
    own = os.path.join(kernels, name)
    if os.path.islink(own):
        os.unlink(own)
    os.makedirs(own, exist_ok=True)
    with open(os.path.join(own, "kernel.json"), "w") as f:
        json.dump({"argv": [python, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                   "display_name": "Python (%s)" % os.path.basename(env), "language": "python"}, f)
    envs_with_spec.add(env)
    found.append(name)

config = {}
if found:
    # only AML's kernels: the venv's own would run beside the server, not in an env users know
    default = "python310-sdkv2" if "python310-sdkv2" in found else found[0]
    config["KernelSpecManager"] = {"ensure_native_kernel": False}
    config["MappingKernelManager"] = {"default_kernel_name": default}
if os.path.isdir(os.path.join(home, "cloudfiles", "code")):
    # the workspace's file share, where AML's own Jupyter opens
    config["ContentsManager"] = {"preferred_dir": "cloudfiles/code"}
# the hub's JupyterLab defaults (lab_news), in the venv's own labconfig: JupyterLab
# reads them as its settings' defaults, so a user's own choice still wins; not in
# share/jupyter/lab/settings, which is a link into the env's (AML's Jupyter reads it)
labconfig = os.path.join(prefix, "etc", "jupyter", "labconfig")
os.makedirs(labconfig, exist_ok=True)
path = os.path.join(labconfig, "default_setting_overrides.json")
with open(path + ".new", "w") as f:
    json.dump(json.loads(sys.argv[1]), f, indent=1)
os.replace(path + ".new", path)
# the venv's own config file (conf.d files carry only extension switches)
path = os.path.join(prefix, "etc", "jupyter", "jupyter_server_config.json")
with open(path + ".new", "w") as f:
    json.dump(config, f, indent=1)
os.replace(path + ".new", path)
print(json.dumps({"kernels": found, "share": "ContentsManager" in config}))
"""


NOTIFICATION = "@jupyterlab/apputils-extension:notification"


def lab_defaults(news: bool) -> dict:
    """JupyterLab's settings the hub decides for everyone: with ``news`` off, no
    news fetched, no update check, and so no first-run question about them."""
    choice = "true" if news else "false"  # the setting's values are strings ("none": ask)
    return {NOTIFICATION: {"fetchNews": choice, "checkForUpdates": news}}


async def prepare(conn: Connection, python: str, lab_news: bool = False) -> dict:
    """Before each start of a server from the hub's install: the env's JupyterLab,
    AML's kernels and the workspace share, as AML's Jupyter shows them, and the
    hub's JupyterLab defaults (``lab_defaults``)."""
    defaults = json.dumps(lab_defaults(lab_news))
    result = await conn.run(f"{shlex.quote(python)} -c {shlex.quote(_PREPARE)} {shlex.quote(defaults)}", timeout=60)
    try:
        return json.loads((result.stdout or "").strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise SSHError(f"could not prepare the server's environment: {result.stdout!r} {result.stderr!r}") from None


async def wait_with_progress(work, report, interval: float = 2.0):
    """Await ``work``; call ``report()`` every ``interval`` seconds meanwhile."""
    task = asyncio.ensure_future(work)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=interval)
            if done:
                return task.result()
            report()
    finally:
        if not task.done():
            task.cancel()
