"""AML's own JupyterLab on an emulated instance: how both runtimes launch it.

A real instance serves JupyterLab behind AML's application proxy, which lets
only the instance's assigned user in; the emulator starts one lazily on first
use, inside the machine, and proxies to it (``appproxy``). What differs
between runtimes is where it runs (a local process or a ``docker exec``); its
command line, base path and credentials are the same, and live here.

The Lab listens where the emulator reaches it, which other instances on the
same network reach too; so it admits only requests with a token made at
random for each start, which only the emulator holds and adds (see
:class:`~.base.Lab`). The token travels in ``JUPYTER_TOKEN``, never on the
command line, which every process on the machine may read.
"""

from __future__ import annotations

import secrets

# Jupyter skips its XSRF and Origin checks for a request that carries the
# token, as it would for a script; here every browser request carries it
# (the emulator's proxy adds it), so this identity provider keeps those checks
# on: a page of another site that a signed-in user opens cannot act through
# the proxy as that user.
LAB_CONFIG = '''\
# Written by the AML emulator: AML's own JupyterLab on this instance.
from jupyter_server.auth.identity import IdentityProvider


class GatewayIdentityProvider(IdentityProvider):
    """The token is the gateway's, not a script's: XSRF and Origin checks stay on."""

    def is_token_authenticated(self, handler):
        return False


c.ServerApp.identity_provider_class = GatewayIdentityProvider
'''
LAB_CONFIG_NAME = "aml_lab_config.py"


def normalize_base_path(base_path: str) -> str:
    return "/" + base_path.strip("/") + "/" if base_path.strip("/") else "/"


def new_lab_token() -> str:
    return secrets.token_urlsafe(32)


def lab_environment(token: str) -> dict[str, str]:
    """What JupyterLab's process gets besides the machine's environment."""
    return {"JUPYTER_TOKEN": token}


def jupyterlab_args(ip: str, port: int, base_path: str, root_dir: str, config_file: str) -> list[str]:
    """Command-line options for AML's own JupyterLab on an emulated instance.

    No password: the emulator in front of it authenticates the browser and
    only proxies the instance's assigned user, as AML's application proxy
    does, adding the token (``JUPYTER_TOKEN``) that JupyterLab requires of
    every request. ``config_file`` holds :data:`LAB_CONFIG`.
    ``allow_remote_access`` because requests arrive through that proxy with
    its Host header.
    """
    return [
        "--no-browser",
        f"--ip={ip}",
        f"--port={port}",
        "--ServerApp.port_retries=0",
        f"--ServerApp.base_url={base_path}",
        f"--ServerApp.root_dir={root_dir}",
        f"--config={config_file}",
        "--PasswordIdentityProvider.hashed_password=",
        "--ServerApp.allow_remote_access=True",
        # the emulator may well run as root (in its container); the instance's
        # azureuser is not root there, but this process is
        "--allow-root",
        # no calls to PyPI or jupyterlab.github.io from an emulated machine
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.extension_manager=readonly",
    ]
