"""``aml-jupyterhub-check``: the settings checked as the hub checks them, without starting it.

``make up`` runs it in the hub image, with the environment compose gives the
hub, before it starts anything: a typo in ``.env`` is then one line on the
admin's terminal, not an unhealthy container and a log to dig in. It reads
the settings and the menu files; it writes nothing and calls nothing.
"""

from __future__ import annotations

import os
import sys
from typing import Mapping

from .hubconfig import ConfigError, load_settings, menu_file
from .settings import take_launcher_secrets


def check(env: Mapping[str, str]) -> str:
    """A one-line summary of what the settings say; ConfigError if they are wrong."""
    values = load_settings(env)
    menu_file(values, "AML_PROFILES_FILE", "profiles")
    if values["AML_PROJECTS_FILE"]:
        menu_file(values, "AML_PROJECTS_FILE", "projects")
    if values["LOCAL_MODE"]:
        return f"local mode, the emulator at {values['EMULATOR_URL']}, hub https://{values['HOST']}"
    return (f"Azure ({values['AZURE_CLOUD']} cloud), workspace {values['AML_WORKSPACE']} in "
            f"{values['AML_RESOURCE_GROUP']}, credential {values['AML_CREDENTIAL']}, hub https://{values['HOST']}")


def main() -> int:
    try:
        take_launcher_secrets(os.environ)  # under the image's entrypoint (docker compose run hub ...)
        summary = check(os.environ)
    except ConfigError as e:
        print(f"aml-jupyterhub: configuration error: {e}", file=sys.stderr, flush=True)
        return 2
    print(f"aml-jupyterhub: settings ok: {summary}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
