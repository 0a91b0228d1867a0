"""Start/stop schedules as AML reads them: parsing, refusals, next due times."""

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from aml_emulator import rules, schedules
from aml_emulator.errors import ArmError

UTC = dt.timezone.utc


def at(*args, tz=UTC) -> float:
    return dt.datetime(*args, tzinfo=tz).timestamp()


def utc(epoch: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch, UTC)


def cron(expression, tz="UTC", start=None, action="Stop", status="Enabled"):
    trigger = {"expression": expression, "timeZone": tz, "triggerType": "Cron"}
    if start:
        trigger["startTime"] = start
    return schedules.parse({"action": action, "status": status, "triggerType": "Cron", "cron": trigger})


def recurrence(frequency, interval=1, tz="UTC", start=None, action="Start", **pattern):
    trigger = {"frequency": frequency, "interval": interval, "timeZone": tz, "triggerType": "Recurrence",
               "schedule": pattern}
    if start:
        trigger["startTime"] = start
    return schedules.parse({"action": action, "status": "Enabled", "triggerType": "Recurrence",
                            "recurrence": trigger})


def firings(s, after: float, n: int) -> list[dt.datetime]:
    out = []
    for _ in range(n):
        after = s.next_due(after)
        out.append(utc(after))
    return out


# ---- cron fields ----------------------------------------------------------------


def test_cron_daily_at_a_time():
    s = cron("0 18 * * *")
    assert firings(s, at(2026, 5, 1, 12), 2) == [dt.datetime(2026, 5, 1, 18, tzinfo=UTC),
                                                 dt.datetime(2026, 5, 2, 18, tzinfo=UTC)]


def test_cron_next_due_is_strictly_after():
    s = cron("0 18 * * *")
    assert utc(s.next_due(at(2026, 5, 1, 18))) == dt.datetime(2026, 5, 2, 18, tzinfo=UTC)


def test_cron_lists_ranges_and_steps():
    s = cron("*/20 9-10 * * *")
    assert [t.strftime("%H:%M") for t in firings(s, at(2026, 5, 1, 8), 7)] == [
        "09:00", "09:20", "09:40", "10:00", "10:20", "10:40", "09:00"]
    s = cron("5,35 1 * * *")
    assert [t.strftime("%H:%M") for t in firings(s, at(2026, 5, 1), 3)] == ["01:05", "01:35", "01:05"]


def test_cron_weekdays_sunday_is_0_and_7():
    # 2026-05-01 is a Friday
    s = cron("0 8 * * 1-5")
    assert [t.strftime("%a %d") for t in firings(s, at(2026, 5, 1, 9), 3)] == ["Mon 04", "Tue 05", "Wed 06"]
    assert cron("0 8 * * 0").next_due(at(2026, 5, 1)) == cron("0 8 * * 7").next_due(at(2026, 5, 1)) == at(2026, 5, 3, 8)
    assert cron("0 8 * * SUN").next_due(at(2026, 5, 1)) == at(2026, 5, 3, 8)


def test_cron_day_of_month_and_month_names():
    assert utc(cron("30 6 1 * *").next_due(at(2026, 5, 2))) == dt.datetime(2026, 6, 1, 6, 30, tzinfo=UTC)
    assert utc(cron("0 0 1 JAN *").next_due(at(2026, 5, 2))) == dt.datetime(2027, 1, 1, tzinfo=UTC)
    # the 31st exists only in some months
    assert utc(cron("0 0 31 * *").next_due(at(2026, 4, 1))) == dt.datetime(2026, 5, 31, tzinfo=UTC)
    # 29 February: years ahead
    assert utc(cron("0 0 29 2 *").next_due(at(2026, 3, 1))) == dt.datetime(2028, 2, 29, tzinfo=UTC)


def test_cron_both_day_fields_restricted_means_either():
    # the 15th, or any Monday (cron's rule); 2026-05-04 is a Monday
    s = cron("0 0 15 * 1")
    assert [t.day for t in firings(s, at(2026, 5, 1), 3)] == [4, 11, 15]


def test_cron_that_never_fires():
    assert cron("0 0 31 2 *").next_due(at(2026, 1, 1)) is None


@pytest.mark.parametrize("expression,why", [
    ("0 18 * *", "5 fields"),
    ("60 18 * * *", "minute 60 is out of range"),
    ("0 24 * * *", "hour 24 is out of range"),
    ("0 0 0 * *", "day of month 0"),
    ("0 0 * 13 *", "month 13"),
    ("0 0 * * 8", "day of week 8"),
    ("*/0 * * * *", "positive number"),
    ("5-1 * * * *", "runs backwards"),
    ("a * * * *", "not a valid minute"),
])
def test_bad_cron_is_refused_with_the_reason(expression, why):
    with pytest.raises(ValueError, match=why):
        schedules.parse_cron(expression)
    with pytest.raises(ArmError) as err:
        rules.check_schedules({"computeStartStop": [
            {"action": "Stop", "triggerType": "Cron", "cron": {"expression": expression}}]})
    assert err.value.status == 400 and why in err.value.message and "schedule 1" in err.value.message


# ---- time zones and DST ---------------------------------------------------------------


def test_windows_zone_names_map_to_their_zones():
    assert schedules.time_zone("Pacific Standard Time") == ZoneInfo("America/Los_Angeles")
    assert schedules.time_zone("w. europe standard time") == ZoneInfo("Europe/Berlin")
    assert schedules.time_zone("UTC") == UTC
    assert schedules.time_zone(None) == UTC
    assert schedules.time_zone("UTC-08").utcoffset(None) == dt.timedelta(hours=-8)
    assert schedules.time_zone("UTC+05:30").utcoffset(None) == dt.timedelta(hours=5, minutes=30)


def test_unknown_zone_is_refused_with_a_400():
    with pytest.raises(ArmError) as err:
        rules.check_schedules({"computeStartStop": [{"action": "Stop", "triggerType": "Cron",
                                                     "cron": {"expression": "0 18 * * *", "timeZone": "Mars/Olympus"}}]})
    assert err.value.status == 400
    assert "time zone 'Mars/Olympus' is not supported" in err.value.message
    assert "Pacific Standard Time" in err.value.message  # says what to use instead


def test_cron_follows_daylight_saving_time():
    # 18:00 Pacific is 02:00 UTC in winter and 01:00 UTC in summer; DST began 2026-03-08
    s = cron("0 18 * * *", tz="Pacific Standard Time")
    assert firings(s, at(2026, 3, 7, 12), 3) == [dt.datetime(2026, 3, 8, 2, tzinfo=UTC),
                                                 dt.datetime(2026, 3, 9, 1, tzinfo=UTC),
                                                 dt.datetime(2026, 3, 10, 1, tzinfo=UTC)]


def test_skipped_local_time_fires_after_the_jump_and_repeated_one_once():
    ny = ZoneInfo("America/New_York")
    # 02:30 does not exist on 2026-03-08 in New York: it fires at 03:30 EDT (07:30 UTC)
    s = cron("30 2 * * *", tz="Eastern Standard Time")
    assert utc(s.next_due(at(2026, 3, 8, tz=ny))) == dt.datetime(2026, 3, 8, 7, 30, tzinfo=UTC)
    # 01:30 happens twice on 2026-11-01: once, the first time (EDT, 05:30 UTC), then the next day
    s = cron("30 1 * * *", tz="Eastern Standard Time")
    first = s.next_due(at(2026, 11, 1, tz=ny))
    assert utc(first) == dt.datetime(2026, 11, 1, 5, 30, tzinfo=UTC)
    assert utc(s.next_due(first)) == dt.datetime(2026, 11, 2, 6, 30, tzinfo=UTC)


def test_start_time_is_local_and_nothing_fires_before_it():
    s = cron("0 * * * *", tz="Tokyo Standard Time", start="2026-05-10T09:00:00")
    # 09:00 Tokyo = 00:00 UTC
    assert utc(s.next_due(at(2026, 5, 1))) == dt.datetime(2026, 5, 10, 0, tzinfo=UTC)
    with pytest.raises(ValueError, match="startTime"):
        cron("0 * * * *", start="tomorrow")


# ---- recurrence -----------------------------------------------------------------------------


def test_recurrence_minutes_and_hours_count_from_start():
    s = recurrence("Minute", 15, start="2026-05-01T10:05:00")
    assert [t.strftime("%H:%M") for t in firings(s, at(2026, 5, 1), 3)] == ["10:05", "10:20", "10:35"]
    s = recurrence("Hour", 3, start="2026-05-01T10:00:00")
    assert [t.strftime("%H:%M") for t in firings(s, at(2026, 5, 1, 10, 30), 2)] == ["13:00", "16:00"]
    s = recurrence("Hour", 2, start="2026-05-01T10:00:00", minutes=[15, 45])
    assert [t.strftime("%H:%M") for t in firings(s, at(2026, 5, 1, 10, 20), 3)] == ["10:45", "12:15", "12:45"]


def test_recurrence_daily_at_given_times_in_a_zone():
    s = recurrence("day", 1, tz="India Standard Time", hours=[9, 18], minutes=[0])
    # 09:00 and 18:00 IST = 03:30 and 12:30 UTC
    assert [t.strftime("%d %H:%M") for t in firings(s, at(2026, 5, 1), 3)] == ["01 03:30", "01 12:30", "02 03:30"]


def test_recurrence_every_other_day_from_start():
    s = recurrence("Day", 2, start="2026-05-01T07:00:00")
    assert [t.strftime("%d %H:%M") for t in firings(s, at(2026, 5, 1), 3)] == ["01 07:00", "03 07:00", "05 07:00"]


def test_recurrence_weekly_on_week_days_every_other_week():
    # 2026-05-04 is a Monday; weeks 0, 2, 4 ... from the start's week count
    s = recurrence("Week", 2, start="2026-05-04T00:00:00", weekDays=["Monday", "friday"], hours=[8], minutes=[30])
    assert [t.strftime("%a %d") for t in firings(s, at(2026, 5, 1), 4)] == ["Mon 04", "Fri 08", "Mon 18", "Fri 22"]


def test_recurrence_monthly_on_month_days():
    s = recurrence("Month", 1, start="2026-01-01T00:00:00", monthDays=[1, 31], hours=[6], minutes=[0])
    assert [t.strftime("%m-%d") for t in firings(s, at(2026, 4, 2), 3)] == ["05-01", "05-31", "06-01"]
    s = recurrence("Month", 3, start="2026-01-15T12:00:00")
    assert [t.strftime("%m-%d %H") for t in firings(s, at(2026, 1, 16), 2)] == ["04-15 12", "07-15 12"]


def test_the_sdk_body_with_empty_lists_and_lower_case_values():
    # what azure-ai-ml 1.35 sends for RecurrenceTrigger(frequency="day", interval=1, start_time=...)
    s = schedules.parse({"action": "stop", "status": "Enabled", "triggerType": "Recurrence",
                         "recurrence": {"frequency": "day", "interval": 1, "schedule": {"hours": [], "minutes": []},
                                        "startTime": "2026-01-01T19:00:00", "timeZone": "UTC",
                                        "triggerType": "Recurrence"}})
    assert s.action == "Stop" and s.frequency == "Day"
    assert utc(s.next_due(at(2026, 5, 1))) == dt.datetime(2026, 5, 1, 19, tzinfo=UTC)


@pytest.mark.parametrize("item,why", [
    ({"action": "Pause", "triggerType": "Cron", "cron": {"expression": "* * * * *"}}, "action must be one of Start, Stop"),
    ({"action": "Stop", "status": "On", "triggerType": "Cron", "cron": {"expression": "* * * * *"}}, "status must be"),
    ({"action": "Stop", "triggerType": "Cron"}, "no 'cron' object"),
    ({"action": "Stop", "triggerType": "Recurrence", "recurrence": {"frequency": "Year"}}, "frequency must be one of"),
    ({"action": "Stop", "triggerType": "Recurrence", "recurrence": {"frequency": "Day", "interval": 0}}, "interval"),
    ({"action": "Stop", "triggerType": "Recurrence", "recurrence": {"frequency": "Day", "schedule": {"hours": [25]}}},
     "hours must hold numbers from 0 to 23"),
    ({"action": "Stop", "triggerType": "Recurrence",
      "recurrence": {"frequency": "Week", "schedule": {"weekDays": ["Funday"]}}}, "'Funday' is not a day"),
])
def test_bad_schedule_items_are_refused(item, why):
    with pytest.raises(ArmError) as err:
        rules.check_schedules({"computeStartStop": [item]})
    assert err.value.status == 400 and why in err.value.message


def test_at_most_four_schedules():
    item = {"action": "Stop", "triggerType": "Cron", "cron": {"expression": "0 18 * * *"}}
    assert len(rules.check_schedules({"computeStartStop": [item] * 4})) == 4
    with pytest.raises(ArmError) as err:
        rules.check_schedules({"computeStartStop": [item] * 5})
    assert "at most 4 schedules" in err.value.message
    assert rules.check_schedules(None) == [] and rules.check_schedules({"computeStartStop": []}) == []


def test_disabled_schedule_never_fires():
    assert cron("* * * * *", status="Disabled").next_due(at(2026, 5, 1)) is None


def test_due_lists_each_schedule_once_in_time_order():
    stop = cron("0 18 * * *", action="Stop")
    start = cron("0 8 * * *", action="Start")
    window = schedules.due([stop, start], at(2026, 5, 1, 12), at(2026, 5, 3, 12))
    assert [(utc(t).strftime("%d %H"), s.action) for t, s in window] == [("01 18", "Stop"), ("02 08", "Start")]
    assert schedules.due([stop], at(2026, 5, 1, 12), at(2026, 5, 1, 17)) == []
    assert schedules.next_event([stop, start], at(2026, 5, 1, 12)) == at(2026, 5, 1, 18)
