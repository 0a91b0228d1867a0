"""A small SSH server standing in for a compute instance's sshd.

Run by the process runtime, one per emulated instance::

    python -m aml_emulator.runtime.sshd --port P --home DIR \\
        --authorized-keys FILE [--authorized-keys FILE2] [--host 127.0.0.1]

What it does, as a real instance's OpenSSH does for the hub:

- one user, ``azureuser``, public-key authentication only; the authorized
  keys files are read at every login (a missing or empty file means no key
  is accepted, AML's on-behalf-of case);
- ``exec`` requests run ``/bin/bash -c CMD`` and shells ``/bin/bash -i``
  (on a pseudo-terminal when one is requested), in the home directory, with a
  clean login-like environment plus every variable the client sends;
- a session ends once the command has exited *and* its stdout and stderr
  are closed, so ``nohup cmd &`` without redirection keeps the session open,
  exactly like OpenSSH. A client that disconnects closes the pipes and
  nothing else: background processes live on until the machine stops;
- local port forwarding (``ssh -L``) only to loopback destinations, which is
  how the hub reaches a notebook server bound to 127.0.0.1;
- SFTP in the home directory.

Commands stay in the server's process group (it is started as a session
leader), and every process inherits the machine marker variable the runtime
set, so the runtime can stop all of it.
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import logging
import os
import signal
import struct
import sys
import termios
from pathlib import Path

import asyncssh

USER = "azureuser"
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1", "ip6-localhost"})
# Inherited by everything the machine runs; the runtime finds strays by it.
MARKER_ENV = "AML_EMULATOR_MACHINE"

log = logging.getLogger("aml-emulator-sshd")


class _Server(asyncssh.SSHServer):
    def __init__(self, key_files: list[Path]):
        self._key_files = key_files
        self._conn: asyncssh.SSHServerConnection | None = None

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._conn = conn
        log.info("connection from %s", conn.get_extra_info("peername"))

    def connection_lost(self, exc: Exception | None) -> None:
        log.info("connection closed%s", f": {exc}" if exc else "")

    def begin_auth(self, username: str) -> bool:
        keys = _load_keys(self._key_files) if username == USER else None
        if keys is not None:
            assert self._conn is not None
            self._conn.set_authorized_keys(keys)
        else:
            log.info("login as %r: no authorized key applies", username)
        return True  # authentication is always required

    def public_key_auth_supported(self) -> bool:
        # Offered even with no keys, as OpenSSH does: every key is then refused.
        return True

    def password_auth_supported(self) -> bool:
        return False

    def kbdint_auth_supported(self) -> bool:
        return False

    def auth_completed(self) -> None:
        log.info("authenticated as %s", USER)

    def connection_requested(self, dest_host: str, dest_port: int, orig_host: str, orig_port: int) -> bool:
        allowed = dest_host.lower() in LOOPBACK
        log.info("direct-tcpip to %s:%d %s", dest_host, dest_port, "allowed" if allowed else "refused")
        return allowed

    def server_requested(self, listen_host: str, listen_port: int) -> bool:
        # Remote forwarding (ssh -R) on loopback only, as the hub's reverse
        # tunnel to its API needs; like OpenSSH's default GatewayPorts=no.
        allowed = listen_host.lower() in LOOPBACK
        log.info("tcpip-forward on %s:%d %s", listen_host, listen_port, "allowed" if allowed else "refused")
        return allowed


def _load_keys(files: list[Path]) -> asyncssh.SSHAuthorizedKeys | None:
    lines: list[str] = []
    for path in files:
        try:
            text = path.read_text()
        except OSError:
            continue
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            try:
                asyncssh.import_authorized_keys(line)
            except (asyncssh.KeyImportError, ValueError) as exc:
                log.warning("%s: skipping unreadable key line: %s", path, exc)
                continue
            lines.append(line)
    return asyncssh.import_authorized_keys("\n".join(lines) + "\n") if lines else None


class _Sessions:
    """Runs each exec/shell request as a process on this machine."""

    def __init__(self, home: Path, path_prefix: list[str]):
        self.home = home
        self.path = ":".join([*path_prefix, "/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"])

    def environment(self, process: asyncssh.SSHServerProcess) -> dict[str, str]:
        env = {
            "HOME": str(self.home),
            "USER": USER,
            "LOGNAME": USER,
            "SHELL": "/bin/bash",
            "PATH": self.path,
            "LANG": "C.UTF-8",
        }
        if MARKER_ENV in os.environ:
            env[MARKER_ENV] = os.environ[MARKER_ENV]
        peer = process.get_extra_info("peername") or ("", 0)
        sock = process.get_extra_info("sockname") or ("", 0)
        env["SSH_CLIENT"] = f"{peer[0]} {peer[1]} {sock[1]}"
        env["SSH_CONNECTION"] = f"{peer[0]} {peer[1]} {sock[0]} {sock[1]}"
        if process.get_terminal_type():
            env["TERM"] = process.get_terminal_type()
        # Accept every variable the client sends (OpenSSH's AcceptEnv *).
        env.update({str(k): str(v) for k, v in process.env.items()})
        return env

    async def __call__(self, process: asyncssh.SSHServerProcess) -> None:
        try:
            await self._run(process)
        except Exception:  # a broken session must not take the server down
            log.exception("session failed")
            try:
                process.exit(255)
            except Exception:
                pass

    async def _run(self, process: asyncssh.SSHServerProcess) -> None:
        if process.subsystem:
            process.stderr.write(f"subsystem {process.subsystem} not supported\n".encode())
            process.exit(1)
            return
        command = process.command
        argv = ["/bin/bash", "-i"] if command is None else ["/bin/bash", "-c", command]
        log.info("%s: %s", "shell" if command is None else "exec", command or "")
        env = self.environment(process)
        if process.get_terminal_type():
            proc = await self._start_on_pty(process, argv, env)
        else:
            proc = await self._start_on_pipes(process, argv, env)
        process.set_redirect_pid(proc.pid)
        # OpenSSH ends the session when the command has exited and its output
        # is closed; drain() returns once the output pipes reached EOF (or the
        # client went away, which closes them).
        for stream in (process.stdout, process.stderr):
            try:
                await stream.drain()
            except (asyncssh.Error, OSError, BrokenPipeError):
                pass
        status = await proc.wait()
        log.info("exit %s", status)
        try:
            process.channel.write_eof()
            if status < 0:
                process.exit_with_signal(signal.Signals(-status).name.removeprefix("SIG"))
            else:
                process.exit(status)
        except (asyncssh.Error, OSError):
            pass  # the client has gone

    async def _start_on_pipes(self, process, argv, env) -> asyncio.subprocess.Process:
        stdin_r, stdin_w = os.pipe()
        stdout_r, stdout_w = os.pipe()
        stderr_r, stderr_w = os.pipe()
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, stdin=stdin_r, stdout=stdout_w, stderr=stderr_w, cwd=self.home, env=env
            )
        except BaseException:
            for fd in (stdin_r, stdin_w, stdout_r, stdout_w, stderr_r, stderr_w):
                os.close(fd)
            raise
        for fd in (stdin_r, stdout_w, stderr_w):
            os.close(fd)
        # asyncssh owns our ends from here and closes them when the channel goes.
        # send_eof=False: EOF on stdout must not end the channel while stderr
        # still has data; _run sends EOF once both are drained.
        await process.redirect(stdin=stdin_w, stdout=stdout_r, stderr=stderr_r, send_eof=False)
        return proc

    async def _start_on_pty(self, process, argv, env) -> asyncio.subprocess.Process:
        master, slave = os.openpty()
        cols, rows, xpix, ypix = process.term_size
        if cols and rows:
            fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, xpix, ypix))

        def make_controlling_tty() -> None:  # runs in the child, after setsid()
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        try:
            # A terminal session needs its own session to own the pty; the
            # runtime still finds it (and its children) by the marker variable.
            proc = await asyncio.create_subprocess_exec(
                *argv, stdin=slave, stdout=slave, stderr=slave, cwd=self.home, env=env,
                start_new_session=True, preexec_fn=make_controlling_tty,
            )
        except BaseException:
            os.close(master)
            os.close(slave)
            raise
        os.close(slave)
        master_out = os.dup(master)
        await process.redirect(stdin=master, stdout=master_out, send_eof=False)
        return proc


async def serve(args: argparse.Namespace) -> None:
    home = Path(args.home).resolve()
    host_key_path = Path(args.host_key) if args.host_key else None
    if host_key_path and host_key_path.exists():
        host_key = asyncssh.read_private_key(host_key_path)
    else:
        host_key = asyncssh.generate_private_key("ssh-ed25519")
        if host_key_path:
            host_key_path.parent.mkdir(parents=True, exist_ok=True)
            host_key.write_private_key(host_key_path)
            host_key_path.chmod(0o600)
    key_files = [Path(f) for f in args.authorized_keys]
    server = await asyncssh.create_server(
        lambda: _Server(key_files),
        args.host,
        args.port,
        server_host_keys=[host_key],
        process_factory=_Sessions(home, args.path_prefix),
        encoding=None,
        sftp_factory=True,
        allow_scp=True,
        agent_forwarding=False,
        x11_forwarding=False,
        keepalive_interval=30,
        login_timeout=60,
    )
    log.info("listening on %s:%d, home %s", args.host, args.port, home)
    if args.ready_file:
        # proof for the runtime that *this* process holds the port (a banner
        # alone could come from whoever won a race for it)
        Path(args.ready_file).write_text(f"{os.getpid()}\n")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("stopping")
    server.close()
    await server.wait_closed()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--home", required=True, help="the home directory of azureuser")
    parser.add_argument("--authorized-keys", action="append", default=[], metavar="FILE",
                        help="authorized_keys file, read at each login (repeatable; missing = no keys)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--host-key", help="private host key file (made on first use); default: a new key per run")
    parser.add_argument("--ready-file", help="written with this process's pid once the port is bound")
    parser.add_argument("--path-prefix", action="append", default=[], metavar="DIR",
                        help="directory put first on commands' PATH (repeatable)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("asyncssh").setLevel(logging.WARNING)
    os.chdir(args.home)  # SFTP's relative paths start here
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
