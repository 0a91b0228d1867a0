"""Signing in through the emulated Azure AD's login page, as a browser would
(a requests.Session that keeps cookies)."""

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


def form_of(html_text: str) -> FormParser:
    form = FormParser()
    form.feed(html_text)
    return form


def browser(ca_file: str | None = None) -> requests.Session:
    s = requests.Session()
    s.trust_env = False  # REQUESTS_CA_BUNDLE would override verify
    if ca_file:
        s.verify = ca_file
    return s


def submit_login(session: requests.Session, page: requests.Response, username: str, password: str,
                 **kw) -> requests.Response:
    """Fill in and post the login form ``page`` shows (``kw`` to session.post,
    e.g. allow_redirects=False; by default the redirects are followed)."""
    form = form_of(page.text)
    assert form.action, f"no login form at {page.url}:\n{page.text[:500]}"
    fields = {**form.fields, "username": username, "password": password}
    kw.setdefault("timeout", 60)
    return session.post(urljoin(page.url, form.action), data=fields, **kw)


def open_with_login(session: requests.Session, url: str, username: str, password: str) -> requests.Response:
    """GET ``url``; if it lands on the login page, sign in and land where it leads."""
    r = session.get(url, timeout=60)
    if "<form" in r.text and 'name="password"' in r.text:
        r = submit_login(session, r, username, password)
    return r


def hub_login(session: requests.Session, hub_url: str, username: str, next_path: str = "/hub/home") -> requests.Response:
    """A browser's login to a hub step by step: the hub's oauth_login, Azure
    AD's form, the redirect to the hub's callback; the callback's own answer
    (its redirect is not followed). The password is the test identity's."""
    r = session.get(f"{hub_url}/hub/oauth_login?next={next_path}", allow_redirects=False, timeout=60)
    assert r.status_code == 302, (r.status_code, r.text[:500])
    page = session.get(r.headers["Location"], timeout=60)
    assert page.status_code == 200 and "Local Azure AD emulator" in page.text, (page.status_code, page.text[:500])
    back = submit_login(session, page, username, f"{username}-password", allow_redirects=False)
    assert back.status_code == 302, back.text[:500]
    assert back.headers["Location"].startswith(f"{hub_url}/hub/oauth_callback?code="), back.headers["Location"]
    return session.get(back.headers["Location"], allow_redirects=False, timeout=60)
