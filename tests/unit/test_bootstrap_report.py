"""Reading the instance's probe (bootstrap.parse_report) and the words it runs."""

from aml_jupyterhub.bootstrap import _patterns, is_hub_install, parse_report
from aml_jupyterhub.interpreters import Candidate

PROBE_OUTPUT = """\
machine x86_64
libc 2.31
candidate {"path": "/anaconda/envs/azureml_py310_sdkv2/bin/python", "version": "3.11.2", "prefix": "/anaconda/envs/azureml_py310_sdkv2", "jupyterhub": null, "jupyter_server": "2.17.0"}
candidate {"path": "/usr/bin/python3", "version": "3.9.2", "prefix": "/usr", "jupyterhub": null, "jupyter_server": null}
candidate not json
installed /home/azureuser/.aml-jupyterhub/jupyterhub-6.1.1/bin/python 3.11.2
ports 40001 40002
"""


def test_parse_report():
    r = parse_report(PROBE_OUTPUT)
    assert r.candidates == [
        Candidate("/anaconda/envs/azureml_py310_sdkv2/bin/python", "3.11.2", None, "2.17.0"),
        Candidate("/usr/bin/python3", "3.9.2"),
    ]
    assert (r.installed, r.installed_version) == ("/home/azureuser/.aml-jupyterhub/jupyterhub-6.1.1/bin/python",
                                                  "3.11.2")
    assert (r.machine, r.libc, r.port, r.api_port) == ("x86_64", "2.31", 40001, 40002)


def test_parse_report_without_install_or_ports():
    r = parse_report("machine x86_64\nports \n")
    assert (r.installed, r.port, r.api_port, r.candidates) == (None, 0, 0, [])


def test_patterns_expand_home_and_globs_only():
    words = _patterns(["$HOME/.aml-jupyterhub/venv/bin/python", "/anaconda/envs/*/bin/python", "python3",
                       "/opt/a b/python; rm -rf ~"])
    assert words.split(" ")[:3] == ['"$HOME"/.aml-jupyterhub/venv/bin/python', "/anaconda/envs/*/bin/python",
                                    "python3"]
    assert "'/opt/a b/python; rm -rf ~'" in words  # quoted: never run


def test_is_hub_install():
    assert is_hub_install("/home/azureuser/.aml-jupyterhub/jupyterhub-6.1.1/bin/python", "6.1.1")
    assert not is_hub_install("/home/azureuser/.aml-jupyterhub/jupyterhub-6.1.0/bin/python", "6.1.1")
    assert not is_hub_install("/anaconda/envs/azureml_py310_sdkv2/bin/python", "6.1.1")
