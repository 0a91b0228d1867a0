"""Running code in a kernel of a user's server over its websocket, as
JupyterLab does: the round trip every test of "the server works" ends with."""

from __future__ import annotations

import json
import ssl
import uuid

import aiohttp


async def execute(api_url: str, token: str, code: str, *, username: str = "", ssl_context: ssl.SSLContext | None = None):
    """Start a kernel at ``api_url`` (``.../user/<name>/api``), run ``code``,
    return its ``text/plain`` result; the kernel is shut down after."""
    headers = {"Authorization": f"token {token}"}
    connector = aiohttp.TCPConnector(ssl=ssl_context) if ssl_context else None
    async with aiohttp.ClientSession(headers=headers, connector=connector,
                                     timeout=aiohttp.ClientTimeout(total=120)) as s:
        async with s.post(f"{api_url}/kernels", json={"name": "python3"}) as r:
            assert r.status == 201, await r.text()
            kernel = await r.json()
        ws_url = api_url.replace("https://", "wss://", 1).replace("http://", "ws://", 1)
        ws_url += f"/kernels/{kernel['id']}/channels"
        msg_id = uuid.uuid4().hex
        result = None
        try:
            async with s.ws_connect(ws_url) as ws:
                await ws.send_json({
                    "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": username,
                               "session": msg_id, "version": "5.3", "date": ""},
                    "parent_header": {}, "metadata": {}, "channel": "shell",
                    "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                                "allow_stdin": False, "stop_on_error": True},
                })
                async for msg in ws:
                    if msg.type != aiohttp.WSMsgType.TEXT:
                        raise AssertionError(f"websocket ended before a result: {msg.type} {msg.data!r}")
                    data = json.loads(msg.data)
                    if data.get("parent_header", {}).get("msg_id") != msg_id:
                        continue
                    if data["msg_type"] == "execute_result":
                        result = data["content"]["data"]["text/plain"]
                        break
                    if data["msg_type"] == "error":
                        raise AssertionError(data["content"])
        finally:
            async with s.delete(f"{api_url}/kernels/{kernel['id']}"):
                pass
    return result
