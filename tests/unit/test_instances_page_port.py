"""The hub leaves its instances page out, saying why, when another program
holds the page's port past the few seconds a killed hub's page needs to go
(the real port, in a real hub: tests/integration/test_product_config.py)."""

import os


def _config_with_page(port=10102):
    from traitlets.config import Config

    from aml_jupyterhub.hubconfig import add_instances_page

    c = Config()
    add_instances_page(c, f"http://127.0.0.1:{port}")
    return c


def test_the_hub_leaves_the_page_out_when_its_port_stays_taken(capsys):
    from aml_jupyterhub.hubconfig import leave_out_the_instances_page_if_its_port_is_taken

    c, asked = _config_with_page(), []
    leave_out_the_instances_page_if_its_port_is_taken(
        c, wait=2, in_use=lambda host, port: asked.append((host, port)) or True, sleep=lambda s: None)
    assert c.JupyterHub.services == [] and c.JupyterHub.load_roles == []
    assert asked == [("127.0.0.1", 10102)] * 4  # every half second for the 2 s an orphan page needs to go
    err = capsys.readouterr().err
    assert "instances page is off" in err and "port 10102" in err and "HUB_INSTANCES_PAGE_PORT" in err


def test_the_hub_keeps_the_page_once_its_port_is_let_go(capsys):
    from aml_jupyterhub.hubconfig import leave_out_the_instances_page_if_its_port_is_taken

    c, held = _config_with_page(10112), iter([True, True, False])
    leave_out_the_instances_page_if_its_port_is_taken(c, in_use=lambda host, port: next(held), sleep=lambda s: None)
    assert [s["name"] for s in c.JupyterHub.services] == ["aml-instances"]
    assert c.JupyterHub.services[0]["environment"]["INSTANCES_PAGE_HUB_PID"] == str(os.getpid())
    assert capsys.readouterr().err == ""
