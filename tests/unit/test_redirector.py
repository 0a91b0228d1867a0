"""Redirect mode's endpoint (redirector.py) without a server: where it sends
a request. It knows no instance: every path, query and all, goes to the
hub's own page, quoted whole (its listening socket: tests/integration/test_redirector_endpoint.py)."""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qs, urlsplit

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from aml_jupyterhub.redirector import OPEN_PATH, Redirector


def sent_to(redirector: Redirector, method: str, path_qs: str) -> str:
    """The Location the endpoint answers ``method path_qs`` with."""
    with pytest.raises(web.HTTPFound) as found:
        asyncio.run(redirector._handle(make_mocked_request(method, path_qs)))
    return found.value.location


def test_the_hubs_open_page_gets_the_whole_path_and_query():
    r = Redirector()
    location = sent_to(r, "GET", "/user/alice/gpu2/lab/tree/a b.ipynb?reset&x=1")
    parts = urlsplit(location)
    assert parts.path == f"/hub/{OPEN_PATH}" and not parts.netloc
    assert parse_qs(parts.query) == {"path": ["/user/alice/gpu2/lab/tree/a%20b.ipynb?reset&x=1"]}


def test_the_path_is_one_quoted_parameter():
    # nothing of the user's path can become another parameter or leave the hub,
    # also once aiohttp has normalised the Location it sends
    path = "/user/alice/?next=https://evil.example&path=/user/bob/#top"
    assert Redirector().location(path) == ("/hub/aml/open?path=%2Fuser%2Falice%2F%3Fnext%3Dhttps%3A%2F%2F"
                                           "evil.example%26path%3D%2Fuser%2Fbob%2F%23top")
    sent = urlsplit(sent_to(Redirector(), "GET", "/user/alice/?next=https://evil.example&path=/user/bob/"))
    assert (sent.netloc, sent.path, sent.fragment) == ("", "/hub/aml/open", "")
    assert parse_qs(sent.query) == {"path": ["/user/alice/?next=https://evil.example&path=/user/bob/"]}


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "DELETE"])
def test_every_method_is_sent_on(method):
    assert sent_to(Redirector(), method, "/user/alice/api/kernels").startswith("/hub/aml/open?path=")


def test_under_another_base_url():
    r = Redirector()
    r.hub_base_url = "/jupyter/hub/"
    assert r.location("/jupyter/user/alice/") == "/jupyter/hub/aml/open?path=%2Fjupyter%2Fuser%2Falice%2F"


def test_its_url_is_where_it_listens():
    assert Redirector(host="127.0.0.1", port=8123).url == "http://127.0.0.1:8123"


def test_closing_one_that_never_started_is_a_no_op():
    r = Redirector()
    asyncio.run(r.close())
    assert r._runner is None


def test_with_users_on_hosts_of_their_own_the_redirect_names_the_hubs_origin():
    r = Redirector()
    r.hub_origin = "https://hub.example.org"
    sent = urlsplit(sent_to(r, "GET", "/user/alice/lab"))
    assert (sent.scheme, sent.netloc, sent.path) == ("https", "hub.example.org", "/hub/aml/open")
    assert parse_qs(sent.query) == {"path": ["/user/alice/lab"]}


def test_the_proxy_reaches_it_where_it_is_told_and_its_address_is_fixed_once_it_listens():
    r = Redirector()
    r.configure("0.0.0.0", 8083, "hub")
    assert r.url == "http://hub:8083"
    r.configure("0.0.0.0", 8083, "")
    assert r.url == "http://127.0.0.1:8083"  # listening everywhere: reached on this machine
