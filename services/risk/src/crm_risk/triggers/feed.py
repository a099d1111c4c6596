"""Profile's Customer events -> contact snapshots (digests only). Decoding only: no I/O."""

from __future__ import annotations

from datetime import UTC

from crm.common.v1 import change_event_pb2
from crm.profile.v1 import customer_pb2
from crm_risk.customers import rules as customer_rules
from crm_risk.triggers import rules
from crm_risk.triggers.model import ContactSnapshot

CUSTOMER_TYPE = "crm.profile.v1.Customer"


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
