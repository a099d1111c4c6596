"""SLA protos <-> the domain's values: policies (with their calendars), breaches and the report."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

from google.protobuf.message import Message
from google.type import date_pb2, timeofday_pb2

from crm.feedback.v1 import channel_pb2, classification_pb2, complaint_pb2, sla_pb2
from crm.feedback.v1 import feedback_service_pb2 as pb
from crm_feedback.sla.calendar import BusinessCalendar
from crm_feedback.sla.clocks import Breach, BreachFilter, Report, ReportFilter, ReportRow
from crm_feedback.sla.rules import SlaPolicy
from crmkit.errors import FieldViolation, InvalidArgument
from crmkit.values import set_timestamps

_PERIOD_DIMENSIONS = (sla_pb2.REPORT_DIMENSION_DAY, sla_pb2.REPORT_DIMENSION_WEEK, sla_pb2.REPORT_DIMENSION_MONTH)


def _date(value: date_pb2.Date, field: str, bad: list[FieldViolation]) -> date | None:
    try:
        return date(value.year, value.month, value.day)
    except ValueError:
        bad.append(FieldViolation(field, "must be a full, valid date (year, month and day)"))
        return None


def _time(value: timeofday_pb2.TimeOfDay, field: str, bad: list[FieldViolation]) -> time | None:
    try:
        return time(value.hours, value.minutes, value.seconds)
    except ValueError:
        bad.append(FieldViolation(field, "must be a valid time of day, 00:00 to 23:59:59"))
        return None


def calendar_to_domain(message: sla_pb2.BusinessCalendar, field: str) -> BusinessCalendar:
    bad: list[FieldViolation] = []
    start = _time(message.day_start, f"{field}.day_start", bad)
    end = _time(message.day_end, f"{field}.day_end", bad)
    holidays = [_date(d, f"{field}.holidays[{i}]", bad) for i, d in enumerate(message.holidays)]
    extra = [_date(d, f"{field}.extra_working_days[{i}]", bad) for i, d in enumerate(message.extra_working_days)]
    if bad:
        raise InvalidArgument(bad)
    assert start is not None and end is not None
    return BusinessCalendar(
        time_zone=message.time_zone, working_days=tuple(int(d) for d in message.working_days), day_start=start,
        day_end=end, holidays=frozenset(d for d in holidays if d), extra_working_days=frozenset(d for d in extra if d))


def to_domain(message: sla_pb2.SlaPolicy, *, sla_policy_id: str | None = None) -> SlaPolicy:
    """Output-only fields are ignored; an unset target is None (the rules say it is required)."""
    return SlaPolicy(
        sla_policy_id=message.sla_policy_id if sla_policy_id is None else sla_policy_id,
        display_name=message.display_name, category=message.category, priority=message.priority,
        respond_within=message.respond_within.ToTimedelta() if message.HasField("respond_within") else None,
        resolve_within=message.resolve_within.ToTimedelta() if message.HasField("resolve_within") else None,
        escalate_on_breach=message.escalate_on_breach, clock_mode=message.clock_mode,
        pre_breach_escalation_share=message.pre_breach_escalation_share,
        calendar=calendar_to_domain(message.calendar, "sla_policy.calendar") if message.HasField("calendar") else None,
    )


def to_proto(policy: SlaPolicy) -> sla_pb2.SlaPolicy:
    message = sla_pb2.SlaPolicy(
        name=policy.name, sla_policy_id=policy.sla_policy_id, etag=policy.etag, display_name=policy.display_name,
        category=policy.category,  # type: ignore[arg-type]  # stored enum number
        priority=policy.priority,  # type: ignore[arg-type]
        escalate_on_breach=policy.escalate_on_breach,
        clock_mode=policy.clock_mode,  # type: ignore[arg-type]
        pre_breach_escalation_share=policy.pre_breach_escalation_share,
    )
    message.respond_within.FromTimedelta(policy.respond)
    message.resolve_within.FromTimedelta(policy.resolve)
    if policy.calendar is not None:
        c, target = policy.calendar, message.calendar
        target.time_zone = c.time_zone
        target.working_days.extend(c.working_days)  # ISO weekday numbers are DayOfWeek numbers
        target.day_start.CopyFrom(timeofday_pb2.TimeOfDay(hours=c.day_start.hour, minutes=c.day_start.minute,
                                                          seconds=c.day_start.second))
        target.day_end.CopyFrom(timeofday_pb2.TimeOfDay(hours=c.day_end.hour, minutes=c.day_end.minute,
                                                        seconds=c.day_end.second))
        target.holidays.extend(date_pb2.Date(year=d.year, month=d.month, day=d.day) for d in sorted(c.holidays))
        target.extra_working_days.extend(date_pb2.Date(year=d.year, month=d.month, day=d.day)
                                         for d in sorted(c.extra_working_days))
    set_timestamps(message, create_time=policy.created_at, update_time=policy.updated_at)
    return message


def _timestamp(parent: Message, field: str, path: str, bad: list[FieldViolation]) -> datetime | None:
    if not parent.HasField(field):
        return None
    try:
        return getattr(parent, field).ToDatetime(tzinfo=UTC)
    except ValueError:
        bad.append(FieldViolation(path, "is not a valid timestamp"))
        return None


def breach_filter_from(request: pb.ListSlaBreachesRequest) -> BreachFilter:
    bad: list[FieldViolation] = []
    start = _timestamp(request.due_interval, "start_time", "due_interval.start_time", bad)
    end = _timestamp(request.due_interval, "end_time", "due_interval.end_time", bad)
    if bad:
        raise InvalidArgument(bad)
    return BreachFilter(due_start=start, due_end=end, clock=request.clock, category=request.category,
                        priority=request.priority, branch_id=request.branch_id, assignee=request.assignee,
                        customer=request.customer, running_only=request.running_only)


def report_filter_from(request: pb.GetSlaBreachReportRequest) -> ReportFilter | None:
    """None when the interval is not closed on both ends (the service says so)."""
    bad: list[FieldViolation] = []
    start = _timestamp(request.interval, "start_time", "interval.start_time", bad)
    end = _timestamp(request.interval, "end_time", "interval.end_time", bad)
    if bad:
        raise InvalidArgument(bad)
    if start is None or end is None:
        return None
    return ReportFilter(start=start, end=end, group_by=request.group_by, category=request.category,
                        priority=request.priority, channel=request.channel, branch_id=request.branch_id)


def breach_to_proto(breach: Breach) -> sla_pb2.SlaBreach:
    s = breach.snapshot
    message = sla_pb2.SlaBreach(
        complaint=f"complaints/{breach.complaint_id}", customer=f"customers/{breach.customer_id}",
        clock=sla_pb2.SlaClock.ValueType(breach.clock),
        category=classification_pb2.ComplaintCategory.ValueType(s.category),
        priority=complaint_pb2.ComplaintPriority.ValueType(s.priority),
        channel=channel_pb2.Channel.ValueType(breach.channel), branch_id=s.branch_id, assignee=s.assignee,
        sla_policy=breach.sla_policy, escalation_level=s.escalation_level)
    set_timestamps(message, due_time=breach.due_at, stop_time=breach.stopped_at)
    message.overdue.FromTimedelta(breach.overdue)
    return message


def _key(dimension: int, key: object) -> str:
    if key is None:
        return ""
    if dimension == sla_pb2.REPORT_DIMENSION_CATEGORY:
        return classification_pb2.ComplaintCategory.Name(int(key))  # type: ignore[call-overload]
    if dimension == sla_pb2.REPORT_DIMENSION_PRIORITY:
        return complaint_pb2.ComplaintPriority.Name(int(key))  # type: ignore[call-overload]
    if dimension == sla_pb2.REPORT_DIMENSION_CHANNEL:
        return channel_pb2.Channel.Name(int(key))  # type: ignore[call-overload]
    if dimension in _PERIOD_DIMENSIONS and isinstance(key, date):
        return key.isoformat()
    return str(key)


def _row_to_proto(row: ReportRow, dimension: int) -> sla_pb2.SlaBreachReportRow:
    message = sla_pb2.SlaBreachReportRow(
        key=_key(dimension, row.key), respond_due=row.respond_due, respond_breached=row.respond_breached,
        resolve_due=row.resolve_due, resolve_breached=row.resolve_breached, breach_rate=row.breach_rate)
    if row.median_overdue is not None:
        message.median_overdue.FromTimedelta(row.median_overdue)
    if row.max_overdue is not None:
        message.max_overdue.FromTimedelta(row.max_overdue)
    if row.respond_met_share is not None:
        message.respond_met_share = row.respond_met_share
    if row.resolve_met_share is not None:
        message.resolve_met_share = row.resolve_met_share
    return message


def report_to_proto(report: Report) -> sla_pb2.SlaBreachReport:
    message = sla_pb2.SlaBreachReport(group_by=sla_pb2.ReportDimension.ValueType(report.group_by),
                                      rows=[_row_to_proto(r, report.group_by) for r in report.rows],
                                      total=_row_to_proto(report.total, report.group_by))
    set_timestamps(message.interval, start_time=report.start, end_time=report.end)
    set_timestamps(message, compute_time=report.computed_at)
    return message
