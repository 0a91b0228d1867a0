"""Fixtures every layer may use (the helpers behind them are in tests/harness).

``emulator`` is a real emulator process, session-scoped (starting it costs
about a second); ``emu`` is the same emulator, reset after each test so tests
cannot see each other's instances, faults or quotas.
"""

from __future__ import annotations

import pytest

from tests.harness.emulator import FAST, EmulatorProcess


@pytest.fixture(scope="session")
def emulator(tmp_path_factory):
    emu = EmulatorProcess(tmp_path_factory.mktemp("emulator"), FAST).start()
    yield emu
    try:
        emu.reset()
    finally:
        emu.stop()


@pytest.fixture
def emu(emulator):
    emulator.reset()
    emulator.set_transitions(all=0.3)
    yield emulator
    emulator.reset()
    emulator.set_transitions(all=0.3)
