"""Redirect mode's tiny HTTP endpoint inside the hub process.

In redirect mode the notebook server is AML's own JupyterLab on the instance,
guarded by Azure AD; the hub cannot proxy into it. The hub's proxy still needs
a target for ``/user/<name>/<server>/``: this server answers every request
under a registered prefix with a redirect to the instance's JupyterLab URL
(and answers the hub's own reachability check). One per hub process, on
127.0.0.1, on the hub's event loop.
"""

from __future__ import annotations

import asyncio
import html
import logging

from aiohttp import web

log = logging.getLogger("aml_jupyterhub.redirector")


class Redirector:
    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self.host = host
        self.port = port
        self.targets: dict[str, str] = {}  # URL prefix (/user/alice/) -> JupyterLab URL
        self._runner: web.AppRunner | None = None
        self._lock = asyncio.Lock()

    async def ensure_started(self) -> int:
        async with self._lock:
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
        return f"http://{self.host}:{self.port}"

    def register(self, prefix: str, target: str) -> None:
        self.targets[prefix] = target

    def unregister(self, prefix: str) -> None:
        self.targets.pop(prefix, None)

    async def _handle(self, request: web.Request) -> web.Response:
        path = request.path
        for prefix, target in self.targets.items():
            if path == prefix.rstrip("/") or path.startswith(prefix):
                raise web.HTTPFound(target)
        return web.Response(
            status=404,
            content_type="text/html",
            text=f"<p>No compute instance is registered for {html.escape(path)}.</p>",
        )

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


_shared: Redirector | None = None


def shared_redirector() -> Redirector:
    global _shared
    if _shared is None:
        _shared = Redirector()
    return _shared
