"""The admin's instances page: a JupyterHub service, ``aml-instances``.

    https://HOST/services/aml-instances/      (in the hub's Services menu)

Every compute instance of this hub with its owner, server, size, state,
since when it runs and what it cost so far and costs per hour, with a stop
button; orphans (running without a server) and stops under way are marked.
It runs beside the hub (the hub starts it, as a managed service), signs
users in with the hub's OAuth, and lets in only those with access to this
service: admins (a non-admin gets 403). It holds no Azure credential: it
asks the hub's own API (``instances_api``) with its service token, whose
custom scopes nobody else has, and says who asked for each stop.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import jinja2
from jupyterhub.services.auth import HubOAuthCallbackHandler, HubOAuthenticated
from jupyterhub.utils import url_path_join
from tornado import httpclient, ioloop, web

SERVICE_NAME = "aml-instances"
HUB_GONE_CHECK_SECONDS = 2
DONE_COOKIE = "aml-instances-done"  # what the last stop did, for the page after the redirect
DONE_MAX_AGE_DAYS = 5 / 1440  # shown within five minutes, or not at all
HUB_PID_VARIABLE = "INSTANCES_PAGE_HUB_PID"  # set by the hub (hubconfig.add_instances_page)
TEMPLATE = Path(__file__).parent / "templates" / "instances_page.html"


def since_text(epoch: float | None, now: float) -> str:
    if not epoch:
        return ""
    minutes = int(max(0, now - epoch) // 60)
    when = dt.datetime.fromtimestamp(epoch, dt.timezone.utc).strftime("%d %b %H:%M UTC")
    return f"{when} ({minutes // 60} h {minutes % 60:02d} min)" if minutes >= 60 else f"{when} ({minutes} min)"


def money(value: float | None) -> str:
    return "" if value is None else f"${value:,.2f}"


def render(data: dict, *, xsrf_form_html: str, user: str, hub_prefix: str, message: str, now: float) -> str:
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    rows = data.get("instances", [])
    running = [r for r in rows if r["state"] == "Running"]
    total = sum(r["price_per_hour"] or 0 for r in running)
    return env.from_string(TEMPLATE.read_text()).render(
        rows=[{**r, "since": since_text(r["running_since"], now), "per_hour": money(r["price_per_hour"]),
               "so_far": money(r["cost_so_far"]), "workspace_key": json.dumps(
                   [r["subscription_id"], r["resource_group"], r["workspace"]])} for r in rows],
        running=len(running), orphans=sum(1 for r in rows if r["orphan"]), total_per_hour=money(total),
        unpriced=sum(1 for r in running if r["price_per_hour"] is None), problems=data.get("problems", []),
        reconciler=data.get("reconciler", True), xsrf_form_html=xsrf_form_html, user=user,
        hub_prefix=hub_prefix, message=message)


async def hub_api(method: str, path: str, body: dict | None = None, acting: str = "") -> dict:
    """The hub's API with this service's token (and the hub's internal TLS when it has one)."""
    url = os.environ["JUPYTERHUB_API_URL"].rstrip("/") + path
    ssl = {}
    if os.environ.get("JUPYTERHUB_SSL_KEYFILE"):
        ssl = dict(client_key=os.environ["JUPYTERHUB_SSL_KEYFILE"], client_cert=os.environ["JUPYTERHUB_SSL_CERTFILE"],
                   ca_certs=os.environ.get("JUPYTERHUB_SSL_CLIENT_CA"))
    request = httpclient.HTTPRequest(
        url, method=method, body=json.dumps(body) if body is not None else None, request_timeout=60,
        headers={"Authorization": f"token {os.environ['JUPYTERHUB_API_TOKEN']}", "X-AML-Acting-User": acting,
                 "Content-Type": "application/json"}, **ssl)
    response = await httpclient.AsyncHTTPClient().fetch(request, raise_error=False)
    try:
        data = json.loads(response.body or b"{}")
    except ValueError:
        data = {}
    if response.code != 200:
        raise web.HTTPError(502, f"The hub answered {response.code}: {data.get('message', '')[:200]}")
    return data


class PageHandler(HubOAuthenticated, web.RequestHandler):
    @property
    def hub_scopes(self):
        # who may see this page: whoever may access this service (admins); never "anyone logged in"
        return {f"access:services!service={SERVICE_NAME}"}

    def _page(self, data: dict, message: str = "") -> str:
        return render(data, xsrf_form_html=self.xsrf_form_html(), user=self.current_user["name"],
                      # JUPYTERHUB_HOST: the hub's own origin when this page has its own (users' subdomains)
                      hub_prefix=os.environ.get("JUPYTERHUB_HOST", "") + os.environ.get("JUPYTERHUB_BASE_URL", "/")
                      + "hub/", message=message,
                      now=time.time())

    def set_default_headers(self) -> None:
        # never inside another page's frame: a page on a user's server could otherwise load it
        # hidden in an admin's browser and press its buttons
        self.set_header("Content-Security-Policy", "frame-ancestors 'none'")
        self.set_header("X-Frame-Options", "DENY")

    @web.authenticated
    async def get(self):
        data = await hub_api("GET", "/aml/instances")
        self.set_header("Cache-Control", "no-store")
        # what the last stop did, from this page's own signed cookie (never from the URL: a link
        # could make the page say anything), shown once
        done = self.get_signed_cookie(DONE_COOKIE, max_age_days=DONE_MAX_AGE_DAYS)
        if done is not None:
            self.clear_cookie(DONE_COOKIE, path=self.request.path)
        self.finish(self._page(data, done.decode(errors="replace") if done else ""))

    @web.authenticated
    async def post(self):
        try:
            workspace = json.loads(self.get_body_argument("workspace"))
            name = self.get_body_argument("name")
        except (ValueError, web.MissingArgumentError):
            raise web.HTTPError(400, "The stop form needs the instance's workspace and name.")
        done = await hub_api("POST", "/aml/instances/stop", {"workspace": workspace, "name": name},
                             acting=self.current_user["name"])
        what = (f"Stopping {done['user']}'s server" + (f" '{done['server']}'" if done.get("server") else "")
                + f" and its compute instance {name}." if done.get("stopped") == "server"
                else f"Stopping compute instance {name}, which no server used.")
        self.set_signed_cookie(DONE_COOKIE, what, expires_days=None, path=self.request.path, httponly=True,
                               samesite="Strict", secure=self.request.protocol == "https")
        self.redirect(self.request.path)


def make_app() -> web.Application:
    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", f"/services/{SERVICE_NAME}/")
    return web.Application(
        [(prefix, PageHandler), (url_path_join(prefix, "oauth_callback"), HubOAuthCallbackHandler)],
        cookie_secret=os.urandom(32), xsrf_cookies=True)


def port_taken_line(host: str, port: int, error: OSError) -> str:
    return (f"aml-instances: cannot listen on {host}:{port} ({error.strerror or error}). Another program holds "
            "that port (a second hub on this machine?): stop it, or set HUB_INSTANCES_PAGE_PORT to a free port, and "
            "restart the hub.")


def main() -> None:
    where = os.environ.get("JUPYTERHUB_SERVICE_URL")
    if not where:
        sys.exit("aml-instances: JUPYTERHUB_SERVICE_URL is not set: the instances page is a service the hub starts "
                 "(HUB_INSTANCES_PAGE=true), not a program to run by hand")
    url = urlparse(where)
    # the hub starts this page and stops it with SIGINT; a hub that is killed cannot, and a page left
    # behind would hold the port for the next hub: it goes when the hub does. The hub says its pid, as
    # it may die before this process could ask for its parent's
    started_by = int(os.environ.get(HUB_PID_VARIABLE) or os.getppid())

    def hub_alive() -> bool:
        return os.getppid() == started_by

    host, port = url.hostname or "127.0.0.1", url.port or 80
    try:
        make_app().listen(port, host)
    except OSError as e:
        # the hub checked the port before it started the page (hubconfig), so only a program that took it
        # since gets here; JupyterHub then stops the hub, and this line says why
        sys.exit(port_taken_line(host, port, e))
    try:
        loop = ioloop.IOLoop.current()

        def stop_without_hub():
            if not hub_alive():
                print(f"aml-instances: the hub (pid {started_by}) is gone; the instances page stops",
                      file=sys.stderr, flush=True)
                loop.stop()

        ioloop.PeriodicCallback(stop_without_hub, HUB_GONE_CHECK_SECONDS * 1000).start()
        loop.start()
    except KeyboardInterrupt:  # the hub's stop
        pass


if __name__ == "__main__":
    main()
