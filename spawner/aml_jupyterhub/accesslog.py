"""The hub's access log, without secrets hidden one URL deep.

JupyterHub's ``log_request`` hides query parameters such as ``code`` and
``state``, but not inside another URL passed as a parameter: the proxy asks
the hub for its error page as ``/hub/error/503?url=<the failed request>``,
and a failed OAuth callback then logs its code and state in the clear. This
wraps ``log_request`` and hides them there too.

    c.JupyterHub.tornado_settings = {"log_function": aml_jupyterhub.accesslog.log_request}
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from jupyterhub.log import SCRUB_PARAM_KEYS
from jupyterhub.log import log_request as jupyterhub_log_request
from tornado.log import access_log

HIDDEN = "[secret]"


def scrub_uri(uri: str, depth: int = 3) -> str:
    """``uri`` with secret-looking parameters hidden, also in URLs given as parameters."""
    parts = urlsplit(uri)
    if not parts.query or depth <= 0:
        return uri
    pairs, changed = [], False
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if any(word in key.lower() for word in SCRUB_PARAM_KEYS):
            new = HIDDEN
        elif "?" in value:
            new = scrub_uri(value, depth - 1)
        else:
            new = value
        changed |= new != value
        pairs.append((key, new))
    if not changed:
        return uri
    return urlunsplit(parts._replace(query=urlencode(pairs, safe="/[]")))


def log_service_request(handler) -> None:
    """Tornado's access-log line for the hub's other programs (the proxy's error pages, the
    tunnel service), with the same secrets hidden: the proxy's error page for a failed OAuth
    callback is asked for with that callback's URL, code and state in it."""
    status = handler.get_status()
    log = access_log.info if status < 400 else access_log.warning if status < 500 else access_log.error
    request = handler.request
    log("%d %s %s (%s) %.2fms", status, request.method, scrub_uri(request.uri), request.remote_ip,
        1000.0 * request.request_time())


def log_request(handler) -> None:
    request = handler.request
    original = request.uri
    request.uri = scrub_uri(original)
    try:
        jupyterhub_log_request(handler)
    finally:
        request.uri = original
