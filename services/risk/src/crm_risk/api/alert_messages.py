"""crm.risk.v1 Alert messages <-> the alerting values. Nothing else: no rules, no I/O."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.message import Message
from google.type import interval_pb2, money_pb2

from crm.risk.v1 import alert_pb2
from crm.risk.v1 import risk_service_pb2 as pb
from crm_risk.alerting.model import Alert, AlertFilter, ResponseReport
from crm_risk.alerting.rules import ALERT_NAME
from crm_risk.alerts.rules import ALERT_RULE_NAME
from crmkit.errors import FieldViolation, InvalidArgument
from crmkit.resources import ResourceName
from crmkit.values import set_timestamps

CUSTOMER_NAME = ResourceName("customers/{customer_id}")


def alert_id_of(name: str) -> str:
    return ALERT_NAME.parse_one(name, required=True)


def to_proto(alert: Alert, now: datetime) -> alert_pb2.Alert:
    message = alert_pb2.Alert(
        name=alert.name, alert_id=alert.alert_id, etag=alert.etag, rule=f"alertRules/{alert.alert_rule_id}",
        kind=alert_pb2.AlertRuleKind.ValueType(alert.kind), severity=alert_pb2.AlertSeverity.ValueType(alert.severity),
        customer=f"customers/{alert.customer_id}", relationship_manager_id=alert.relationship_manager_id,
        branch_id=alert.branch_id, summary=alert.summary, status=alert_pb2.AlertStatus.ValueType(alert.status),
        assignee=alert.assignee, response_breached=alert.breached(now),
        outcome=alert_pb2.AlertOutcome.ValueType(alert.outcome),
        dismiss_reason=alert_pb2.DismissReason.ValueType(alert.dismiss_reason), close_note=alert.close_note,
        decision_audit=alert.decision_audit)
    for e in alert.evidence:
        evidence = message.evidence.add(description=e.description, resource=e.resource)
        if e.currency_code:
            evidence.amount.CopyFrom(money_pb2.Money(currency_code=e.currency_code, units=e.units, nanos=e.nanos))
        set_timestamps(evidence, occur_time=e.occur_time)
    set_timestamps(message, trigger_time=alert.trigger_time, due_time=alert.due_time, respond_time=alert.respond_time,
                   close_time=alert.close_time, update_time=alert.update_time, escalate_time=alert.escalate_time)
    return message


def _time(parent: Message, field: str, path: str, bad: list[FieldViolation]) -> datetime | None:
    if not parent.HasField(field):
        return None
    try:
        return getattr(parent, field).ToDatetime(tzinfo=UTC)
    except ValueError:
        bad.append(FieldViolation(path, "is not a valid timestamp"))
        return None


def interval_from(parent: Message, field: str, bad: list[FieldViolation]) -> tuple[datetime | None, datetime | None]:
    if not parent.HasField(field):
        return None, None
    interval: interval_pb2.Interval = getattr(parent, field)
    return (_time(interval, "start_time", f"{field}.start_time", bad),
            _time(interval, "end_time", f"{field}.end_time", bad))


def filter_from(request: pb.ListAlertsRequest) -> AlertFilter:
    bad: list[FieldViolation] = []
    due_from, due_before = interval_from(request, "due_interval", bad)
    trigger_from, trigger_before = interval_from(request, "trigger_interval", bad)
    rule = customer = ""
    if request.rule:
        if ALERT_RULE_NAME.matches(request.rule):
            rule = ALERT_RULE_NAME.parse_one(request.rule, "rule")
        else:
            bad.append(FieldViolation("rule", "must be alertRules/{alert_rule_id}"))
    if request.customer:
        if CUSTOMER_NAME.matches(request.customer):
            customer = CUSTOMER_NAME.parse_one(request.customer, "customer")
        else:
            bad.append(FieldViolation("customer", "must be customers/{customer_id}"))
    if bad:
        raise InvalidArgument(bad)
    return AlertFilter(
        statuses=tuple(request.statuses), kinds=tuple(request.kinds), min_severity=request.min_severity,
        alert_rule_id=rule, customer_id=customer, assignee=request.assignee,
        relationship_manager_id=request.relationship_manager_id, branch_id=request.branch_id,
        breached_only=request.breached_only, due_from=due_from, due_before=due_before, trigger_from=trigger_from,
        trigger_before=trigger_before)


def report_to_proto(report: ResponseReport) -> alert_pb2.AlertResponseReport:
    c = report.counts
    message = alert_pb2.AlertResponseReport(
        raised=c.raised, handled_in_time=c.handled_in_time, handled_late=c.handled_late,
        unhandled_breached=c.unhandled_breached, pending=c.pending,
        handled_in_time_share=report.handled_in_time_share, target_share=report.target_share,
        meets_target=report.meets_target)
    set_timestamps(message.interval, start_time=report.interval_start, end_time=report.interval_end)
    set_timestamps(message, compute_time=report.compute_time)
    return message
