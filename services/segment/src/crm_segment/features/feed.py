"""Profile's change events -> the read model's changes (model.py). Decoding only: no rules, no I/O.

Payloads are decoded by the resource type the event names; an event of a type the model does not
follow, or about no customer, decodes to None and is skipped (the cursor still moves past it).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC
from decimal import Decimal

from google.protobuf.message import Message
from google.type import money_pb2

from crm.common.v1 import change_event_pb2
from crm.profile.v1 import consent_pb2, customer_pb2, event_pb2, features_pb2, holding_pb2
from crm_segment.features import rules
from crm_segment.features.model import (
    Change,
    ConsentDecision,
    ContactPreferences,
    CustomerRecord,
    DerivedFeatures,
    HoldingRecord,
    Stamp,
    TransactionRecord,
)
from crmkit.validation import to_date

ChangeEvent = change_event_pb2.ChangeEvent
DELETED = change_event_pb2.CHANGE_TYPE_DELETED


def decode(event: ChangeEvent) -> Change | None:
    decoder = _DECODERS.get(event.resource_type)
    customer_id = rules.customer_id_of(event.resource_name)
    if decoder is None or customer_id is None:
        return None
    stamp = Stamp(customer_id=customer_id, position=rules.position_key(event.cursor),
                  occurred_at=event.occurred_at.ToDatetime(tzinfo=UTC))
    return decoder(event, stamp)


def _unpack(event: ChangeEvent, message: Message) -> Message:
    if not event.payload.Unpack(message):
        raise ValueError(f"{event.resource_type} event carries a {event.payload.TypeName()} payload")
    return message


def _customer(event: ChangeEvent, stamp: Stamp) -> CustomerRecord:
    if event.change_type == DELETED:
        return CustomerRecord(stamp=stamp, removed=True)
    c = _unpack(event, customer_pb2.Customer())
    assert isinstance(c, customer_pb2.Customer)
    return CustomerRecord(
        stamp=stamp, removed=c.state != rules.ACTIVE_STATE, customer_type=c.customer_type,
        # A service reader sees the birth date as its year alone (month and day 0).
        birth_year=c.birth_date.year or None, gender=c.gender, nationality=c.nationality,
        kyc_status=c.kyc_status, risk_tolerance=c.risk_tolerance,
        relationship_manager_id=c.relationship_manager_id, branch_id=c.branch_id,
        onboarded_on=to_date(c.onboarded_on), closed_on=to_date(c.closed_on))


def _money(value: money_pb2.Money) -> Decimal:
    return Decimal(value.units) + Decimal(value.nanos).scaleb(-9)


def _features(event: ChangeEvent, stamp: Stamp) -> DerivedFeatures:
    if event.change_type == DELETED:
        return DerivedFeatures(stamp=stamp, values=None)
    f = _unpack(event, features_pb2.CustomerFeatures())
    assert isinstance(f, features_pb2.CustomerFeatures)
    activity, lifecycle, rfm = f.activity, f.lifecycle, f.rfm
    return DerivedFeatures(stamp=stamp, values={
        "reporting_currency": f.aum.currency_code,
        "aum": _money(f.aum), "average_aum_90d": _money(f.average_aum_90d),
        "aum_change_90d": _money(lifecycle.aum_change_90d),
        "product_count": f.product_count, "product_type_count": f.product_type_count,
        "tenure_days": f.tenure_days,
        "recency_days": rfm.recency_days if rfm.HasField("recency_days") else None,
        "rfm_window_days": rfm.window_days or None,
        "frequency": rfm.frequency, "monetary": _money(rfm.monetary),
        "login_count_30d": activity.login_count_30d, "visit_count_30d": activity.visit_count_30d,
        "transaction_count_30d": activity.transaction_count_30d,
        "transaction_count_90d": activity.transaction_count_90d,
        "active_channel_count_90d": activity.active_channel_count_90d,
        "days_since_last_activity": (activity.days_since_last_activity
                                     if activity.HasField("days_since_last_activity") else None),
        "last_activity_at": f.last_activity_time.ToDatetime(tzinfo=UTC) if f.HasField("last_activity_time") else None,
        "age_years": lifecycle.age_years if lifecycle.HasField("age_years") else None,
        "holdings_opened_90d": lifecycle.holdings_opened_90d, "holdings_closed_90d": lifecycle.holdings_closed_90d,
        "payroll_active": lifecycle.payroll_active,
        "features_computed_at": f.compute_time.ToDatetime(tzinfo=UTC) if f.HasField("compute_time") else None,
    })


def _holding(event: ChangeEvent, stamp: Stamp) -> HoldingRecord:
    holding_id = event.resource_name.rsplit("/", 1)[-1]
    if event.change_type == DELETED:
        return HoldingRecord(stamp=stamp, holding_id=holding_id)
    h = _unpack(event, holding_pb2.Holding())
    assert isinstance(h, holding_pb2.Holding)
    return HoldingRecord(stamp=stamp, holding_id=holding_id, product_type=h.product_type,
                         open=h.status in rules.OPEN_STATUSES, maturity_on=to_date(h.maturity_date))


def _consent(event: ChangeEvent, stamp: Stamp) -> ConsentDecision | None:
    r = _unpack(event, consent_pb2.ConsentRecord())
    assert isinstance(r, consent_pb2.ConsentRecord)
    if r.purpose != rules.MARKETING:
        return None
    effective = r.evidence.effective_time if r.evidence.HasField("effective_time") else r.record_time
    return ConsentDecision(stamp=stamp, channel=r.channel, opted_in=r.decision == rules.OPT_IN,
                           effective_at=effective.ToDatetime(tzinfo=UTC),
                           expire_at=r.expire_time.ToDatetime(tzinfo=UTC) if r.HasField("expire_time") else None)


def _preferences(event: ChangeEvent, stamp: Stamp) -> ContactPreferences:
    p = _unpack(event, consent_pb2.ContactPreferences())
    assert isinstance(p, consent_pb2.ContactPreferences)
    return ContactPreferences(stamp=stamp, do_not_contact=p.do_not_contact,
                              do_not_contact_until=to_date(p.do_not_contact_until))


def _transaction(event: ChangeEvent, stamp: Stamp) -> TransactionRecord | None:
    e = _unpack(event, event_pb2.CustomerEvent())
    assert isinstance(e, event_pb2.CustomerEvent)
    if not rules.is_customer_transaction(e.event_type, e.transaction.kind):
        return None
    return TransactionRecord(stamp=stamp, day=e.occur_time.ToDatetime(tzinfo=UTC).date(),
                             amount=abs(_money(e.transaction.amount)))


_DECODERS: dict[str, Callable[[ChangeEvent, Stamp], Change | None]] = {
    rules.CUSTOMER_TYPE: _customer, rules.FEATURES_TYPE: _features, rules.HOLDING_TYPE: _holding,
    rules.CONSENT_TYPE: _consent, rules.PREFERENCES_TYPE: _preferences, rules.EVENT_TYPE: _transaction,
}

