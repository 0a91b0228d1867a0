"""The hub's proxy class: configurable-http-proxy with the hub as its default target.

A proxy started with the hub has no routes until the hub adds them (after it
has found its servers), and answers 404 for every path meanwhile. JupyterLab
takes a 404 from its own kernel's URL for a dead kernel (it retries only
network errors, 503 and 424) and asks the user to reload the page. With the
hub as the default target, a request that arrives before its route goes to
the hub, which sends it on once the route is there.

With the proxy in a container of its own (``proxy_service``) and the hub's
internal TLS on (direct mode), CHP needs the certificates the hub makes when
it starts. The hub then puts the proxy's (never a CA key) in ``tls_share_dir``,
READY last, and takes them away when it starts without internal TLS; the
proxy's container follows. The same folder says whether CHP routes by host
(users' servers on subdomains), and the hub's first routes wait until the
proxy's container says it runs what the hub asked for.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from pathlib import Path

from jupyterhub.proxy import ConfigurableHTTPProxy
from traitlets import Unicode

from .proxy_service import (APPLIED, HOST_ROUTING, TLS_FILES, TLS_READY, published_setup, setup_label,
                            write_private)


def with_default_target(command: list[str], target: str) -> list[str]:
    """``command`` with ``--default-target target``, unless it names one already."""
    if any(arg == "--default-target" or arg.startswith("--default-target=") for arg in command):
        return list(command)
    return [*command, "--default-target", target]


def proxy_tls_files(internal_proxy_certs: dict, trust_bundles: dict) -> dict[str, str]:
    """The proxy's certificate files as the proxy's container names them -> where the hub has them."""
    api, client = internal_proxy_certs["proxy-api"], internal_proxy_certs["proxy-client"]
    files = {
        "proxy-api.key": api["keyfile"], "proxy-api.crt": api["certfile"],
        "proxy-api-ca.crt": trust_bundles["proxy-api-ca"],
        "proxy-client.key": client["keyfile"], "proxy-client.crt": client["certfile"],
        "proxy-client-ca.crt": trust_bundles["proxy-client-ca"],
    }
    assert set(files) == set(TLS_FILES)
    return files


def share_proxy_tls(dest: Path, files: dict[str, str]) -> bool:
    """Put ``files`` in ``dest`` (0600), READY last with their digest; True if
    anything changed (an unchanged set is left alone: the proxy need not restart)."""
    contents = {name: Path(src).read_bytes() for name, src in sorted(files.items())}
    digest = hashlib.sha256(b"".join(name.encode() + b"\0" + data for name, data in contents.items())).hexdigest()
    dest.mkdir(parents=True, exist_ok=True, mode=0o700)
    ready = dest / TLS_READY
    if ready.exists() and ready.read_text().strip() == digest:
        return False
    ready.unlink(missing_ok=True)
    for name, data in contents.items():
        write_private(dest / name, data)
    write_private(ready, digest.encode() + b"\n")
    return True


def withdraw_proxy_tls(dest: Path) -> bool:
    """The shared certificates gone (READY first); True if there were any."""
    ready = dest / TLS_READY
    had = ready.exists()
    ready.unlink(missing_ok=True)
    for name in TLS_FILES:
        (dest / name).unlink(missing_ok=True)
    return had


class HubDefaultProxy(ConfigurableHTTPProxy):
    """configurable-http-proxy that sends what has no route yet to the hub."""

    tls_share_dir = Unicode(
        "",
        config=True,
        help="""With a proxy the hub does not start (should_start False) in a container of its own: the
        directory, on a volume the proxy's container mounts, where the hub puts the proxy's internal TLS
        certificates when internal_ssl is on (and removes them when it is off).""",
    )

    applied_timeout = 30.0  # how long the first routes wait for the proxy's container to follow (it polls every 2 s)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._followed = not (self.tls_share_dir and not self.should_start)
        if not self._followed:
            self._share_tls()
            self._share_routing()

    def _share_routing(self) -> None:
        marker = Path(self.tls_share_dir) / HOST_ROUTING
        marker.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if self.host_routing and not marker.exists():
            write_private(marker, b"users' servers on subdomains\n")
            self.log.info("proxy: routing by host asked of the proxy's container (%s)", marker)
        elif not self.host_routing and marker.exists():
            marker.unlink()
            self.log.info("proxy: routing by path asked of the proxy's container (%s removed)", marker)

    async def _proxy_followed(self) -> None:
        """Until the proxy's container runs CHP as published (APPLIED), at most applied_timeout."""
        wanted = setup_label(published_setup(self.tls_share_dir))
        path = Path(self.tls_share_dir) / APPLIED
        deadline = time.monotonic() + self.applied_timeout
        while time.monotonic() < deadline:
            try:
                if path.read_text().strip() == wanted:
                    return
            except OSError:
                pass
            await asyncio.sleep(0.5)
        self.log.warning("proxy: the proxy's container has not confirmed %s within %.0f s (is it an older version, "
                         "or stopped?); adding routes anyway", wanted, self.applied_timeout)

    async def check_routes(self, *args, **kwargs):
        if not self._followed:
            await self._proxy_followed()
            self._followed = True
        return await super().check_routes(*args, **kwargs)

    def _share_tls(self) -> None:
        # once, while the hub initialises (before its first request to the proxy): a few small files
        dest = Path(self.tls_share_dir)
        if self.app.internal_ssl:
            files = proxy_tls_files(self.app.internal_proxy_certs, self.app.internal_trust_bundles)
            if share_proxy_tls(dest, files):
                self.log.info("internal TLS: the proxy's certificates put in %s for the proxy's container", dest)
        elif withdraw_proxy_tls(dest):
            self.log.info("internal TLS is off: the proxy's certificates removed from %s", dest)

    async def start(self):
        # the hub's address is known only once the hub is initialised
        self.command = with_default_target(self.command, self.hub.host)
        return await super().start()
