"""How long this hub's operations take: the median of its own recent ones per
operation and size, kept in the data volume; the documented typical figures
until there is history.

It feeds the spawn page's estimate and the status-poll schedule
(``compute.polling``), so both follow the region and sizes this hub really
uses rather than one guess for all of Azure.
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import tempfile
from pathlib import Path

log = logging.getLogger("aml_jupyterhub.timings")

# Azure ML's typical durations (docs and observed: create 3-5 min, start about
# 2 min, stop about 1 min), used until this hub has its own.
TYPICAL_SECONDS = {"create": 240.0, "start": 120.0, "stop": 60.0, "restart": 150.0, "delete": 60.0, "resize": 120.0,
                   # the hub's install of JupyterHub on a fresh instance (bootstrap), a guess until it has its own
                   "install": 60.0}
KEEP = 10  # durations kept per operation and size


class OperationTimes:
    """Recent durations per (operation, size); saved to ``path`` when given."""

    def __init__(self, path: str | os.PathLike | None = None, typical: dict | None = None):
        self.path = Path(path) if path else None
        self.typical = {**TYPICAL_SECONDS, **(typical or {})}
        self._times: dict[str, list[float]] = self._load()

    @staticmethod
    def key(operation: str, size: str | None) -> str:
        return f"{operation}:{size or '*'}"

    def expected(self, operation: str, size: str | None = None) -> tuple[float, int]:
        """(seconds, how many of this hub's own operations that is the median of; 0: the typical figure)."""
        times = self._times.get(self.key(operation, size)) or self._times.get(self.key(operation, None)) or []
        if times:
            return statistics.median(times), len(times)
        return self.typical.get(operation, 60.0), 0

    def record(self, operation: str, size: str | None, seconds: float) -> None:
        if seconds <= 0:
            return
        for key in {self.key(operation, size), self.key(operation, None)}:
            self._times[key] = [*self._times.get(key, []), round(seconds, 2)][-KEEP:]
        self._save()

    def _load(self) -> dict[str, list[float]]:
        if self.path is None or not self.path.exists():
            return {}
        try:
            data = json.loads(self.path.read_text())
            return {str(k): [float(x) for x in v][-KEEP:] for k, v in data.items() if isinstance(v, list)}
        except (OSError, ValueError, TypeError) as e:
            log.warning("Ignoring %s (%s): estimates start again from the typical figures.", self.path, e)
            return {}

    def _save(self) -> None:
        if self.path is None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".operation-times.")
            with os.fdopen(fd, "w") as f:
                json.dump(self._times, f, indent=1, sort_keys=True)
            os.replace(tmp, self.path)
        except OSError as e:  # an estimate is not worth failing a spawn for
            log.warning("Could not save operation times to %s: %s", self.path, e)
