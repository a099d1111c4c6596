"""The events trigger rules react to, read from the peers' change feeds: profile's customer events
(card applications, payroll credits) and holdings (maturities), segment's membership changes
(entries). Anything else is no trigger event (None)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from google.type import money_pb2

from crm.common.v1 import change_event_pb2
from crm.profile.v1 import event_pb2, holding_pb2
from crm.segment.v1 import segment_pb2
from crm_campaign.campaigns.model import Money
from crm_campaign.triggers.model import TriggerEvent, TriggerEventType
from crmkit.feed_consumer import ChangeEvent

CUSTOMER_EVENT_TYPE = "crm.profile.v1.CustomerEvent"
HOLDING_TYPE = "crm.profile.v1.Holding"
MEMBER_TYPE = "crm.segment.v1.SegmentMember"
# What campaign asks profile's feed for, on top of what its read models follow.
PROFILE_TYPES = (CUSTOMER_EVENT_TYPE, HOLDING_TYPE)
# Holdings whose maturity may be near.
MATURING = (holding_pb2.HOLDING_STATUS_ACTIVE, holding_pb2.HOLDING_STATUS_MATURED)
APPLYING = {event_pb2.APPLICATION_OUTCOME_SUBMITTED: False, event_pb2.APPLICATION_OUTCOME_APPROVED: True}
NANOS = 1_000_000_000


def read(event: ChangeEvent) -> TriggerEvent | None:
    if event.resource_type == CUSTOMER_EVENT_TYPE and event.change_type == change_event_pb2.CHANGE_TYPE_EVENT:
        return _customer_event(event)
    if event.resource_type == HOLDING_TYPE and event.change_type in (change_event_pb2.CHANGE_TYPE_CREATED,
                                                                     change_event_pb2.CHANGE_TYPE_UPDATED):
        return _holding(event)
    if event.resource_type == MEMBER_TYPE and event.change_type == change_event_pb2.CHANGE_TYPE_EVENT:
        return _segment_entry(event)
    return None


def _customer_event(event: ChangeEvent) -> TriggerEvent | None:
    message = event_pb2.CustomerEvent()
    if not event.payload.Unpack(message) or not message.customer.startswith("customers/"):
        return None
    customer_id = message.customer.removeprefix("customers/")
    at = message.occur_time.ToDatetime(tzinfo=UTC) if message.HasField("occur_time") else _at(event)
    if message.event_type == event_pb2.EVENT_TYPE_CARD_APPLICATION and message.HasField("application"):
        approved = APPLYING.get(message.application.outcome)
        if approved is None:
            return None
        # One application is one event, whichever of its messages (submitted, approved) fires.
        return TriggerEvent(TriggerEventType.CARD_APPLICATION, customer_id,
                            key=f"card-application:{message.application.application_id}", occurred_at=at,
                            product_code=message.product_code, approved=approved)
    if message.event_type == event_pb2.EVENT_TYPE_PAYROLL_CREDIT and message.HasField("transaction"):
        month = at.date().replace(day=1)
        return TriggerEvent(TriggerEventType.PAYROLL, customer_id, key=f"payroll:{month:%Y-%m}", occurred_at=at,
                            amount=_money(message.transaction.amount), payroll_month=month)
    return None


def _holding(event: ChangeEvent) -> TriggerEvent | None:
    holding = holding_pb2.Holding()
    if (not event.payload.Unpack(holding) or holding.status not in MATURING or not holding.HasField("maturity_date")
            or not holding.name.startswith("customers/")):
        return None
    maturity = holding.maturity_date
    try:
        matures = date(maturity.year, maturity.month, maturity.day)
    except ValueError:
        return None
    customer_id = holding.name.split("/")[1]
    return TriggerEvent(TriggerEventType.PRODUCT_MATURITY, customer_id,
                        key=f"maturity:{holding.name}:{matures.isoformat()}", occurred_at=_at(event),
                        product_code=holding.product_code,
                        amount=_money(holding.balance) if holding.HasField("balance") else None, maturity_date=matures)


def _segment_entry(event: ChangeEvent) -> TriggerEvent | None:
    change = segment_pb2.MembershipChange()
    if (not event.payload.Unpack(change) or change.kind != segment_pb2.MEMBERSHIP_CHANGE_KIND_ENTERED
            or not change.customer.startswith("customers/")):
        return None
    # Each entry is its own event (a replay of it is the same feed event); re-entries are
    # spaced by the cool-down.
    return TriggerEvent(TriggerEventType.SEGMENT_ENTRY, change.customer.removeprefix("customers/"),
                        key=f"segment-entry:{event.event_id}", occurred_at=_at(event), segment=change.segment)


def _at(event: ChangeEvent) -> datetime:
    return event.occurred_at.ToDatetime(tzinfo=UTC)


def _money(message: money_pb2.Money) -> Money:
    return Money(message.currency_code, Decimal(message.units) + Decimal(message.nanos) / NANOS)
