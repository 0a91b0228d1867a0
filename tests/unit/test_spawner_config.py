"""How the spawner is named and configured."""

from importlib.metadata import entry_points

import pytest
from traitlets import TraitError

from aml_jupyterhub.aml_spawner import AMLSpawner


def test_entry_point_and_import_path_are_the_same_class():
    (ep,) = [e for e in entry_points(group="jupyterhub.spawners") if e.name == "aml"]
    assert ep.load() is AMLSpawner
    from aml_jupyterhub import aml_spawner

    assert aml_spawner.AMLSpawner is AMLSpawner


def test_jupyterhub_resolves_the_short_name():
    from jupyterhub.app import JupyterHub

    hub = JupyterHub()
    hub.spawner_class = "aml"
    assert hub.spawner_class is AMLSpawner


def test_defaults_suit_a_real_vm():
    s = AMLSpawner()
    assert s.start_timeout == 1200
    assert s.stop_action == "stop" and s.connect_mode == "proxy"
    assert "PATH" not in s.env_keep  # the hub's PATH means nothing on the instance


@pytest.mark.parametrize("trait,value", [
    ("connect_mode", "tunnel"),
    ("stop_action", "destroy"),
    ("ssh_address", "both"),
    ("instance_name_prefix", "Has-Caps"),
    ("idle_shutdown_minutes", 5),
    ("profiles", [{"slug": "x"}]),
])
def test_bad_settings_refused_with_the_trait_named(trait, value):
    with pytest.raises(TraitError) as err:
        AMLSpawner(**{trait: value})
    assert trait.split("_")[0] in str(err.value) or "vm_size" in str(err.value)


def _ours() -> dict:
    """The settings this package defines (in AMLSettings, or on AMLSpawner itself), not JupyterHub's."""
    from aml_jupyterhub.config import AMLSettings

    traits = {name: t for name, t in AMLSpawner.class_traits(config=True).items()
              if t.this_class in (AMLSpawner, AMLSettings)}
    assert "connect_mode" in traits and "max_runtime_hours" in traits and "start_timeout" not in traits
    return traits


def test_every_setting_is_documented():
    for name, trait in _ours().items():
        assert trait.help and len(trait.help) > 20, name


def test_readme_documents_every_setting():
    from tests.harness.repo import ROOT

    readme = (ROOT / "README.md").read_text()
    missing = [name for name in _ours() if f"`{name}`" not in readme]
    assert not missing, f"README's settings table lacks {missing}"


def test_the_recorded_profile_is_the_one_that_runs():
    """A server kept at its instance's size records that size's profile (or none), never the one asked for."""
    s = AMLSpawner()
    s.user_options = {"profile": "large", "project": "p"}
    s._record_profile("")  # no profile has the instance's size
    assert s.user_options == {"project": "p"}
    s._record_profile("medium")
    assert s.user_options == {"project": "p", "profile": "medium"}
