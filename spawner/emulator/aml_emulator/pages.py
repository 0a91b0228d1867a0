"""The HTML pages the emulator shows a browser: sign-in, errors, sign-out.

Small self-contained pages (no scripts but the form_post auto-submit, no
external resources), served with headers that keep them out of caches and
frames. The application proxy uses :func:`render_page` for its own pages too.
Every value put into a page is escaped here; callers pass plain text, except
``body_html`` of :func:`render_page`, which must already be escaped.
"""

from __future__ import annotations

import html
import uuid
from typing import Mapping

from aiohttp import web

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;background:#f3f4f6;color:#1f2937;margin:0}
main{max-width:26rem;margin:4rem auto;background:#fff;padding:2rem;border-radius:8px;box-shadow:0 1px 4px rgba(0,0,0,.15)}
h1{font-size:1.1rem;margin:0 0 .25rem;color:#0f5fa8}
h2{font-size:1.5rem;margin:.5rem 0 1rem}
p{line-height:1.45}
.note{font-size:.875rem;color:#4b5563}
label{display:block;font-weight:600;margin:1rem 0 .25rem}
input[type=text],input[type=password]{width:100%;box-sizing:border-box;padding:.55rem;font-size:1rem;border:1px solid #6b7280;border-radius:4px}
input:focus,button:focus,a:focus{outline:3px solid #2563eb;outline-offset:2px}
button{margin-top:1.5rem;padding:.6rem 1.4rem;font-size:1rem;background:#0f5fa8;color:#fff;border:0;border-radius:4px;cursor:pointer}
.error{background:#fef2f2;border:1px solid #b91c1c;color:#7f1d1d;padding:.75rem;border-radius:4px}
code{word-break:break-all}
"""

_CSP = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'"


def render_page(
    title: str, body_html: str, status: int = 200, *, csp: str = _CSP, heading: str = "Local Azure AD emulator"
) -> web.Response:
    """A small self-contained HTML page (also used by the application proxy).

    ``body_html`` must already be escaped.
    """
    page = (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head>"
        f"<body><main>\n<h1>{html.escape(heading)}</h1>\n{body_html}\n</main></body></html>\n"
    )
    return web.Response(
        text=page,
        status=status,
        content_type="text/html",
        headers={
            "Cache-Control": "no-store",
            "Pragma": "no-cache",
            "X-Frame-Options": "DENY",
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            "Content-Security-Policy": csp,
        },
    )


def _hidden_inputs(values: Mapping[str, str]) -> str:
    return "\n".join(
        f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">' for k, v in values.items()
    )


def error_page(code: int, message: str, status: int = 400) -> web.Response:
    """Azure AD's "trouble signing you in" page for AADSTS ``code``."""
    trace = str(uuid.uuid4())
    body = (
        "<h2>Sorry, but we're having trouble signing you in.</h2>\n"
        f'<p class="error" role="alert"><strong>AADSTS{code}</strong>: {html.escape(message)}</p>\n'
        f'<p class="note">Trace ID: <code>{trace}</code></p>'
    )
    return render_page(f"AADSTS{code}", body, status)


def login_page(tenant: str, hidden: Mapping[str, str], *, target: str, username: str = "", error: str = "") -> web.Response:
    """The sign-in form; ``hidden`` fields go back with it, ``target`` names what the user signs in to.

    With a username already known (a hint, or a failed attempt) the password
    field takes the focus; an error is tied to both fields for screen readers.
    """
    described = ' aria-describedby="login-error" aria-invalid="true"' if error else ""
    focus_user = "" if username else " autofocus"
    focus_pass = " autofocus" if username else ""
    error_html = f'<p class="error" id="login-error" role="alert">{html.escape(error)}</p>\n' if error else ""
    body = (
        "<h2>Sign in</h2>\n"
        '<p class="note">A local stand-in for Microsoft Entra ID (Azure AD). It knows only the test '
        "accounts of its identity file: never type a real password here.</p>\n"
        f'<p class="note">Signing in to <strong>{html.escape(target)}</strong>.</p>\n'
        f"{error_html}"
        f'<form method="post" action="/{html.escape(tenant)}/login">\n'
        '<label for="username">Username or email</label>\n'
        f'<input type="text" id="username" name="username" autocomplete="username" required '
        f'value="{html.escape(username)}"{described}{focus_user}>\n'
        '<label for="password">Password</label>\n'
        f'<input type="password" id="password" name="password" autocomplete="current-password" required{described}{focus_pass}>\n'
        f"{_hidden_inputs(hidden)}\n"
        '<button type="submit">Sign in</button>\n'
        "</form>"
    )
    return render_page("Sign in to your account", body)


def form_post_page(redirect_uri: str, values: Mapping[str, str]) -> web.Response:
    """``response_mode=form_post``: a form that posts ``values`` to the app, submitted by script.

    The button is there for a browser that runs no scripts.
    """
    body = (
        "<h2>Signing you in…</h2>\n"
        f'<form method="post" action="{html.escape(redirect_uri)}">\n{_hidden_inputs(values)}\n'
        "<p>Continue to the application.</p><button type=\"submit\">Continue</button></form>\n"
        "<script>document.forms[0].submit()</script>"
    )
    return render_page("Working...", body, csp=_CSP + "; script-src 'unsafe-inline'")


def signed_out_page(refused_target: str = "") -> web.Response:
    """After sign-out; ``refused_target`` is a post-logout URI the emulator would not follow."""
    note = (
        f"<p>The emulator did not send you on to <code>{html.escape(refused_target)}</code>: "
        "only the origin of a registered redirect URI is allowed.</p>"
        if refused_target
        else ""
    )
    return render_page("Signed out", f"<h2>You signed out of your account</h2>\n{note}")
