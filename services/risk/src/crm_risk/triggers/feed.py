"""Profile's events -> contact snapshots (digests only) and transactions. Decoding only: no I/O."""

from __future__ import annotations

from datetime import UTC
from decimal import Decimal

from crm.common.v1 import change_event_pb2
from crm.profile.v1 import customer_pb2, event_pb2
from crm_risk.customers import rules as customer_rules
from crm_risk.triggers import rules
from crm_risk.triggers.model import ContactSnapshot, Transaction
from crmkit.outbox import feed_order

CUSTOMER_TYPE = "crm.profile.v1.Customer"
EVENT_TYPE = customer_rules.EVENT_TYPE
TRANSACTION_TYPES = (event_pb2.EVENT_TYPE_TRANSACTION, event_pb2.EVENT_TYPE_PAYROLL_CREDIT)
CREDIT = event_pb2.TRANSACTION_DIRECTION_CREDIT
DEBIT = event_pb2.TRANSACTION_DIRECTION_DEBIT


def contact_snapshot(event: change_event_pb2.ChangeEvent, key: bytes) -> ContactSnapshot | None:
    """The contact details an active customer's event carries; None for other events (features,
    deletions, customers no longer active)."""
    customer_id = customer_rules.customer_id_of(event.resource_name)
    if (customer_id is None or event.resource_type != CUSTOMER_TYPE
            or event.change_type == change_event_pb2.CHANGE_TYPE_DELETED):
        return None
    c = customer_pb2.Customer()
    if not event.payload.Unpack(c) or c.state != customer_rules.ACTIVE_STATE:
        return None
    a = c.address
    address = "\n".join([a.region_code, a.postal_code, a.administrative_area, a.locality, a.sublocality,
                         *a.address_lines])
    return ContactSnapshot(customer_id=customer_id, event_id=event.event_id,
                           occurred_at=event.occurred_at.ToDatetime(tzinfo=UTC), digests={
                               "mobile_phone": rules.digest(key, "mobile_phone", c.mobile_phone),
                               "email": rules.digest(key, "email", c.email),
                               "address": rules.digest(key, "address", address)})


def transaction_of(event: change_event_pb2.ChangeEvent, currency: str) -> Transaction | None:
    """The transaction a profile `CustomerEvent` carries, when it is one (a transaction or payroll
    credit) in the reporting currency with a positive amount; None otherwise (risk has no exchange
    rates)."""
    customer_id = customer_rules.customer_id_of(event.resource_name)
    if customer_id is None or event.resource_type != EVENT_TYPE:
        return None
    e = event_pb2.CustomerEvent()
    if not event.payload.Unpack(e) or not e.HasField("transaction") or e.event_type not in TRANSACTION_TYPES:
        return None
    t = e.transaction
    amount = Decimal(t.amount.units) + Decimal(t.amount.nanos).scaleb(-9)
    if t.amount.currency_code != currency or amount <= 0 or t.direction not in (CREDIT, DEBIT):
        return None
    moment = e.occur_time if e.HasField("occur_time") else event.occurred_at
    return Transaction(customer_id=customer_id, event=event.resource_name, position=feed_order(event.cursor),
                       occurred_at=moment.ToDatetime(tzinfo=UTC), direction=t.direction, kind=t.kind,
                       amount=amount, currency_code=currency)
