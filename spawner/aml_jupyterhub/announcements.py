"""The hub pages' announcements: an admin's, and the spawner's notices beside them.

JupyterHub shows ``template_vars["announcement"]`` on every page, and a page's
own (``announcement_home``, ``announcement_spawn``, ``announcement_login``,
``announcement_logout``) instead of it where one is set. The spawner's notices
(a server the runtime limit stops soon, why the hub stopped one) must reach the
user whatever an admin announces, so every announcement the pages may show
becomes one that carries both: the admin's first (HTML, as JupyterHub takes
it), then the notices (escaped by whoever makes them).
"""

from __future__ import annotations

from typing import Callable

PAGE_ANNOUNCEMENTS = ("announcement_home", "announcement_spawn", "announcement_login", "announcement_logout")


def _with_notices(admins, notices: Callable) -> Callable:
    def announce(user) -> str:
        theirs = admins(user) if callable(admins) else admins
        return "<br>".join(part for part in (theirs or "", notices(user)) if part)

    announce.carries_notices = True
    return announce


def with_notices(template_vars: dict, notices: Callable) -> dict:
    """``template_vars`` whose ``announcement`` and each page's announcement an
    admin set also show ``notices(user)``. Applying it again changes nothing."""
    out = dict(template_vars)
    for key in ("announcement", *PAGE_ANNOUNCEMENTS):
        if key != "announcement" and key not in template_vars:
            continue  # unset: the page falls back to "announcement", which has them
        if getattr(template_vars.get(key), "carries_notices", False):
            continue
        out[key] = _with_notices(template_vars.get(key), notices)
    return out
