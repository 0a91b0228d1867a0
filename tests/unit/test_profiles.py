"""The size and workspace menus: parsing admin config, who may pick what,
one validation for form and API, and the form's markup."""

from html.parser import HTMLParser
from types import SimpleNamespace

import pytest
from traitlets import TraitError

from aml_jupyterhub.compute.models import VmSize
from aml_jupyterhub.config import AMLSettings
from aml_jupyterhub.form import render_form
from aml_jupyterhub.profiles import (
    DEFAULT_PROFILES,
    OptionsError,
    Project,
    choose,
    menu_for,
    parse_profiles,
    parse_projects,
)

DEFAULT_WS = Project("default", "ws", "sub", "rg", "ws")
OFFERED = {
    "standard_ds2_v2": VmSize("Standard_DS2_v2", "f", 2, 7, 0, 0.146),
    "standard_ds3_v2": VmSize("Standard_DS3_v2", "f", 4, 14, 0, 0.293),
    "standard_ds4_v2": VmSize("Standard_DS4_v2", "f", 8, 28, 0, 0.585),
    "standard_nc4as_t4_v3": VmSize("Standard_NC4as_T4_v3", "g", 4, 28, 1, 0.526),
}
PROFILES = parse_profiles(DEFAULT_PROFILES + [
    {"slug": "huge", "display_name": "Huge", "vm_size": "Standard_ND96asr_v4"},
    {"slug": "staff", "display_name": "Staff", "vm_size": "Standard_DS4_v2", "groups": ["staff"]},
])


def test_defaults_are_the_original_menu():
    assert [p.display_name for p in parse_profiles(DEFAULT_PROFILES)] == ["Small", "Medium", "Large", "GPU"]


@pytest.mark.parametrize("raw,text", [
    ([], "at least one"),
    (["small"], "must be a mapping"),
    ([{"slug": "a b", "vm_size": "x"}], "slug"),
    ([{"slug": "a", "vm_size": "x"}, {"slug": "a", "vm_size": "y"}], "used twice"),
    ([{"slug": "a"}], "needs a vm_size"),
    ([{"slug": "a", "vm_size": "x", "colour": "red"}], "unknown keys: colour"),
])
def test_bad_profile_config(raw, text):
    with pytest.raises(ValueError, match=text):
        parse_profiles(raw)


def test_bad_project_config():
    with pytest.raises(ValueError, match="missing resource_group"):
        parse_projects([{"slug": "p", "subscription_id": "s", "workspace_name": "w"}], DEFAULT_WS)
    assert parse_projects([], DEFAULT_WS) == [DEFAULT_WS]


def test_menu_hides_unoffered_and_other_groups():
    menu = menu_for(PROFILES, [DEFAULT_WS], {"students"}, False, OFFERED)
    assert [p.slug for p in menu.profiles] == ["small", "medium", "large", "gpu"]
    assert "does not offer" in menu.hidden["huge"]
    assert "not available to your groups" in menu.hidden["staff"]
    staff = menu_for(PROFILES, [DEFAULT_WS], {"staff"}, False, OFFERED)
    assert "staff" in [p.slug for p in staff.profiles]
    admin = menu_for(PROFILES, [DEFAULT_WS], set(), True, OFFERED)
    assert "staff" in [p.slug for p in admin.profiles]
    unknown_region = menu_for(PROFILES, [DEFAULT_WS], set(), False, None)
    assert "huge" in [p.slug for p in unknown_region.profiles]


def test_choose_defaults_and_refusals():
    menu = menu_for(PROFILES, [DEFAULT_WS], set(), False, OFFERED)
    assert choose(menu, {})[0].slug == "small"
    assert choose(menu, {"profile": "gpu"})[0].vm_size == "Standard_NC4as_T4_v3"
    with pytest.raises(OptionsError, match="Unknown size 'nope'. Choose one of: small, medium, large, gpu."):
        choose(menu, {"profile": "nope"})
    with pytest.raises(OptionsError, match="The size 'staff' is not available to your groups"):
        choose(menu, {"profile": "staff"})
    with pytest.raises(OptionsError, match="Unknown option"):
        choose(menu, {"image": "x"})


def test_projects_choice():
    projects = parse_projects([
        {"slug": "a", "display_name": "Team A", "subscription_id": "s", "resource_group": "r", "workspace_name": "wa"},
        {"slug": "b", "display_name": "Team B", "subscription_id": "s", "resource_group": "r", "workspace_name": "wb",
         "groups": ["team-b"]},
    ], DEFAULT_WS)
    one = menu_for(PROFILES, projects, set(), False, OFFERED)
    assert choose(one, {})[1].slug == "a"  # one choice: no question
    two = menu_for(PROFILES, projects, {"team-b"}, False, OFFERED)
    with pytest.raises(OptionsError, match="Choose a project: a, b."):
        choose(two, {})
    assert choose(two, {"project": "b"})[1].workspace_name == "wb"
    with pytest.raises(OptionsError, match="Unknown or unavailable project 'b'"):
        choose(one, {"project": "b"})
    nothing = menu_for(PROFILES, projects[1:], set(), False, OFFERED)
    with pytest.raises(OptionsError, match="None of the configured workspaces"):
        choose(nothing, {})


class Inputs(HTMLParser):
    def __init__(self):
        super().__init__()
        self.radios, self.selects, self.checked = [], [], None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "input" and a.get("type") == "radio":
            self.radios.append(a["value"])
            if "checked" in a:
                self.checked = a["value"]
        if tag == "select":
            self.selects.append(a["name"])


def test_form_markup():
    menu = menu_for(PROFILES, [DEFAULT_WS], set(), False, OFFERED)
    html = render_form(menu, show_prices=True, selected={"profile": "medium"})
    parsed = Inputs()
    parsed.feed(html)
    assert parsed.radios == ["small", "medium", "large", "gpu"]
    assert parsed.checked == "medium"  # a re-shown form keeps the choice
    assert parsed.selects == []  # one project: no question
    assert "4 vCPUs · 14 GiB RAM · about $0.29/hour" in html
    assert "1 GPU" in html
    assert "list-group-item" in html  # Bootstrap 5
    assert "$" not in render_form(menu, show_prices=False)


def test_form_escapes_admin_text():
    evil = parse_profiles([{"slug": "x", "display_name": "<script>alert(1)</script>", "vm_size": "Standard_DS2_v2"}])
    html = render_form(menu_for(evil, [DEFAULT_WS], set(), False, OFFERED))
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_an_admins_form_template_replaces_the_built_in_one(tmp_path):
    template = tmp_path / "form.html"
    template.write_text("{% for p in profiles %}<b>{{ p.display_name }}</b>[{{ facts[p.slug] }}]"
                        "{% if p.slug == chosen %}*{% endif %}{% endfor %}")
    evil = parse_profiles([{"slug": "x", "display_name": "<script>1</script>", "vm_size": "Standard_DS3_v2",
                            "default": True}])
    html = render_form(menu_for(evil, [DEFAULT_WS], set(), False, OFFERED), template=str(template))
    assert html.startswith("<b>&lt;script&gt;1&lt;/script&gt;</b>[4 vCPUs") and html.endswith("*")


def test_a_missing_form_template_is_refused_when_configured(tmp_path):
    with pytest.raises(TraitError, match="is not a file"):
        AMLSettings(options_form_template=str(tmp_path / "nope.html"))


def _existing(vm_size="Standard_DS3_v2", state="Stopped"):
    """What the form reads of the instance (an InstanceInfo's name, size and state)."""
    return SimpleNamespace(name="jhalice-abcdefghijkl", state=state, vm_size=vm_size)


def test_the_form_says_which_instance_the_server_has_and_checks_its_size():
    menu = menu_for(parse_profiles(DEFAULT_PROFILES), [DEFAULT_WS], set(), False, OFFERED)
    html = render_form(menu, existing=_existing())
    assert "Your compute instance <strong>jhalice-abcdefghijkl</strong> has size <code>Standard_DS3_v2</code>" in html
    assert "(Medium) and is Stopped" in html and "Picking another size resizes it first" in html
    assert 'id="aml-profile-medium" value="medium" checked' in html and "disabled" not in html
    assert html.count("your instance") == 1


def test_with_resizing_off_only_the_instances_size_can_be_picked():
    menu = menu_for(parse_profiles(DEFAULT_PROFILES), [DEFAULT_WS], set(), False, OFFERED)
    html = render_form(menu, existing=_existing(), resize=False)
    assert "This hub does not resize instances" in html
    for slug in ("small", "large"):
        assert f'id="aml-profile-{slug}" value="{slug}" disabled' in html
    assert 'id="aml-profile-medium" value="medium" checked>' in html


def test_an_instance_of_a_size_no_profile_has_locks_nothing():
    menu = menu_for(parse_profiles(DEFAULT_PROFILES), [DEFAULT_WS], set(), False, OFFERED)
    html = render_form(menu, existing=_existing("Standard_E4s_v3"), resize=False)
    assert "has size <code>Standard_E4s_v3</code> and is Stopped" in html and "disabled" not in html
