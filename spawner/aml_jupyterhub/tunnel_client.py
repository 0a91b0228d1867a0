"""The hub's side of the tunnel service's API (see :mod:`tunnel_service`).

Asynchronous (tornado's client: never blocks the hub's event loop), with a
timeout on every call and a short retry budget for a service that is
restarting. The instance's private key goes in the body of a PUT to the
service only; it is never logged.
"""

from __future__ import annotations

import asyncio
import json
from urllib.parse import quote, urlparse

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from .ssh import SSHError
from .tunnels import TunnelSpec


class TunnelServiceError(SSHError):
    """The tunnel service refused or could not be reached; the message says what it said."""


class TunnelClient:
    def __init__(self, url: str, token: str, *, timeout: float = 45, attempts: int = 3):
        self.url = url.rstrip("/")
        self.host = urlparse(self.url).hostname or "127.0.0.1"  # where the tunnels' local ends are
        self._token = token
        self.timeout, self.attempts = timeout, attempts

    async def _call(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        request = HTTPRequest(
            self.url + path, method=method, headers={"Authorization": f"token {self._token}",
                                                     "Content-Type": "application/json"},
            body=json.dumps(body) if body is not None else None, request_timeout=self.timeout,
            connect_timeout=5, allow_nonstandard_methods=True)
        for attempt in range(self.attempts):
            try:
                response = await AsyncHTTPClient().fetch(request, raise_error=False)
            except (OSError, HTTPClientError) as e:
                failure = f"{e}"
            else:
                if response.code != 599:
                    data = json.loads(response.body or b"{}") if response.body else {}
                    return response.code, data
                failure = str(response.error)
            if attempt + 1 < self.attempts:
                await asyncio.sleep(1 + attempt)
        raise TunnelServiceError(f"the tunnel service at {self.url} did not answer ({failure}); is its container "
                                 "running? (docker compose ps tunnels; docker compose logs tunnels)")

    async def open(self, name: str, spec: TunnelSpec, private_key: str, local_port: int = 0) -> int:
        """Open ``name``'s tunnels (or find them open); the port of their local end."""
        code, data = await self._call("PUT", f"/tunnels/{quote(name, safe='')}",
                                      {**spec.to_json(), "private_key": private_key, "local_port": local_port})
        if code != 200:
            raise TunnelServiceError(f"the tunnel service could not open the tunnel: {data.get('error', code)}")
        return int(data["local_port"])

    async def list(self) -> dict[str, dict]:
        """Every tunnel open in the service, by name."""
        code, data = await self._call("GET", "/tunnels")
        if code != 200:
            raise TunnelServiceError(f"the tunnel service answered {code}: {data.get('error', '')}")
        return data.get("tunnels") or {}

    async def find(self, name: str) -> dict | None:
        code, data = await self._call("GET", f"/tunnels/{quote(name, safe='')}")
        if code == 404:
            return None
        if code != 200:
            raise TunnelServiceError(f"the tunnel service answered {code}: {data.get('error', '')}")
        return data

    async def close(self, name: str) -> None:
        code, data = await self._call("DELETE", f"/tunnels/{quote(name, safe='')}")
        if code not in (204, 404):
            raise TunnelServiceError(f"the tunnel service could not close the tunnel: {data.get('error', code)}")
