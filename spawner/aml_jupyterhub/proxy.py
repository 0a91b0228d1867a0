"""The proxy the hub starts: configurable-http-proxy with the hub as its default target.

A proxy started with the hub has no routes until the hub adds them (after it
has found its servers), and answers 404 for every path meanwhile. JupyterLab
takes a 404 from its own kernel's URL for a dead kernel (it retries only
network errors, 503 and 424) and asks the user to reload the page. With the
hub as the default target, a request that arrives before its route goes to
the hub, which sends it on once the route is there.
"""

from __future__ import annotations

from jupyterhub.proxy import ConfigurableHTTPProxy


def with_default_target(command: list[str], target: str) -> list[str]:
    """``command`` with ``--default-target target``, unless it names one already."""
    if any(arg == "--default-target" or arg.startswith("--default-target=") for arg in command):
        return list(command)
    return [*command, "--default-target", target]


class HubDefaultProxy(ConfigurableHTTPProxy):
    """configurable-http-proxy that sends what has no route yet to the hub."""

    async def start(self):
        # the hub's address is known only once the hub is initialised
        self.command = with_default_target(self.command, self.hub.host)
        return await super().start()
