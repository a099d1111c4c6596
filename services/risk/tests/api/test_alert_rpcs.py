"""The alert workflow through a real in-process server and PostgreSQL: alerts raised by a rule
(as the rule evaluator will), read and listed (a relationship manager's own book only),
acknowledged, assigned, resolved with an outcome or dismissed with a reason, escalated by the
clock worker at the response deadline (two replicas at once, each alert once), the share answered
within 24 h, and every step refused on a closed alert with nothing changed."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from google.type import interval_pb2

from crm.risk.v1 import alert_pb2, risk_service_pb2_grpc
from crm.risk.v1 import risk_service_pb2 as pb
from crm_risk.alerting.escalator import AlertEscalator
from crm_risk.alerting.model import Alert, Evidence
from crm_risk.alerts.repository import AlertRuleRepository
from crm_risk.app import SPEC
from crmkit.auth import Role
from crmkit.testing import (
    bearer,
    change_feed,
    error_reason,
    eventually,
    field_violations,
    migrated_database,
    read_changes,
    rows_about,
    running_service,
)
from crmkit.values import timestamp

OFFICER = bearer(Role.RISK_OFFICER, subject="ro-1")
ANALYST = bearer(Role.ANALYST, subject="an-1")
HOUR = timedelta(hours=1)


@pytest.fixture
async def raise_alert(risk, risk_service, new_rule, alerts_of, movable_clock) -> Any:  # type: ignore[no-untyped-def]
    """`await raise_alert(ago=..., rm=..., branch=...)`: an alert of a fresh rule, as the evaluator raises it."""
    _, runtime = risk_service
    created = (await risk.CreateAlertRule(pb.CreateAlertRuleRequest(
        alert_rule=new_rule(default_assignee="")), metadata=OFFICER)).alert_rule

    async def make(*, ago: timedelta = timedelta(0), rm: str = "rm-1", branch: str = "b-1",
                   customer: str = "c-1") -> Alert:
        clock = movable_clock()
        async with runtime.db.unit_of_work() as uow:
            rule = await AlertRuleRepository().get(uow, created.alert_rule_id)
            assert rule is not None
            return await alerts_of(runtime, clock).raise_alert(
                uow=uow, rule=rule, customer_id=customer, relationship_manager_id=rm, branch_id=branch,
                summary="outflow of 62% of the balance in 7 days",
                evidence=[Evidence(description="outgoing transfer", resource="customers/c-1/transactions/t-9",
                                   occur_time=clock.now - ago, currency_code="CNY", units=620_000)],
                trigger_time=clock.now - ago, reason_codes=["large_outflows.min_balance_share"],
                inputs={"outflow_share": 0.62})

    make.rule = created  # type: ignore[attr-defined]
    return make


async def get(risk, name: str, metadata: Any = OFFICER) -> alert_pb2.Alert:  # type: ignore[no-untyped-def]
    return (await risk.GetAlert(pb.GetAlertRequest(name=name), metadata=metadata)).alert


async def test_a_raised_alert_is_open_with_its_deadline_evidence_audit_and_feed_event(risk, raise_alert) -> None:
    raised = await raise_alert()
    alert = await get(risk, raised.name)
    assert alert.status == alert_pb2.ALERT_STATUS_OPEN and alert.severity == alert_pb2.ALERT_SEVERITY_HIGH
    assert alert.rule == raise_alert.rule.name and alert.customer == "customers/c-1"
    assert alert.due_time.ToDatetime() - alert.trigger_time.ToDatetime() == timedelta(hours=24)
    assert alert.evidence[0].amount.units == 620_000 and alert.evidence[0].description == "outgoing transfer"
    assert alert.decision_audit.startswith("decisionAudits/") and not alert.response_breached
    feed = change_feed(risk, pb.WatchChangesRequest, bearer(Role.SERVICE))
    events = await read_changes(feed(resource_types=["crm.risk.v1.Alert"]),
                                until=lambda seen: any(e.resource_name == alert.name for e in seen))
    published = alert_pb2.Alert()
    assert next(e for e in events if e.resource_name == alert.name).payload.Unpack(published)
    assert published.status == alert_pb2.ALERT_STATUS_OPEN


async def test_acknowledge_assign_and_resolve_walk_the_workflow(risk, raise_alert) -> None:
    name = (await raise_alert()).name
    acked = (await risk.AcknowledgeAlert(pb.AcknowledgeAlertRequest(name=name), metadata=OFFICER)).alert
    assert acked.status == alert_pb2.ALERT_STATUS_ACKNOWLEDGED and acked.HasField("respond_time")
    with pytest.raises(grpc.aio.AioRpcError) as twice:
        await risk.AcknowledgeAlert(pb.AcknowledgeAlertRequest(name=name), metadata=OFFICER)
    assert error_reason(twice.value) == "ALERT_ALREADY_ACKNOWLEDGED"

    assigned = (await risk.AssignAlert(pb.AssignAlertRequest(name=name, assignee="ro-7", etag=acked.etag),
                                       metadata=OFFICER)).alert
    assert assigned.status == alert_pb2.ALERT_STATUS_INVESTIGATING and assigned.assignee == "ro-7"

    with pytest.raises(grpc.aio.AioRpcError) as no_outcome:
        await risk.ResolveAlert(pb.ResolveAlertRequest(name=name, note=""), metadata=OFFICER)
    assert no_outcome.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(no_outcome.value)) == {"outcome", "note"}
    assert (await get(risk, name)).etag == assigned.etag, "a refused resolution changes nothing"

    resolved = (await risk.ResolveAlert(pb.ResolveAlertRequest(
        name=name, outcome=alert_pb2.ALERT_OUTCOME_LEGITIMATE_ACTIVITY, note="Customer confirmed the house purchase.",
        etag=assigned.etag), metadata=OFFICER)).alert
    assert resolved.status == alert_pb2.ALERT_STATUS_RESOLVED and resolved.HasField("close_time")
    assert resolved.outcome == alert_pb2.ALERT_OUTCOME_LEGITIMATE_ACTIVITY
    assert resolved.respond_time == acked.respond_time, "the response clock stopped at the acknowledgement"


async def test_every_step_on_a_closed_alert_is_refused_and_changes_nothing(risk, risk_service, raise_alert) -> None:
    name = (await raise_alert()).name
    dismissed = (await risk.DismissAlert(pb.DismissAlertRequest(
        name=name, reason=alert_pb2.DISMISS_REASON_FALSE_POSITIVE), metadata=OFFICER)).alert
    assert dismissed.status == alert_pb2.ALERT_STATUS_DISMISSED and dismissed.HasField("respond_time")
    audits_before = await rows_about(risk_service, "audit_record", name)
    events_before = await rows_about(risk_service, "outbox_event", name)
    steps = [
        risk.AcknowledgeAlert(pb.AcknowledgeAlertRequest(name=name), metadata=OFFICER),
        risk.AssignAlert(pb.AssignAlertRequest(name=name, assignee="ro-2"), metadata=OFFICER),
        risk.ResolveAlert(pb.ResolveAlertRequest(name=name, outcome=alert_pb2.ALERT_OUTCOME_OTHER, note="x"),
                          metadata=OFFICER),
        risk.DismissAlert(pb.DismissAlertRequest(name=name, reason=alert_pb2.DISMISS_REASON_DUPLICATE),
                          metadata=OFFICER),
    ]
    for step in steps:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await step
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert error_reason(refused.value) == "ALERT_CLOSED"
    assert (await get(risk, name)).etag == dismissed.etag
    assert await rows_about(risk_service, "audit_record", name) == audits_before
    assert await rows_about(risk_service, "outbox_event", name) == events_before


async def test_bad_workflow_input_names_the_field(risk, raise_alert) -> None:
    name = (await raise_alert()).name
    with pytest.raises(grpc.aio.AioRpcError) as other:
        await risk.DismissAlert(pb.DismissAlertRequest(name=name, reason=alert_pb2.DISMISS_REASON_OTHER),
                                metadata=OFFICER)
    assert set(field_violations(other.value)) == {"note"}
    with pytest.raises(grpc.aio.AioRpcError) as no_reason:
        await risk.DismissAlert(pb.DismissAlertRequest(name=name), metadata=OFFICER)
    assert set(field_violations(no_reason.value)) == {"reason"}
    with pytest.raises(grpc.aio.AioRpcError) as assignee:
        await risk.AssignAlert(pb.AssignAlertRequest(name=name, assignee="no spaces allowed"), metadata=OFFICER)
    assert set(field_violations(assignee.value)) == {"assignee"}
    with pytest.raises(grpc.aio.AioRpcError) as stale:
        await risk.AcknowledgeAlert(pb.AcknowledgeAlertRequest(name=name, etag="99"), metadata=OFFICER)
    assert stale.value.code() == grpc.StatusCode.ABORTED
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await risk.GetAlert(pb.GetAlertRequest(name=f"alerts/{uuid.uuid4()}"), metadata=OFFICER)
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
    assert (await get(risk, name)).status == alert_pb2.ALERT_STATUS_OPEN


async def test_a_repeated_request_id_returns_the_first_result(risk, raise_alert) -> None:
    name = (await raise_alert()).name
    request = pb.AssignAlertRequest(name=name, assignee="ro-3", request_id=str(uuid.uuid4()))
    first = (await risk.AssignAlert(request, metadata=OFFICER)).alert
    second = (await risk.AssignAlert(request, metadata=OFFICER)).alert
    assert second.etag == first.etag and first.status == alert_pb2.ALERT_STATUS_OPEN


async def test_two_escalators_escalate_each_overdue_alert_once(risk, risk_service, raise_alert, alerts_of,
                                                               movable_clock) -> None:
    _, runtime = risk_service
    overdue = [(await raise_alert(ago=25 * HOUR)).name for _ in range(6)]
    answered = (await raise_alert(ago=25 * HOUR)).name
    await risk.AcknowledgeAlert(pb.AcknowledgeAlertRequest(name=answered), metadata=OFFICER)
    fresh = (await raise_alert(ago=23 * HOUR)).name
    clock = movable_clock()
    replicas = [AlertEscalator(db=runtime.db, alerts=alerts_of(runtime, clock), poll_seconds=1, batch_size=2)
                for _ in range(2)]
    for _ in range(4):
        await asyncio.gather(*(replica.run_once() for replica in replicas))
    for name in overdue:
        alert = await get(risk, name)
        assert alert.status == alert_pb2.ALERT_STATUS_ESCALATED and alert.HasField("escalate_time")
        assert alert.response_breached
        assert await rows_about(risk_service, "audit_record", name) == 1, "escalated exactly once"
    assert (await get(risk, answered)).status == alert_pb2.ALERT_STATUS_ACKNOWLEDGED
    assert (await get(risk, fresh)).status == alert_pb2.ALERT_STATUS_OPEN, "still inside its 24 hours"

    late = (await risk.AcknowledgeAlert(pb.AcknowledgeAlertRequest(name=overdue[0]), metadata=OFFICER)).alert
    assert late.status == alert_pb2.ALERT_STATUS_ACKNOWLEDGED and late.HasField("escalate_time")
    assert late.response_breached, "acknowledged after the deadline"


async def test_the_response_report_gives_the_share_answered_within_the_deadline(risk, raise_alert) -> None:
    branch = f"b-{uuid.uuid4().hex[:8]}"
    in_time = [(await raise_alert(ago=HOUR, branch=branch)).name for _ in range(2)]
    late = (await raise_alert(ago=30 * HOUR, branch=branch)).name
    await raise_alert(ago=30 * HOUR, branch=branch)  # unanswered past its deadline
    await raise_alert(ago=HOUR, branch=branch)  # unanswered, still inside its deadline
    for name in [*in_time, late]:
        await risk.AcknowledgeAlert(pb.AcknowledgeAlertRequest(name=name), metadata=OFFICER)
    now = datetime.now(UTC)
    interval = interval_pb2.Interval(start_time=timestamp(now - timedelta(days=2)), end_time=timestamp(now))
    report = (await risk.GetAlertResponseReport(pb.GetAlertResponseReportRequest(interval=interval, branch_id=branch),
                                                metadata=ANALYST)).report
    assert (report.raised, report.handled_in_time, report.handled_late, report.unhandled_breached,
            report.pending) == (5, 2, 1, 1, 1)
    assert report.handled_in_time_share == pytest.approx(0.5) and report.target_share == 0.95
    assert not report.meets_target

    with pytest.raises(grpc.aio.AioRpcError) as open_ended:
        await risk.GetAlertResponseReport(pb.GetAlertResponseReportRequest(
            interval=interval_pb2.Interval(start_time=timestamp(now))), metadata=ANALYST)
    assert set(field_violations(open_ended.value)) == {"interval"}


async def test_lists_filter_order_and_page_and_a_manager_sees_only_their_book(risk, raise_alert) -> None:
    branch = f"b-{uuid.uuid4().hex[:8]}"
    mine = [(await raise_alert(ago=hours * HOUR, branch=branch, rm="rm-mine")).name for hours in (3, 1, 2)]
    theirs = (await raise_alert(branch=branch, rm="rm-other")).name
    listed = []
    token = ""
    while True:
        page = await risk.ListAlerts(pb.ListAlertsRequest(branch_id=branch, page_size=2, page_token=token),
                                     metadata=OFFICER)
        listed += [a.name for a in page.alerts]
        token = page.next_page_token
        if not token:
            break
    assert listed == [mine[0], mine[2], mine[1], theirs], "earliest deadline first, across pages"
    newest = await risk.ListAlerts(pb.ListAlertsRequest(branch_id=branch, order_by="trigger_time desc"),
                                   metadata=OFFICER)
    assert [a.name for a in newest.alerts] == [theirs, mine[1], mine[2], mine[0]]

    manager = bearer(Role.RELATIONSHIP_MANAGER, subject="rm-mine")
    own = await risk.ListAlerts(pb.ListAlertsRequest(branch_id=branch, relationship_manager_id="rm-other"),
                                metadata=manager)
    assert sorted(a.name for a in own.alerts) == sorted(mine), "a manager's filter cannot leave their book"
    with pytest.raises(grpc.aio.AioRpcError) as outside:
        await get(risk, theirs, manager)
    assert outside.value.code() == grpc.StatusCode.PERMISSION_DENIED

    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await risk.ListAlerts(pb.ListAlertsRequest(order_by="customer", statuses=[0]), metadata=OFFICER)
    assert set(field_violations(bad.value)) == {"order_by", "statuses[0]"}


async def test_a_rule_with_open_alerts_cannot_be_deleted(risk, raise_alert) -> None:
    name = (await raise_alert()).name
    rule = raise_alert.rule
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await risk.DeleteAlertRule(pb.DeleteAlertRuleRequest(name=rule.name), metadata=OFFICER)
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_reason(refused.value) == "ALERT_RULE_HAS_OPEN_ALERTS"
    await risk.DismissAlert(pb.DismissAlertRequest(name=name, reason=alert_pb2.DISMISS_REASON_DUPLICATE),
                            metadata=OFFICER)
    await risk.DeleteAlertRule(pb.DeleteAlertRuleRequest(name=rule.name), metadata=OFFICER)


async def test_the_wired_clock_worker_escalates_an_overdue_alert(database_factory, new_rule, alerts_of,
                                                                 movable_clock) -> None:
    """The service's own escalator (CRM_RISK_ALERT_ESCALATION_POLL_SECONDS > 0), on a database of its own."""
    url = await migrated_database(database_factory, SPEC)
    async with running_service(SPEC, database_url=url, profile_target="", alert_escalation_poll_seconds=0.05
                               ) as (channel, runtime):
        risk = risk_service_pb2_grpc.RiskServiceStub(channel)
        created = (await risk.CreateAlertRule(pb.CreateAlertRuleRequest(alert_rule=new_rule()),
                                              metadata=OFFICER)).alert_rule
        clock = movable_clock()
        async with runtime.db.unit_of_work() as uow:
            rule = await AlertRuleRepository().get(uow, created.alert_rule_id)
            assert rule is not None
            raised = await alerts_of(runtime, clock).raise_alert(
                uow=uow, rule=rule, customer_id="c-9", relationship_manager_id="", branch_id="", summary="s",
                evidence=[], trigger_time=clock.now - 25 * HOUR)

        async def status() -> int:
            return (await get(risk, raised.name)).status

        await eventually(status, until=lambda s: s == alert_pb2.ALERT_STATUS_ESCALATED)
