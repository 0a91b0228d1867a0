import os
import stat

import pytest

from aml_jupyterhub.keys import KeyStore, load_or_create_hub_id
from aml_jupyterhub.ssh import public_key_text

WS = ("sub", "rg", "ws")


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_one_key_per_instance_private_and_removed(tmp_path):
    store = KeyStore(tmp_path / "keys")
    a = store.create(WS, "jhalice-aaaa")
    b = store.create(WS, "jhbob-bbbb")
    assert public_key_text(a) != public_key_text(b)
    path = store.path(WS, "jhalice-aaaa")
    assert mode(path) == 0o600 and mode(path.parent) == 0o700 and mode(tmp_path / "keys") == 0o700
    assert public_key_text(store.load(WS, "jhalice-aaaa")) == public_key_text(a)
    # another workspace's instance of the same name has its own key
    assert store.load(("sub", "rg", "other"), "jhalice-aaaa") is None
    store.remove(WS, "jhalice-aaaa")
    assert store.load(WS, "jhalice-aaaa") is None and not path.with_name("jhalice-aaaa.pub").exists()
    assert store.load(WS, "jhbob-bbbb") is not None


def test_a_new_instance_never_inherits_an_old_key(tmp_path):
    store = KeyStore(tmp_path)
    old = store.create(WS, "jhalice-aaaa")
    new = store.create(WS, "jhalice-aaaa")
    assert public_key_text(old) != public_key_text(new)


def test_loose_permissions_are_tightened(tmp_path):
    store = KeyStore(tmp_path)
    store.create(WS, "jhalice-aaaa")
    path = store.path(WS, "jhalice-aaaa")
    os.chmod(path, 0o644)
    store.load(WS, "jhalice-aaaa")
    assert mode(path) == 0o600


@pytest.mark.parametrize("name", ["../etc/passwd", "", "a" * 30, "x/y"])
def test_names_cannot_escape_the_directory(tmp_path, name):
    with pytest.raises(ValueError):
        KeyStore(tmp_path).path(WS, name)


def test_hub_id_made_once_and_kept(tmp_path):
    first = load_or_create_hub_id(tmp_path / "secrets")
    assert first and first == load_or_create_hub_id(tmp_path / "secrets")
    assert mode(tmp_path / "secrets") == 0o700
    other = load_or_create_hub_id(tmp_path / "other")
    assert other != first
