"""``aml-jupyterhub-launch``: the hub image's entrypoint, which keeps the secrets out of every environment.

Compose hands the hub its settings as environment variables, the secrets
(:data:`settings.SECRET_VARIABLES`) among them. The environment a process was
started with stays readable in ``/proc/<pid>/environ`` for its whole life, to
every process of the same user, and the hub's services (the idle culler, the
instances page) run as the hub's user: taking the secrets out of
``os.environ`` later only keeps children from inheriting them.

So this launcher runs first, as PID 1: it takes the secrets out of its
environment, writes them into a pipe whose read end the command inherits
(its number in :data:`settings.SECRETS_FD_VARIABLE`), and execs tini with the
command and the cleaned environment. PID 1 (then tini), the hub and all they
start were started without the secrets. The hub's configuration reads the
pipe once and closes it (:func:`settings.take_launcher_secrets`); the pipe,
emptied, then holds nothing for anyone who opens it through ``/proc``.

Any command runs so (``docker compose run --rm hub aml-jupyterhub-doctor``
too); with no secret in the environment there is no pipe and nothing else
changes.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Mapping

from .settings import SECRET_VARIABLES, SECRETS_FD_VARIABLE

PROG = "aml-jupyterhub-launch"
INIT = "tini"  # PID 1 after the exec: reaps zombies and forwards docker stop's SIGTERM


class LaunchError(Exception):
    """The command cannot be started; the message says why and what to do."""


def split_secrets(environ: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """``environ`` without the secrets, and the secrets (the set ones only)."""
    secrets = {name: environ[name] for name in SECRET_VARIABLES if environ.get(name)}
    clean = {name: value for name, value in environ.items() if name not in SECRET_VARIABLES}
    return clean, secrets


def init_command(command: list[str]) -> list[str]:
    """``command`` under tini; LaunchError without one."""
    if not command:
        raise LaunchError("no command to run: give one, e.g. "
                          f"{PROG} jupyterhub -f /etc/jupyterhub/jupyterhub_config.py")
    return [INIT, "--", *command]


def hand_over(secrets: Mapping[str, str]) -> int:
    """The inheritable read end of a pipe that holds ``secrets``. The write end
    is closed here, so the reader sees where they end, and once read the pipe
    is empty for good."""
    data = json.dumps(dict(secrets)).encode()
    read, write = os.pipe()
    try:
        # the command reads only after the exec: whatever the pipe cannot hold now would block forever
        os.set_blocking(write, False)
        try:
            written = os.write(write, data)
        except BlockingIOError:
            written = 0
    finally:
        os.close(write)
    if written != len(data):
        os.close(read)
        raise LaunchError(f"the secrets ({len(data)} bytes) do not fit into the pipe that hands them over "
                          f"({written} bytes did): check that {', '.join(secrets)} in .env hold one secret each")
    os.set_inheritable(read, True)
    return read


def main(argv: list[str] | None = None) -> int:
    """Exec tini with the command; returns (with a message) only when it cannot."""
    try:
        command = init_command(list(sys.argv[1:] if argv is None else argv))
        env, secrets = split_secrets(os.environ)
        if secrets:
            env[SECRETS_FD_VARIABLE] = str(hand_over(secrets))
        try:
            os.execvpe(command[0], command, env)
        except OSError as e:
            raise LaunchError(f"cannot run {command[0]}: {e.strerror or e}; the hub image has it "
                              f"(use this launcher as that image's entrypoint)") from None
    except LaunchError as e:
        print(f"{PROG}: {e}", file=sys.stderr, flush=True)
        return 2
    return 0  # not reached: execvpe returns only by raising


if __name__ == "__main__":
    sys.exit(main())
