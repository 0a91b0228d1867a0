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


def render_form(menu: Menu, show_prices: bool = False, selected: dict | None = None, template: str = "") -> str:
    """The form's HTML for ``menu``; ``template`` is a file path (empty: the built-in one)."""
    selected = selected or {}
    path = Path(template or BUILT_IN)
    return _template(str(path), path.stat().st_mtime).render(
        projects=menu.projects,
        profiles=menu.profiles,
        facts={p.slug: size_facts(menu.sizes.get(p.vm_size.lower()), show_prices) for p in menu.profiles},
        chosen=selected.get("profile") or menu.default_profile().slug,
        selected_project=selected.get("project") or "",
    )
