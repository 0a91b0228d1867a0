"""The options form: a Jinja template an admin can replace.

The built-in one is ``templates/options_form.html``; an admin's
(``AMLSpawner.options_form_template``, a file path) gets the same values,
as kubespawner's ``profile_form_template``. Autoescaped: a profile's name
from a config file cannot inject markup.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import jinja2

from .profiles import Menu, size_facts

BUILT_IN = Path(__file__).parent / "templates" / "options_form.html"


@lru_cache(maxsize=8)
def _template(path: str, mtime: float) -> jinja2.Template:
    # keyed by mtime too: an admin's edited template is read again
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    return env.from_string(Path(path).read_text())


def render_form(menu: Menu, show_prices: bool = False, selected: dict | None = None, template: str = "",
                existing=None, resize: bool = True) -> str:
    """The form's HTML for ``menu``; ``template`` is a file path (empty: the built-in one).

    ``existing`` is the server's instance when it has one (an InstanceInfo):
    the form says its size, preselects the profile of that size, and with
    ``resize`` off offers only that one (the spawner would refuse another)."""
    selected = selected or {}
    own = None
    if existing is not None:
        size = (existing.vm_size or "").lower()
        own = next((p for p in menu.profiles if p.vm_size.lower() == size), None)
    chosen = selected.get("profile") or (own.slug if own else menu.default_profile().slug)
    path = Path(template or BUILT_IN)
    return _template(str(path), path.stat().st_mtime).render(
        projects=menu.projects,
        profiles=menu.profiles,
        facts={p.slug: size_facts(menu.sizes.get(p.vm_size.lower()), show_prices) for p in menu.profiles},
        chosen=chosen,
        selected_project=selected.get("project") or "",
        existing=None if existing is None else {
            "name": existing.name, "vm_size": existing.vm_size, "state": existing.state,
            "profile": own.slug if own else "", "profile_name": own.display_name if own else "",
        },
        resize=resize,
        locked=existing is not None and own is not None and not resize,  # only its own size can be picked
    )
