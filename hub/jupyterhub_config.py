"""JupyterHub configuration of aml-jupyterhub.

Every setting comes from the environment (the `.env` file compose passes in),
documented in `.env.example`. This file only reads the environment; the
checking and the mapping to JupyterHub settings live in
`aml_jupyterhub.settings` and `aml_jupyterhub.hubconfig`. A wrong or missing
setting stops the hub here, with one line naming the variable and what to put
there. Then the files of HUB_CONFIG_DIR (hub/jupyterhub_config.d) run, in
name order, for anything the settings do not cover.
"""

import os

from aml_jupyterhub.hubconfig import (ConfigError, config_files, configure, fail, keep_runtime_notices,
                                      leave_out_the_instances_page_if_its_port_is_taken, let_children_stop_at_sigint,
                                      load_settings)
from aml_jupyterhub.settings import take_launcher_secrets

c = get_config()  # noqa: F821 (provided by JupyterHub)
let_children_stop_at_sigint()

try:
    take_launcher_secrets(os.environ)  # the image's entrypoint keeps them out of every process's environment
    values = load_settings(os.environ)
    configure(c, values)
except ConfigError as e:
    fail(str(e))

for path in config_files(values["HUB_CONFIG_DIR"]):
    load_subconfig(path)  # noqa: F821 (provided by JupyterHub)
# a drop-in file's template_vars replace the settings' whole dict: the runtime limit's warnings go back beside its announcements
keep_runtime_notices(c)
leave_out_the_instances_page_if_its_port_is_taken(c)
