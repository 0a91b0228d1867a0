"""The hub's page behind redirect mode: ``/hub/aml/open?path=/user/<name>/...``.

The redirect endpoint (``redirector``) sends every request under a user's
URL here. Behind the hub's login, this page works out which server the path
means (a named server of that user, else the default one), lets only its
owner through, and sends them to their instance's JupyterLab; a server that
is not running goes to the hub's own "not running" page.

(``hubconfig.apply_essentials(c)`` registers it, with JupyterHub's
``extra_handlers``; a hand-written config calls that too.)
"""

from __future__ import annotations

from urllib.parse import unquote

from jupyterhub.handlers import BaseHandler
from jupyterhub.utils import url_path_join
from tornado import web

from .redirector import OPEN_PATH


def resolve_server(path: str, base_url: str, named_servers: set[str] | None) -> tuple[str, str] | None:
    """(user name, server name) for a path under ``{base_url}user/``, or None.

    The first segment after the user's name is a server only when that user
    has a named server of that name (``named_servers``; None when named
    servers are off); anything else is a path inside the default server."""
    prefix = url_path_join(base_url, "user") + "/"
    path = path.split("?", 1)[0].split("#", 1)[0]
    if not path.startswith(prefix):
        return None
    parts = path[len(prefix):].split("/")
    user = unquote(parts[0])
    if not user:
        return None
    first = unquote(parts[1]) if len(parts) > 1 else ""
    if first and named_servers is not None and first in named_servers:
        return user, first
    return user, ""


class OpenInstanceHandler(BaseHandler):
    @web.authenticated
    async def get(self):
        path = self.get_argument("path", "")
        current = self.current_user
        target = resolve_server(path, self.base_url, None)
        if target is None:
            raise web.HTTPError(404, "Not a server's address.")
        if current is None or current.name != target[0]:
            # the same answer whether or not the server exists: nothing to learn here
            raise web.HTTPError(403, "Only the owner of a server can open its compute instance.")
        user = current
        named = set(user.orm_spawners) - {""} if self.allow_named_servers else None
        _, server = resolve_server(path, self.base_url, named)
        spawner = user.spawners[server]
        state = getattr(spawner, "server_state", None)  # an AMLSpawner's (other spawners have no instance)
        lab_url = state.lab_url if state is not None else ""
        if spawner.ready and lab_url:
            self.redirect(lab_url)
            return
        # not running (or not a redirect-mode server): the hub's own page for it
        self.redirect(url_path_join(self.hub.base_url, "user", user.escaped_name, server) + "/")


def extra_handlers() -> list:
    from .instances_api import api_handlers  # the instances page's API (its scopes: the page's service only)

    return [(rf"/{OPEN_PATH}", OpenInstanceHandler), *api_handlers()]
