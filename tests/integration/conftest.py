"""Fixtures for tests that drive a real hub against the emulator."""

from __future__ import annotations

import pytest

from tests.harness.hub import Hub


@pytest.fixture
def make_hub(emulator, emu, tmp_path):
    """make_hub(extra_config, **Hub options) -> a started hub; all of them stopped at the end."""
    hubs = []

    def make(extra: str = "", **kw) -> Hub:
        hub = Hub(tmp_path / f"hub{len(hubs)}", emulator, extra, **kw).start()
        hubs.append(hub)
        return hub

    yield make
    for hub in hubs:
        hub.stop()
