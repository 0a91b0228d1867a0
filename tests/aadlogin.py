"""Signing in through the emulated Azure AD's login page, as a browser would
(a requests.Session that follows redirects and keeps cookies)."""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import urljoin

import requests


class FormParser(HTMLParser):
    """A page's first form: its action and its named inputs."""

    def __init__(self):
        super().__init__()
        self.action = None
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form" and self.action is None:
            self.action = a.get("action")
        elif tag == "input" and a.get("name"):
            self.fields[a["name"]] = a.get("value") or ""


def browser(ca_file: str) -> requests.Session:
    s = requests.Session()
    s.trust_env = False  # REQUESTS_CA_BUNDLE would override verify
    s.verify = ca_file
    return s


def submit_login(session: requests.Session, page: requests.Response, username: str, password: str) -> requests.Response:
    """Fill in and post the login form ``page`` shows; follow the redirects."""
    form = FormParser()
    form.feed(page.text)
    assert form.action, f"no login form at {page.url}:\n{page.text[:500]}"
    fields = {**form.fields, "username": username, "password": password}
    return session.post(urljoin(page.url, form.action), data=fields, timeout=60)


def open_with_login(session: requests.Session, url: str, username: str, password: str) -> requests.Response:
    """GET ``url``; if it lands on the login page, sign in and land where it leads."""
    r = session.get(url, timeout=60)
    if "<form" in r.text and 'name="password"' in r.text:
        r = submit_login(session, r, username, password)
    return r
