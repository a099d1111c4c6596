"""Business-calendar deadlines and the clock worker's decisions: pure rules, no database."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from crm_feedback.sla import calendar as business
from crm_feedback.sla import rules
from crm_feedback.sla.calendar import BusinessCalendar
from crm_feedback.sla.rules import ClockEvent, RunningClock, SlaClock, SlaPolicy
from crmkit.validation import Violations

SHANGHAI = ZoneInfo("Asia/Shanghai")
# Monday to Friday 09:00-17:00 in Shanghai; National Day week 2026 (Thu 1 Oct - Wed 7 Oct) off,
# and Saturday 10 October a make-up working day.
BANK = BusinessCalendar(
    time_zone="Asia/Shanghai", working_days=(1, 2, 3, 4, 5), day_start=time(9), day_end=time(17),
    holidays=frozenset(date(2026, 10, d) for d in range(1, 8)), extra_working_days=frozenset({date(2026, 10, 10)}))


def local(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=SHANGHAI)  # type: ignore[misc]


@pytest.mark.parametrize(("start", "hours", "due"), [
    # within one working day
    (local(2026, 12, 7, 9), 3, local(2026, 12, 7, 12)),
    # a target that ends exactly at closing time stays on that day
    (local(2026, 12, 7, 9), 8, local(2026, 12, 7, 17)),
    # Friday afternoon -> over the weekend -> Monday morning
    (local(2026, 12, 11, 16), 2, local(2026, 12, 14, 10)),
    # received on Saturday: the clock starts on Monday at opening
    (local(2026, 12, 12, 11), 1, local(2026, 12, 14, 10)),
    # received at night: starts the next morning
    (local(2026, 12, 7, 22, 30), 1, local(2026, 12, 8, 10)),
    # the day before National Day: one hour left on Wednesday, the rest after the holiday week
    (local(2026, 9, 30, 16), 8, local(2026, 10, 8, 16)),
    # Friday 9 October -> the make-up Saturday counts
    (local(2026, 10, 9, 16), 2, local(2026, 10, 10, 10)),
    # 48 working hours = six working days
    (local(2026, 12, 7, 9), 48, local(2026, 12, 14, 17)),
])
def test_working_time_skips_nights_weekends_and_holidays(start: datetime, hours: int, due: datetime) -> None:
    reached = business.add_working_time(BANK, start, timedelta(hours=hours))
    assert reached == due
    assert reached.tzinfo is UTC
    assert business.working_time_between(BANK, start, reached) == timedelta(hours=hours)


def test_daylight_saving_day_counts_the_hours_worked() -> None:
    london = BusinessCalendar(time_zone="Europe/London", working_days=(1, 2, 3, 4, 5, 6, 7),
                              day_start=time(0), day_end=time(23))
    # 29 March 2026: clocks go forward at 01:00, so 00:00-23:00 local is 22 hours
    start = datetime(2026, 3, 29, 0, tzinfo=ZoneInfo("Europe/London"))
    assert business.working_time_between(london, start, start + timedelta(days=1)) == timedelta(hours=22)


def test_elapsed_and_business_policies_set_deadlines_and_escalation_points() -> None:
    received = local(2026, 12, 11, 15)  # a Friday, 15:00
    elapsed = SlaPolicy("p", timedelta(hours=4), timedelta(hours=16), pre_breach_escalation_share=0.75)
    d = rules.deadlines(elapsed, received_at=received)
    assert (d.respond_escalate_at, d.respond_by) == (received + timedelta(hours=3), received + timedelta(hours=4))
    assert d.resolve_by == received + timedelta(hours=16)
    calendar_policy = SlaPolicy("p", timedelta(hours=4), timedelta(hours=16), pre_breach_escalation_share=0.75,
                                clock_mode=rules.CLOCK_BUSINESS_CALENDAR, calendar=BANK)
    d = rules.deadlines(calendar_policy, received_at=received)
    assert d.respond_escalate_at == local(2026, 12, 14, 10)  # 2 h on Friday, 1 h on Monday
    assert d.respond_by == local(2026, 12, 14, 11)
    assert d.resolve_escalate_at == local(2026, 12, 15, 11)  # 12 h: 2 on Friday, 8 on Monday, 2 on Tuesday
    assert d.resolve_by == local(2026, 12, 15, 15)
    without_share = rules.deadlines(SlaPolicy("p", timedelta(hours=4), timedelta(hours=8)), received_at=received)
    assert without_share.respond_escalate_at is None and without_share.resolve_escalate_at is None


def clock(due: datetime, escalate_at: datetime | None, *, warned: bool = False, breached: bool = False,
          on_breach: bool = True) -> RunningClock:
    return RunningClock(SlaClock.RESPOND, 0, due, escalate_at, on_breach, warned, breached)


def test_the_worker_escalates_before_breach_then_on_breach_each_once() -> None:
    due, early = datetime(2026, 12, 7, 12, tzinfo=UTC), datetime(2026, 12, 7, 11, tzinfo=UTC)
    assert rules.due_events([clock(due, early)], now=early - timedelta(seconds=1)) == []
    (before,) = rules.due_events([clock(due, early)], now=early)
    assert before.event is ClockEvent.BEFORE_BREACH and before.escalates
    assert rules.due_events([clock(due, early, warned=True)], now=early + timedelta(minutes=30)) == []
    (breach,) = rules.due_events([clock(due, early, warned=True)], now=due)
    assert breach.event is ClockEvent.BREACH and breach.escalates
    assert rules.due_events([clock(due, early, warned=True, breached=True)], now=due + timedelta(days=1)) == []
    # a worker that was down past both points escalates once, for the breach
    (late,) = rules.due_events([clock(due, early)], now=due + timedelta(hours=1))
    assert late.event is ClockEvent.BREACH
    # a policy that does not escalate on breach still records the breach
    (quiet,) = rules.due_events([clock(due, None, on_breach=False)], now=due)
    assert quiet.event is ClockEvent.BREACH and not quiet.escalates


@pytest.mark.parametrize(("calendar", "field", "rule"), [
    (BusinessCalendar("Mars/Olympus", (1,), time(9), time(17)), "time_zone", "IANA"),
    (BusinessCalendar("Asia/Shanghai", (), time(9), time(17)), "working_days", "1 to 7 distinct"),
    (BusinessCalendar("Asia/Shanghai", (1, 1), time(9), time(17)), "working_days", "1 to 7 distinct"),
    (BusinessCalendar("Asia/Shanghai", (0,), time(9), time(17)), "working_days", "1 to 7 distinct"),
    (BusinessCalendar("Asia/Shanghai", (1,), time(17), time(9)), "day_end", "after day_start"),
    (BusinessCalendar("Asia/Shanghai", (1,), time(9), time(17), holidays=frozenset({date(2026, 1, 1)}),
                      extra_working_days=frozenset({date(2026, 1, 1)})), "extra_working_days", "must not repeat"),
])
def test_bad_calendars_name_the_field(calendar: BusinessCalendar, field: str, rule: str) -> None:
    v = Violations()
    business.validate(calendar, "sla_policy.calendar", v)
    assert any(f.field == f"sla_policy.calendar.{field}" and rule in f.description for f in v._items)
