"""When a long operation's status is read again: often where it can end, rarely where it cannot."""

import json

import pytest

from aml_jupyterhub.compute.polling import PollSchedule, follow
from aml_jupyterhub.progress import fraction_done, time_left
from aml_jupyterhub.timings import TYPICAL_SECONDS, OperationTimes


def test_reads_are_frequent_at_the_start_and_around_the_expected_end_only():
    s = PollSchedule(expected=240)
    assert s.delay(0) == s.near and s.delay(5) == s.near  # an immediate refusal is seen at once
    assert s.delay(60) == s.far  # the end cannot be near
    assert s.near < s.delay(170) < s.far  # closing in on the window
    assert s.delay(0.8 * 240) == s.near and s.delay(240) == s.near and s.delay(1.25 * 240) == s.near
    assert s.near < s.delay(500) <= s.far  # late: backing off
    # never a sleep that jumps over the start of the window
    for t in range(9, 190):
        assert t + s.delay(t) <= 0.8 * 240 + s.near


def test_a_create_costs_few_reads_and_is_noticed_within_the_near_interval():
    s = PollSchedule(expected=240)
    as_late_at_a_fixed_interval = 240 / s.near + 1  # reads of a poller that is never later than `near` either
    assert s.reads(240) < 0.6 * as_late_at_a_fixed_interval
    # an operation ending anywhere from 0.8x to 1.25x the expected time is seen at most `near` late
    for end in (192, 200, 240, 280, 300):
        t = 0.0
        while t < end:
            t += s.delay(t)
        assert t - end <= s.near


def test_follow_sets_the_pollers_delay_and_a_retry_after_wins():
    class Method:
        def __init__(self, headers):
            self._pipeline_response = type("R", (), {"http_response": type("H", (), {"headers": headers})()})()

        def _extract_delay(self):
            return 30.0  # azure-core's fixed interval

    class Poller:
        def __init__(self, method):
            self.method = method

        def polling_method(self):
            return self.method

    now = [100.0]
    quiet = Method({})
    assert follow(Poller(quiet), PollSchedule(expected=240), started=100.0, clock=lambda: now[0])
    now[0] = 160.0
    assert quiet._extract_delay() == PollSchedule(expected=240).delay(60)
    asked = Method({"Retry-After": "7"})
    assert follow(Poller(asked), PollSchedule(expected=240), started=100.0, clock=lambda: now[0])
    assert asked._extract_delay() == 7
    assert not follow(Poller(object()), PollSchedule(expected=240), started=0)  # a poller we do not know


def test_history_median_per_size_kept_in_a_private_file(tmp_path):
    path = tmp_path / "data" / "operation-times.json"
    times = OperationTimes(path)
    assert times.expected("create", "Standard_DS3_v2") == (TYPICAL_SECONDS["create"], 0)
    for seconds in (200, 260, 230):
        times.record("create", "Standard_DS3_v2", seconds)
    times.record("create", "Standard_NC6", 600)
    assert times.expected("create", "Standard_DS3_v2") == (230, 3)
    assert times.expected("create", "Standard_E4s_v3") == (245, 4)  # another size: all of this hub's creates
    assert (path.stat().st_mode & 0o777) == 0o600
    again = OperationTimes(path)  # after a hub restart
    assert again.expected("create", "Standard_DS3_v2") == (230, 3)
    for i in range(30):
        again.record("start", "Standard_DS3_v2", 100 + i)
    assert len(json.loads(path.read_text())["start:Standard_DS3_v2"]) == 10  # the recent ones only


def test_a_broken_history_file_is_ignored(tmp_path):
    path = tmp_path / "operation-times.json"
    path.write_text("{not json")
    assert OperationTimes(path).expected("start") == (TYPICAL_SECONDS["start"], 0)


def test_an_admins_typical_figure_is_used_until_there_is_history():
    assert OperationTimes(None, {"create": 600}).expected("create", "x") == (600, 0)


@pytest.mark.parametrize("basis, source", [(0, "typical on Azure"), (1, "this hub's last one"),
                                           (5, "the median of this hub's last 5")])
def test_time_left_says_where_the_figure_comes_from(basis, source):
    assert time_left(30, 240, basis) == f", about 4 min left (usually 4m 00s: {source})"


def test_time_left_and_fraction_never_go_backwards():
    texts = [time_left(t, 240, 3) for t in range(0, 400, 5)]
    minutes = [int(t.split("about ")[1].split(" min")[0]) for t in texts if "about" in t]
    assert minutes == sorted(minutes, reverse=True) and minutes[0] == 4
    assert "less than a minute left" in time_left(200, 240, 3)
    assert "taking longer than usual" in time_left(300, 240, 3)
    fractions = [fraction_done(t, 240) for t in range(0, 400, 5)]
    assert fractions == sorted(fractions) and max(fractions) < 1
