"""The calendar scan's pure rules: which month-days are due (29 February in other years),
anniversaries within the lead time and years asked for, dormancy spans, and which feed events
are calendar facts (logins and customer-initiated transactions, not salary credits)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

from google.protobuf import any_pb2
from google.type import date_pb2

from crm.common.v1 import change_event_pb2
from crm.profile.v1 import customer_pb2, event_pb2
from crm_campaign.triggers import calendar, rules
from crm_campaign.triggers.model import (
    AnniversaryCondition,
    CareTaskAction,
    DormancyCondition,
    TriggerEvent,
    TriggerEventType,
    TriggerRule,
    TriggerRuleState,
)
from crmkit.values import timestamp

NOW = datetime(2027, 2, 27, 9, 0, tzinfo=UTC)


def rule(**condition: object) -> TriggerRule:
    return TriggerRule(trigger_rule_id="r", display_name="r", state=TriggerRuleState.ENABLED,
                       care_task_action=CareTaskAction(3, "Call"), **condition)  # type: ignore[arg-type]


def test_a_leap_day_start_falls_on_28_february_in_other_years() -> None:
    days = calendar.window(NOW.date(), 2)  # 27, 28 February, 1 March 2027
    assert calendar.month_days(days) == [227, 228, calendar.LEAP_DAY, 301]
    assert calendar.anniversary_in(days, calendar.LEAP_DAY) == date(2027, 2, 28)
    assert calendar.anniversary_in(days, 1231) is None


def test_anniversaries_fire_within_the_lead_time_for_the_years_asked_and_dormancy_after_its_span() -> None:
    fifth = rule(anniversary=AnniversaryCondition(lead_time=timedelta(days=3), years=(1, 5)))
    event = TriggerEvent(TriggerEventType.ANNIVERSARY, "c", key="anniversary:2027", occurred_at=NOW,
                         anniversary=date(2027, 3, 1), years=5)
    assert rules.matches(fifth, event)
    assert not rules.matches(fifth, TriggerEvent(TriggerEventType.ANNIVERSARY, "c", key="k", occurred_at=NOW,
                                                 anniversary=date(2027, 3, 1), years=3))
    assert not rules.matches(fifth, TriggerEvent(TriggerEventType.ANNIVERSARY, "c", key="k", occurred_at=NOW,
                                                 anniversary=date(2027, 3, 5), years=5))
    idle = rule(dormancy=DormancyCondition(inactive_for=timedelta(days=30)))
    assert rules.matches(idle, TriggerEvent(TriggerEventType.DORMANCY, "c", key="k", occurred_at=NOW,
                                            inactive_since=NOW - timedelta(days=31)))
    assert not rules.matches(idle, TriggerEvent(TriggerEventType.DORMANCY, "c", key="k", occurred_at=NOW,
                                                inactive_since=NOW - timedelta(days=29)))


def _change(resource_type: str, name: str, change_type: int, payload: object) -> change_event_pb2.ChangeEvent:
    packed = any_pb2.Any()
    packed.Pack(payload)  # type: ignore[arg-type]
    return change_event_pb2.ChangeEvent(event_id=str(uuid.uuid4()), resource_type=resource_type, resource_name=name,
                                        change_type=change_type, payload=packed)


def test_calendar_facts_are_the_start_date_and_the_customers_own_activity() -> None:
    customer = _change(calendar.CUSTOMER_TYPE, "customers/c1", change_event_pb2.CHANGE_TYPE_UPDATED,
                       customer_pb2.Customer(customer_id="c1",
                                             onboarded_on=date_pb2.Date(year=2020, month=12, day=7)))
    assert calendar.fact_of(customer) == calendar.CalendarFact("c1", onboarded_month_day=1207, onboarded_year=2020)

    def event(event_type: int, kind: int = 0) -> change_event_pb2.ChangeEvent:
        message = event_pb2.CustomerEvent(customer="customers/c1", event_type=event_type, occur_time=timestamp(NOW))
        if kind:
            message.transaction.CopyFrom(event_pb2.TransactionDetail(kind=kind))
        return _change(calendar.CUSTOMER_EVENT_TYPE, "customers/c1/events/e", change_event_pb2.CHANGE_TYPE_EVENT,
                       message)

    assert calendar.fact_of(event(event_pb2.EVENT_TYPE_LOGIN)) == calendar.CalendarFact("c1", active_at=NOW)
    assert calendar.fact_of(event(event_pb2.EVENT_TYPE_TRANSACTION, event_pb2.TRANSACTION_KIND_TRANSFER)) is not None
    assert calendar.fact_of(event(event_pb2.EVENT_TYPE_TRANSACTION, event_pb2.TRANSACTION_KIND_SALARY)) is None
    assert calendar.fact_of(event(event_pb2.EVENT_TYPE_PRODUCT_VIEW)) is None
