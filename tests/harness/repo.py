"""The repository's paths and the settings its ``.env.example`` gives."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"


def example_env() -> dict[str, str]:
    """The settings .env.example gives (local mode, the emulator's test identity), as a user's .env starts."""
    env = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            env[name] = value
    return env
