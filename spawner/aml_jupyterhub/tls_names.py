"""Which names Caddy may get a certificate for: the hub's answer to Caddy's
on-demand TLS ``ask``.

With users' servers on subdomains (``HUB_USER_SUBDOMAINS``), every user and
every service has a host of its own under HOST, and Caddy gets each one's
certificate at its first TLS handshake. Without this check anybody could make
Caddy ask Let's Encrypt for any name under HOST (a handshake with a made-up
SNI is enough) until the rate limit locks the hub's own renewals out. So Caddy
asks first (``GET /tls-names?domain=<name>``), and only the hub's own name and
the hosts of users and services the hub has get a 200.

The listener is the hub's, on a port of its own in the hub's container
(:data:`PORT`): never routed by the proxy, so the internet cannot ask which
user names exist, and plain HTTP also when the hub's API takes only
certificate holders (direct mode).
"""

from __future__ import annotations

import logging
import time
from typing import Callable, Iterable

from tornado import web
from tornado.httpserver import HTTPServer

log = logging.getLogger("aml_jupyterhub.tls_names")

PORT = 8082
PATH = "/tls-names"


def known_hosts(hub_domain: str, user_names: Iterable[str], service_domains: Iterable[str],
                subdomain_hook: Callable[..., str]) -> frozenset[str]:
    """Every host name the hub serves: its own, each user's, each service's (lower case)."""
    hosts = {hub_domain.lower()}
    hosts.update(subdomain_hook(name, hub_domain, kind="user").lower() for name in user_names)
    hosts.update(d.lower() for d in service_domains if d)
    return frozenset(hosts)


class KnownHosts:
    """The hub's host names, read again from the database on a miss, at most every ``min_refresh`` seconds:
    each made-up SNI costs a lookup in a set, not a pass over every user."""

    def __init__(self, read: Callable[[], frozenset[str]], min_refresh: float = 2.0, clock=time.monotonic):
        self._read, self._min_refresh, self._clock = read, min_refresh, clock
        self._hosts: frozenset[str] = frozenset()
        self._read_at = float("-inf")

    def __contains__(self, domain: str) -> bool:
        domain = domain.lower().rstrip(".")
        if domain in self._hosts:
            return True
        if self._clock() - self._read_at >= self._min_refresh:
            self._hosts, self._read_at = self._read(), self._clock()
        return domain in self._hosts


def hub_hosts() -> frozenset[str]:
    """The running hub's host names (from its database and its services)."""
    from jupyterhub import orm
    from jupyterhub.app import JupyterHub

    app = JupyterHub.instance()
    names = [name for (name,) in app.db.query(orm.User.name)]
    services = [getattr(s, "domain", "") for s in app._service_map.values()]
    return known_hosts(app.domain, names, services, app.subdomain_hook)


class AskHandler(web.RequestHandler):
    def initialize(self, hosts: KnownHosts):
        self.hosts = hosts

    def get(self):
        domain = self.get_query_argument("domain", "")
        try:
            ours = bool(domain) and domain in self.hosts
        except Exception:  # the hub's database away: no certificate now, Caddy asks again at the next handshake
            log.exception("tls-names: cannot read the hub's users")
            raise web.HTTPError(503) from None
        if not ours:
            log.info("tls-names: no certificate for %r: not the hub's, nor a user's or service's host", domain[:80])
            raise web.HTTPError(404)
        self.finish("ok")

    def log_exception(self, typ, value, tb):
        if not isinstance(value, web.HTTPError):
            super().log_exception(typ, value, tb)


def start_listener(ip: str = "0.0.0.0", port: int = PORT, hosts: KnownHosts | None = None) -> HTTPServer:
    """The ask endpoint, in the hub's event loop (started from its config)."""
    app = web.Application([(PATH, AskHandler, {"hosts": hosts or KnownHosts(hub_hosts)})], log_function=lambda h: None)
    server = HTTPServer(app)
    server.listen(port, ip)
    log.info("tls-names: Caddy's on-demand TLS asks at http://%s:%d%s", ip, port, PATH)
    return server
