"""SLA clocks driven through time: a feedback service on a `ManualClock` and its own database (the
clock moves hours forward, which would breach every other test's complaints), the clock worker
escalating before breach and on breach, the breaches and the report after, two replicas racing,
and business-calendar policies. Real in-process gRPC server and PostgreSQL throughout."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.field_mask_pb2 import FieldMask
from google.type import date_pb2, dayofweek_pb2, interval_pb2, timeofday_pb2

from crm.common.v1 import audit_pb2, change_event_pb2
from crm.feedback.v1 import channel_pb2, classification_pb2, complaint_pb2, feedback_service_pb2_grpc, sla_pb2
from crm.feedback.v1 import feedback_service_pb2 as pb
from crm_feedback.app import SPEC
from crmkit.auth import Role
from crmkit.clock import ManualClock
from crmkit.testing import (
    bearer,
    change_feed,
    eventually,
    field_violations,
    migrated_database,
    next_events,
    row_counts,
    running_service,
    tail_cursor,
)

from ..conftest import FEEDBACK_SETTINGS, Clocked, make_complaint

ADMIN = bearer(Role.ADMIN, subject="admin-1")
RM = bearer(Role.RELATIONSHIP_MANAGER, subject="rm-007")
OTHER_RM = bearer(Role.RELATIONSHIP_MANAGER, subject="rm-999")
FEED = bearer(Role.SERVICE, subject="svc-risk")
PURPOSE = audit_pb2.AuditContext(purpose=audit_pb2.ACCESS_PURPOSE_COMPLAINT, justification="CASE-1")
COMPLAINT_TYPE = "crm.feedback.v1.Complaint"


def hours(n: float) -> Duration:
    return Duration(seconds=int(n * 3600))


async def create_policy(stub: Any, **fields: Any) -> sla_pb2.SlaPolicy:
    return (await stub.CreateSlaPolicy(pb.CreateSlaPolicyRequest(
        sla_policy=sla_pb2.SlaPolicy(**fields), request_id=str(uuid.uuid4())), metadata=ADMIN)).sla_policy


async def file(stub: Any, **fields: Any) -> complaint_pb2.Complaint:
    return (await stub.FileComplaint(pb.FileComplaintRequest(
        complaint=make_complaint(**fields), request_id=str(uuid.uuid4())), metadata=RM)).complaint


async def get(stub: Any, name: str) -> complaint_pb2.Complaint:
    return (await stub.GetComplaint(pb.GetComplaintRequest(name=name, audit=PURPOSE), metadata=ADMIN)).complaint


async def resolve(stub: Any, name: str, summary: str) -> None:
    await stub.ResolveComplaint(pb.ResolveComplaintRequest(name=name, resolution=complaint_pb2.ComplaintResolution(
        outcome=complaint_pb2.RESOLUTION_OUTCOME_UPHELD, summary=summary)), metadata=RM)


def feed(stub: Any) -> Any:
    return change_feed(stub, pb.WatchChangesRequest, FEED)


def payloads(events: list[change_event_pb2.ChangeEvent], kind: type) -> list[Any]:
    found = []
    for event in events:
        message = kind()
        if event.payload.Is(kind.DESCRIPTOR) and event.payload.Unpack(message):
            found.append(message)
    return found


async def test_the_clock_escalates_before_breach_then_on_breach_and_the_report_counts_it(clocked: Clocked) -> None:
    stub, clock = clocked.stub, clocked.clock
    await create_policy(stub, display_name="Cards - urgent", category=classification_pb2.COMPLAINT_CATEGORY_CARDS,
                        priority=complaint_pb2.COMPLAINT_PRIORITY_URGENT, respond_within=hours(4),
                        resolve_within=hours(24), escalate_on_breach=True, pre_breach_escalation_share=0.75)
    branch = f"BR-{uuid.uuid4().hex[:6]}"
    t0 = clock()
    late = await file(stub, category=classification_pb2.COMPLAINT_CATEGORY_CARDS,
                      priority=complaint_pb2.COMPLAINT_PRIORITY_URGENT, branch_id=branch)
    punctual = await file(stub, category=classification_pb2.COMPLAINT_CATEGORY_CARDS,
                          priority=complaint_pb2.COMPLAINT_PRIORITY_URGENT, branch_id=branch)
    sla = late.sla
    assert sla.sla_policy.startswith("slaPolicies/")
    assert sla.respond_escalate_time.ToDatetime(UTC) == t0 + timedelta(hours=3)
    assert sla.respond_by.ToDatetime(UTC) == t0 + timedelta(hours=4)
    assert sla.resolve_escalate_time.ToDatetime(UTC) == t0 + timedelta(hours=18)
    assert sla.resolve_by.ToDatetime(UTC) == t0 + timedelta(hours=24)
    worker = clocked.worker()
    cursor = await tail_cursor(feed(stub))

    clock.advance(timedelta(hours=1))
    await stub.AcknowledgeComplaint(pb.AcknowledgeComplaintRequest(
        name=punctual.name, response_channel=channel_pb2.CHANNEL_CALL_CENTRE), metadata=RM)
    clock.set(t0 + timedelta(hours=3) - timedelta(seconds=1))
    await worker.run_once()
    assert (await get(stub, late.name)).escalation_level == 0, "not before 75 % of the target"

    clock.set(t0 + timedelta(hours=3))
    await worker.run_once()
    await worker.run_once()  # a second round finds nothing more to do
    after_warning = await get(stub, late.name)
    assert after_warning.escalation_level == 1
    (warning,) = after_warning.escalations
    assert warning.trigger == complaint_pb2.ESCALATION_TRIGGER_BEFORE_BREACH
    assert warning.automatic and warning.actor == "system:sla" and "respond SLA about to breach" in warning.reason
    assert (await get(stub, punctual.name)).escalation_level == 0, "its respond clock had stopped"

    clock.set(t0 + timedelta(hours=4))
    await worker.run_once()
    after_breach = await get(stub, late.name)
    assert after_breach.escalation_level == 2
    assert after_breach.escalations[-1].trigger == complaint_pb2.ESCALATION_TRIGGER_BREACH
    assert after_breach.sla.respond_breached
    running = (await stub.ListSlaBreaches(pb.ListSlaBreachesRequest(branch_id=branch, running_only=True),
                                          metadata=ADMIN)).sla_breaches
    assert [(b.complaint, b.clock, b.HasField("stop_time")) for b in running] == [
        (late.name, sla_pb2.SLA_CLOCK_RESPOND, False)]
    assert running[0].escalation_level == 2 and running[0].branch_id == branch

    # Other tests share this service: their complaints may breach as the clock moves too.
    events = [e for e in await next_events(feed(stub), cursor, 100, resource_types=[COMPLAINT_TYPE], seconds=2)
              if e.resource_name == late.name]
    steps = payloads(events, complaint_pb2.ComplaintStepEvent)
    assert [(s.complaint.name, s.step.escalation_trigger) for s in steps
            if s.step.action == complaint_pb2.COMPLAINT_ACTION_ESCALATED] == [
        (late.name, complaint_pb2.ESCALATION_TRIGGER_BEFORE_BREACH),
        (late.name, complaint_pb2.ESCALATION_TRIGGER_BREACH)]
    (breach_event,) = payloads(events, sla_pb2.SlaBreach)
    assert (breach_event.complaint, breach_event.clock) == (late.name, sla_pb2.SLA_CLOCK_RESPOND)
    assert breach_event.due_time.ToDatetime(UTC) == t0 + timedelta(hours=4)

    clock.set(t0 + timedelta(hours=5))
    await stub.AcknowledgeComplaint(pb.AcknowledgeComplaintRequest(
        name=late.name, response_channel=channel_pb2.CHANNEL_CALL_CENTRE), metadata=RM)
    clock.set(t0 + timedelta(hours=10))
    await resolve(stub, punctual.name, "Fee refunded.")
    clock.set(t0 + timedelta(hours=18))
    await worker.run_once()
    assert (await get(stub, late.name)).escalation_level == 3, "resolve clock: before breach"
    clock.set(t0 + timedelta(hours=24))
    await worker.run_once()
    at_max = await get(stub, late.name)
    assert at_max.escalation_level == 3 and len(at_max.escalations) == 3, "level 3 is the highest"
    assert at_max.sla.resolve_breached
    clock.set(t0 + timedelta(hours=26))
    await resolve(stub, late.name, "Card replaced.")

    breaches = (await stub.ListSlaBreaches(pb.ListSlaBreachesRequest(branch_id=branch), metadata=ADMIN)).sla_breaches
    assert [(b.clock, b.overdue.ToTimedelta()) for b in breaches] == [
        (sla_pb2.SLA_CLOCK_RESOLVE, timedelta(hours=2)), (sla_pb2.SLA_CLOCK_RESPOND, timedelta(hours=1))]
    assert all(b.HasField("stop_time") for b in breaches)
    assert (await stub.ListSlaBreaches(pb.ListSlaBreachesRequest(branch_id=branch), metadata=OTHER_RM)
            ).sla_breaches == [], "a manager sees only their own book"

    interval = interval_pb2.Interval()
    interval.start_time.FromDatetime(t0)
    interval.end_time.FromDatetime(t0 + timedelta(days=2))
    report = (await stub.GetSlaBreachReport(pb.GetSlaBreachReportRequest(
        interval=interval, branch_id=branch, group_by=sla_pb2.REPORT_DIMENSION_CATEGORY), metadata=ADMIN)).report
    total = report.total
    assert (total.respond_due, total.respond_breached, total.resolve_due, total.resolve_breached) == (2, 1, 2, 1)
    assert (total.respond_met_share, total.resolve_met_share, total.breach_rate) == (0.5, 0.5, 0.5)
    assert total.median_overdue.ToTimedelta() == timedelta(hours=1.5)
    assert total.max_overdue.ToTimedelta() == timedelta(hours=2)
    assert [r.key for r in report.rows] == ["COMPLAINT_CATEGORY_CARDS"]
    by_day = (await stub.GetSlaBreachReport(pb.GetSlaBreachReportRequest(
        interval=interval, branch_id=branch, group_by=sla_pb2.REPORT_DIMENSION_DAY), metadata=ADMIN)).report
    assert sum(r.respond_due + r.resolve_due for r in by_day.rows) == 4
    assert all(len(r.key) == 10 and r.key[4] == "-" for r in by_day.rows)


async def test_two_replicas_racing_escalate_each_complaint_once(clocked: Clocked) -> None:
    stub, clock = clocked.stub, clocked.clock
    await create_policy(stub, display_name="Loans - low",
                        category=classification_pb2.COMPLAINT_CATEGORY_LOANS_AND_CREDIT,
                        priority=complaint_pb2.COMPLAINT_PRIORITY_LOW, respond_within=hours(2),
                        resolve_within=hours(8), escalate_on_breach=True, pre_breach_escalation_share=0.5)
    filed = [await file(stub, category=classification_pb2.COMPLAINT_CATEGORY_LOANS_AND_CREDIT,
                        priority=complaint_pb2.COMPLAINT_PRIORITY_LOW) for _ in range(24)]
    cursor = await tail_cursor(feed(stub))
    one, two = clocked.worker(batch_size=5), clocked.worker(batch_size=5)
    clock.advance(timedelta(hours=1))
    while sum(await asyncio.gather(one.run_once(), two.run_once(), one.run_once(), two.run_once())):
        pass
    levels = [(await get(stub, c.name)).escalation_level for c in filed]
    assert levels == [1] * len(filed)
    names = {c.name for c in filed}
    events = await next_events(feed(stub), cursor, 1000, resource_types=[COMPLAINT_TYPE], seconds=2)
    escalated = [s.complaint.name for s in payloads(events, complaint_pb2.ComplaintStepEvent)
                 if s.step.action == complaint_pb2.COMPLAINT_ACTION_ESCALATED and s.complaint.name in names]
    assert sorted(escalated) == sorted(names), "one escalation event each"

    # the same, through the background loops of both replicas
    one.start()
    two.start()
    try:
        clock.advance(timedelta(hours=1))
        await eventually(lambda: asyncio.gather(*(get(stub, c.name) for c in filed)),
                         until=lambda got: all(c.escalation_level >= 2 for c in got), what="every complaint breached")
    finally:
        await one.close()
        await two.close()
    assert (await one.details())["sla_clock_last_round"] == clock().isoformat()
    assert (await two.details())["sla_clock_failing"] is False
    final = [await get(stub, c.name) for c in filed]
    assert [len(c.escalations) for c in final] == [2] * len(filed)
    breaches = (await stub.ListSlaBreaches(pb.ListSlaBreachesRequest(
        category=classification_pb2.COMPLAINT_CATEGORY_LOANS_AND_CREDIT, page_size=1000), metadata=ADMIN)).sla_breaches
    assert len(breaches) == len(filed)


async def test_a_clock_stopped_late_is_a_breach_on_the_feed_without_the_worker(clocked: Clocked) -> None:
    stub, clock = clocked.stub, clocked.clock
    branch = f"BR-{uuid.uuid4().hex[:6]}"
    complaint = await file(stub, branch_id=branch, category=classification_pb2.COMPLAINT_CATEGORY_OTHER,
                           priority=complaint_pb2.COMPLAINT_PRIORITY_MEDIUM)
    cursor = await tail_cursor(feed(stub))
    clock.set(complaint.sla.respond_by.ToDatetime(UTC) + timedelta(minutes=30))
    await stub.AcknowledgeComplaint(pb.AcknowledgeComplaintRequest(
        name=complaint.name, response_channel=channel_pb2.CHANNEL_BRANCH), metadata=RM)
    events = await next_events(feed(stub), cursor, 1000, resource_types=[COMPLAINT_TYPE], seconds=2)
    (breach,) = payloads([e for e in events if e.resource_name == complaint.name], sla_pb2.SlaBreach)
    assert breach.clock == sla_pb2.SLA_CLOCK_RESPOND and breach.overdue.ToTimedelta() == timedelta(minutes=30)
    assert breach.escalation_level == 0, "a late answer records the breach; only a running clock escalates"
    await clocked.worker().run_once()
    assert (await get(stub, complaint.name)).escalation_level == 0


async def test_a_business_calendar_policy_counts_working_hours_and_skips_holidays(clocked: Clocked) -> None:
    stub, clock = clocked.stub, clocked.clock
    now = clock()
    # Received at the last 08:00 UTC; the bank works 09:00-10:00 UTC every day but the next day.
    received = now.replace(hour=8, minute=0, second=0) - (timedelta(0) if now.hour >= 8 else timedelta(days=1))
    holiday = (received + timedelta(days=1)).date()
    calendar = sla_pb2.BusinessCalendar(
        time_zone="UTC", working_days=list(range(1, 8)), day_start=timeofday_pb2.TimeOfDay(hours=9),
        day_end=timeofday_pb2.TimeOfDay(hours=10),
        holidays=[date_pb2.Date(year=holiday.year, month=holiday.month, day=holiday.day)])
    made = await create_policy(stub, display_name="Privacy - business hours",
                               category=classification_pb2.COMPLAINT_CATEGORY_PRIVACY_AND_DATA,
                               priority=complaint_pb2.COMPLAINT_PRIORITY_LOW, respond_within=hours(1),
                               resolve_within=hours(2), clock_mode=sla_pb2.SLA_CLOCK_MODE_BUSINESS_CALENDAR,
                               calendar=calendar, pre_breach_escalation_share=0.5)
    got = (await stub.GetSlaPolicy(pb.GetSlaPolicyRequest(name=made.name), metadata=ADMIN)).sla_policy
    assert got.calendar == calendar and got.clock_mode == sla_pb2.SLA_CLOCK_MODE_BUSINESS_CALENDAR
    filing = make_complaint(category=classification_pb2.COMPLAINT_CATEGORY_PRIVACY_AND_DATA,
                            priority=complaint_pb2.COMPLAINT_PRIORITY_LOW)
    filing.receive_time.FromDatetime(received)
    complaint = (await stub.FileComplaint(pb.FileComplaintRequest(complaint=filing, request_id=str(uuid.uuid4())),
                                          metadata=RM)).complaint
    day = received.replace(hour=0)
    assert complaint.sla.respond_escalate_time.ToDatetime(UTC) == day + timedelta(hours=9, minutes=30)
    assert complaint.sla.respond_by.ToDatetime(UTC) == day + timedelta(hours=10)
    assert complaint.sla.resolve_by.ToDatetime(UTC) == day + timedelta(days=2, hours=10), "the holiday is skipped"

    updated = (await stub.UpdateSlaPolicy(pb.UpdateSlaPolicyRequest(
        sla_policy=sla_pb2.SlaPolicy(name=made.name, calendar=sla_pb2.BusinessCalendar(
            time_zone="Asia/Shanghai", working_days=[dayofweek_pb2.MONDAY], day_start=timeofday_pb2.TimeOfDay(hours=9),
            day_end=timeofday_pb2.TimeOfDay(hours=17))),
        update_mask=FieldMask(paths=["calendar"])), metadata=ADMIN)).sla_policy
    assert updated.calendar.time_zone == "Asia/Shanghai" and list(updated.calendar.working_days) == [1]


@pytest.mark.parametrize(("fields", "field", "rule"), [
    ({"clock_mode": sla_pb2.SLA_CLOCK_MODE_BUSINESS_CALENDAR,
      "calendar": sla_pb2.BusinessCalendar(time_zone="Nowhere/Special", working_days=[1],
                                           day_start=timeofday_pb2.TimeOfDay(hours=9),
                                           day_end=timeofday_pb2.TimeOfDay(hours=17))},
     "sla_policy.calendar.time_zone", "IANA"),
    ({"clock_mode": sla_pb2.SLA_CLOCK_MODE_BUSINESS_CALENDAR,
      "calendar": sla_pb2.BusinessCalendar(time_zone="UTC", working_days=[1],
                                           day_start=timeofday_pb2.TimeOfDay(hours=9),
                                           day_end=timeofday_pb2.TimeOfDay(hours=17),
                                           holidays=[date_pb2.Date(year=2026, month=13, day=1)])},
     "sla_policy.calendar.holidays[0]", "valid date"),
    ({"clock_mode": sla_pb2.SLA_CLOCK_MODE_BUSINESS_CALENDAR,
      "calendar": sla_pb2.BusinessCalendar(time_zone="UTC", working_days=[1],
                                           day_start=timeofday_pb2.TimeOfDay(hours=17),
                                           day_end=timeofday_pb2.TimeOfDay(hours=9))},
     "sla_policy.calendar.day_end", "after day_start"),
    ({"calendar": sla_pb2.BusinessCalendar(time_zone="UTC", working_days=[1],
                                           day_start=timeofday_pb2.TimeOfDay(hours=9),
                                           day_end=timeofday_pb2.TimeOfDay(hours=17))},
     "sla_policy.calendar", "must be unset unless"),
])
async def test_a_bad_calendar_is_refused_naming_the_field(clocked: Clocked, fields: dict[str, Any], field: str,
                                                          rule: str) -> None:
    before = await row_counts(clocked.service, "sla_policy", "outbox_event")
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await create_policy(clocked.stub, display_name="Bad", category=classification_pb2.COMPLAINT_CATEGORY_CARDS,
                            priority=complaint_pb2.COMPLAINT_PRIORITY_LOW, respond_within=hours(1),
                            resolve_within=hours(2), **fields)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert rule in field_violations(error.value)[field]
    assert await row_counts(clocked.service, "sla_policy", "outbox_event") == before


def interval(start: datetime | None, end: datetime | None) -> interval_pb2.Interval:
    message = interval_pb2.Interval()
    if start is not None:
        message.start_time.FromDatetime(start)
    if end is not None:
        message.end_time.FromDatetime(end)
    return message


NOW = datetime(2026, 12, 7, tzinfo=UTC)


@pytest.mark.parametrize(("request_fields", "field"), [
    ({}, "interval"),
    ({"interval": interval(NOW, None)}, "interval"),
    ({"interval": interval(NOW, NOW - timedelta(days=1))}, "interval"),
    ({"interval": interval(NOW, NOW + timedelta(days=367))}, "interval"),
    ({"interval": interval(NOW, NOW + timedelta(days=1)), "group_by": 99}, "group_by"),
    ({"interval": interval(NOW, NOW + timedelta(days=1)), "channel": 99}, "channel"),
])
async def test_a_bad_report_request_names_the_field(feedback: Any, request_fields: dict[str, Any], field: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await feedback.GetSlaBreachReport(pb.GetSlaBreachReportRequest(**request_fields), metadata=ADMIN)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in field_violations(error.value)


@pytest.mark.parametrize(("request_fields", "field"), [
    ({"clock": 9}, "clock"),
    ({"category": 99}, "category"),
    ({"customer": "people/1"}, "customer"),
    ({"page_size": -1}, "page_size"),
    ({"due_interval": interval(NOW, NOW - timedelta(hours=1))}, "due_interval"),
    ({"page_token": "not-a-token"}, "page_token"),
])
async def test_a_bad_breach_list_request_names_the_field(feedback: Any, request_fields: dict[str, Any],
                                                         field: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await feedback.ListSlaBreaches(pb.ListSlaBreachesRequest(**request_fields), metadata=ADMIN)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in field_violations(error.value)


async def test_breach_rpcs_need_a_reading_role(feedback: Any) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await feedback.ListSlaBreaches(pb.ListSlaBreachesRequest(), metadata=bearer(Role.CHANNEL_APP))
    assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_the_service_runs_its_clock_worker_in_the_background(database_factory: Any) -> None:
    url = await migrated_database(database_factory, SPEC)
    clock = ManualClock(datetime.now(UTC).replace(microsecond=0))
    settings = {**FEEDBACK_SETTINGS, "sla_clock_seconds": 0.05}
    async with running_service(SPEC, database_url=url, clock=clock, **settings) as (channel, runtime):
        stub = feedback_service_pb2_grpc.FeedbackServiceStub(channel)
        complaint = await file(stub)
        clock.advance(timedelta(hours=49))  # past the default policy's 48 h

        async def breaches() -> list[Any]:
            return list((await stub.ListSlaBreaches(pb.ListSlaBreachesRequest(), metadata=ADMIN)).sla_breaches)
        found = await eventually(breaches, until=lambda b: len(b) == 2, what="both clocks recorded as breached")
        assert {b.complaint for b in found} == {complaint.name}
        details = await runtime.collect_health_details()
        assert details["sla_clock_last_round"] and details["sla_clock_failing"] is False
