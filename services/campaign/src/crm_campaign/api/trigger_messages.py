"""Trigger rule protos <-> domain model. Nothing else: no rules, no I/O."""

from __future__ import annotations

from datetime import timedelta

from google.protobuf import unknown_fields
from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message
from google.type import money_pb2

from crm.campaign.v1 import care_pb2, trigger_pb2
from crm_campaign.api import value_messages as values
from crm_campaign.campaigns.model import Money
from crm_campaign.triggers.model import (
    CONDITIONS,
    AnniversaryCondition,
    BirthdayCondition,
    CardApplicationCondition,
    CareTaskAction,
    DormancyCondition,
    OfferAction,
    PayrollCondition,
    ProductMaturityCondition,
    SegmentEntryCondition,
    TriggerEventType,
    TriggerRule,
)
from crm_campaign.triggers.rules import EVENT_TYPES, invalid
from crmkit.errors import FieldViolation
from crmkit.validation import unknown_enum
from crmkit.values import set_timestamps, timestamp

FIELD = "trigger_rule"


def to_domain(message: trigger_pb2.TriggerRule, *, trigger_rule_id: str | None = None) -> TriggerRule:
    """Domain rule from a request; INVALID_ARGUMENT for values that cannot even be read, and for
    fields this server does not know (a condition or action from a newer contract, say)."""
    bad: list[FieldViolation] = []
    _no_unknown_fields(message, FIELD, bad)

    def days(duration: Duration, field: str, present: bool) -> timedelta | None:
        if not present:
            return None
        if duration.nanos:
            bad.append(FieldViolation(field, "must be whole days"))
        return values.read_duration(duration)

    def money(amount: money_pb2.Money, field: str, present: bool) -> Money | None:
        return values.read_money(amount, field, bad) if present else None

    p = f"{FIELD}."
    rule = TriggerRule(
        trigger_rule_id=trigger_rule_id if trigger_rule_id is not None else message.trigger_rule_id,
        display_name=message.display_name,
        description=message.description,
        state=message.state,
        population_segment=message.population_segment,
        cooldown=days(message.cooldown, f"{p}cooldown", message.HasField("cooldown")),
    )
    case = message.WhichOneof("condition")
    if case is not None:
        inner = getattr(message, case)
        _no_unknown_fields(inner, f"{p}{case}", bad)
        f = f"{p}{case}."
        if case == "product_maturity":
            pm = message.product_maturity
            rule.product_maturity = ProductMaturityCondition(
                product_codes=tuple(pm.product_codes),
                lead_time=days(pm.lead_time, f"{f}lead_time", pm.HasField("lead_time")),
                min_amount=money(pm.min_amount, f"{f}min_amount", pm.HasField("min_amount")))
        elif case == "birthday":
            rule.birthday = BirthdayCondition(
                lead_time=days(message.birthday.lead_time, f"{f}lead_time", message.birthday.HasField("lead_time")))
        elif case == "anniversary":
            an = message.anniversary
            rule.anniversary = AnniversaryCondition(
                lead_time=days(an.lead_time, f"{f}lead_time", an.HasField("lead_time")), years=tuple(an.years))
        elif case == "dormancy":
            dm = message.dormancy
            rule.dormancy = DormancyCondition(
                inactive_for=days(dm.inactive_for, f"{f}inactive_for", dm.HasField("inactive_for")))
        elif case == "card_application":
            ca = message.card_application
            rule.card_application = CardApplicationCondition(card_product_codes=tuple(ca.card_product_codes),
                                                             approved_only=ca.approved_only)
        elif case == "payroll":
            pr = message.payroll
            rule.payroll = PayrollCondition(
                min_monthly_amount=money(pr.min_monthly_amount, f"{f}min_monthly_amount",
                                         pr.HasField("min_monthly_amount")),
                consecutive_months=pr.consecutive_months)
        elif case == "segment_entry":
            rule.segment_entry = SegmentEntryCondition(segment=message.segment_entry.segment)
    _event_type_agrees(message, case, bad)
    action = message.WhichOneof("action")
    if action is not None:
        _no_unknown_fields(getattr(message, action), f"{p}{action}", bad)
    if action == "offer_action":
        rule.offer_action = OfferAction(campaign=message.offer_action.campaign, offer=message.offer_action.offer)
    elif action == "care_task_action":
        care = message.care_task_action
        rule.care_task_action = CareTaskAction(
            kind=care.kind, title=care.title, priority=care.priority,
            due_after=days(care.due_after, f"{p}care_task_action.due_after", care.HasField("due_after")))
    if bad:
        raise invalid(bad, rule.trigger_rule_id)
    return rule


def _event_type_agrees(message: trigger_pb2.TriggerRule, case: str | None, bad: list[FieldViolation]) -> None:
    """`event_type` is output only, but a request that names one must not contradict itself: an
    unknown event type, or one that is not the condition's, is refused rather than ignored."""
    named = message.event_type
    if not named:
        return
    if named not in EVENT_TYPES:
        bad.append(FieldViolation(f"{FIELD}.event_type", unknown_enum(named, "TriggerEventType")))
    elif case is not None and CONDITIONS[case][1] != named:
        bad.append(FieldViolation(f"{FIELD}.event_type", f"is output only and follows from the condition; "
                                                         f"{TriggerEventType(named).name} contradicts {case}"))


def _no_unknown_fields(message: Message, field: str, bad: list[FieldViolation]) -> None:
    found = unknown_fields.UnknownFieldSet(message)
    numbers = sorted({found[index].field_number for index in range(len(found))})
    if numbers:
        bad.append(FieldViolation(field, "has fields this server does not know (field numbers "
                                         f"{', '.join(map(str, numbers))}): a condition, action or field "
                                         "of a newer contract?"))


def _duration(value: timedelta) -> Duration:
    message = Duration()
    message.FromTimedelta(value)
    return message


def to_proto(rule: TriggerRule) -> trigger_pb2.TriggerRule:
    message = trigger_pb2.TriggerRule(
        name=rule.name, trigger_rule_id=rule.trigger_rule_id, etag=rule.etag, display_name=rule.display_name,
        description=rule.description, state=trigger_pb2.TriggerRuleState.ValueType(rule.state),
        event_type=trigger_pb2.TriggerEventType.ValueType(rule.event_type),
        population_segment=rule.population_segment, fire_count=rule.fire_count, creator=rule.creator,
    )
    if rule.product_maturity is not None:
        pm = rule.product_maturity
        message.product_maturity.product_codes.extend(pm.product_codes)
        message.product_maturity.SetInParent()
        if pm.lead_time is not None:
            message.product_maturity.lead_time.CopyFrom(_duration(pm.lead_time))
        if pm.min_amount is not None:
            message.product_maturity.min_amount.CopyFrom(values.money_to_proto(pm.min_amount))
    elif rule.birthday is not None:
        message.birthday.SetInParent()
        if rule.birthday.lead_time is not None:
            message.birthday.lead_time.CopyFrom(_duration(rule.birthday.lead_time))
    elif rule.anniversary is not None:
        message.anniversary.SetInParent()
        message.anniversary.years.extend(rule.anniversary.years)
        if rule.anniversary.lead_time is not None:
            message.anniversary.lead_time.CopyFrom(_duration(rule.anniversary.lead_time))
    elif rule.dormancy is not None:
        message.dormancy.SetInParent()
        if rule.dormancy.inactive_for is not None:
            message.dormancy.inactive_for.CopyFrom(_duration(rule.dormancy.inactive_for))
    elif rule.card_application is not None:
        message.card_application.SetInParent()
        message.card_application.card_product_codes.extend(rule.card_application.card_product_codes)
        message.card_application.approved_only = rule.card_application.approved_only
    elif rule.payroll is not None:
        message.payroll.SetInParent()
        message.payroll.consecutive_months = rule.payroll.consecutive_months
        if rule.payroll.min_monthly_amount is not None:
            message.payroll.min_monthly_amount.CopyFrom(values.money_to_proto(rule.payroll.min_monthly_amount))
    elif rule.segment_entry is not None:
        message.segment_entry.segment = rule.segment_entry.segment
        message.segment_entry.SetInParent()
    if rule.offer_action is not None:
        message.offer_action.SetInParent()
        message.offer_action.campaign = rule.offer_action.campaign
        message.offer_action.offer = rule.offer_action.offer
    elif rule.care_task_action is not None:
        care = rule.care_task_action
        message.care_task_action.SetInParent()
        message.care_task_action.kind = care_pb2.CareTaskKind.ValueType(care.kind)
        message.care_task_action.title = care.title
        message.care_task_action.priority = care_pb2.CareTaskPriority.ValueType(care.priority)
        if care.due_after is not None:
            message.care_task_action.due_after.CopyFrom(_duration(care.due_after))
    if rule.cooldown is not None:
        message.cooldown.CopyFrom(_duration(rule.cooldown))
    if rule.last_fired_at is not None:
        message.last_fire_time.CopyFrom(timestamp(rule.last_fired_at))
    set_timestamps(message, create_time=rule.created_at, update_time=rule.updated_at)
    return message
