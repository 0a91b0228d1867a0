"""Which Python on the instance runs the server (interpreters.choose)."""

import pytest

from aml_jupyterhub.interpreters import INSTALL, READY, Candidate, NoInterpreter, choose

HUB = "6.1.1"
REQ = ">=3.10"
SYSTEM_38 = Candidate("/usr/bin/python3", "3.8.10")
AML_310 = Candidate("/anaconda/envs/azureml_py310_sdkv2/bin/python", "3.10.14", jupyter_server="2.14.2")


def test_system_38_and_aml_env_310_installs_over_the_aml_env():
    # the configured order puts python3 first here: the rule still skips what cannot run JupyterHub
    choice = choose([SYSTEM_38, AML_310], HUB, REQ)
    assert (choice.action, choice.python, choice.version) == (INSTALL, AML_310.path, "3.10.14")


def test_only_an_old_python_is_refused_naming_the_requirement():
    with pytest.raises(NoInterpreter) as e:
        choose([SYSTEM_38], HUB, REQ)
    text = str(e.value)
    assert "/usr/bin/python3: Python 3.8.10, JupyterHub 6.1.1 needs Python >=3.10" in text
    assert "AML_SINGLEUSER_PYTHONS" in text


def test_nothing_found_is_refused_too():
    with pytest.raises(NoInterpreter, match="no Python at all"):
        choose([], HUB, REQ)


def test_an_env_already_holding_the_right_jupyterhub_is_used_as_it_is():
    ready = Candidate("/opt/custom/bin/python", "3.12.1", jupyterhub=HUB, jupyter_server="2.15.0")
    choice = choose([AML_310, ready], HUB, REQ)
    assert (choice.action, choice.python) == (READY, ready.path)


def test_another_jupyterhub_version_does_not_count_as_ready():
    older = Candidate("/opt/custom/bin/python", "3.12.1", jupyterhub="5.3.0", jupyter_server="2.15.0")
    assert choose([older], HUB, REQ).action == INSTALL  # installs beside it, never uses the wrong version


def test_the_hubs_own_finished_install_comes_first():
    choice = choose([AML_310], HUB, REQ, installed="/home/azureuser/.aml-jupyterhub/jupyterhub-6.1.1/bin/python",
                    installed_version="3.10.14")
    assert (choice.action, choice.python) == (READY, "/home/azureuser/.aml-jupyterhub/jupyterhub-6.1.1/bin/python")


def test_a_new_enough_python_without_jupyter_is_not_chosen():
    bare = Candidate("/usr/bin/python3", "3.12.3")
    with pytest.raises(NoInterpreter, match=r"Python 3.12.3 without a Jupyter server"):
        choose([bare], HUB, REQ)
    assert choose([bare, AML_310], HUB, REQ).python == AML_310.path


def test_a_python_that_does_not_run_is_named():
    with pytest.raises(NoInterpreter, match="/anaconda/envs/broken/bin/python: does not run"):
        choose([Candidate("/anaconda/envs/broken/bin/python", "")], HUB, REQ)
