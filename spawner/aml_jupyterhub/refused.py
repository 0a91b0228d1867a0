"""The page a signed-in but refused user sees, instead of a bare 403.

Azure AD keeps its session, so "log in again" would sign the same person in
again: the page says who is signed in, whom the hub admits (the groups by
display name where the hub knows them), whom to ask, and offers a sign-out
that also ends the Azure AD session (the hub's logout, which goes on to the
tenant's logout endpoint).
"""

from __future__ import annotations

import html

from oauthenticator.oauth2 import OAuthCallbackHandler
from tornado import web


def group_list(ids, names: dict) -> str:
    shown = sorted(names.get(i, i) for i in ids)
    if not shown:
        return ""
    return shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " or " + shown[-1]


def refusal(display: str, username: str, allowed: str, contact: str) -> str:
    """The plain-text message (logs, API clients)."""
    who = f"{display} ({username})" if display and display != username else username
    rule = f"This hub admits members of {allowed}." if allowed else "This hub admits only the users an admin listed."
    return f"You are signed in as {who}, who may not use this hub. {rule} Ask {contact} for access, or sign out and " \
           "sign in with another account."


def refusal_html(display: str, username: str, allowed: str, contact: str, logout_url: str) -> str:
    e = html.escape
    who = f"<strong>{e(display)}</strong> ({e(username)})" if display and display != username else \
        f"<strong>{e(username)}</strong>"
    rule = (f"This hub admits members of the Azure AD group{'s' if ' or ' in allowed else ''} "
            f"<strong>{e(allowed)}</strong>." if allowed else "This hub admits only the users an admin listed.")
    return (
        f'<p id="aml-refused">You are signed in as {who}, who may not use this hub.</p>'
        f"<p>{rule} To get access, ask {e(contact)} to add you.</p>"
        f'<p>Signed in with the wrong account? <a id="aml-sign-out" class="btn btn-primary" href="{e(logout_url)}">'
        "Sign out</a> (also of Azure AD), then sign in with another one.</p>"
    )


class RefusedCallbackHandler(OAuthCallbackHandler):
    """The OAuth callback, with the page above for a user who is not allowed."""

    async def get(self):
        self.check_arguments()
        user = await self.login_user()
        if user is not None:
            self.redirect(self.get_next_url(user))
            return
        a = self.authenticator
        model = getattr(self, "_aml_auth_model", None) or {}
        claims = (model.get("auth_state") or {}).get("user") or {}
        username = model.get("name") or claims.get("upn") or "an unknown account"
        display = claims.get("name") or ""
        allowed = group_list(a.allowed_groups, a.group_display_names)
        contact = a.admin_contact or "your hub's administrator"
        err = web.HTTPError(403, reason="Not authorized for this hub")
        err.jupyterhub_message = refusal(display, username, allowed, contact)
        err.jupyterhub_html_message = refusal_html(display, username, allowed, contact,
                                                   self.settings.get("logout_url") or f"{self.hub.base_url}logout")
        self.log.warning("refused %s: not in the allowed groups or users", username)
        raise err
