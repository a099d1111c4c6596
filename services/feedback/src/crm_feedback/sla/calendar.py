"""Business-calendar time: which moments are working time, and the moment a target is reached.

Pure (no I/O). A policy in `SLA_CLOCK_MODE_BUSINESS_CALENDAR` counts only time inside working
hours on working days of its calendar, in the calendar's time zone. A working day is a weekday
listed in `working_days` that is not a holiday, or any date listed as an extra (make-up)
working day. Working hours are local wall-clock times; the arithmetic itself runs in UTC, so a
daylight-saving change inside a working day shortens or lengthens that day as it does for the
staff working it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from crmkit.validation import Violations

MAX_DATES = 366
# A target no calendar reaches within this many days is refused (a calendar with working days
# always reaches a 90-day target sooner; this bounds the loop).
HORIZON_DAYS = 20 * 366


@dataclass(frozen=True)
class BusinessCalendar:
    time_zone: str
    working_days: tuple[int, ...]  # ISO weekdays: 1 Monday .. 7 Sunday
    day_start: time
    day_end: time
    holidays: frozenset[date] = frozenset()
    extra_working_days: frozenset[date] = frozenset()

    def is_working_day(self, day: date) -> bool:
        if day in self.extra_working_days:
            return True
        return day not in self.holidays and day.isoweekday() in self.working_days


def add_working_time(calendar: BusinessCalendar, start: datetime, amount: timedelta) -> datetime:
    """The moment `amount` of working time after `start` (UTC). Time before the next working
    moment does not count; a result on the close of a working day stays there."""
    zone = ZoneInfo(calendar.time_zone)
    cursor = start.astimezone(UTC)
    remaining = amount
    day = start.astimezone(zone).date()
    for _ in range(HORIZON_DAYS):
        if calendar.is_working_day(day):
            opens = datetime.combine(day, calendar.day_start, zone).astimezone(UTC)
            closes = datetime.combine(day, calendar.day_end, zone).astimezone(UTC)
            begin = max(cursor, opens)
            if begin < closes:
                available = closes - begin
                if remaining <= available:
                    return begin + remaining
                remaining -= available
        day += timedelta(days=1)
        cursor = max(cursor, datetime.combine(day, time(0), zone).astimezone(UTC))
    raise ValueError("the calendar has too little working time to reach the target")


def working_time_between(calendar: BusinessCalendar, start: datetime, end: datetime) -> timedelta:
    """Working time from `start` to `end` (zero when `end` is not after `start`)."""
    zone = ZoneInfo(calendar.time_zone)
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    total = timedelta(0)
    day = start.astimezone(zone).date()
    last = end.astimezone(zone).date()
    while day <= last:
        if calendar.is_working_day(day):
            opens = datetime.combine(day, calendar.day_start, zone).astimezone(UTC)
            closes = datetime.combine(day, calendar.day_end, zone).astimezone(UTC)
            overlap = min(closes, end) - max(opens, start)
            total += max(overlap, timedelta(0))
        day += timedelta(days=1)
    return total


def validate(calendar: BusinessCalendar, field: str, v: Violations) -> None:
    """Every rule of a calendar, each under its field path."""
    try:
        ZoneInfo(calendar.time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        v.add(f"{field}.time_zone", "must be an IANA time zone such as Asia/Shanghai")
    days = calendar.working_days
    v.check(bool(days) and set(days) <= set(range(1, 8)) and len(set(days)) == len(days), f"{field}.working_days",
            "must list 1 to 7 distinct days of the week (DayOfWeek, not unspecified)")
    v.check(calendar.day_start < calendar.day_end, f"{field}.day_end", "must be after day_start")
    v.check(len(calendar.holidays) <= MAX_DATES, f"{field}.holidays", f"must have at most {MAX_DATES} dates")
    v.check(len(calendar.extra_working_days) <= MAX_DATES, f"{field}.extra_working_days",
            f"must have at most {MAX_DATES} dates")
    v.check(not calendar.holidays & calendar.extra_working_days, f"{field}.extra_working_days",
            "must not repeat a date listed in holidays")
