"""A compute instance's application endpoint: its JupyterLab, for its user only.

AML serves ``https://<instance>.<region>.instances.azureml.ms/lab`` behind
Azure AD: only the user the instance is assigned to gets in, everybody else
sees "does not have access". The emulator serves the same thing at
``/instances/<name>/...``: it signs the browser in with the emulated Azure
AD's SSO session, checks the instance's assigned user, and reverse-proxies
HTTP and websockets (kernels) to the JupyterLab the runtime started on the
instance with base URL ``/instances/<name>/``, adding the token that Lab
requires (see ``runtime.lab``): the Lab itself admits nobody who comes any
other way, such as another instance on the same network.
"""

from __future__ import annotations

import asyncio
import html
import logging
from typing import Awaitable, Callable, NamedTuple

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from .aad import SESSION_COOKIE, AzureAD
from .pages import render_page

log = logging.getLogger(__name__)

_HEADING = "Local Azure ML emulator: compute instance"


class Upstream(NamedTuple):
    """An instance's application as the proxy reaches it."""

    origin: str  # plain HTTP, e.g. http://10.0.0.5:8890
    assigned_oid: str | None  # the one user the proxy lets in (None: nobody)
    token: str | None = None  # what the application requires of every request ("Authorization: token ...")


Resolver = Callable[[str], Awaitable[Upstream]]

# RFC 9110 section 7.6.1 connection-specific headers, plus the old "Proxy-Connection"
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)
# set by aiohttp itself when it opens the upstream websocket
_WS_HANDSHAKE = frozenset(
    {"sec-websocket-key", "sec-websocket-version", "sec-websocket-protocol", "sec-websocket-extensions", "sec-websocket-accept"}
)


def _connection_tokens(headers) -> set[str]:
    tokens = set()
    for value in headers.getall("Connection", []):
        tokens.update(t.strip().lower() for t in value.split(",") if t.strip())
    return tokens


def _strip_cookie(value: str, name: str) -> str:
    kept = [c.strip() for c in value.split(";") if c.strip() and c.split("=", 1)[0].strip() != name]
    return "; ".join(kept)


class ApplicationProxy:
    """Serves ``/instances/{name}/{tail}`` for the instance's assigned user."""

    def __init__(self, aad: AzureAD, resolve: Resolver, *, connect_timeout: float = 10.0):
        """``resolve(name)`` gives the instance's :class:`Upstream`.

        It raises ``web.HTTPNotFound`` for an unknown instance and
        ``web.HTTPConflict``/``web.HTTPServiceUnavailable`` (with a text
        message) for one that is not running; those reach the browser as they
        are.
        """
        self._aad = aad
        self._resolve = resolve
        self._connect_timeout = connect_timeout
        self._session: aiohttp.ClientSession | None = None

    def add_routes(self, app: web.Application) -> None:
        app.router.add_route("*", "/instances/{name}", self._handle)
        app.router.add_route("*", "/instances/{name}/{tail:.*}", self._handle)
        app.on_cleanup.append(self._close)

    async def _close(self, app: web.Application) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0),
                # one shared client for every user: it must never keep cookies
                cookie_jar=aiohttp.DummyCookieJar(),
                # pass bodies through as they are, Content-Encoding and all
                auto_decompress=False,
                # upstreams are local addresses; HTTP(S)_PROXY must not apply
                trust_env=False,
                # long polls and downloads may take their time; only connecting is bounded
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=self._connect_timeout),
            )
        return self._session

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        user = self._aad.session_user(request)
        if user is None:
            return self._aad.login_redirect(request, return_to=request.url)
        upstream, assigned, token = await self._resolve(name)
        if assigned is None or assigned.lower() != user.oid.lower():
            return self._forbidden(request, name, user.upn, assigned is None)
        prefix = f"/instances/{name}"
        if request.raw_path.split("?", 1)[0] in (prefix, prefix + "/") and request.method in ("GET", "HEAD"):
            return web.Response(status=302, headers={"Location": f"{prefix}/lab"})
        if not request.raw_path.startswith(prefix + "/"):
            # an encoded name that decodes to this one: do not guess what was meant
            return render_page(
                "Bad request", "<h2>Bad request</h2><p>Malformed compute instance URL.</p>", 400, heading=_HEADING
            )
        target = URL(upstream.rstrip("/") + request.raw_path, encoded=True)
        if request.headers.get("Upgrade", "").lower() == "websocket" and request.method == "GET":
            return await self._proxy_websocket(request, target, upstream, token)
        return await self._proxy_http(request, target, upstream, token)

    def _forbidden(self, request: web.Request, name: str, upn: str, unassigned: bool) -> web.Response:
        if unassigned:
            # Azure lets only the creator in; an instance assigned to nobody whose
            # creator is not known (kept from an emulator before createdBy named
            # every caller's object id) lets nobody in.
            text = (
                f"User {upn} does not have access to compute instance {name}. "
                "Only the creator can access a compute instance, and this instance is not assigned "
                "to a user, so the emulator lets nobody open it."
            )
        else:
            text = (
                f"User {upn} does not have access to compute instance {name}. "
                "Only the creator can access a compute instance."
            )
        switch = self._aad.login_url(request, request.url)
        body = (
            "<h2>Access denied</h2>\n"
            f'<p class="error" role="alert">{html.escape(text)}</p>\n'
            f'<p><a href="{html.escape(switch)}">Sign in as a different user</a></p>'
        )
        return render_page("Access denied", body, status=403, heading=_HEADING)

    def _upstream_headers(self, request: web.Request, upstream: str, token: str | None, *,
                          websocket: bool) -> CIMultiDict:
        public = request.url.origin()
        upstream_url = URL(upstream)
        # the browser's own Authorization is not the application's: the gateway's token replaces it
        drop = _HOP_BY_HOP | _connection_tokens(request.headers) | {"host", "expect", "authorization"}
        if websocket:
            drop |= _WS_HANDSHAKE | {"content-length"}
        out: CIMultiDict = CIMultiDict()
        for key, value in request.headers.items():
            k = key.lower()
            if k in drop:
                continue
            if k == "cookie":
                # the emulator's own SSO cookie is not the application's business
                value = _strip_cookie(value, SESSION_COOKIE)
                if not value:
                    continue
            elif k == "origin" and _same_origin(value, public):
                # Jupyter compares Origin with Host; the browser's request is
                # same-origin, so it stays same-origin for the upstream too.
                # Cross-origin requests keep their Origin and Jupyter refuses them.
                value = str(upstream_url.origin())
            elif k == "referer" and _same_origin(value, public):
                value = str(upstream_url.origin()) + value[len(str(public)) :]
            out.add(key, value)
        out["Host"] = upstream_url.raw_authority
        if token:
            out["Authorization"] = f"token {token}"
        out["X-Forwarded-Proto"] = request.scheme
        out["X-Forwarded-Host"] = request.host
        if request.remote:
            prior = request.headers.get("X-Forwarded-For")
            out["X-Forwarded-For"] = f"{prior}, {request.remote}" if prior else request.remote
        return out

    async def _proxy_http(self, request: web.Request, target: URL, upstream: str,
                          token: str | None) -> web.StreamResponse:
        headers = self._upstream_headers(request, upstream, token, websocket=False)
        try:
            up = await self._client().request(
                request.method,
                target,
                headers=headers,
                data=request.content if request.body_exists else None,
                allow_redirects=False,
                # only what the browser sent: no Accept-Encoding the browser did not ask for
                skip_auto_headers=("Accept-Encoding", "User-Agent", "Content-Type"),
            )
        except (aiohttp.ClientError, asyncio.TimeoutError) as e:
            log.warning("application proxy: %s %s failed: %s", request.method, target, e)
            return _bad_gateway(request.match_info["name"])
        async with up:
            resp = web.StreamResponse(status=up.status, reason=up.reason)
            drop = _HOP_BY_HOP | _connection_tokens(up.headers)
            for key, value in up.headers.items():
                if key.lower() in drop:
                    continue
                if key.lower() == "location" and value.startswith(upstream.rstrip("/") + "/"):
                    value = str(request.url.origin()) + value[len(upstream.rstrip("/")) :]
                resp.headers.add(key, value)
            await resp.prepare(request)
            if request.method != "HEAD":
                async for chunk in up.content.iter_any():
                    await resp.write(chunk)
            await resp.write_eof()
            return resp

    async def _proxy_websocket(self, request: web.Request, target: URL, upstream: str,
                               token: str | None) -> web.StreamResponse:
        headers = self._upstream_headers(request, upstream, token, websocket=True)
        protocols = [
            p.strip()
            for value in request.headers.getall("Sec-WebSocket-Protocol", [])
            for p in value.split(",")
            if p.strip()
        ]
        try:
            up_ws = await self._client().ws_connect(
                target, headers=headers, protocols=protocols, max_msg_size=0, autoping=True
            )
        except aiohttp.WSServerHandshakeError as e:
            # the application refused the websocket: tell the browser the same
            status = e.status if 400 <= e.status < 600 else 502
            return web.Response(status=status, text=f"The application refused the websocket: {e.message}")
        except (aiohttp.ClientError, asyncio.TimeoutError) as e:
            log.warning("application proxy: websocket %s failed: %s", target, e)
            return _bad_gateway(request.match_info["name"])
        ws = web.WebSocketResponse(protocols=(up_ws.protocol,) if up_ws.protocol else (), max_msg_size=0, autoping=True)
        try:
            await ws.prepare(request)
            to_upstream = asyncio.ensure_future(_pump(ws, up_ws))
            to_browser = asyncio.ensure_future(_pump(up_ws, ws))
            done, pending = await asyncio.wait({to_upstream, to_browser}, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        finally:
            await up_ws.close(code=ws.close_code or aiohttp.WSCloseCode.OK)
            if not ws.closed:
                await ws.close(code=up_ws.close_code or aiohttp.WSCloseCode.OK)
        return ws


async def _pump(src, dst) -> None:
    """Copy messages from one websocket to the other until ``src`` closes."""
    async for msg in src:
        if msg.type == aiohttp.WSMsgType.TEXT:
            await dst.send_str(msg.data)
        elif msg.type == aiohttp.WSMsgType.BINARY:
            await dst.send_bytes(msg.data)
        elif msg.type == aiohttp.WSMsgType.ERROR:
            break
    # src closed: close dst with the same code, so a kernel's close reason reaches the other side
    if not dst.closed:
        await dst.close(code=src.close_code or aiohttp.WSCloseCode.OK)


def _same_origin(value: str, origin: URL) -> bool:
    try:
        return URL(value).origin() == origin
    except ValueError:
        return False


def _bad_gateway(name: str) -> web.Response:
    body = (
        "<h2>Compute instance application unavailable</h2>\n"
        f'<p class="error" role="alert">The application on compute instance {html.escape(name)} '
        "did not answer. It may still be starting; try again in a moment.</p>"
    )
    return render_page("Bad gateway", body, status=502, heading=_HEADING)
