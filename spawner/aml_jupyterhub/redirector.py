"""Redirect mode's tiny HTTP endpoint inside the hub process.

In redirect mode the notebook server is AML's own JupyterLab on the instance,
guarded by Azure AD; the hub cannot proxy into it. The hub's proxy still needs
a target for ``/user/<name>/<server>/``: this endpoint. It knows no instance
and no URL of one: it sends every request on to the hub's
``/hub/aml/open`` page (``handlers.OpenInstanceHandler``), where the hub's
own login decides who is asking and which of their servers the path means,
and only the owner is sent to the instance. So nobody who is not logged in
as the owner learns an instance's name, and a named server's path never
lands on the default server's instance.

One per hub process, on the hub's event loop: on 127.0.0.1 beside a proxy
the hub starts, on the hub container's network (a fixed port, where the
proxy's container reaches it) under compose. With users' servers on hosts
of their own the hub's page is on the hub's origin, so the redirect names it.
"""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import quote

from aiohttp import web

log = logging.getLogger("aml_jupyterhub.redirector")

OPEN_PATH = "aml/open"  # under the hub's base URL (/hub/)


class Redirector:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, connect_host: str = ""):
        self.host = host
        self.port = port
        self.connect_host = connect_host  # where the proxy reaches it, when not where it listens
        self.hub_base_url = "/hub/"
        self.hub_origin = ""  # the hub's own origin, when users' servers are on other hosts
        self._runner: web.AppRunner | None = None
        self._lock = asyncio.Lock()

    def configure(self, host: str, port: int, connect_host: str = "") -> None:
        """Where it listens (before it starts; later calls change nothing: one per hub process)."""
        if self._runner is None:
            self.host, self.port, self.connect_host = host, port, connect_host

    async def ensure_started(self, hub_base_url: str = "/hub/", hub_origin: str = "") -> int:
        async with self._lock:
            self.hub_base_url = hub_base_url if hub_base_url.endswith("/") else hub_base_url + "/"
            self.hub_origin = hub_origin.rstrip("/")
            if self._runner is None:
                app = web.Application()
                app.router.add_route("*", "/{tail:.*}", self._handle)
                runner = web.AppRunner(app, access_log=None)
                await runner.setup()
                site = web.TCPSite(runner, self.host, self.port)
                await site.start()
                self.port = site._server.sockets[0].getsockname()[1]
                self._runner = runner
                log.info("redirect-mode endpoint listening on %s:%s", self.host, self.port)
            return self.port

    @property
    def url(self) -> str:
        host = self.connect_host or self.host
        return f"http://{'127.0.0.1' if host == '0.0.0.0' else host}:{self.port}"

    def location(self, path_qs: str) -> str:
        """Where a request for ``path_qs`` (path and query) is sent."""
        return f"{self.hub_origin}{self.hub_base_url}{OPEN_PATH}?path={quote(path_qs, safe='')}"

    async def _handle(self, request: web.Request) -> web.Response:
        raise web.HTTPFound(self.location(request.path_qs))

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

