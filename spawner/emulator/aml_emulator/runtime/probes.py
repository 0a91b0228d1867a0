"""Probes both runtimes use to tell when a machine's services are up.

A runtime starts a server (sshd, JupyterLab) and must not report the machine
ready before that server answers; these helpers wait for that, with a
deadline and an optional ``alive`` check so a server that died is reported
at once instead of at the deadline. They know nothing of processes or
containers: how to tell "alive" is the caller's.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from pathlib import Path

import aiohttp

from .base import Lab, RuntimeFailure

LOOPBACK = "127.0.0.1"


async def _raise_if_dead(alive, what: str) -> None:
    """``alive`` (optional, returns bool, may be async) said the server is gone: raise."""
    if alive is None:
        return
    ok = alive()
    if asyncio.iscoroutine(ok):
        ok = await ok
    if not ok:
        raise ProcessLookupError(what)


async def wait_for_ssh_banner(host: str, port: int, timeout: float, alive=None) -> None:
    """Wait until an SSH server greets on host:port.

    A greeting, not just an accepted TCP connection: Docker's port publisher
    accepts connections before the server inside listens. ``alive`` (optional,
    returns bool, may be async) stops the wait early when the server died.
    Raises TimeoutError or ProcessLookupError.
    """
    deadline = time.monotonic() + timeout
    delay = 0.05
    while True:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 2)
            try:
                banner = await asyncio.wait_for(reader.readline(), 2)
            finally:
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()
            if banner.startswith(b"SSH-"):
                return
        except (OSError, asyncio.TimeoutError):
            pass
        await _raise_if_dead(alive, f"the SSH server for {host}:{port} exited")
        if time.monotonic() > deadline:
            raise TimeoutError(f"no SSH server answered on {host}:{port} within {timeout:.0f} s")
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.5)


async def http_ok(url: str, timeout: float = 3, headers: dict | None = None) -> bool:
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session:
            async with session.get(url, allow_redirects=False, headers=headers) as resp:
                return resp.status == 200
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
        return False


async def jupyter_activity(lab: Lab, timeout: float = 5) -> dict | None:
    """What AML's own JupyterLab says of its kernels and terminals, as AML's
    idle detection reads it: ``{"kernels": [...], "terminals": [...]}`` from
    ``api/kernels`` and ``api/terminals``; None if it does not answer.

    ``no_track_activity`` keeps these reads from counting as activity of the
    server's own (API) idle clock. A server without terminals (404) has none.
    """
    base = lab.origin.rstrip("/") + "/" + lab.base_path.strip("/")
    base = base.rstrip("/") + "/api/"
    out = {}
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session:
            for what in ("kernels", "terminals"):
                async with session.get(f"{base}{what}", params={"no_track_activity": "1"},
                                       headers=lab.headers, allow_redirects=False) as resp:
                    if resp.status == 404 and what == "terminals":
                        out[what] = []
                        continue
                    if resp.status != 200:
                        return None
                    body = await resp.json(content_type=None)
                    out[what] = body if isinstance(body, list) else []
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError):
        return None
    return out


async def wait_for_http(url: str, timeout: float, alive=None, headers: dict | None = None) -> None:
    """Wait until GET url answers 200 (``alive`` as in wait_for_ssh_banner)."""
    deadline = time.monotonic() + timeout
    delay = 0.1
    while not await http_ok(url, headers=headers):
        await _raise_if_dead(alive, f"the server behind {url} exited")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} did not answer within {timeout:.0f} s")
        await asyncio.sleep(delay)
        delay = min(delay * 2, 1.0)


async def wait_for_file(path: Path, content: str, timeout: float, alive) -> None:
    """Wait until ``path`` holds ``content`` (a server's "ready" file)."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError):
            if path.read_text().strip() == content:
                return
        await _raise_if_dead(alive, f"the process that was to write {path.name} exited")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path.name} did not appear within {timeout:.0f} s")
        await asyncio.sleep(0.05)


def free_port(preferred: int | None = None, host: str = LOOPBACK) -> int:
    """``preferred`` if nothing listens there, else a port the kernel picks."""
    for port in ([preferred] if preferred else []) + [0]:
        with socket.socket() as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
            return sock.getsockname()[1]
    raise RuntimeFailure("no free TCP port on this machine")
