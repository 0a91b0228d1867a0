"""The hub's wheelhouse: which wheels fit an instance, and which set is sent."""

import json

from aml_jupyterhub.wheelhouse import (Target, covers, find_set, fits, pip_download_command, platforms,
                                       version_dir)

CP311 = Target.of("3.11.2", "x86_64", "2.31")


def test_platforms_go_down_from_the_instances_glibc():
    plats = platforms("x86_64", "2.31")
    assert plats[0] == "manylinux_2_31_x86_64" and "manylinux_2_17_x86_64" in plats
    assert {"manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64", "linux_x86_64"} <= set(plats)
    assert "manylinux_2_34_x86_64" not in plats


def test_wheels_that_fit_an_instance():
    assert fits("jupyterhub-6.1.1-py3-none-any.whl", CP311)
    assert fits("cryptography-51.0.1-cp39-abi3-manylinux2014_x86_64.manylinux_2_17_x86_64.whl", CP311)
    assert fits("sqlalchemy-2.0.59-cp311-cp311-manylinux2014_x86_64.manylinux_2_17_x86_64.whl", CP311)
    assert not fits("sqlalchemy-2.0.59-cp310-cp310-manylinux2014_x86_64.manylinux_2_17_x86_64.whl", CP311)
    assert not fits("greenlet-3.5.6-cp311-cp311-manylinux_2_34_x86_64.whl", CP311)  # needs a newer glibc
    assert not fits("pydantic_core-2.50.5-cp311-cp311-manylinux_2_17_aarch64.whl", CP311)
    assert not fits("not-a-wheel.tar.gz", CP311)


def test_a_set_covers_the_same_python_and_machine_on_a_newer_glibc_only():
    made = Target("3.11", "x86_64", "2.17")
    assert covers(made, CP311)
    assert not covers(made, Target.of("3.10.4", "x86_64", "2.31"))
    assert not covers(made, Target.of("3.11.2", "aarch64", "2.31"))
    assert not covers(Target("3.11", "x86_64", "2.34"), CP311)


def _house(root, version, entries, files):
    vdir = version_dir(root, version)
    vdir.mkdir(parents=True)
    for name in files:
        (vdir / name).write_bytes(b"w")
    (vdir / "targets.json").write_text(json.dumps(entries))
    return vdir


def test_find_set_sends_exactly_the_set_pip_chose_for_that_python(tmp_path):
    shared = "jupyterhub-6.1.1-py3-none-any.whl"
    a, b = "pydantic-2.14.4-py3-none-any.whl", "pydantic-2.15.0-py3-none-any.whl"
    vdir = _house(tmp_path / "ship", "6.1.1", [
        {"python": "3.10", "machine": "x86_64", "libc": "2.17", "files": [shared, a]},
        {"python": "3.11", "machine": "x86_64", "libc": "2.17", "files": [shared, b]},
    ], [shared, a, b])
    assert find_set([tmp_path / "ship"], "6.1.1", CP311) == [vdir / shared, vdir / b]
    assert find_set([tmp_path / "ship"], "6.1.2", CP311) is None  # another JupyterHub version: nothing


def test_find_set_skips_a_set_with_a_file_missing_and_looks_further(tmp_path):
    name = "jupyterhub-6.1.1-py3-none-any.whl"
    _house(tmp_path / "ship", "6.1.1", [{"python": "3.11", "machine": "x86_64", "files": [name, "gone.whl"]}],
           [name])
    cache = _house(tmp_path / "cache", "6.1.1", [{"python": "3.11", "machine": "x86_64", "files": [name]}], [name])
    assert find_set([tmp_path / "ship", tmp_path / "cache"], "6.1.1", CP311) == [cache / name]


def test_pip_download_command_names_the_target_not_the_hub():
    cmd = pip_download_command("/py", "/dest", "6.1.1", Target("3.10", "x86_64"))
    assert cmd[:4] == ["/py", "-m", "pip", "download"]
    assert "--only-binary=:all:" in cmd and cmd[-1] == "jupyterhub==6.1.1"
    assert cmd[cmd.index("--python-version") + 1] == "3.10"
    assert "cp310" in cmd and "manylinux2014_x86_64" in cmd
