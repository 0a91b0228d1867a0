"""Redirect mode's endpoint listening (redirector.py): on 127.0.0.1, started
once however often it is asked, the hub's base URL as the hub gives it."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from aml_jupyterhub.redirector import Redirector


@pytest.mark.asyncio
async def test_started_once_on_loopback_and_answers_with_the_hubs_page():
    r = Redirector()
    try:
        port = await r.ensure_started("/jupyter/hub")  # as JupyterHub may give it: no trailing slash
        assert port and await r.ensure_started("/jupyter/hub") == port and r.url == f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{r.url}/jupyter/user/alice/lab?x=1", allow_redirects=False) as resp:
                assert resp.status == 302
                sent = urlsplit(resp.headers["Location"])
                assert sent.path == "/jupyter/hub/aml/open" and not sent.netloc
                assert parse_qs(sent.query) == {"path": ["/jupyter/user/alice/lab?x=1"]}
    finally:
        await r.close()
    with pytest.raises(aiohttp.ClientConnectionError):
        async with aiohttp.ClientSession() as http:
            await http.get(f"http://127.0.0.1:{port}/")
