"""JupyterHub configuration of aml-jupyterhub.

Every setting comes from the environment (the `.env` file compose passes in),
documented in `.env.example`. This file only reads the environment; the
checking and the mapping to JupyterHub settings live in
`aml_jupyterhub.hubconfig`. A wrong or missing setting stops the hub here,
with one line naming the variable and what to put there.
"""

import os

from aml_jupyterhub.hubconfig import ConfigError, configure, fail, load_settings

c = get_config()  # noqa: F821 (provided by JupyterHub)

try:
    configure(c, load_settings(os.environ))
except ConfigError as e:
    fail(str(e))
