"""The spawner on Azure ML's real timings (the emulator's azure profile, scaled): no Retry-After and no
percentComplete from AML, so the spawn page's progress and estimate are the hub's own."""

from __future__ import annotations

import json
import re

import pytest

from tests.harness.emulator import EmulatorProcess
from tests.harness.hub import Hub

SCALE = 0.05  # a 4-minute create in 12 s


@pytest.fixture
def real_timing(tmp_path):
    emu = EmulatorProcess(tmp_path / "emu", ["--timing", "azure", "--time-scale", str(SCALE)]).start()
    times = tmp_path / "data" / "operation-times.json"
    # a new hub on Azure expects Azure's typical figures: here on the emulator's scale
    hub = Hub(tmp_path / "hub", emu, f"c.AMLSpawner.typical_operation_seconds = {{'create': {240 * SCALE}, "
                                     f"'start': {120 * SCALE}}}\n"
                                     f'c.AMLSpawner.operation_times_file = "{times}"\n').start()
    yield hub, emu, times
    hub.stop()
    emu.reset()
    emu.stop()


def _creating(events):
    return [e for e in events if " is Creating" in e["message"]]


def test_progress_is_the_hubs_own_estimate_smooth_and_learnt(real_timing):
    hub, emu, times = real_timing
    r = hub.spawn("uma")
    assert r.status_code in (201, 202), r.text
    events = hub.progress("uma", timeout=120)
    assert events[-1].get("ready"), events[-1]
    percents = [e["progress"] for e in events]
    assert percents == sorted(percents), percents  # never backwards
    creating = _creating(events)
    # AML says only InProgress for 12 s: the bar still moves, from the elapsed time
    assert len({e["progress"] for e in creating}) >= 3, creating
    # phase, elapsed time, time left and where the figure comes from, in every message
    for e in creating[1:]:
        assert re.search(r"is Creating, \d+s elapsed, (about \d+ min left|less than a minute left|taking longer than usual) \(usually 12s: "
                         r"typical on Azure\)\.$", e["message"]), e["message"]
    assert "percentComplete" not in json.dumps(emu.requests_seen())  # nothing of the kind was asked for

    # the create's duration is kept (privately) in the data directory, per size
    kept = json.loads(times.read_text())
    assert (times.stat().st_mode & 0o777) == 0o600
    [key] = [k for k in kept if k.startswith("create:") and not k.endswith("*")]
    assert 0.8 * 240 * SCALE <= kept[key][0] <= 240 * SCALE + 10, kept

    # the next spawn's estimate is this hub's own
    hub.spawn("vic")
    later = hub.progress("vic", timeout=120)
    assert later[-1].get("ready"), later[-1]
    assert any("this hub's last one)" in e["message"] for e in _creating(later)), _creating(later)


def test_operation_status_is_read_on_the_schedule_not_a_fixed_interval(real_timing):
    """No Retry-After: the hub reads the status every couple of seconds around the expected end,
    rarely before it (the schedule's own unit tests bound its lateness)."""
    from aml_jupyterhub.compute.polling import PollSchedule

    hub, emu, _ = real_timing
    emu.control("DELETE", "/_emulator/requests")
    hub.spawn("wes")
    assert hub.progress("wes", timeout=120)[-1].get("ready")
    reads = [e for e in emu.requests_seen() if "computeOperationsStatus" in e["path"]]
    expected = PollSchedule(240 * SCALE).reads(240 * SCALE)
    assert expected - 2 <= len(reads) <= expected + 2, (len(reads), expected)


def test_the_spawn_page_shows_the_phase_and_the_time_left(real_timing):
    """The page a user watches during a create on real timings: headless Chromium, a screenshot in
    tests/artifacts/integration/ (the test's output, not committed)."""
    from playwright.sync_api import sync_playwright

    from tests.harness.browser import CHROMIUM, CHROMIUM_ARGS
    from tests.harness.repo import ARTIFACTS

    hub, _, _ = real_timing
    hub.create_user("yara")
    shots = ARTIFACTS / "integration"
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 700})
            page.goto(f"{hub.url}/hub/login?next=/hub/spawn")
            page.fill("#username_input", "yara")
            page.fill("#password_input", "any")  # JupyterHub's dummy authenticator
            page.click("#login_submit")
            page.wait_for_url(re.compile(r"/hub/spawn"))
            if page.locator("#spawn_form").count():  # more than one size: the form first
                page.locator("#spawn_form [type=submit]").click(no_wait_after=True)
            page.wait_for_url(re.compile(r"/hub/spawn-pending/"), timeout=60_000)
            # a few seconds in, the bar has moved from the elapsed time alone
            line = page.locator("#progress-message", has_text=re.compile(r"is Creating, ([4-9]|1\d)s elapsed, .+ \(usually"))
            line.wait_for(timeout=60_000)
            text = line.inner_text()
            page.screenshot(path=str(shots / "spawn-progress-azure-timing.png"), full_page=True)
            bar = page.locator("#progress-bar").get_attribute("aria-valuenow") or ""
        finally:
            browser.close()
    assert re.search(r"Compute instance \S+ is Creating, \d+s elapsed, (about \d+ min left|less than a minute "
                     r"left|taking longer than usual) \(usually 12s: typical on Azure\)\.", text), text
    assert bar and 5 < float(bar) < 70, bar  # the create phase's share of the bar, moving with the clock
