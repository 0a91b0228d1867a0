"""Start/stop schedules of a compute instance: parsing and due times (pure).

AML's ``schedules.computeStartStop[]`` items (contract §10) carry either a
``cron`` trigger (a 5-field expression, Sunday = 0) or a ``recurrence``
trigger (frequency Minute|Hour|Day|Week|Month, an interval, and optionally
the hours, minutes, week days and month days it fires on), each in a time
zone with an optional local ``startTime``. This module turns one item into a
:class:`Schedule` (``ValueError`` with a message a user can act on when it
is wrong; ``rules`` makes that a 400) and answers "when is it next due after
this instant"; it does no I/O and reads no clock.

Time is epoch seconds (UTC) in and out; schedules are evaluated in their own
zone's local time, so "08:00 Pacific" follows daylight saving time. At a DST
change a local time that does not exist (the hour skipped in spring) fires
when the clock has jumped, i.e. that wall time read with the old offset
(02:30 becomes 03:30), and a local time that happens twice (the hour
repeated in autumn) fires once, at its first occurrence: as cron does.

Time zones: AML takes Windows zone names (the SDK's ``TimeZone`` enum).
Supported are ``UTC``, the fixed ``UTC±hh[:mm]`` zones and the Windows names
of :data:`WINDOWS_ZONES`, mapped to their IANA zones; others are refused.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

# Windows zone name -> IANA zone (the CLDR "001" territory of each); a subset:
# the common zones of the Americas, Europe, Africa, Asia and Oceania.
WINDOWS_ZONES = {
    "UTC": "UTC",
    "Coordinated Universal Time": "UTC",
    "Dateline Standard Time": "Etc/GMT+12",
    "Hawaiian Standard Time": "Pacific/Honolulu",
    "Alaskan Standard Time": "America/Anchorage",
    "Pacific Standard Time": "America/Los_Angeles",
    "US Mountain Standard Time": "America/Phoenix",
    "Mountain Standard Time": "America/Denver",
    "Central America Standard Time": "America/Guatemala",
    "Central Standard Time": "America/Chicago",
    "Central Standard Time (Mexico)": "America/Mexico_City",
    "Canada Central Standard Time": "America/Regina",
    "Eastern Standard Time": "America/New_York",
    "SA Pacific Standard Time": "America/Bogota",
    "Atlantic Standard Time": "America/Halifax",
    "Newfoundland Standard Time": "America/St_Johns",
    "E. South America Standard Time": "America/Sao_Paulo",
    "Argentina Standard Time": "America/Buenos_Aires",
    "Greenwich Standard Time": "Atlantic/Reykjavik",
    "GMT Standard Time": "Europe/London",
    "W. Europe Standard Time": "Europe/Berlin",
    "Central Europe Standard Time": "Europe/Budapest",
    "Romance Standard Time": "Europe/Paris",
    "Central European Standard Time": "Europe/Warsaw",
    "W. Central Africa Standard Time": "Africa/Lagos",
    "E. Europe Standard Time": "Europe/Chisinau",
    "FLE Standard Time": "Europe/Kiev",
    "GTB Standard Time": "Europe/Bucharest",
    "Israel Standard Time": "Asia/Jerusalem",
    "South Africa Standard Time": "Africa/Johannesburg",
    "Egypt Standard Time": "Africa/Cairo",
    "Turkey Standard Time": "Europe/Istanbul",
    "Russian Standard Time": "Europe/Moscow",
    "Arab Standard Time": "Asia/Riyadh",
    "E. Africa Standard Time": "Africa/Nairobi",
    "Arabian Standard Time": "Asia/Dubai",
    "Pakistan Standard Time": "Asia/Karachi",
    "India Standard Time": "Asia/Calcutta",
    "Bangladesh Standard Time": "Asia/Dhaka",
    "SE Asia Standard Time": "Asia/Bangkok",
    "China Standard Time": "Asia/Shanghai",
    "Singapore Standard Time": "Asia/Singapore",
    "Taipei Standard Time": "Asia/Taipei",
    "W. Australia Standard Time": "Australia/Perth",
    "Tokyo Standard Time": "Asia/Tokyo",
    "Korea Standard Time": "Asia/Seoul",
    "Cen. Australia Standard Time": "Australia/Adelaide",
    "AUS Eastern Standard Time": "Australia/Sydney",
    "E. Australia Standard Time": "Australia/Brisbane",
    "New Zealand Standard Time": "Pacific/Auckland",
}
_FIXED_ZONE = re.compile(r"^UTC([+-])(\d{1,2})(?::?(\d{2}))?$")
_BY_LOWER = {k.lower(): v for k, v in WINDOWS_ZONES.items()}

ACTIONS = ("Start", "Stop")
STATUSES = ("Enabled", "Disabled")
FREQUENCIES = ("Minute", "Hour", "Day", "Week", "Month")
WEEK_DAYS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")  # cron numbering
MAX_SCHEDULES = 4
# how far ahead a day-by-day search looks: far enough for "29 February" (8 years)
_SEARCH_DAYS = 366 * 8 + 2
_MONTH_NAMES = {m: i for i, m in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), start=1)}
_DOW_NAMES = {d[:3].lower(): i for i, d in enumerate(WEEK_DAYS)}


def time_zone(name) -> dt.tzinfo:
    """The zone a schedule's ``timeZone`` names (None or "" means UTC)."""
    if name in (None, ""):
        return dt.timezone.utc
    text = str(name).strip()
    fixed = _FIXED_ZONE.match(text)
    if fixed:
        sign, hours, minutes = fixed.group(1), int(fixed.group(2)), int(fixed.group(3) or 0)
        if hours > 14 or minutes >= 60:
            raise ValueError(f"time zone '{name}' is not a valid UTC offset")
        delta = dt.timedelta(hours=hours, minutes=minutes)
        return dt.timezone(-delta if sign == "-" else delta)
    iana = _BY_LOWER.get(text.lower())
    if iana is None:
        raise ValueError(
            f"time zone '{name}' is not supported; use a Windows time zone name such as 'UTC', "
            f"'Pacific Standard Time' or 'W. Europe Standard Time' (supported: UTC, UTC±hh and "
            f"{len(WINDOWS_ZONES) - 2} common Windows zones)")
    try:
        return dt.timezone.utc if iana == "UTC" else ZoneInfo(iana)
    except ZoneInfoNotFoundError:  # no tz database on this machine
        raise ValueError(f"time zone '{name}' ({iana}) is not known to this machine's time zone database") from None


def _local_start(value, tz: dt.tzinfo) -> float | None:
    """``startTime`` ("yyyy-mm-ddThh:mm:ss", local to the schedule's zone) as epoch seconds."""
    if value in (None, ""):
        return None
    try:
        parsed = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"startTime '{value}' is not a date and time of the form yyyy-mm-ddThh:mm:ss") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=tz)
    return parsed.timestamp()


def _epoch(local: dt.datetime, tz: dt.tzinfo) -> float:
    # fold=0: a repeated wall time is its first occurrence; a skipped one reads with the old offset
    return local.replace(tzinfo=tz, fold=0).timestamp()


# ---- cron --------------------------------------------------------------------


def _cron_field(text: str, lo: int, hi: int, names: dict | None, what: str) -> frozenset[int]:
    values: set[int] = set()

    def number(token: str) -> int:
        token = token.strip().lower()
        if names and token in names:
            return names[token]
        if not token.isdigit():
            raise ValueError(f"'{token}' is not a valid {what}")
        n = int(token)
        if not lo <= n <= hi:
            raise ValueError(f"{what} {n} is out of range {lo}-{hi}")
        return n

    for part in text.split(","):
        if not part:
            raise ValueError(f"empty list item in the {what} field")
        base, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise ValueError(f"step '{step_text}' in the {what} field must be a positive number")
            step = int(step_text)
        if base == "*":
            first, last = lo, hi
        elif "-" in base:
            a, _, b = base.partition("-")
            first, last = number(a), number(b)
            if first > last:
                raise ValueError(f"range '{base}' in the {what} field runs backwards")
        else:
            first = number(base)
            last = hi if step_text else first
        values.update(range(first, last + 1, step))
    if what == "day of week" and 7 in values:  # both 0 and 7 mean Sunday
        values = (values - {7}) | {0}
    return frozenset(values)


@dataclass(frozen=True)
class Cron:
    minutes: frozenset[int]
    hours: frozenset[int]
    month_days: frozenset[int]
    months: frozenset[int]
    week_days: frozenset[int]  # 0 = Sunday
    any_month_day: bool
    any_week_day: bool

    def day_matches(self, day: dt.date) -> bool:
        if day.month not in self.months:
            return False
        dom = day.day in self.month_days
        dow = (day.isoweekday() % 7) in self.week_days
        # cron: when both day fields are restricted, either one matching is enough
        if self.any_month_day and self.any_week_day:
            return True
        if self.any_month_day:
            return dow
        if self.any_week_day:
            return dom
        return dom or dow


def parse_cron(expression) -> Cron:
    fields = str(expression or "").split()
    if len(fields) != 5:
        raise ValueError(
            f"cron expression '{expression}' must have 5 fields (minute hour day-of-month month day-of-week), "
            f"e.g. '0 18 * * 1-5'")
    minute, hour, dom, month, dow = fields
    return Cron(
        minutes=_cron_field(minute, 0, 59, None, "minute"),
        hours=_cron_field(hour, 0, 23, None, "hour"),
        month_days=_cron_field(dom, 1, 31, None, "day of month"),
        months=_cron_field(month, 1, 12, _MONTH_NAMES, "month"),
        week_days=_cron_field(dow, 0, 7, _DOW_NAMES, "day of week"),
        any_month_day=dom == "*",
        any_week_day=dow == "*",
    )


# ---- a schedule --------------------------------------------------------------


@dataclass(frozen=True)
class Schedule:
    action: str  # Start | Stop
    enabled: bool
    tz: dt.tzinfo
    start: float | None  # epoch; nothing is due before it
    cron: Cron | None = None
    frequency: str | None = None  # recurrence only
    interval: int = 1
    hours: tuple[int, ...] = ()
    minutes: tuple[int, ...] = ()
    week_days: frozenset[int] = frozenset()  # 0 = Sunday
    month_days: frozenset[int] = frozenset()

    def next_due(self, after: float) -> float | None:
        """The first instant strictly after ``after`` (epoch seconds) at which
        this schedule fires, or None if it never does (or is disabled)."""
        if not self.enabled:
            return None
        after = max(after, self.start - 1) if self.start is not None else after
        if self.cron is not None:
            return self._next_by_day(after, self.cron.day_matches, self.cron.hours, self.cron.minutes)
        if self.frequency in ("Minute", "Hour"):
            return self._next_by_step(after)
        return self._next_by_day(after, self._recurrence_day, self._day_hours(), self._day_minutes())

    # recurrences count their interval from startTime (or, without one, from
    # the Unix epoch in the schedule's zone, so the answer does not depend on
    # when it was asked)
    def _origin(self) -> dt.datetime:
        if self.start is not None:
            return dt.datetime.fromtimestamp(self.start, self.tz).replace(tzinfo=None)
        return dt.datetime(1970, 1, 5)  # a Monday, so week counting starts on Mondays

    def _day_hours(self) -> tuple[int, ...]:
        return self.hours or ((self._origin().hour,) if self.start is not None else (0,))

    def _day_minutes(self) -> tuple[int, ...]:
        return self.minutes or ((self._origin().minute,) if self.start is not None else (0,))

    def _recurrence_day(self, day: dt.date) -> bool:
        origin = self._origin().date()
        if self.frequency == "Day":
            return (day - origin).days % self.interval == 0
        if self.frequency == "Week":
            week_start = origin - dt.timedelta(days=origin.weekday())  # weeks run Monday to Sunday
            if ((day - week_start).days // 7) % self.interval:
                return False
            days = self.week_days or {origin.isoweekday() % 7}
            return (day.isoweekday() % 7) in days
        # Month
        months = (day.year - origin.year) * 12 + day.month - origin.month
        if months % self.interval:
            return False
        return day.day in (self.month_days or {origin.day})

    def _next_by_step(self, after: float) -> float | None:
        unit = 60 if self.frequency == "Minute" else 3600
        step = unit * self.interval
        origin = self.start if self.start is not None else 0.0
        if self.frequency == "Hour" and self.minutes:
            # every interval-th hour from the origin's hour, at the given minutes past it
            hour0 = origin - (origin % 3600)
            k = max(0, int((after - hour0) // step) - 1)
            for _ in range(4):
                for m in sorted(self.minutes):
                    t = hour0 + k * step + m * 60
                    if t > after and (self.start is None or t >= self.start):
                        return t
                k += 1
            return None
        k = max(0, int((after - origin) // step) + 1)
        t = origin + k * step
        while t <= after:
            t += step
        return t

    def _next_by_day(self, after: float, day_ok, hours, minutes) -> float | None:
        times = sorted((h, m) for h in hours for m in minutes)
        if not times:
            return None
        # start a day early: a local day can begin before ``after`` in UTC terms
        day = (dt.datetime.fromtimestamp(after, self.tz) - dt.timedelta(days=1)).date()
        for _ in range(_SEARCH_DAYS):
            if day_ok(day):
                for h, m in times:
                    t = _epoch(dt.datetime(day.year, day.month, day.day, h, m), self.tz)
                    if t > after:
                        return t
            day += dt.timedelta(days=1)
        return None


def _ints(values, lo: int, hi: int, what: str) -> tuple[int, ...]:
    if values in (None, ""):
        return ()
    if not isinstance(values, list):
        raise ValueError(f"{what} must be a list of numbers")
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise ValueError(f"{what} must hold numbers from {lo} to {hi}; got {v!r}")
        out.append(v)
    return tuple(sorted(set(out)))


def _week_days(values) -> frozenset[int]:
    if values in (None, ""):
        return frozenset()
    if not isinstance(values, list):
        raise ValueError("weekDays must be a list of day names, e.g. [\"Monday\", \"Friday\"]")
    by_name = {d.lower(): i for i, d in enumerate(WEEK_DAYS)}
    out = set()
    for v in values:
        i = by_name.get(str(v).strip().lower())
        if i is None:
            raise ValueError(f"weekDays: '{v}' is not a day; use {', '.join(WEEK_DAYS)}")
        out.add(i)
    return frozenset(out)


def _one_of(value, allowed: tuple[str, ...], what: str) -> str:
    for a in allowed:
        if str(value or "").lower() == a.lower():
            return a
    raise ValueError(f"{what} must be one of {', '.join(allowed)}; got '{value}'")


def parse(item) -> Schedule:
    """One ``computeStartStop`` item as the SDK or ARM sends it (keys are
    camelCase, values any case; unknown keys, such as the nested
    ``triggerType`` the SDK adds, are ignored)."""
    if not isinstance(item, dict):
        raise ValueError("each schedule must be an object with action, status, triggerType and a trigger")
    action = _one_of(item.get("action"), ACTIONS, "action")
    status = _one_of(item.get("status") or "Enabled", STATUSES, "status")
    trigger_type = _one_of(item.get("triggerType") or ("Cron" if item.get("cron") else "Recurrence"),
                           ("Cron", "Recurrence"), "triggerType")
    trigger = item.get("cron" if trigger_type == "Cron" else "recurrence")
    if not isinstance(trigger, dict):
        raise ValueError(f"triggerType is {trigger_type} but the schedule has no '{trigger_type.lower()}' object")
    tz = time_zone(trigger.get("timeZone"))
    start = _local_start(trigger.get("startTime"), tz)
    enabled = status == "Enabled"
    if trigger_type == "Cron":
        return Schedule(action=action, enabled=enabled, tz=tz, start=start, cron=parse_cron(trigger.get("expression")))
    frequency = _one_of(trigger.get("frequency"), FREQUENCIES, "recurrence frequency")
    interval = trigger.get("interval", 1)
    if isinstance(interval, bool) or not isinstance(interval, int) or interval < 1:
        raise ValueError(f"recurrence interval must be a whole number of at least 1; got {interval!r}")
    pattern = trigger.get("schedule") or {}
    if not isinstance(pattern, dict):
        raise ValueError("recurrence schedule must be an object of hours, minutes, weekDays and monthDays")
    return Schedule(
        action=action, enabled=enabled, tz=tz, start=start, frequency=frequency, interval=interval,
        hours=_ints(pattern.get("hours"), 0, 23, "hours"),
        minutes=_ints(pattern.get("minutes"), 0, 59, "minutes"),
        week_days=_week_days(pattern.get("weekDays")),
        month_days=frozenset(_ints(pattern.get("monthDays"), 1, 31, "monthDays")),
    )


def parse_all(schedules) -> list[Schedule]:
    """``schedules`` as in a PUT body (``{"computeStartStop": [...]}``, or None)."""
    if schedules in (None, ""):
        return []
    if not isinstance(schedules, dict):
        raise ValueError('schedules must be an object: {"computeStartStop": [...]}')
    items = schedules.get("computeStartStop") or []
    if not isinstance(items, list):
        raise ValueError("schedules.computeStartStop must be a list")
    if len(items) > MAX_SCHEDULES:
        raise ValueError(f"a compute instance can have at most {MAX_SCHEDULES} schedules; got {len(items)}")
    out = []
    for i, item in enumerate(items):
        try:
            out.append(parse(item))
        except ValueError as e:
            raise ValueError(f"schedule {i + 1}: {e}") from None
    return out


def due(schedules: list[Schedule], since: float, until: float) -> list[tuple[float, Schedule]]:
    """(first due time, schedule) of each schedule that fires in (since, until],
    in time order; a schedule that fell due several times there is listed once."""
    out = []
    for s in schedules:
        t = s.next_due(since)
        if t is not None and t <= until:
            out.append((t, s))
    return sorted(out, key=lambda p: p[0])


def next_event(schedules: list[Schedule], after: float) -> float | None:
    """The earliest instant after ``after`` when any of ``schedules`` fires."""
    times = [t for t in (s.next_due(after) for s in schedules) if t is not None]
    return min(times) if times else None
