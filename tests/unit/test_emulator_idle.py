"""When AML calls an instance idle, and the emulator's clock, as pure functions."""

import pytest

from aml_emulator import idle
from aml_emulator.clock import Clock

BOOT = "Start@2026-05-01T10:00:00+00:00"


def kernel(state="idle", last="2026-05-01T10:00:00.000000Z"):
    return {"id": "k", "name": "python3", "execution_state": state, "last_activity": last, "connections": 0}


def test_a_fresh_start_starts_the_idle_clock():
    book = idle.observe({}, None, 1000.0, BOOT)
    assert book["active_at"] == 1000.0
    assert not idle.due_for_shutdown(15, book, 1000.0 + 14 * 60)
    assert idle.due_for_shutdown(15, book, 1000.0 + 15 * 60)
    assert idle.shutdown_at(15, book) == 1000.0 + 900


def test_no_jupyter_server_is_idle():
    # nobody opened JupyterLab: nothing AML counts happens
    book = idle.observe({}, None, 0.0, BOOT)
    for t in (300.0, 600.0, 960.0):
        book = idle.observe(book, None, t, BOOT)
    assert idle.idle_seconds(book, 960.0) == 960.0 and idle.due_for_shutdown(15, book, 960.0)


def test_a_quiet_kernel_counts_as_idle():
    sample = {"kernels": [kernel()], "terminals": []}
    book = idle.observe({}, sample, 0.0, BOOT)
    book = idle.observe(book, sample, 960.0, BOOT)
    assert idle.due_for_shutdown(15, book, 960.0)


def test_a_busy_kernel_keeps_it_running():
    book = idle.observe({}, {"kernels": [kernel()]}, 0.0, BOOT)
    book = idle.observe(book, {"kernels": [kernel("busy")]}, 960.0, BOOT)
    assert book["active_at"] == 960.0 and not idle.due_for_shutdown(15, book, 960.0)


def test_new_kernel_or_terminal_traffic_between_samples_is_activity():
    book = idle.observe({}, {"kernels": [kernel()], "terminals": []}, 0.0, BOOT)
    later = {"kernels": [kernel(last="2026-05-01T10:05:00.000000Z")], "terminals": []}
    book = idle.observe(book, later, 600.0, BOOT)
    assert book["active_at"] == 600.0
    typed = {**later, "terminals": [{"name": "1", "last_activity": "2026-05-01T10:07:00.000000Z"}]}
    book = idle.observe(book, typed, 700.0, BOOT)
    assert book["active_at"] == 700.0
    book = idle.observe(book, typed, 1600.0, BOOT)  # the same marks again: nothing happened
    assert book["active_at"] == 700.0


def test_a_new_start_resets_the_idle_clock():
    book = idle.observe({}, None, 0.0, BOOT)
    book = idle.observe(book, None, 5000.0, "Start@2026-05-01T12:00:00+00:00")
    assert book["active_at"] == 5000.0


def test_lowering_the_idle_time_below_the_time_idle_resets_the_clock():
    book = idle.observe({}, None, 0.0, BOOT)
    assert idle.after_setting_change(book, 15, 1200.0)["active_at"] == 1200.0  # idle 20 min > 15: reset
    assert idle.after_setting_change(book, 30, 1200.0)["active_at"] == 0.0  # idle 20 min < 30: kept


def test_clock_runs_ahead_of_the_wall_clock_and_only_forward():
    wall = [100.0]
    clock = Clock(wall=lambda: wall[0])
    assert clock.now() == 100.0
    assert clock.advance(960) == 1060.0
    wall[0] = 110.0
    assert clock.now() == 1070.0 and clock.offset == 960.0
    with pytest.raises(ValueError, match="only moves forward"):
        clock.advance(-1)
