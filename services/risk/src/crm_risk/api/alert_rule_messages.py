"""AlertRule proto <-> domain model. Nothing else: no rules, no I/O."""

from __future__ import annotations

from datetime import timedelta

from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message
from google.type import money_pb2

from crm.risk.v1 import alert_pb2
from crm_risk.alerts.model import (
    AbnormalTransactions,
    AlertRule,
    ComplaintsSpike,
    ContactDetailChanges,
    LargeOutflows,
    Money,
    Parameters,
)
from crmkit.errors import FieldViolation, InvalidArgument
from crmkit.values import duration, set_timestamps

_MAX_DURATION_SECONDS = 315_576_000_000  # the Duration message's own bound (10,000 years)


def _duration(parent: Message, field: str, path: str, bad: list[FieldViolation]) -> timedelta | None:
    if not parent.HasField(field):
        return None
    value: Duration = getattr(parent, field)
    well_formed = (abs(value.seconds) <= _MAX_DURATION_SECONDS and abs(value.nanos) < 1_000_000_000
                   and value.seconds * value.nanos >= 0)
    if not well_formed:
        bad.append(FieldViolation(path, "is not a valid duration"))
        return None
    return value.ToTimedelta()


def _money(parent: Message, field: str) -> Money | None:
    if not parent.HasField(field):
        return None
    value: money_pb2.Money = getattr(parent, field)
    return Money(currency_code=value.currency_code, units=value.units, nanos=value.nanos)


def _parameters(message: alert_pb2.AlertRule, bad: list[FieldViolation]) -> Parameters | None:
    which = message.WhichOneof("parameters")
    path = f"alert_rule.{which}."
    if which == "contact_detail_changes":
        c = message.contact_detail_changes
        return ContactDetailChanges(min_changes=c.min_changes, fields=tuple(c.fields))
    if which == "abnormal_transactions":
        a = message.abnormal_transactions
        return AbnormalTransactions(
            min_z_score=a.min_z_score, baseline_window=_duration(a, "baseline_window", path + "baseline_window", bad),
            min_amount=_money(a, "min_amount"), min_transactions=a.min_transactions)
    if which == "large_outflows":
        o = message.large_outflows
        return LargeOutflows(min_amount=_money(o, "min_amount"), min_balance_share=o.min_balance_share,
                             include_own_account_transfers=o.include_own_account_transfers,
                             before_maturity=_duration(o, "before_maturity", path + "before_maturity", bad))
    if which == "complaints_spike":
        s = message.complaints_spike
        return ComplaintsSpike(min_complaints=s.min_complaints, count_poor_survey_scores=s.count_poor_survey_scores)
    return None


def to_domain(message: alert_pb2.AlertRule) -> AlertRule:
    """The rule as sent; INVALID_ARGUMENT only for values that cannot even be read."""
    bad: list[FieldViolation] = []
    rule = AlertRule(
        alert_rule_id=message.alert_rule_id,
        display_name=message.display_name,
        description=message.description,
        kind=message.kind,
        severity=message.severity,
        enabled=message.enabled,
        window=_duration(message, "window", "alert_rule.window", bad),
        response_sla=_duration(message, "response_sla", "alert_rule.response_sla", bad),
        cooldown=_duration(message, "cooldown", "alert_rule.cooldown", bad),
        default_assignee=message.default_assignee,
        parameters=_parameters(message, bad),
    )
    if bad:
        raise InvalidArgument(bad)
    return rule


def _to_money(value: Money | None) -> money_pb2.Money | None:
    if value is None:
        return None
    return money_pb2.Money(currency_code=value.currency_code, units=value.units, nanos=value.nanos)


def _set_parameters(message: alert_pb2.AlertRule, parameters: Parameters | None) -> None:
    if isinstance(parameters, ContactDetailChanges):
        message.contact_detail_changes.CopyFrom(alert_pb2.ContactDetailChangeParameters(
            min_changes=parameters.min_changes, fields=list(parameters.fields)))
    elif isinstance(parameters, AbnormalTransactions):
        message.abnormal_transactions.CopyFrom(alert_pb2.AbnormalTransactionParameters(
            min_z_score=parameters.min_z_score, min_amount=_to_money(parameters.min_amount),
            min_transactions=parameters.min_transactions,
            baseline_window=duration(parameters.baseline_window) if parameters.baseline_window is not None
            else None))
    elif isinstance(parameters, LargeOutflows):
        message.large_outflows.CopyFrom(alert_pb2.LargeOutflowParameters(
            min_amount=_to_money(parameters.min_amount), min_balance_share=parameters.min_balance_share,
            include_own_account_transfers=parameters.include_own_account_transfers,
            before_maturity=duration(parameters.before_maturity) if parameters.before_maturity is not None
            else None))
    elif isinstance(parameters, ComplaintsSpike):
        message.complaints_spike.CopyFrom(alert_pb2.ComplaintsSpikeParameters(
            min_complaints=parameters.min_complaints, count_poor_survey_scores=parameters.count_poor_survey_scores))


def to_proto(rule: AlertRule) -> alert_pb2.AlertRule:
    message = alert_pb2.AlertRule(
        name=rule.name, alert_rule_id=rule.alert_rule_id, etag=rule.etag, display_name=rule.display_name,
        description=rule.description, kind=alert_pb2.AlertRuleKind.ValueType(rule.kind),
        severity=alert_pb2.AlertSeverity.ValueType(rule.severity),
        enabled=rule.enabled, default_assignee=rule.default_assignee, creator=rule.creator,
    )
    for field, value in (("window", rule.window), ("response_sla", rule.response_sla), ("cooldown", rule.cooldown)):
        if value is not None:
            getattr(message, field).CopyFrom(duration(value))
    _set_parameters(message, rule.parameters)
    set_timestamps(message, create_time=rule.created_at, update_time=rule.updated_at)
    return message
