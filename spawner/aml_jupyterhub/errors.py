"""The errors a user sees when their server cannot start."""

from __future__ import annotations

from jupyterhub.spawner import SpawnException


def spawn_error(message: str, *, reason: str, status_code: int = 400) -> SpawnException:
    """A SpawnException whose message the user sees as is (in the progress
    stream and the REST answer), without JupyterHub's exception prefix."""
    err = SpawnException(message, reason=reason, status_code=status_code)
    err.jupyterhub_message = message
    return err
