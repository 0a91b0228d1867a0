"""The notebook server on the instance, driven over SSH (proxy mode).

Everything lives under ``~/.aml-jupyterhub/`` on the instance (the user's
space): JupyterHub as the hub installed it (``bootstrap``), and per server a
directory with its environment file (0600: it holds the server's API token,
so it never appears on a command line or in ``ps``), its log and its pid.
"""

from __future__ import annotations

import json
import shlex

from .ssh import Connection, SSHError

BASE_DIR = "$HOME/.aml-jupyterhub"

_LAUNCH = r"""
set -e
d=%(dir)s
mkdir -p "$d"
chmod 700 %(base)s "$d"
umask 077
cat > "$d/env"
: > "$d/log"
cd "$HOME"
nohup setsid bash -c 'set -a; . "$1/env"; set +a; shift; exec "$@"' _ "$d" %(argv)s > "$d/log" 2>&1 < /dev/null &
pid=$!
echo $pid > "$d/pid"
# the process's start time (in clock ticks since boot) tells it from a later
# process that reuses the pid
start=$(sed 's/.*) //' /proc/$pid/stat 2>/dev/null | cut -d' ' -f20)
echo "$pid ${start:-0}"
"""

_ALIVE = r"""
pid=%(pid)s
want=%(start)s
fields=$(sed 's/.*) //' /proc/$pid/stat 2>/dev/null) || { echo dead; exit 0; }
state=$(echo "$fields" | cut -d' ' -f1)
start=$(echo "$fields" | cut -d' ' -f20)
if [ "$state" = Z ] || { [ "$want" != 0 ] && [ "$start" != "$want" ]; }; then echo dead; else echo alive; fi
"""

_STOP = r"""
pid=%(pid)s
kill -TERM $pid 2>/dev/null || exit 0
for i in $(seq 50); do [ -d /proc/$pid ] || exit 0; sleep 0.1; done
kill -KILL $pid 2>/dev/null || true
"""


# The server's TLS files (internal TLS): key, certificate and trust bundle in the
# server's directory, 0600 in a 0700 directory; the absolute paths come back
# for the server's environment. Read as JSON from stdin: never on a command line.
_PUT_TLS = r"""
set -e
d=%(dir)s/tls
mkdir -p "$d"
chmod 700 %(base)s %(dir)s "$d"
umask 077
%(python)s -c '
import json, os, sys
d = sys.argv[1]
paths = {}
for name, text in json.load(sys.stdin).items():
    path = os.path.join(d, name + ".pem")
    fd = os.open(path + ".new", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(path + ".new", path)
    paths[name] = os.path.abspath(path)
print(json.dumps(paths))
' "$d"
"""


def _q(text: str) -> str:
    return shlex.quote(text)


def env_file(env: dict[str, str]) -> str:
    """Shell-sourceable ``KEY='value'`` lines (values single-quoted)."""
    lines = []
    for key, value in env.items():
        if not key.replace("_", "").isalnum() or key[0].isdigit():
            raise ValueError(f"environment variable name {key!r} is not valid")
        lines.append(f"{key}={_q(str(value))}")
    return "\n".join(lines) + "\n"


def server_dir(server_key: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in server_key) or "default"
    return f'{BASE_DIR}/servers/{safe}'


async def launch(conn: Connection, server_key: str, argv: list[str], env: dict[str, str]) -> tuple[int, int]:
    """Start the server detached from the SSH session; return its pid and
    start time (to tell it from a later process with the same pid)."""
    script = _LAUNCH % {
        "dir": server_dir(server_key),
        "base": BASE_DIR,
        "argv": " ".join(_q(a) for a in argv),
    }
    result = await conn.run(script, input=env_file(env), timeout=60)
    pid, start = result.stdout.strip().splitlines()[-1].split()
    return int(pid), int(start)


async def put_tls(conn: Connection, server_key: str, python: str, files: dict[str, str]) -> dict[str, str]:
    """Write ``files`` (name -> PEM text) to the server's TLS directory on the
    instance; their absolute paths there, by name."""
    script = _PUT_TLS % {"dir": server_dir(server_key), "base": BASE_DIR, "python": _q(python)}
    result = await conn.run(script, input=json.dumps(files), timeout=60)
    try:
        paths = json.loads(result.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise SSHError(f"could not write the server's TLS files: {result.stdout!r} {result.stderr!r}") from None
    if set(paths) != set(files):
        raise SSHError(f"the server's TLS files were not all written: {sorted(paths)}")
    return paths


async def remove_tls(conn: Connection, server_key: str) -> None:
    """The server's key and certificate off the instance (after its server stopped)."""
    await conn.run(f"rm -rf {server_dir(server_key)}/tls", timeout=30, check=False)


async def alive(conn: Connection, pid: int, start: int = 0) -> bool:
    """The process runs (not a zombie), and is the one started (same start time)."""
    result = await conn.run(_ALIVE % {"pid": int(pid), "start": int(start)}, timeout=30)
    return result.stdout.strip() == "alive"


async def stop(conn: Connection, pid: int) -> None:
    await conn.run(_STOP % {"pid": int(pid)}, timeout=30, check=False)


async def log_tail(conn: Connection, server_key: str, lines: int = 25) -> str:
    result = await conn.run(f'tail -n {int(lines)} {server_dir(server_key)}/log 2>/dev/null', timeout=30, check=False)
    return (result.stdout or "").strip()
