"""AML's own JupyterLab on an emulated instance: how both runtimes launch it.

A real instance serves JupyterLab behind AML's application proxy; the
emulator starts one lazily on first use, inside the machine, and proxies to
it. What differs between runtimes is where it runs (a local process or a
``docker exec``); its command line and base path are the same, and live here.
"""

from __future__ import annotations


def normalize_base_path(base_path: str) -> str:
    return "/" + base_path.strip("/") + "/" if base_path.strip("/") else "/"


def jupyterlab_args(ip: str, port: int, base_path: str, root_dir: str) -> list[str]:
    """Command-line options for AML's own JupyterLab on an emulated instance.

    No token, no password: the emulator in front of it authenticates and only
    proxies the instance's assigned user, as AML's application proxy does.
    ``allow_remote_access`` because requests arrive through that proxy with
    its Host header; XSRF checks stay on (JupyterLab's own frontend passes them).
    """
    return [
        "--no-browser",
        f"--ip={ip}",
        f"--port={port}",
        "--ServerApp.port_retries=0",
        f"--ServerApp.base_url={base_path}",
        f"--ServerApp.root_dir={root_dir}",
        "--IdentityProvider.token=",
        "--PasswordIdentityProvider.hashed_password=",
        "--ServerApp.allow_remote_access=True",
        # the emulator may well run as root (in its container); the instance's
        # azureuser is not root there, but this process is
        "--allow-root",
        # no calls to PyPI or jupyterlab.github.io from an emulated machine
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.extension_manager=readonly",
    ]
