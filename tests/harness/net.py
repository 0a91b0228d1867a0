"""Ports, waiting for servers, and servers in a thread."""

from __future__ import annotations

import asyncio
import http.cookiejar
import socket
import ssl
import subprocess
import threading
import time
from typing import Callable

import requests
from aiohttp import web

LOOPBACK = "127.0.0.1"


def free_port(host: str = LOOPBACK) -> int:
    """A port nothing listens on now (the kernel's pick; the caller binds it soon)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def free_ports(count: int, host: str = LOOPBACK) -> list[int]:
    """``count`` distinct free ports: each held open while the next is picked."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket()
            socks.append(s)
            s.bind((host, 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def wait_until(predicate: Callable[[], object], timeout: float, what: str, *, interval: float = 0.2,
               proc: subprocess.Popen | None = None, log: Callable[[], str] = lambda: ""):
    """``predicate()``'s first truthy value within ``timeout`` seconds.

    ``proc``: the process that is to bring the condition about; its exit ends
    the wait at once. ``log``: what to show when the wait fails.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode} before {what}:\n{log()}")
        if time.monotonic() >= deadline:
            raise TimeoutError(f"no {what} within {timeout:.0f} s:\n{log()}")
        time.sleep(interval)


def wait_for_port(port: int, host: str = LOOPBACK, *, timeout: float = 30, **kw) -> None:
    """Until something accepts TCP connections on host:port (``kw`` as in wait_until)."""

    def accepts() -> bool:
        try:
            socket.create_connection((host, port), timeout=1).close()
            return True
        except OSError:
            return False

    wait_until(accepts, timeout, f"listener on {host}:{port}", **kw)


def wait_for_http(url: str, *, timeout: float = 60, session: requests.Session | None = None,
                  verify: str | bool = True, **kw) -> None:
    """Until GET ``url`` answers 2xx (``kw`` as in wait_until)."""
    get = session.get if session is not None else requests.get

    def answers() -> bool:
        try:
            return get(url, timeout=2, verify=verify).ok
        except (requests.RequestException, OSError):
            return False

    wait_until(answers, timeout, f"answer from {url}", **kw)


class ServerThread:
    """An asyncio loop in a daemon thread, serving aiohttp apps on 127.0.0.1.

    For a server the test drives synchronously (with ``requests``, or a
    subprocess as client); ``run`` runs a coroutine on that loop.
    """

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.runners: list[web.AppRunner] = []

    def run(self, coro, timeout: float = 30):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def serve(self, app: web.Application, ssl_context: ssl.SSLContext | None = None) -> str:
        """Serve ``app`` on a free port; its base URL (https with ``ssl_context``)."""

        async def start():
            runner = web.AppRunner(app)
            await runner.setup()
            await web.TCPSite(runner, LOOPBACK, 0, ssl_context=ssl_context).start()
            self.runners.append(runner)
            return runner.addresses[0][1]

        port = self.run(start())
        return f"{'https' if ssl_context else 'http'}://{LOOPBACK}:{port}"

    def close(self) -> None:
        for runner in reversed(self.runners):
            self.run(runner.cleanup())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()

    def __enter__(self) -> "ServerThread":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def resolve_localhost_subdomains() -> None:
    """Names under ``localhost`` (``alice.localhost``) resolve to the loopback
    address in this process, as RFC 6761 asks and as browsers, curl and
    systemd-resolved do; glibc's plain /etc/hosts lookup does not. Users'
    servers live on such names in local mode (HUB_USER_SUBDOMAINS).

    And cookies for ``Domain=localhost`` go back to localhost itself, as a
    browser sends them: the standard library's cookie policy looks at a
    dotless host as ``<host>.local`` and never does (JupyterHub sets its
    session id so when users' servers are on hosts under the hub's)."""
    send_to_localhost_too(http.cookiejar.DefaultCookiePolicy)
    if getattr(socket.getaddrinfo, "resolves_localhost_subdomains", False):
        return
    plain = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else host
        if isinstance(name, str) and name.lower().rstrip(".").endswith(".localhost"):
            host = "localhost"
        return plain(host, *args, **kwargs)

    getaddrinfo.resolves_localhost_subdomains = True
    socket.getaddrinfo = getaddrinfo


def _under_localhost(cookie_domain: str, request) -> bool:
    host = request.host.split(":", 1)[0].lower()
    return cookie_domain.lstrip(".").lower() == "localhost" and (host == "localhost" or host.endswith(".localhost"))


def send_to_localhost_too(policy: type) -> None:
    if getattr(policy, "sends_localhost_domain_cookies", False):
        return
    plain_domain_ok, plain_cookie_ok = policy.domain_return_ok, policy.return_ok_domain

    def domain_return_ok(self, domain, request):
        return _under_localhost(domain, request) or plain_domain_ok(self, domain, request)

    def return_ok_domain(self, cookie, request):
        return _under_localhost(cookie.domain, request) or plain_cookie_ok(self, cookie, request)

    policy.domain_return_ok, policy.return_ok_domain = domain_return_ok, return_ok_domain
    policy.sends_localhost_domain_cookies = True
