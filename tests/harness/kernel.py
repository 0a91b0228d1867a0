"""Running code in a kernel of a user's server over its websocket, as
JupyterLab does: the round trip every test of "the server works" ends with."""

from __future__ import annotations

import asyncio
import json
import ssl
import uuid

import aiohttp


async def execute(api_url: str, token: str, code: str, *, username: str = "", ssl_context: ssl.SSLContext | None = None,
                  kernel_name: str | None = None):
    """Start a kernel at ``api_url`` (``.../user/<name>/api``), run ``code``,
    return its ``text/plain`` result; the kernel is shut down after. The
    server's default kernel unless ``kernel_name`` (on an AML instance it is
    AML's, not a "python3")."""
    async with KernelChannel(api_url, token, ssl_context, username=username, kernel_name=kernel_name) as kernel:
        return await kernel.run(code, timeout=120)


async def start_busy(api_url: str, token: str = "", code: str = "import time; time.sleep(600)",
                     page_url: str | None = None) -> str:
    """Start a kernel at ``api_url`` and leave it executing ``code`` (a long
    cell, by default); return the kernel's id once the server reports it
    ``busy``. Shut it down with ``DELETE {api_url}/kernels/{id}``.

    Without a token the server checks XSRF, as for a browser: ``page_url`` (a
    page of that server, e.g. its ``/lab``) gives the ``_xsrf`` cookie to echo."""
    headers = {"Authorization": f"token {token}"} if token else {}
    jar = aiohttp.CookieJar(unsafe=True)  # the server is at an IP address
    async with aiohttp.ClientSession(headers=headers, cookie_jar=jar, timeout=aiohttp.ClientTimeout(total=120)) as s:
        post_headers = {}
        if page_url:
            async with s.get(page_url) as r:
                assert r.status == 200, await r.text()
            xsrf = next((c.value for c in jar if c.key == "_xsrf"), None)
            assert xsrf, f"{page_url} set no _xsrf cookie"
            post_headers["X-XSRFToken"] = xsrf
        async with s.post(f"{api_url}/kernels", json={}, headers=post_headers) as r:  # the server's default kernel
            assert r.status == 201, await r.text()
            kernel_id = (await r.json())["id"]
        ws_url = api_url.replace("https://", "wss://", 1).replace("http://", "ws://", 1)
        msg_id = uuid.uuid4().hex
        async with s.ws_connect(f"{ws_url}/kernels/{kernel_id}/channels") as ws:
            await ws.send_json(_execute_request(code, msg_id))
            async for msg in ws:  # the cell runs on after the socket closes
                data = json.loads(msg.data) if msg.type == aiohttp.WSMsgType.TEXT else {}
                if (data.get("parent_header", {}).get("msg_id") == msg_id and data.get("msg_type") == "status"
                        and data["content"]["execution_state"] == "busy"):
                    break
        for _ in range(100):  # until the server's own model says so (what idle detection reads)
            async with s.get(f"{api_url}/kernels/{kernel_id}") as r:
                if (await r.json()).get("execution_state") == "busy":
                    return kernel_id
            await asyncio.sleep(0.1)
    raise AssertionError(f"kernel {kernel_id} never reported busy")


def _execute_request(code: str, msg_id: str, username: str = "") -> dict:
    return {
        "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": username, "session": msg_id,
                   "version": "5.3", "date": ""},
        "parent_header": {}, "metadata": {}, "channel": "shell",
        "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                    "allow_stdin": False, "stop_on_error": True},
    }


class KernelChannel:
    """One kernel and one open websocket to it, kept open across calls, as an
    open JupyterLab keeps it: ``async with KernelChannel(api, token) as k:
    await k.run("1+1")``. ``k.ws.closed`` says whether the socket was lost."""

    def __init__(self, api_url: str, token: str, ssl_context: ssl.SSLContext | None = None, *, username: str = "",
                 kernel_name: str | None = None):
        self.api_url, self.token, self.ssl_context, self.username = api_url, token, ssl_context, username
        self.kernel_name = kernel_name

    async def __aenter__(self) -> "KernelChannel":
        connector = aiohttp.TCPConnector(ssl=self.ssl_context) if self.ssl_context else None
        self.session = aiohttp.ClientSession(headers={"Authorization": f"token {self.token}"}, connector=connector,
                                             timeout=aiohttp.ClientTimeout(total=120))
        body = {"name": self.kernel_name} if self.kernel_name else {}
        async with self.session.post(f"{self.api_url}/kernels", json=body) as r:
            assert r.status == 201, await r.text()
            self.kernel_id = (await r.json())["id"]
        ws_url = self.api_url.replace("https://", "wss://", 1).replace("http://", "ws://", 1)
        self.ws = await self.session.ws_connect(f"{ws_url}/kernels/{self.kernel_id}/channels", heartbeat=None)
        return self

    async def run(self, code: str, timeout: float = 60) -> str:
        """``code``'s text/plain result, on this same socket."""
        msg_id = uuid.uuid4().hex
        await self.ws.send_json(_execute_request(code, msg_id, self.username))

        async def result() -> str:
            async for msg in self.ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    raise AssertionError(f"websocket ended before a result: {msg.type} {msg.data!r}")
                data = json.loads(msg.data)
                if data.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                if data["msg_type"] == "execute_result":
                    return data["content"]["data"]["text/plain"]
                if data["msg_type"] == "error":
                    raise AssertionError(data["content"])
            raise AssertionError(f"websocket closed before a result (close code {self.ws.close_code})")

        return await asyncio.wait_for(result(), timeout)

    async def __aexit__(self, *exc) -> None:
        try:
            await self.ws.close()
            async with self.session.delete(f"{self.api_url}/kernels/{self.kernel_id}"):
                pass
        except aiohttp.ClientError:
            pass
        finally:
            await self.session.close()
