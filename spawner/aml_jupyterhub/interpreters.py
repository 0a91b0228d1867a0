"""Which Python on the instance runs the user's server: a pure rule.

A real compute instance has no JupyterHub. Its system ``python3`` is
Ubuntu's (3.8 on the 20.04 image AML still shipped in 2025), too old for
JupyterHub 6; AML's own envs under ``/anaconda/envs/`` hold Python 3.10+,
Jupyter and the users' kernels. The spawner's probe (``bootstrap``) reports
every candidate it found; this module decides, in this order:

1. the hub's own install of exactly this JupyterHub version, finished earlier
   (a later start reuses it);
2. any candidate that already holds exactly this version (an admin's
   pre-install, a custom image): used as it is;
3. the first candidate, in the configured order, whose Python satisfies
   JupyterHub's ``Requires-Python`` and that has a Jupyter server: the hub
   installs JupyterHub beside it (a venv over that env);
4. otherwise a refusal that names, for each candidate, the requirement it
   failed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

READY = "ready"  # start the server with this Python, nothing to install
INSTALL = "install"  # install JupyterHub into a venv over this Python first


@dataclass(frozen=True)
class Candidate:
    """One Python the probe found on the instance."""

    path: str
    version: str  # "3.10.14"
    jupyterhub: str | None = None  # its jupyterhub version, if it has one
    jupyter_server: str | None = None  # its jupyter_server version, if it has one

    @classmethod
    def from_report(cls, item: dict) -> "Candidate":
        return cls(path=str(item["path"]), version=str(item.get("version") or ""),
                   jupyterhub=item.get("jupyterhub") or None, jupyter_server=item.get("jupyter_server") or None)


@dataclass(frozen=True)
class Choice:
    action: str  # READY or INSTALL
    python: str
    version: str  # the Python's version
    reason: str = ""  # why this one, for the log and the spawn page


@dataclass
class NoInterpreter(Exception):
    """No Python on the instance can run the server; ``str()`` says why, per candidate."""

    jupyterhub_version: str
    requires_python: str
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (path, why)

    def __str__(self) -> str:
        if not self.rejected:
            found = "no Python at all in the places the hub looks (singleuser_pythons)"
        else:
            found = "; ".join(f"{path}: {why}" for path, why in self.rejected)
        return (f"no Python on the instance can run JupyterHub {self.jupyterhub_version}, which needs "
                f"Python {self.requires_python} and a Jupyter server (jupyter_server) beside it. Found: {found}. "
                "Use an image with Azure ML's envs (/anaconda/envs/...), or point singleuser_pythons "
                "(AML_SINGLEUSER_PYTHONS) at a Python that qualifies.")


def python_ok(version: str, requires_python: str) -> bool:
    try:
        return Version(version) in SpecifierSet(requires_python or "")
    except (InvalidVersion, InvalidSpecifier):
        return False


def choose(candidates: list[Candidate], jupyterhub_version: str, requires_python: str,
           installed: str | None = None, installed_version: str = "") -> Choice:
    """The Python to run the server with (see the module docstring).

    :param installed: the Python of the hub's finished install of this
        JupyterHub version on the instance, if the probe found one.
    :raises NoInterpreter: when no candidate qualifies.
    """
    if installed:
        return Choice(READY, installed, installed_version, f"JupyterHub {jupyterhub_version} installed by the hub earlier")
    for c in candidates:
        if c.jupyterhub == jupyterhub_version:
            return Choice(READY, c.path, c.version, f"{c.path} already has JupyterHub {jupyterhub_version}")
    rejected = []
    for c in candidates:
        if not c.version:
            rejected.append((c.path, "does not run"))
        elif not python_ok(c.version, requires_python):
            rejected.append((c.path, f"Python {c.version}, JupyterHub {jupyterhub_version} needs Python {requires_python}"))
        elif not c.jupyter_server:
            rejected.append((c.path, f"Python {c.version} without a Jupyter server (jupyter_server)"))
        else:
            return Choice(INSTALL, c.path, c.version,
                          f"Python {c.version} with Jupyter server {c.jupyter_server} at {c.path}")
    raise NoInterpreter(jupyterhub_version, requires_python, rejected)
