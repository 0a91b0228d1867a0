"""Durable emulator state: one JSON document in the state directory.

Written atomically (temporary file + rename) after every change, so a killed
emulator restarts with every instance, operation and quota it had.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

SCHEMA = 1


class JsonStore:
    def __init__(self, path: Path):
        self.path = Path(path)

    def load(self) -> dict:
        if not self.path.exists():
            return {"schema": SCHEMA}
        data = json.loads(self.path.read_text())
        if data.get("schema") != SCHEMA:
            raise RuntimeError(
                f"{self.path} was written by an incompatible emulator (schema {data.get('schema')}); "
                "move it away or start with an empty --state-dir"
            )
        return data

    def save(self, data: dict) -> None:
        data = {**data, "schema": SCHEMA}
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1, sort_keys=True)
        os.replace(tmp, self.path)
